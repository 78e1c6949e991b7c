#include "services/git-writer/kustomize_index.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/log/log.h"
#include "lib/names/names.h"
#include "lib/runtime/parallel.h"
#include "lib/status/status_macros.h"
#include "services/git-writer/writer.h"

namespace ferry::git_writer {
namespace {

constexpr size_t kCachedBuilds = 512;

// Writes `content` at `dir`/`path`, replacing what the export wrote there.
absl::Status Overwrite(const std::string& dir, const std::string& path,
                       const std::string& content) {
  const std::filesystem::path file = std::filesystem::path(dir) / path;
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out)
    return absl::InternalError(absl::StrCat("writing ", names::Escape(path), " for kustomize"));
  return absl::OkStatus();
}

// The objects of a root's output, as the index keeps them.
void IndexOutput(RenderedRoot& out, const kustomize::Layout& layout,
                 const std::map<std::string, std::string>& files,
                 const manifest::LoadOptions& load) {
  manifest::LoadResult loaded = manifest::LoadFile(out.root.file, out.output, load);
  for (manifest::Resource& r : loaded.resources) {
    if (manifest::IsWorkloadKind(r.kind)) {
      out.containers.try_emplace(
          ContainersKey(r),
          std::make_shared<const std::vector<manifest::Container>>(manifest::FindContainers(r)));
    }
    r.node = manifest::NodeHandle();
    r.document = manifest::NodeHandle();
    out.resources.push_back(std::move(r));
  }
  for (manifest::LoadError& e : loaded.errors) {
    e.message = absl::StrCat("as built by kustomize: ", e.message);
    out.errors.push_back(std::move(e));
  }
  out.origins = kustomize::Origins(layout, out.root, files, load);
}

}  // namespace

