#include "services/cluster-syncer/fake_kube_api.h"

#include <algorithm>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::cluster_syncer {
namespace {

const std::vector<std::string> kVerbs = {"create", "delete", "get",  "list",
                                         "patch",  "update", "watch"};

std::string StripQuery(const std::string& path) { return path.substr(0, path.find('?')); }

std::string QueryValue(const std::string& path, const std::string& key) {
  const size_t q = path.find('?');
  if (q == std::string::npos) return "";
  for (absl::string_view pair : absl::StrSplit(path.substr(q + 1), '&')) {
    if (absl::StartsWith(pair, key + "=")) return std::string(pair.substr(key.size() + 1));
  }
  return "";
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Whether `metadata` has every label of `selector` ("k=v,k2=v2").
bool Matches(const nlohmann::json& metadata, const std::string& selector) {
  if (selector.empty()) return true;
  const nlohmann::json labels = metadata.value("labels", nlohmann::json::object());
  for (absl::string_view term : absl::StrSplit(selector, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(term, absl::MaxSplits('=', 1));
    if (!labels.contains(kv.first) || labels[kv.first] != kv.second) return false;
  }
  return true;
}

// `object[key]` when it is a string, else "" (the API refuses the object then).
std::string Str(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_string()) return "";
  return object[key].get<std::string>();
}

// The page of `items` that the query of `path` asks for (`limit`, and `continue`: the
// offset where the previous page ended), with metadata.continue when more follow.
nlohmann::json Page(const std::string& path, nlohmann::json items) {
  nlohmann::json list = nlohmann::json::object();
  const std::string limit = QueryValue(path, "limit");
  if (limit.empty() || std::stoul(limit) == 0) {
    list["items"] = std::move(items);
    return list;
  }
  const std::string token = UrlDecode(QueryValue(path, "continue"));
  const size_t from = token.empty() ? 0 : std::stoul(token.substr(token.find(':') + 1));
  const size_t to = std::min(items.size(), from + std::stoul(limit));
  list["items"] = nlohmann::json::array();
  for (size_t i = std::min(from, items.size()); i < to; ++i) list["items"].push_back(items[i]);
  if (to < items.size()) list["metadata"]["continue"] = absl::StrCat("offset:", to);
  return list;
}

std::string Key(const std::string& group, const std::string& resource, const std::string& ns,
                const std::string& name) {
  return absl::StrCat(group, "|", resource, "|", ns, "|", name);
}

// The kinds every FakeKubeApi serves from the start (see the constructor's comment).
std::vector<kube::ApiResource> BuiltInResources() {
  std::vector<kube::ApiResource> resources;
  auto serve = [&](std::string group, std::string version, std::string kind, std::string name,
                   bool namespaced) {
    resources.push_back({std::move(group), std::move(version), std::move(kind), std::move(name),
                         namespaced, kVerbs});
  };
  serve("", "v1", "Namespace", "namespaces", false);
  serve("", "v1", "ConfigMap", "configmaps", true);
  serve("", "v1", "Secret", "secrets", true);
  serve("", "v1", "Service", "services", true);
  serve("", "v1", "ServiceAccount", "serviceaccounts", true);
  serve("", "v1", "Endpoints", "endpoints", true);
  serve("apps", "v1", "Deployment", "deployments", true);
  serve("batch", "v1", "CronJob", "cronjobs", true);
  serve("rbac.authorization.k8s.io", "v1", "Role", "roles", true);
  serve("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true);
  serve("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false);
  serve("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
        false);
  return resources;
}

}  // namespace

struct FakeKubeApi::Target {
  bool discovery = false;  // a discovery document: "/api", "/apis" or a group version
  std::string group;
  std::string version;
  std::string ns;
  std::string name;
  std::optional<kube::ApiResource> resource;  // served; unset for discovery and unknown resources
  std::string resource_name;
};

FakeKubeApi::FakeKubeApi() : resources_(BuiltInResources()) {}

std::optional<FakeKubeApi::Target> FakeKubeApi::Parse(const std::string& path) {
  std::vector<std::string> s = absl::StrSplit(StripQuery(path), '/', absl::SkipEmpty());
  Target t;
  size_t rest = 0;
  if (s.size() >= 1 && s[0] == "api") {
    if (s.size() <= 2) t.discovery = true;
    if (s.size() >= 2) t.version = s[1];
    rest = 2;
  } else if (s.size() >= 1 && s[0] == "apis") {
    if (s.size() == 1 || s.size() == 3) t.discovery = true;
    if (s.size() == 2) return std::nullopt;
    if (s.size() >= 3) {
      t.group = s[1];
      t.version = s[2];
    }
    rest = 3;
  } else {
    return std::nullopt;
  }
  if (t.discovery) return t;
  std::vector<std::string> r(s.begin() + rest, s.end());
  if (r.size() >= 3 && r[0] == "namespaces") {
    t.ns = r[1];
    r.erase(r.begin(), r.begin() + 2);
  }
  if (r.empty() || r.size() > 2) return std::nullopt;  // no subresources
  t.resource_name = r[0];
  if (r.size() == 2) t.name = r[1];
  for (const kube::ApiResource& res : resources_) {
    if (res.group == t.group && res.version == t.version && res.name == t.resource_name) {
      t.resource = res;
    }
  }
  return t;
}

absl::Status FakeKubeApi::Begin(const std::string& verb, const std::string& path) {
  const std::string bare = StripQuery(path);
  calls_.push_back(absl::StrCat(verb, " ", bare));
  calls_with_query_.push_back(absl::StrCat(verb, " ", path));
  for (const FailRule& rule : fail_) {
    if (rule.verb == verb && absl::StartsWith(bare, rule.path_prefix)) return rule.status;
  }
  return absl::OkStatus();
}

nlohmann::json FakeKubeApi::DiscoveryDocument(const Target& t) {
  nlohmann::json list = nlohmann::json::array();
  for (const kube::ApiResource& r : resources_) {
    if (r.group != t.group || r.version != t.version) continue;
    list.push_back(
        {{"name", r.name}, {"kind", r.kind}, {"namespaced", r.namespaced}, {"verbs", r.verbs}});
  }
  return {{"resources", list}};
}

absl::StatusOr<nlohmann::json> FakeKubeApi::Get(const std::string& path, const std::string& verb) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Begin(verb, path); !s.ok()) return s;
  const std::string bare = StripQuery(path);
  if (bare == "/api") return nlohmann::json{{"versions", {"v1"}}};
  if (bare == "/apis") {
    std::map<std::string, std::vector<std::string>> versions;  // group -> versions
    for (const kube::ApiResource& r : resources_) {
      if (r.group.empty()) continue;
      auto& v = versions[r.group];
      if (std::find(v.begin(), v.end(), r.version) == v.end()) v.push_back(r.version);
    }
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& [group, vs] : versions) {
      nlohmann::json entry = {{"name", group},
                              {"preferredVersion", {{"version", vs.front()}}},
                              {"versions", nlohmann::json::array()}};
      for (const std::string& v : vs) entry["versions"].push_back({{"version", v}});
      groups.push_back(entry);
    }
    return nlohmann::json{{"groups", groups}};
  }
  std::optional<Target> t = Parse(path);
  const absl::Status not_found = absl::NotFoundError(
      absl::StrCat("GET ", bare, ": the server could not find the requested resource"));
  if (!t) return not_found;
  if (t->discovery) {
    nlohmann::json doc = DiscoveryDocument(*t);
    if (doc["resources"].empty()) return not_found;
    return doc;
  }
  if (!t->resource) return not_found;
  if (t->name.empty()) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& [key, stored] : objects_) {
      if (stored.resource.group == t->group && stored.resource.name == t->resource_name &&
          (t->ns.empty() || stored.ns == t->ns)) {
        items.push_back(stored.object);
      }
    }
    return Page(path, std::move(items));
  }
  auto it = objects_.find(Key(t->group, t->resource_name, t->ns, t->name));
  if (it == objects_.end()) {
    return absl::NotFoundError(
        absl::StrCat("GET ", bare, ": ", t->resource_name, " \"", t->name, "\" not found"));
  }
  if (t->resource->kind == "CustomResourceDefinition" && crd_established_after_ >= 0 &&
      ++crd_gets_[t->name] >= crd_established_after_) {
    it->second.object["status"]["conditions"] = {{{"type", "Established"}, {"status", "True"}}};
    ServeCrd(it->second.object);
  }
  return it->second.object;
}

