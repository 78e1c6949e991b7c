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
};

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
  std::map<std::string, std::vector<manifest::Container>> containers;
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

  // Builds `root` from the files of `revision` with `changed` (path -> new content) written
  // over them, uncached: what a root renders after an edit, before it is committed.
  std::shared_ptr<const RenderedRoot> BuildEdited(Repository& repo, const std::string& revision,
                                                  const kustomize::Layout& layout,
                                                  const kustomize::Root& root,
                                                  const std::map<std::string, std::string>& files,
                                                  const std::map<std::string, std::string>& changed,
                                                  const manifest::LoadOptions& load);

 private:
  std::shared_ptr<const RenderedRoot> Build(Repository& repo, const std::string& revision,
                                            const kustomize::Layout& layout,
                                            const kustomize::Root& root, std::string key,
                                            const std::map<std::string, std::string>& files,
                                            const std::map<std::string, std::string>& changed,
                                            const manifest::LoadOptions& load);

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
