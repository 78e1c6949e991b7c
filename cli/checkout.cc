#include "cli/checkout.h"

#include <stdlib.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/repo_files.h"
#include "cli/workload_id.h"
#include "lib/kustomize/build.h"

namespace ferry::cli {
namespace {

namespace fs = std::filesystem;

bool IsManifestName(const std::string& name) {
  return absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml") ||
         kustomize::IsKustomizationFile(name);
}

bool IsChartFolder(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "Chart.yaml", ec) && fs::exists(dir / "values.yaml", ec);
}

absl::StatusOr<kustomize::BuildOptions> BuildOptions() {
  const char* path = getenv("PATH");
  const char* command = getenv("FERRY_KUSTOMIZE_COMMAND");
  kustomize::BuildOptions options;
  options.path_env = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  absl::StatusOr<std::vector<std::string>> resolved =
      kustomize::ResolveCommand(command != nullptr ? command : "", options.path_env);
  if (!resolved.ok()) return resolved.status();
  options.command = *std::move(resolved);
  return options;
}

}  // namespace

const CheckoutRoot* Checkout::RootOf(const manifest::Resource& r) const {
  auto it = roots.find(r.source.path);
  return it != roots.end() ? &it->second : nullptr;
}

absl::StatusOr<Checkout> LoadCheckout(const std::string& dir, const manifest::LoadOptions& load) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, " is not a folder"));
  }
  Checkout c;
  c.dir = dir;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->is_directory(ec)) {
      if ((!name.empty() && name[0] == '.') || IsChartFolder(it->path())) {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (!it->is_regular_file(ec) || !IsManifestName(name)) continue;
    const std::string path = fs::relative(it->path(), dir, ec).generic_string();
    absl::StatusOr<std::string> content = ReadFile(it->path().string());
    if (content.ok()) c.files[path] = *std::move(content);
  }
  kustomize::LayoutOptions layout;
  layout.limits = load.limits;
  c.layout = kustomize::FindLayout(c.files, layout);
  for (const auto& [path, content] : c.files) {
    if (c.layout.Uses(path)) continue;
    manifest::LoadResult one = manifest::LoadFile(path, content, load);
    for (manifest::Resource& r : one.resources) c.loaded.resources.push_back(std::move(r));
    for (manifest::LoadError& e : one.errors) c.loaded.errors.push_back(std::move(e));
  }
  absl::StatusOr<kustomize::BuildOptions> build = BuildOptions();
  for (const kustomize::Root& root : c.layout.roots) {
    CheckoutRoot& built = c.roots[root.file];
    built.root = root;
    built.error = root.error;
    if (built.error.empty() && !build.ok()) built.error = std::string(build.status().message());
    if (built.error.empty()) {
      absl::StatusOr<std::string> out = kustomize::Build(*build, dir, root.folder);
      if (out.ok()) {
        built.output = *std::move(out);
      } else {
        built.error = std::string(out.status().message());
      }
    }
    if (!built.error.empty()) {
      c.loaded.errors.push_back(
          {root.file, 0, 0, absl::StrCat("kustomize root not built: ", built.error)});
      continue;
    }
    manifest::LoadResult one = manifest::LoadFile(root.file, built.output, load);
    for (manifest::Resource& r : one.resources) c.loaded.resources.push_back(std::move(r));
    for (manifest::LoadError& e : one.errors) c.loaded.errors.push_back(std::move(e));
    built.origins = kustomize::Origins(c.layout, root, c.files, load);
  }
  manifest::FinishLoad(c.loaded);
  return c;
}

absl::StatusOr<const manifest::Resource*> FindWorkload(const Checkout& checkout,
                                                       const std::string& workload,
                                                       const std::string& default_namespace) {
  absl::StatusOr<std::string> id = ParseWorkloadId(workload, default_namespace);
  if (!id.ok()) return id.status();
  for (const manifest::Resource& r : checkout.loaded.resources) {
    if (r.id == *id) return &r;
  }
  return absl::NotFoundError(
      absl::StrCat("workload ", *id, " is not defined under ", checkout.dir));
}

absl::StatusOr<std::string> BuildWithChanges(const Checkout& checkout, const CheckoutRoot& root,
                                             const std::map<std::string, std::string>& changed) {
  absl::StatusOr<kustomize::BuildOptions> build = BuildOptions();
  if (!build.ok()) return build.status();
  const char* tmp = getenv("TMPDIR");
  std::string copy =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/ferryctl-kustomize-XXXXXX");
  if (mkdtemp(copy.data()) == nullptr) {
    return absl::InternalError("no temporary folder for the kustomize build");
  }
  struct Remove {
    std::string dir;
    ~Remove() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } remove{copy};
  std::error_code ec;
  for (const std::string& folder : root.root.folders) {
    const fs::path to = fs::path(copy) / folder;
    fs::create_directories(to, ec);
    fs::copy(fs::path(checkout.dir) / folder, to,
             fs::copy_options::recursive | fs::copy_options::skip_symlinks |
                 fs::copy_options::overwrite_existing,
             ec);
    if (ec) return absl::InternalError(absl::StrCat("copying ", folder, ": ", ec.message()));
  }
  for (const auto& [path, content] : changed) {
    if (absl::Status s = WriteFileAtomically((fs::path(copy) / path).string(), content); !s.ok()) {
      return s;
    }
  }
  return kustomize::Build(*build, copy, root.root.folder);
}

}  // namespace ferry::cli