absl::StatusOr<nlohmann::json> FakeKubeApi::ListMetadata(const std::string& path) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Begin("list", path); !s.ok()) return s;
  std::optional<Target> t = Parse(path);
  if (!t || t->discovery || !t->resource || !t->name.empty()) {
    return absl::NotFoundError(absl::StrCat("GET ", StripQuery(path),
                                            ": the server could not find the requested resource"));
  }
  const std::string selector = UrlDecode(QueryValue(path, "labelSelector"));
  nlohmann::json items = nlohmann::json::array();
  for (const auto& [key, stored] : objects_) {
    if (stored.resource.group != t->group || stored.resource.name != t->resource_name) continue;
    if (!t->ns.empty() && stored.ns != t->ns) continue;
    const nlohmann::json& meta = stored.object["metadata"];
    if (Matches(meta, selector)) items.push_back({{"metadata", meta}});
  }
  nlohmann::json list = Page(path, std::move(items));
  list["kind"] = "PartialObjectMetadataList";
  return list;
}

absl::StatusOr<nlohmann::json> FakeKubeApi::Apply(const std::string& path,
                                                  const nlohmann::json& object,
                                                  const std::string& manager, bool force,
                                                  bool dry_run) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Begin("apply", path); !s.ok()) return s;
  const std::string what = absl::StrCat("PATCH ", StripQuery(path));
  std::optional<Target> t = Parse(path);
  if (!t || t->discovery || !t->resource || t->name.empty()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": the server could not find the requested resource"));
  }
  const nlohmann::json& meta = object.value("metadata", nlohmann::json::object());
  if (Str(object, "kind") != t->resource->kind || Str(meta, "name") != t->name ||
      (t->resource->namespaced && Str(meta, "namespace") != t->ns)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the object's kind, name or namespace does not match its URL"));
  }
  if (t->resource->namespaced && !objects_.count(Key("", "namespaces", "", t->ns))) {
    return absl::NotFoundError(absl::StrCat(what, ": namespaces \"", t->ns, "\" not found"));
  }
  applied_kinds_.push_back(t->resource->kind);
  const std::string key = Key(t->group, t->resource_name, t->ns, t->name);
  Stored stored{*t->resource, t->ns, object};
  if (auto it = objects_.find(key); it != objects_.end() && it->second.object.contains("status")) {
    stored.object["status"] = it->second.object["status"];  // status is not the applier's
  }
  if (dry_run) return stored.object;
  ++writes_;
  objects_[key] = stored;
  return stored.object;
}

