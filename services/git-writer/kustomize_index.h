// The kustomize roots of a revision in git-writer's index: each root built with an external
// kustomize on the folders it reads (exported from the object database), cached by those
// folders' tree ids so an unchanged root is never built twice; and where a release edits a
// rendered workload's image (the nearest `images:` entry that decides it, else the literal
// in the file that defines it).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lib/kustomize/build.h"
#include "lib/kustomize/layout.h"
#include "lib/limits/limits.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"
#include "services/git-writer/repository.h"

namespace ferry::git_writer {

struct KustomizeOptions {
  // The command (`--kustomize_command`, resolved); empty when no kustomize was found: every
  // root then fails with `missing_command`.
  kustomize::BuildOptions build;
  std::string missing_command;  // why there is no command
  bool allow_remote = false;    // --kustomize_allow_remote
  int parallelism = 2;          // builds at a time (--kustomize_parallelism)
  // Roots built at one revision; the ones past it fail (limits::kKustomizeRoots).
  uint64_t max_roots = limits::kKustomizeRoots.default_value;
};

// A workload's containers as the index keeps them: immutable, shared by the indexes of the
// revisions where its document is the same (an index carried over from another copies
// pointers, not containers).
using SharedContainers = std::shared_ptr<const std::vector<manifest::Container>>;

// One root as built at some revision. Immutable once made; shared by the indexes of the
// revisions where its folders are the same.
struct RenderedRoot {
  kustomize::Root root;
  std::string key;     // what the build read (tree ids of root.folders, and the command)
  std::string output;  // kustomize's output (empty when the build failed)
  std::string error;   // why it is not built ("" when it is)
  // The objects of `output` (source.path = root.file; no parsed nodes kept), their
  // containers by ContainersKey, and where each is defined.
  std::vector<manifest::Resource> resources;
  std::vector<manifest::LoadError> errors;
  std::map<std::string, SharedContainers> containers;
  std::map<std::string, kustomize::Origin> origins;
};

// Builds and caches roots. Thread-safe; the Repository calls need the caller's lock on it.
class KustomizeBuilder {
 public:
  // `roots` ({outcome}: built, cached, failed) and `build_seconds` count what it does; they
  // may be null.
  KustomizeBuilder(KustomizeOptions options, prometheus::Family<prometheus::Counter>* roots,
                   prometheus::Histogram* build_seconds)
      : options_(std::move(options)), roots_(roots), build_seconds_(build_seconds) {}

  const KustomizeOptions& options() const { return options_; }

  // The roots of `layout` at `revision` (files: path -> content of every file read there).
  // Roots whose folders are unchanged since a build come from the cache. Never fails: a
  // root that cannot be built carries its error.
  std::vector<std::shared_ptr<const RenderedRoot>> BuildAll(
      Repository& repo, const std::string& revision, const kustomize::Layout& layout,
      const std::map<std::string, std::string>& files, const manifest::LoadOptions& load);

  // Builds `roots` from the files of `revision` with `changed` (path -> new content)
  // written over them, uncached: what they render after an edit, before it is committed.
  std::vector<std::shared_ptr<const RenderedRoot>> BuildEdited(
      Repository& repo, const std::string& revision, const kustomize::Layout& layout,
      const std::vector<const kustomize::Root*>& roots,
      const std::map<std::string, std::string>& files,
      const std::map<std::string, std::string>& changed, const manifest::LoadOptions& load);

  // Caches `built` (builds of edited files, now committed as `revision`) under the keys
  // they have there, so indexing that revision builds none of them again.
  void Remember(Repository& repo, const std::string& revision,
                const std::vector<std::shared_ptr<const RenderedRoot>>& built);

 private:
  class ExportDir;
  // What a build of `root` at `revision` reads (the tree ids of its folders) and how it is
  // built; nullopt when a folder is missing.
  std::optional<std::string> Key(Repository& repo, const std::string& revision,
                                 const kustomize::Root& root) const;
  void Cache(const std::string& key, std::shared_ptr<const RenderedRoot> root);
  // Exports and builds `roots` (options_.parallelism builds at a time), uncached.
  std::vector<std::shared_ptr<const RenderedRoot>> BuildMany(
      Repository& repo, const std::string& revision, const kustomize::Layout& layout,
      const std::vector<const kustomize::Root*>& roots,
      const std::map<std::string, std::string>& files,
      const std::map<std::string, std::string>& changed, const manifest::LoadOptions& load);
  // The files `root` reads into a new `dir`, or why it cannot be built.
  absl::Status Export(Repository& repo, const std::string& revision, const kustomize::Root& root,
                      const std::map<std::string, std::string>& changed,
                      std::unique_ptr<ExportDir>& dir);
  // Runs kustomize on `dir` into `out` (its output and index, or its error). Thread-safe.
  void Run(RenderedRoot& out, const std::string& dir, const kustomize::Layout& layout,
           const std::map<std::string, std::string>& files, const manifest::LoadOptions& load);
  void Count(const char* outcome);

  const KustomizeOptions options_;
  prometheus::Family<prometheus::Counter>* const roots_;
  prometheus::Histogram* const build_seconds_;
  absl::Mutex mu_;
  // Builds by key, most recent last; bounded.
  std::map<std::string, std::shared_ptr<const RenderedRoot>> cache_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::git_writer
