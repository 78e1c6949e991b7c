#include "services/git-writer/kustomize_index.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/log/log.h"
#include "lib/names/names.h"
#include "services/git-writer/writer.h"

namespace ferry::git_writer {
namespace {

constexpr size_t kCachedBuilds = 512;

// A folder of its own for one build, removed with everything in it when this goes.
class ExportDir {
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
      out.containers.try_emplace(ContainersKey(r), manifest::FindContainers(r));
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

std::vector<std::shared_ptr<const RenderedRoot>> KustomizeBuilder::BuildAll(
    Repository& repo, const std::string& revision, const kustomize::Layout& layout,
    const std::map<std::string, std::string>& files, const manifest::LoadOptions& load) {
  std::vector<std::shared_ptr<const RenderedRoot>> out;
  for (const kustomize::Root& root : layout.roots) {
    // The key: every folder the build reads, by tree id, and how it is built.
    std::string key = absl::StrCat(absl::StrJoin(options_.build.command, " "), "\n",
                                   options_.allow_remote, "\n", root.file, "\n");
    bool keyed = true;
    for (const std::string& folder : root.folders) {
      absl::StatusOr<std::string> tree = repo.TreeId(revision, folder);
      if (!tree.ok()) {
        keyed = false;
        break;
      }
      absl::StrAppend(&key, folder, " ", *tree, "\n");
    }
    if (keyed) {
      absl::MutexLock lock(&mu_);
      if (auto hit = cache_.find(key); hit != cache_.end()) {
        out.push_back(hit->second);
        Count("cached");
        continue;
      }
    }
    std::shared_ptr<const RenderedRoot> built =
        Build(repo, revision, layout, root, keyed ? key : "", files, {}, load);
    if (keyed && built->error.empty()) {
      absl::MutexLock lock(&mu_);
      if (cache_.emplace(key, built).second) order_.push_back(key);
      if (order_.size() > kCachedBuilds) {
        cache_.erase(order_.front());
        order_.erase(order_.begin());
      }
    }
    out.push_back(std::move(built));
  }
  return out;
}

std::shared_ptr<const RenderedRoot> KustomizeBuilder::BuildEdited(
    Repository& repo, const std::string& revision, const kustomize::Layout& layout,
    const kustomize::Root& root, const std::map<std::string, std::string>& files,
    const std::map<std::string, std::string>& changed, const manifest::LoadOptions& load) {
  return Build(repo, revision, layout, root, "", files, changed, load);
}

std::shared_ptr<const RenderedRoot> KustomizeBuilder::Build(
    Repository& repo, const std::string& revision, const kustomize::Layout& layout,
    const kustomize::Root& root, std::string key, const std::map<std::string, std::string>& files,
    const std::map<std::string, std::string>& changed, const manifest::LoadOptions& load) {
  auto out = std::make_shared<RenderedRoot>();
  out->root = root;
  out->key = std::move(key);
  auto fail = [&](std::string error) {
    out->error = std::move(error);
    Count("failed");
    return out;
  };
  if (!root.error.empty()) return fail(root.error);
  if (options_.build.command.empty()) return fail(options_.missing_command);
  ExportDir dir;
  if (dir.path().empty()) return fail("no temporary folder for the kustomize build");
  for (const std::string& folder : root.folders) {
    if (absl::Status s = repo.ExportTree(revision, folder, dir.path()); !s.ok()) {
      return fail(absl::StrCat("exporting \"", names::Escape(folder), "\": ", s.message()));
    }
  }
  for (const auto& [path, content] : changed) {
    if (absl::Status s = Overwrite(dir.path(), path, content); !s.ok()) {
      return fail(std::string(s.message()));
    }
  }
  const auto start = absl::Now();
  absl::StatusOr<std::string> built = kustomize::Build(options_.build, dir.path(), root.folder);
  if (build_seconds_ != nullptr) {
    build_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (!built.ok()) {
    log::Warn("kustomize build failed",
              {{"root", root.file}, {"error", std::string(built.status().message())}});
    return fail(std::string(built.status().message()));
  }
  out->output = *std::move(built);
  log::Info("kustomize build", {{"root", root.file},
                                {"bytes", static_cast<int64_t>(out->output.size())},
                                {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
  IndexOutput(*out, layout, files, load);
  Count("built");
  return out;
}

void KustomizeBuilder::Count(const char* outcome) {
  if (roots_ != nullptr) roots_->Add({{"outcome", outcome}}).Increment();
}

}  // namespace ferry::git_writer