absl::Status FakeKubeApi::Delete(const std::string& path, bool dry_run) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Begin("delete", path); !s.ok()) return s;
  std::optional<Target> t = Parse(path);
  const std::string what = absl::StrCat("DELETE ", StripQuery(path));
  if (!t || t->discovery || !t->resource || t->name.empty()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": the server could not find the requested resource"));
  }
  auto it = objects_.find(Key(t->group, t->resource_name, t->ns, t->name));
  if (it == objects_.end()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": ", t->resource_name, " \"", t->name, "\" not found"));
  }
  if (dry_run) return absl::OkStatus();
  ++writes_;
  objects_.erase(it);
  return absl::OkStatus();
}

void FakeKubeApi::Serve(const kube::ApiResource& resource) {
  absl::MutexLock lock(&mu_);
  ServeLocked(resource);
}

void FakeKubeApi::ServeLocked(const kube::ApiResource& resource) {
  for (const kube::ApiResource& r : resources_) {
    if (r.group == resource.group && r.version == resource.version && r.kind == resource.kind) {
      return;
    }
  }
  resources_.push_back(resource);
}

void FakeKubeApi::ServeCrd(const nlohmann::json& crd) {
  const nlohmann::json& spec = crd["spec"];
  const nlohmann::json& names = spec["names"];
  for (const auto& v : spec.value("versions", nlohmann::json::array())) {
    if (!v.value("served", false)) continue;
    ServeLocked({Str(spec, "group"), Str(v, "name"), Str(names, "kind"), Str(names, "plural"),
                 Str(spec, "scope") == "Namespaced", kVerbs});
  }
}

void FakeKubeApi::Put(const nlohmann::json& object) {
  absl::MutexLock lock(&mu_);
  const std::string api_version = Str(object, "apiVersion");
  const size_t slash = api_version.find('/');
  const std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
  const std::string version = api_version.substr(slash == std::string::npos ? 0 : slash + 1);
  const nlohmann::json& meta = object["metadata"];
  for (const kube::ApiResource& r : resources_) {
    if (r.group == group && r.version == version && r.kind == Str(object, "kind")) {
      const std::string ns = r.namespaced ? Str(meta, "namespace") : "";
      objects_[Key(r.group, r.name, ns, Str(meta, "name"))] = {r, ns, object};
      return;
    }
  }
  throw std::invalid_argument("FakeKubeApi::Put: kind not served: " + object.dump());
}

std::optional<nlohmann::json> FakeKubeApi::Object(const std::string& path) {
  absl::MutexLock lock(&mu_);
  std::optional<Target> t = Parse(path);
  if (!t || !t->resource) return std::nullopt;
  auto it = objects_.find(Key(t->group, t->resource_name, t->ns, t->name));
  if (it == objects_.end()) return std::nullopt;
  return it->second.object;
}

void FakeKubeApi::Fail(const std::string& verb, const std::string& path_prefix,
                       absl::Status status) {
  absl::MutexLock lock(&mu_);
  std::erase_if(fail_,
                [&](const FailRule& r) { return r.verb == verb && r.path_prefix == path_prefix; });
  if (!status.ok()) fail_.push_back({verb, path_prefix, std::move(status)});
}

void FakeKubeApi::set_crd_established_after(int gets) {
  absl::MutexLock lock(&mu_);
  crd_established_after_ = gets;
}

std::vector<std::string> FakeKubeApi::calls() {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<std::string> FakeKubeApi::calls_with_query() {
  absl::MutexLock lock(&mu_);
  return calls_with_query_;
}

std::vector<std::string> FakeKubeApi::applied_kinds() {
  absl::MutexLock lock(&mu_);
  return applied_kinds_;
}

int64_t FakeKubeApi::writes() {
  absl::MutexLock lock(&mu_);
  return writes_;
}

}  // namespace ferry::cluster_syncer
