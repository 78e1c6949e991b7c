// Kustomization files as Ferry reads them from a config repository: what each one refers to
// (resources, bases, components), the transformations Ferry needs to follow a rendered
// object back to the file that defines it (name prefix and suffix, namespace), and which
// references are refused (remote ones unless allowed, anything that leaves the repository).
// Building is kustomize's job (lib/kustomize/build.h); these only read.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/manifest/document.h"

namespace ferry::kustomize {

// The names kustomize accepts for a kustomization file, in its order of preference.
inline constexpr absl::string_view kFileNames[] = {"kustomization.yaml", "kustomization.yml",
                                                   "Kustomization"};

// True when the last component of `path` is one of kFileNames.
bool IsKustomizationFile(absl::string_view path);

// The folder of a repository path ("a/b/c.yaml" -> "a/b", "c.yaml" -> "").
std::string FolderOf(absl::string_view path);

// `folder`/`entry` with "." and ".." resolved, relative to the repository root ("" for the
// root). InvalidArgument when it leaves the repository or `entry` is absolute.
absl::StatusOr<std::string> Resolve(absl::string_view folder, absl::string_view entry);

// True when a kustomization entry names something outside the repository that kustomize
// would fetch (a URL, "git@host:..." or "host.tld/org/repo..."), not a local path.
bool LooksRemote(absl::string_view entry);

// One kustomization file.
struct Kustomization {
  std::string folder;  // repository-relative folder ("" for the root)
  std::string file;    // its path
  // Local entries of `resources`, `bases` and `components`, resolved (Resolve) against
  // `folder`: files or folders, in file order.
  std::vector<std::string> references;
  // The entries of `components` among `references`: kustomizations whose changes apply to
  // everything this one gathered (not only to their own resources).
  std::vector<std::string> components;
  // Entries that name remote targets, as written: in resources, bases, components, the
  // plugin lists, and the files of patches, generators, CRDs, OpenAPI and replacements.
  std::vector<std::string> remote;
  std::string name_prefix;
  std::string name_suffix;
  std::string namespace_;  // "" when the kustomization sets none
  // Entries of `generators`, `transformers` and `validators` that name local files, resolved:
  // configuration of plugins, which Ferry checks before a build (see Plugins()).
  std::vector<std::string> plugin_configs;
};

// Parses the kustomization at `path` from `content`. InvalidArgument, naming the file and
// the field, when it does not parse (within `limits`), is not a mapping, a field has the
// wrong type, or a reference is absolute or leaves the repository.
absl::StatusOr<Kustomization> ParseKustomization(absl::string_view path, absl::string_view content,
                                                 const manifest::DocumentLimits& limits = {});

// For a kustomization that does not parse: the folders its text seems to name (list items
// and values that resolve inside the repository), so what it would use is still not taken
// for a root of its own. Never fails.
std::vector<std::string> GuessReferences(absl::string_view path, absl::string_view content);

// True when a YAML file's content declares a KRM function (exec or container), which Ferry
// never runs.
bool DeclaresFunction(absl::string_view content);

}  // namespace ferry::kustomize