// A folder of its own for one build, removed with everything in it when this goes.
class KustomizeBuilder::ExportDir {
 public:
  ExportDir() {
    const char* tmp = getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/ferry-kustomize-XXXXXX");
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ExportDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::shared_ptr<const RenderedRoot>> KustomizeBuilder::BuildAll(
    Repository& repo, const std::string& revision, const kustomize::Layout& layout,
    const std::map<std::string, std::string>& files, const manifest::LoadOptions& load) {
  std::vector<std::shared_ptr<const RenderedRoot>> out(layout.roots.size());
  std::vector<std::string> keys(layout.roots.size());
  std::vector<const kustomize::Root*> misses;
  std::vector<size_t> miss_at;
  for (size_t i = 0; i < layout.roots.size(); ++i) {
    const kustomize::Root& root = layout.roots[i];
    if (i >= options_.max_roots) {
      auto over = std::make_shared<RenderedRoot>();
      over->root = root;
      over->error =
          limits::OverLimit(absl::StrCat("kustomize root ", names::Escape(root.file)),
                            limits::kKustomizeRoots, options_.max_roots, layout.roots.size());
      out[i] = std::move(over);
      Count("failed");
      continue;
    }
    std::optional<std::string> key = Key(repo, revision, root);
    const bool keyed = key.has_value();
    if (keyed) {
      keys[i] = *std::move(key);
      absl::MutexLock lock(&mu_);
      if (auto hit = cache_.find(keys[i]); hit != cache_.end()) {
        out[i] = hit->second;
        Count("cached");
        continue;
      }
    }
    misses.push_back(&root);
    miss_at.push_back(i);
  }
  std::vector<std::shared_ptr<const RenderedRoot>> built =
      BuildMany(repo, revision, layout, misses, files, {}, load);
  for (size_t m = 0; m < misses.size(); ++m) {
    const size_t i = miss_at[m];
    out[i] = built[m];
    if (!keys[i].empty() && built[m]->error.empty()) Cache(keys[i], built[m]);
  }
  return out;
}

std::optional<std::string> KustomizeBuilder::Key(Repository& repo, const std::string& revision,
                                                 const kustomize::Root& root) const {
  // Every folder the build reads, by tree id, and how it is built.
  std::string key = absl::StrCat(absl::StrJoin(options_.build.command, " "), "\n",
                                 options_.allow_remote, "\n", root.file, "\n");
  for (const std::string& folder : root.folders) {
    absl::StatusOr<std::string> tree = repo.TreeId(revision, folder);
    if (!tree.ok()) return std::nullopt;
    absl::StrAppend(&key, folder, " ", *tree, "\n");
  }
  return key;
}

void KustomizeBuilder::Remember(Repository& repo, const std::string& revision,
                                const std::vector<std::shared_ptr<const RenderedRoot>>& built) {
  for (const std::shared_ptr<const RenderedRoot>& root : built) {
    if (!root->error.empty()) continue;
    std::optional<std::string> key = Key(repo, revision, root->root);
    if (key.has_value()) Cache(*key, root);
  }
}

void KustomizeBuilder::Cache(const std::string& key, std::shared_ptr<const RenderedRoot> root) {
  absl::MutexLock lock(&mu_);
  if (cache_.emplace(key, std::move(root)).second) order_.push_back(key);
  if (order_.size() > kCachedBuilds) {
    cache_.erase(order_.front());
    order_.erase(order_.begin());
  }
}

std::vector<std::shared_ptr<const RenderedRoot>> KustomizeBuilder::BuildMany(
    Repository& repo, const std::string& revision, const kustomize::Layout& layout,
    const std::vector<const kustomize::Root*>& roots,
    const std::map<std::string, std::string>& files,
    const std::map<std::string, std::string>& changed, const manifest::LoadOptions& load) {
  // The repository is read one call at a time (the caller's lock): every export first,
  // then the kustomize runs side by side, each in its own folder.
  std::vector<std::shared_ptr<RenderedRoot>> out(roots.size());
  std::vector<std::unique_ptr<ExportDir>> dirs(roots.size());
  std::vector<size_t> ready;
  for (size_t i = 0; i < roots.size(); ++i) {
    out[i] = std::make_shared<RenderedRoot>();
    out[i]->root = *roots[i];
    absl::Status exported = Export(repo, revision, *roots[i], changed, dirs[i]);
    if (exported.ok()) {
      ready.push_back(i);
    } else {
      out[i]->error = std::string(exported.message());
      Count("failed");
    }
  }
  runtime::ParallelFor(ready.size(), std::max(options_.parallelism, 1), [&](size_t n) {
    const size_t i = ready[n];
    Run(*out[i], dirs[i]->path(), layout, files, load);
    dirs[i].reset();  // its files go as soon as the build is done
  });
  return {out.begin(), out.end()};
}

std::vector<std::shared_ptr<const RenderedRoot>> KustomizeBuilder::BuildEdited(
    Repository& repo, const std::string& revision, const kustomize::Layout& layout,
    const std::vector<const kustomize::Root*>& roots,
    const std::map<std::string, std::string>& files,
    const std::map<std::string, std::string>& changed, const manifest::LoadOptions& load) {
  return BuildMany(repo, revision, layout, roots, files, changed, load);
}

absl::Status KustomizeBuilder::Export(Repository& repo, const std::string& revision,
                                      const kustomize::Root& root,
                                      const std::map<std::string, std::string>& changed,
                                      std::unique_ptr<ExportDir>& dir) {
  if (!root.error.empty()) return absl::FailedPreconditionError(root.error);
  if (options_.build.command.empty()) {
    return absl::FailedPreconditionError(options_.missing_command);
  }
  dir = std::make_unique<ExportDir>();
  if (dir->path().empty()) {
    return absl::InternalError("no temporary folder for the kustomize build");
  }
  for (const std::string& folder : root.folders) {
    if (absl::Status s = repo.ExportTree(revision, folder, dir->path()); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("exporting \"", names::Escape(folder), "\": ", s.message()));
    }
  }
  for (const auto& [path, content] : changed) {
    FERRY_RETURN_IF_ERROR(Overwrite(dir->path(), path, content));
  }
  return absl::OkStatus();
}

void KustomizeBuilder::Run(RenderedRoot& out, const std::string& dir,
                           const kustomize::Layout& layout,
                           const std::map<std::string, std::string>& files,
                           const manifest::LoadOptions& load) {
  const kustomize::Root& root = out.root;
  const auto start = absl::Now();
  absl::StatusOr<std::string> built = kustomize::Build(options_.build, dir, root.folder);
  if (build_seconds_ != nullptr) {
    build_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (!built.ok()) {
    log::Warn("kustomize build failed",
              {{"root", root.file}, {"error", std::string(built.status().message())}});
    out.error = std::string(built.status().message());
    Count("failed");
    return;
  }
  out.output = *std::move(built);
  log::Info("kustomize build", {{"root", root.file},
                                {"bytes", static_cast<int64_t>(out.output.size())},
                                {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
  IndexOutput(out, layout, files, load);
  Count("built");
}

void KustomizeBuilder::Count(const char* outcome) {
  if (roots_ != nullptr) roots_->Add({{"outcome", outcome}}).Increment();
}

}  // namespace ferry::git_writer
