// ListWorkloads' answer: the workloads in git merged with what runs in the cluster. Pure: the
// RPC method asks git-writer and cluster-syncer, this decides the answer.
#pragma once

#include "absl/status/statusor.h"
#include "ferry/v1/api.pb.h"
#include "ferry/v1/cluster_syncer.pb.h"
#include "ferry/v1/git_writer.pb.h"

namespace ferry::api {

// The workloads of `in_git` (git-writer's index, already of request.namespace) and of
// `in_cluster` (cluster-syncer's, null when it did not answer), with a container named
// request.container when that is set, sorted by id:
//   - a workload in git carries its containers, policy and path, and the rollout of the
//     cluster's workload of the same id, else UNKNOWN with "not in the cluster" (or "the
//     cluster state is not known" without `in_cluster`, then also read-only NOT_READY);
//     read-only READ_ONLY_MODE when git-writer runs read-only; its sync error from
//     `last_sync` (null: none known);
//   - a workload only in the cluster carries its containers and rollout, read-only
//     NOT_IN_REPO;
//   - the answer's revision is git's, and so is its git_verify_error (the head git-writer
//     does not serve because its signature did not verify).
// NotFound when request.namespace is set and neither git nor a cluster known to answer has
// a workload there (a misspelt namespace), on a first page (no request.page_token; the
// caller passes one page of each list, cut at the same id).
absl::StatusOr<ferry::v1::ListWorkloadsResponse> MergeWorkloads(
    const ferry::v1::ListWorkloadsRequest& request,
    const ferry::v1::ListManifestWorkloadsResponse& in_git,
    const ferry::v1::ListClusterWorkloadsResponse* in_cluster,
    const ferry::v1::SyncResult* last_sync);

}  // namespace ferry::api
