#include "services/cluster-syncer/export.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lib/kube/json_fields.h"
#include "lib/kube/list.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/yaml_json.h"
#include "lib/status/status_macros.h"
#include "services/cluster-syncer/syncer.h"
#include "services/cluster-syncer/workloads.h"

namespace ferry::cluster_syncer {
namespace {

// Removes parent[key] when parent is an object (and holds it); leaves anything else as it is.
void Erase(nlohmann::json& parent, const char* key) {
  if (parent.is_object()) parent.erase(key);
}

void EraseIfEmpty(nlohmann::json& parent, const char* key) {
  const nlohmann::json* child = kube::MutableField(parent, key);
  if (child != nullptr &&
      (child->is_null() || ((child->is_object() || child->is_array()) && child->empty()))) {
    parent.erase(key);
  }
}

// Pod templates come back with "creationTimestamp: null" in their metadata.
void EraseNullTimestamps(nlohmann::json& v) {
  if (v.is_object()) {
    if (const nlohmann::json* t = kube::MutableField(v, "creationTimestamp");
        t != nullptr && t->is_null()) {
      v.erase("creationTimestamp");
    }
    for (auto& [key, child] : v.items()) EraseNullTimestamps(child);
  } else if (v.is_array()) {
    for (auto& child : v) EraseNullTimestamps(child);
  }
}

}  // namespace

void CleanForExport(const std::string& kind, nlohmann::json& object) {
  Erase(object, "status");
  EraseNullTimestamps(object);
  nlohmann::json* meta = kube::MutableField(object, "metadata");
  if (meta == nullptr || !meta->is_object()) return;
  for (const char* key : {"uid", "resourceVersion", "managedFields", "creationTimestamp",
                          "generation", "selfLink", "ownerReferences", "finalizers"}) {
    meta->erase(key);
  }
  if (nlohmann::json* a = kube::MutableField(*meta, "annotations");
      a != nullptr && a->is_object()) {
    for (const char* key :
         {"kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision",
          kChecksumAnnotation, kSourceAnnotation}) {
      a->erase(key);
    }
    EraseIfEmpty(*meta, "annotations");
  }
  if (nlohmann::json* labels = kube::MutableField(*meta, "labels");
      labels != nullptr && labels->is_object()) {
    labels->erase(kSyncSetLabel);
    EraseIfEmpty(*meta, "labels");
  }
  nlohmann::json* spec = kube::MutableField(object, "spec");
  if (kind == "Namespace" && spec != nullptr) {
    // The namespace controller's finalizer and phase.
    Erase(*spec, "finalizers");
    EraseIfEmpty(object, "spec");  // `spec` may be gone now
  } else if (kind == "Service" && spec != nullptr) {
    for (const char* key : {"clusterIP", "clusterIPs"}) Erase(*spec, key);
    const std::string type = kube::StringField(*spec, "type");
    if (nlohmann::json* ports = kube::MutableField(*spec, "ports");
        ports != nullptr && type != "NodePort" && type != "LoadBalancer") {
      for (auto& port : *ports) Erase(port, "nodePort");
    }
  }
  if (kind == "ServiceAccount") Erase(object, "secrets");  // token secrets are generated
}

absl::Status ExportResources(
    kube::KubeApi& client, kube::Discovery& discovery, const ExportOptions& options,
    const std::function<bool(const std::string& id, const std::string& yaml)>& emit) {
  std::vector<std::pair<std::string, std::string>> kinds;  // (group or "*", kind)
  if (options.kinds.empty()) {
    kinds.emplace_back("", "Namespace");
    for (const auto& k : WorkloadKinds()) kinds.push_back(k);
  } else {
    for (const std::string& k : options.kinds) kinds.emplace_back("*", k);
  }
  std::set<std::string> namespaces(options.namespaces.begin(), options.namespaces.end());
  if (namespaces.empty()) namespaces = options.allow;
  for (const std::string& ns : namespaces) {
    if (!options.allow.empty() && !options.allow.count(ns)) {
      return absl::PermissionDeniedError(
          absl::StrCat("namespace ", ns, " is outside the allowed namespaces (--allow_namespace)"));
    }
  }
  absl::StatusOr<std::vector<kube::ApiResource>> all = discovery.All();
  if (!all.ok()) return all.status();
  std::map<std::string, std::string> out;  // id -> yaml
  std::set<std::string> done;              // group/kind
  for (const auto& [group, kind] : kinds) {
    bool served = false;
    for (const kube::ApiResource& api : *all) {  // preferred versions first
      if (absl::AsciiStrToLower(api.kind) != absl::AsciiStrToLower(kind)) continue;
      if (group != "*" && api.group != group) continue;
      if (!done.insert(api.group + "/" + api.kind).second || !api.Can("list")) {
        served = true;
        continue;
      }
      served = true;
      std::vector<std::string> lists;
      if (!api.namespaced || namespaces.empty()) {
        lists.push_back(api.CollectionPath(""));
      } else {
        for (const std::string& ns : namespaces) lists.push_back(api.CollectionPath(ns));
      }
      for (const std::string& path : lists) {
        FERRY_RETURN_IF_ERROR(
            kube::ForEachListItem(client, path, {}, [&](const nlohmann::json& listed) {
              if (!listed.is_object() || IsClusterAddon(listed)) return true;
              const nlohmann::json& meta = kube::Field(listed, "metadata");
              const nlohmann::json& owners = kube::Field(meta, "ownerReferences");
              if ((owners.is_array() || owners.is_object()) && !owners.empty()) return true;
              const std::string name = kube::StringField(meta, "name");
              const std::string ns = kube::StringField(meta, "namespace");
              if (name.empty()) return true;  // nothing a manifest could be written for
              if (!api.namespaced && api.kind == "Namespace" && !namespaces.empty() &&
                  !namespaces.count(name)) {
                return true;
              }
              if (!api.namespaced && api.kind != "Namespace" && !options.allow.empty()) return true;
              nlohmann::json obj = listed;
              obj["apiVersion"] = api.ApiVersion();
              obj["kind"] = api.kind;
              CleanForExport(api.kind, obj);
              out[manifest::ResourceId(ns, api.kind, name)] = manifest::JsonToYaml(obj);
              return true;
            }));
      }
    }
    if (!served && group == "*") {
      return absl::InvalidArgumentError(absl::StrCat("the API server serves no kind named ", kind));
    }
  }
  for (const auto& [id, yaml] : out) {
    if (!emit(id, yaml)) break;
  }
  return absl::OkStatus();
}

}  // namespace ferry::cluster_syncer
