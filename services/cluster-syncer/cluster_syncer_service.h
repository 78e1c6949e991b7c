// The ferry.v1.ClusterSyncer gRPC service of ferry-cluster-syncer: validates requests, converts
// between proto and domain types, delegates, and maps errors to gRPC status codes.
#pragma once

#include <optional>

#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "services/cluster-syncer/sync_loop.h"
#include "services/cluster-syncer/workload_cache.h"
#include "services/cluster-syncer/workload_watch.h"
#include "services/cluster-syncer/workloads.h"

namespace ferry::cluster_syncer {

// The readiness check (runtime::kReadinessHealthName) is SERVING while the last sync attempt
// reached git-writer and the Kubernetes API and, with --leader_elect, this instance leads.

class ClusterSyncerService final : public ferry::v1::ClusterSyncer::Service {
 public:
  // `watch` (optional, started by the caller) answers ListWorkloads whenever it can and the
  // caller accepts the watch's freshness (max_age_ms 0 or at least 1 s).
  ClusterSyncerService(kube::KubeApi& kube, kube::Discovery& discovery, SyncLoop& loop,
                       std::set<std::string> allow_namespaces, WorkloadWatch* watch = nullptr);

  grpc::Status ListWorkloads(grpc::ServerContext* context,
                             const ferry::v1::ListClusterWorkloadsRequest* request,
                             ferry::v1::ListClusterWorkloadsResponse* response) override;
  grpc::Status SyncNow(grpc::ServerContext* context, const ferry::v1::SyncNowRequest* request,
                       ferry::v1::SyncResult* response) override;
  grpc::Status GetSyncStatus(grpc::ServerContext* context,
                             const ferry::v1::GetSyncStatusRequest* request,
                             ferry::v1::SyncResult* response) override;
  grpc::Status WatchSync(grpc::ServerContext* context, const ferry::v1::WatchSyncRequest* request,
                         grpc::ServerWriter<ferry::v1::SyncResult>* writer) override;
  grpc::Status WaitRollout(grpc::ServerContext* context,
                           const ferry::v1::WaitRolloutRequest* request,
                           grpc::ServerWriter<ferry::v1::WaitRolloutProgress>* writer) override;
  grpc::Status Export(grpc::ServerContext* context,
                      const ferry::v1::ExportResourcesRequest* request,
                      grpc::ServerWriter<ferry::v1::ExportedResource>* writer) override;

 private:
  // A listing for workloads_: the workloads of `ns` ("" for all) as ListWorkloads answers.
  absl::StatusOr<std::vector<ListedWorkload>> ListWorkloadsServed(const std::string& ns);
  // The workloads `request` names (at most kWorkloadsReadOneByOne), from a listing at most
  // `max_age` old (default: kWorkloadListMaxStale) when one is at hand, else each one after
  // its start_after read by itself (GetClusterWorkloads) until `context` is cancelled: never
  // a new listing.
  WorkloadListCache::Outcome NamedWorkloads(grpc::ServerContext& context,
                                            const ferry::v1::ListClusterWorkloadsRequest& request,
                                            std::optional<absl::Duration> max_age);

  kube::KubeApi& kube_;
  kube::Discovery& discovery_;
  SyncLoop& loop_;
  const std::set<std::string> allow_;
  WorkloadListCache workloads_;  // ListWorkloads' listings (kWorkloadListMaxAge, MaxStale)
  WorkloadWatch* const watch_;
};

// `w` as ListWorkloads answers it (WorkloadWatch's ToListed).
ListedWorkload ToListed(ClusterWorkloadInfo w);

// Proto forms.
void ToProto(const SyncReport& report, ferry::v1::SyncResult* out);
void ToProto(const RolloutInfo& rollout, ferry::v1::RolloutStatus* out);
void ToProto(const ClusterWorkloadInfo& workload, ferry::v1::ClusterWorkload* out);

}  // namespace ferry::cluster_syncer
