// Cluster resources as clean manifests: what the API server adds (status, uid,
// resourceVersion, managedFields, creationTimestamp, generation, allocated cluster IPs,
// generated annotations and Ferry's own bookkeeping) is removed, so that an export applies
// to a fresh namespace or cluster unchanged.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/kube/discovery.h"
#include "lib/kube/kube_api.h"

namespace ferry::cluster_syncer {

// Removes the server-made fields of `object` (of `kind`) in place.
void CleanForExport(const std::string& kind, nlohmann::json& object);

struct ExportOptions {
  std::vector<std::string> namespaces;  // empty: all (or the allowed ones)
  std::vector<std::string> kinds;       // empty: Namespace and the workload kinds
  std::set<std::string> allow;          // --allow_namespace
};

// Calls `emit(id, yaml)` for each exported resource, sorted by id. Objects made by
// controllers (with ownerReferences) and cluster add-ons are left out.
absl::Status ExportResources(
    kube::KubeApi& client, kube::Discovery& discovery, const ExportOptions& options,
    const std::function<bool(const std::string& id, const std::string& yaml)>& emit);

}  // namespace ferry::cluster_syncer
