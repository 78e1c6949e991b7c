#include "services/cluster-syncer/export.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/yaml_json.h"
#include "lib/status/status_macros.h"
#include "services/cluster-syncer/kube_list.h"
#include "services/cluster-syncer/syncer.h"
#include "services/cluster-syncer/workloads.h"

namespace ferry::cluster_syncer {
namespace {

void EraseIfEmpty(nlohmann::json& parent, const char* key) {
  if (parent.is_object() && parent.contains(key) &&
      (parent[key].is_null() ||
       ((parent[key].is_object() || parent[key].is_array()) && parent[key].empty()))) {
    parent.erase(key);
  }
}

// Pod templates come back with "creationTimestamp: null" in their metadata.
void EraseNullTimestamps(nlohmann::json& v) {
  if (v.is_object()) {
    if (v.contains("creationTimestamp") && v["creationTimestamp"].is_null()) {
      v.erase("creationTimestamp");
    }
    for (auto& [key, child] : v.items()) EraseNullTimestamps(child);
  } else if (v.is_array()) {
    for (auto& child : v) EraseNullTimestamps(child);
  }
}

}  // namespace

void CleanForExport(const std::string& kind, nlohmann::json& object) {
  object.erase("status");
  EraseNullTimestamps(object);
  if (!object.contains("metadata") || !object["metadata"].is_object()) return;
  nlohmann::json& meta = object["metadata"];
  for (const char* key : {"uid", "resourceVersion", "managedFields", "creationTimestamp",
                          "generation", "selfLink", "ownerReferences", "finalizers"}) {
    meta.erase(key);
  }
  if (meta.contains("annotations") && meta["annotations"].is_object()) {
    nlohmann::json& a = meta["annotations"];
    for (const char* key :
         {"kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision",
          kChecksumAnnotation, kSourceAnnotation}) {
      a.erase(key);
    }
    EraseIfEmpty(meta, "annotations");
  }
  if (meta.contains("labels") && meta["labels"].is_object()) {
    meta["labels"].erase(kSyncSetLabel);
    EraseIfEmpty(meta, "labels");
  }
  if (kind == "Namespace") {
    // The namespace controller's finalizer and phase.
    if (object.contains("spec")) {
      object["spec"].erase("finalizers");
      EraseIfEmpty(object, "spec");
    }
  }
  if (kind == "Service" && object.contains("spec")) {
    nlohmann::json& spec = object["spec"];
    for (const char* key : {"clusterIP", "clusterIPs"}) spec.erase(key);
    if (spec.value("type", "") != "NodePort" && spec.value("type", "") != "LoadBalancer" &&
        spec.contains("ports")) {
      for (auto& port : spec["ports"]) port.erase("nodePort");
    }
  }
  if (kind == "ServiceAccount") object.erase("secrets");  // token secrets are generated
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
        FERRY_RETURN_IF_ERROR(ForEachListItem(
            client, path, /*metadata_only=*/false, [&](const nlohmann::json& listed) {
              nlohmann::json obj = listed;
              const auto& meta = obj["metadata"];
              if (IsClusterAddon(obj)) return;
              if (meta.contains("ownerReferences") && !meta["ownerReferences"].empty()) return;
              const std::string name = meta.value("name", "");
              const std::string ns = meta.value("namespace", "");
              if (!api.namespaced && api.kind == "Namespace" && !namespaces.empty() &&
                  !namespaces.count(name)) {
                return;
              }
              if (!api.namespaced && api.kind != "Namespace" && !options.allow.empty()) return;
              obj["apiVersion"] = api.ApiVersion();
              obj["kind"] = api.kind;
              CleanForExport(api.kind, obj);
              out[manifest::ResourceId(ns, api.kind, name)] = manifest::JsonToYaml(obj);
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
