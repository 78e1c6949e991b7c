#include "services/api/workload_listing.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/manifest/resource.h"

namespace ferry::api {

absl::StatusOr<ferry::v1::ListWorkloadsResponse> MergeWorkloads(
    const ferry::v1::ListWorkloadsRequest& request,
    const ferry::v1::ListManifestWorkloadsResponse& in_git,
    const ferry::v1::ListClusterWorkloadsResponse* in_cluster,
    const ferry::v1::SyncResult* last_sync) {
  const bool cluster_known = in_cluster != nullptr;
  std::map<std::string, const ferry::v1::ClusterWorkload*> running;
  if (cluster_known) {
    for (const auto& w : in_cluster->workloads()) running[w.id()] = &w;
  }
  std::map<std::string, std::string> sync_errors;
  // Files (and kustomize roots) the last sync could not load, by path: what the cluster runs
  // from them stays as it was, and says why.
  std::map<std::string, std::string> file_errors;
  if (last_sync != nullptr) {
    for (const auto& e : last_sync->errors()) {
      if (!e.resource().empty()) {
        sync_errors[e.resource()] = e.error();
      } else if (!e.path().empty()) {
        file_errors.try_emplace(e.path(), e.error());
      }
    }
  }
  auto has_container = [&](const auto& containers) {
    if (request.container().empty()) return true;
    return std::any_of(containers.begin(), containers.end(), [&](const ferry::v1::Container& c) {
      return c.name() == request.container();
    });
  };
  std::vector<ferry::v1::Workload> out;
  for (const ferry::v1::ManifestWorkload& g : in_git.workloads()) {
    if (!has_container(g.containers())) continue;
    ferry::v1::Workload w;
    w.set_id(g.id());
    *w.mutable_containers() = g.containers();
    *w.mutable_policy() = g.policy();
    w.set_path(g.path());
    w.set_kustomize_root(g.kustomize_root());
    auto live = running.find(g.id());
    if (live != running.end()) {
      *w.mutable_rollout() = live->second->rollout();
      running.erase(live);
    } else {
      w.mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_UNKNOWN);
      w.mutable_rollout()->add_messages(cluster_known ? "not in the cluster"
                                                      : "the cluster state is not known");
    }
    if (!cluster_known) w.set_read_only(ferry::v1::READ_ONLY_REASON_NOT_READY);
    if (in_git.readonly()) w.set_read_only(ferry::v1::READ_ONLY_REASON_READ_ONLY_MODE);
    if (auto e = sync_errors.find(g.id()); e != sync_errors.end()) w.set_sync_error(e->second);
    out.push_back(std::move(w));
  }
  for (const auto& [id, live] : running) {  // in the cluster, not in git
    if (!has_container(live->containers())) continue;
    ferry::v1::Workload w;
    w.set_id(id);
    *w.mutable_containers() = live->containers();
    *w.mutable_rollout() = live->rollout();
    w.set_read_only(ferry::v1::READ_ONLY_REASON_NOT_IN_REPO);
    auto source = live->annotations().find(manifest::kSourceAnnotation);
    if (source != live->annotations().end()) {
      if (auto e = file_errors.find(source->second); e != file_errors.end()) {
        w.set_sync_error(absl::StrCat(source->second, ": ", e->second));
      }
    }
    out.push_back(std::move(w));
  }
  if (request.page_token().empty() && !request.namespace_().empty() && in_git.workloads().empty() &&
      cluster_known && running.empty() && out.empty()) {
    return absl::NotFoundError(absl::StrCat("namespace ", request.namespace_(),
                                            " has no workloads, in git or in the cluster; check "
                                            "its spelling (ferryctl list-workloads -a lists "
                                            "every one)"));
  }
  std::sort(out.begin(), out.end(), [](const ferry::v1::Workload& a, const ferry::v1::Workload& b) {
    return a.id() < b.id();
  });
  ferry::v1::ListWorkloadsResponse response;
  for (ferry::v1::Workload& w : out) *response.add_workloads() = std::move(w);
  response.set_revision(in_git.revision());
  response.set_git_verify_error(in_git.verify_error());
  return response;
}

}  // namespace ferry::api
