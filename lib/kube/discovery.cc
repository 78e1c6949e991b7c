#include "lib/kube/discovery.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ferry::kube {

bool ApiResource::Can(const std::string& verb) const {
  return std::find(verbs.begin(), verbs.end(), verb) != verbs.end();
}

std::string ApiResource::CollectionPath(const std::string& ns) const {
  std::string base =
      group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
  if (namespaced && !ns.empty()) absl::StrAppend(&base, "/namespaces/", ns);
  return absl::StrCat(base, "/", name);
}

std::string ApiResource::ObjectPath(const std::string& ns, const std::string& object_name) const {
  return absl::StrCat(CollectionPath(ns), "/", object_name);
}

Discovery::Discovery(KubeApi& client, absl::Duration min_refresh)
    : client_(client), min_refresh_(min_refresh) {}

namespace {

// The resources of one group version's discovery document; throws nlohmann::json::exception
// when it is not of discovery's shape.
std::vector<ApiResource> ResourcesOf(const nlohmann::json& list, const std::string& group,
                                     const std::string& version) {
  std::vector<ApiResource> out;
  for (const auto& r : list.at("resources")) {
    const std::string name = r.value("name", "");
    if (name.empty() || name.find('/') != std::string::npos) continue;  // subresources
    ApiResource res;
    res.group = group;
    res.version = version;
    res.kind = r.value("kind", "");
    res.name = name;
    res.namespaced = r.value("namespaced", false);
    if (r.contains("verbs")) {
      for (const auto& v : r.at("verbs")) res.verbs.push_back(v.get<std::string>());
    }
    out.push_back(std::move(res));
  }
  return out;
}

}  // namespace

absl::Status Discovery::Refresh() {
  uint64_t mine;
  {
    absl::MutexLock lock(&mu_);
    mine = ++refreshes_begun_;
  }
  // (group, version) pairs, preferred version of each group first.
  std::vector<std::pair<std::string, std::string>> group_versions;
  std::map<std::string, std::string> preferred;
  auto core = client_.Get("/api", "discovery");
  if (!core.ok()) return core.status();
  auto groups = client_.Get("/apis", "discovery");
  if (!groups.ok()) return groups.status();
  try {
    for (const auto& v : core->at("versions"))
      group_versions.emplace_back("", v.get<std::string>());
    if (!group_versions.empty()) preferred[""] = group_versions.front().second;
    for (const auto& g : groups->at("groups")) {
      const std::string name = g.value("name", "");
      const std::string pref =
          g.contains("preferredVersion") ? g.at("preferredVersion").value("version", "") : "";
      preferred[name] = pref;
      if (!pref.empty()) group_versions.emplace_back(name, pref);
      for (const auto& v : g.at("versions")) {
        const std::string version = v.value("version", "");
        if (version != pref) group_versions.emplace_back(name, version);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(
        absl::StrCat("the API server's discovery (/api, /apis) could not be read: ", e.what()));
  }
  std::vector<ApiResource> resources;
  for (const auto& [group, version] : group_versions) {
    const std::string path =
        group.empty() ? "/api/" + version : absl::StrCat("/apis/", group, "/", version);
    auto list = client_.Get(path, "discovery");
    if (!list.ok() && list.status().code() == absl::StatusCode::kNotFound) continue;  // gone
    if (!list.ok() && list.status().code() != absl::StatusCode::kUnavailable) {
      return list.status();
    }
    std::vector<ApiResource> served;
    try {
      if (list.ok()) served = ResourcesOf(*list, group, version);
    } catch (const nlohmann::json::exception&) {
      list = absl::UnavailableError("not a discovery document");
    }
    // An aggregated API that is down, or answers something else than discovery (its own
    // server misbehaving), must not hide everything else, nor make its own kinds vanish for
    // a moment: they stay as the last load had them.
    if (!list.ok()) served = Installed(group, version);
    resources.insert(resources.end(), std::make_move_iterator(served.begin()),
                     std::make_move_iterator(served.end()));
  }
  std::map<std::string, size_t> by_gvk;
  for (size_t i = 0; i < resources.size(); ++i) {
    const ApiResource& r = resources[i];
    by_gvk.emplace(absl::StrCat(r.group, "/", r.version, "/", r.kind), i);
  }
  absl::MutexLock lock(&mu_);
  // Refreshes may overlap: one begun later has installed what it read, which is newer.
  if (mine < installed_) return absl::OkStatus();
  installed_ = mine;
  resources_ = std::move(resources);
  by_gvk_ = std::move(by_gvk);
  preferred_ = std::move(preferred);
  loaded_ = true;
  refreshed_ = absl::Now();
  return absl::OkStatus();
}

std::vector<ApiResource> Discovery::Installed(const std::string& group,
                                              const std::string& version) {
  absl::MutexLock lock(&mu_);
  std::vector<ApiResource> out;
  for (const ApiResource& r : resources_) {
    if (r.group == group && r.version == version) out.push_back(r);
  }
  return out;
}

absl::Status Discovery::EnsureLoaded() {
  {
    absl::MutexLock lock(&mu_);
    if (loaded_) return absl::OkStatus();
  }
  absl::MutexLock loading(&load_mu_);  // one load for the callers arriving together
  {
    absl::MutexLock lock(&mu_);
    if (loaded_) return absl::OkStatus();
  }
  return Refresh();
}

absl::StatusOr<ApiResource> Discovery::Find(const std::string& api_version,
                                            const std::string& kind) {
  if (absl::Status s = EnsureLoaded(); !s.ok()) return s;
  const size_t slash = api_version.find('/');
  const std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
  const std::string version =
      slash == std::string::npos ? api_version : api_version.substr(slash + 1);
  auto lookup = [&]() -> std::optional<ApiResource> {
    absl::MutexLock lock(&mu_);
    auto it = by_gvk_.find(absl::StrCat(group, "/", version, "/", kind));
    if (it == by_gvk_.end()) return std::nullopt;
    return resources_[it->second];
  };
  if (auto found = lookup()) return *found;
  bool refresh;
  {
    absl::MutexLock lock(&mu_);
    refresh = absl::Now() - refreshed_ >= min_refresh_;
  }
  if (refresh) {
    if (absl::Status s = Refresh(); !s.ok()) return s;
    if (auto found = lookup()) return *found;
  }
  return absl::NotFoundError(absl::StrCat("the API server does not serve kind ", kind, " in ",
                                          api_version, " (unknown kind or apiVersion)"));
}

absl::StatusOr<ApiResource> Discovery::FindPreferred(const std::string& group,
                                                     const std::string& kind) {
  if (absl::Status s = EnsureLoaded(); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  for (const ApiResource& r : resources_) {  // preferred versions come first
    if (r.group == group && r.kind == kind) return r;
  }
  return absl::NotFoundError(absl::StrCat("the API server does not serve kind ", kind,
                                          group.empty() ? "" : " in group " + group));
}

absl::StatusOr<std::vector<ApiResource>> Discovery::All() {
  if (absl::Status s = EnsureLoaded(); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  return resources_;
}

}  // namespace ferry::kube
