// The cluster's workloads as listed a moment ago. Listing every workload kind from the
// Kubernetes API costs seconds and hundreds of MB at 10,000 workloads; the pages of one
// ListWorkloads and the readers of the same moment share one listing instead of each
// making their own, and a reader never waits for a listing while a recent one is at hand:
// one older than kWorkloadListMaxAge but within kWorkloadListMaxStale is answered at once
// and a new one is made behind the readers (runtime::Refresh::kInBackground).
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lib/runtime/snapshot_cache.h"

namespace ferry::cluster_syncer {

// How old a listing may be when it is answered from as it is.
inline constexpr absl::Duration kWorkloadListMaxAge = absl::Seconds(2);
// How old a listing may be when it is answered from while a new one is being made (by a
// caller who asked for a newer one, or behind the callers).
inline constexpr absl::Duration kWorkloadListMaxStale = absl::Seconds(10);
// Namespaces whose listings are remembered at once.
inline constexpr size_t kWorkloadListNamespaces = 64;
// A ListWorkloads that names at most this many workloads, with no listing recent enough at
// hand, reads them one by one (a GET each, kWorkloadReadThreads at once) instead of making
// a new listing: a release of 100 named workloads then costs 100 small reads, not a listing
// of every workload in the cluster (1-2 s at 10,000 workloads).
inline constexpr size_t kWorkloadsReadOneByOne = 100;
inline constexpr size_t kWorkloadReadThreads = 4;
// Those reads are answered from the API server's watch cache (no etcd round trip, usually
// moments behind it, no bound promised) when the caller accepts a listing at least this old;
// else from etcd.
inline constexpr absl::Duration kWorkloadReadFromCacheMinAge = absl::Seconds(1);

// One workload of a listing as ListWorkloads answers it, kept serialized: a few hundred
// bytes instead of the ~1.4 KB of its ClusterWorkloadInfo (at 10,000 workloads a listing
// that is served and the one made behind it held ~30 MB of the syncer's peak).
struct ListedWorkload {
  std::string id;
  std::string message;  // ferry.v1.ClusterWorkload
};

// Listings of the workloads of one namespace ("" for all), sorted by id.
using WorkloadListCache = runtime::SnapshotCache<std::vector<ListedWorkload>>;

}  // namespace ferry::cluster_syncer
