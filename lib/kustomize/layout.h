// The kustomize layout of a repository's files: which folders are roots (a kustomization no
// other one refers to), which folders each root reads, which files belong to kustomize (and
// so are never applied on their own), and where each object a root renders is defined.
// Pure functions over file contents; thread-safe.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/kustomize/kustomization.h"
#include "lib/manifest/resource.h"

namespace ferry::kustomize {

// A kustomization that no other one refers to: built on its own, its output applied.
struct Root {
  std::string folder;  // "" for the repository root
  std::string file;    // its kustomization file
  // The kustomization folders the build reads: the root's first, then those it refers to,
  // breadth first, each once.
  std::vector<std::string> folders;
  // True when `path` lies in one of `folders` (so kustomize may read it for this root).
  bool Reads(const std::string& path) const;
  // Set when the root cannot be built as it stands (a remote reference that is not allowed,
  // a kustomization on its chain that does not parse, a reference to a folder that has no
  // kustomization, a KRM function): a per-root error; the other roots still build.
  std::string error;
};

struct LayoutOptions {
  // Remote resources and bases (URLs) are refused unless this is set.
  bool allow_remote = false;
  manifest::DocumentLimits limits;
};

struct Layout {
  std::vector<Root> roots;  // sorted by folder
  // Parsed kustomizations, by folder.
  std::map<std::string, Kustomization> kustomizations;
  // Folders holding a kustomization file (parsed or not).
  std::set<std::string> folders;

  // True when `path` lies in a kustomization folder or below one: kustomize uses it, Ferry
  // never applies it on its own.
  bool Uses(const std::string& path) const;
  // The roots (their files, sorted) whose build may read the file `path` (Root::Reads).
  std::vector<std::string> RootsReading(const std::string& path) const;
};

// The layout of `files` (path -> content: every file Ferry reads under its configured paths,
// kustomization files included). Never fails: problems become roots' errors.
Layout FindLayout(const std::map<std::string, std::string>& files,
                  const LayoutOptions& options = {});

// Where a rendered object comes from.
struct Origin {
  std::string file;  // the file that defines it
  std::string id;    // its id in that file (before the kustomizations' changes)
  // The kustomization folders it passes through, from the root down to the one that lists
  // `file` (the images: entries that can decide its images, nearest first).
  std::vector<std::string> chain;
};

// The rendered id -> origin of every object the kustomizations of `root` list in files,
// following namePrefix, nameSuffix and namespace down the chain. Objects made by generators,
// and ids two origins would both produce, are left out.
std::map<std::string, Origin> Origins(const Layout& layout, const Root& root,
                                      const std::map<std::string, std::string>& files,
                                      const manifest::LoadOptions& options);

// Where a change of a rendered workload is written.
struct EditTarget {
  std::string file;  // the file to edit
  // The index of the `images:` entry of `file` (a kustomization) that decides the image;
  // -1 when the change goes to the workload's own manifest in `file`.
  int image_entry = -1;
  std::string id;  // the workload's id in `file` (before the kustomizations' changes)
};

// Where to write a new image for the container of the workload `rendered_id` that `root`
// renders with `rendered_image`: the nearest `images:` entry on the workload's chain (overlay
// before base) whose output name (newName, else name) is that image's repository; else the
// image literal in the file that defines the workload. `content_of` gives a kustomization
// file's current content. FailedPrecondition when no entry decides it and Ferry cannot tell
// which file defines the workload (made by a generator, renamed by a patch).
absl::StatusOr<EditTarget> ImageTarget(
    const Layout& layout, const Root& root, const std::map<std::string, Origin>& origins,
    const std::string& rendered_id, const std::string& rendered_image,
    const std::function<std::string(const std::string&)>& content_of);

// Where to write the policy annotations of the workload `rendered_id` that `root` renders:
// the file that defines it, when no other root reads that file. FailedPrecondition naming
// the roots that share it (a policy written there would change them all: set it with a patch
// in the overlay), or when Ferry cannot tell which file defines it.
absl::StatusOr<EditTarget> PolicyTarget(const Layout& layout, const Root& root,
                                        const std::map<std::string, Origin>& origins,
                                        const std::string& rendered_id);

}  // namespace ferry::kustomize
