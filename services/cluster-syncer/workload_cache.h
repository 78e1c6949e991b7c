// The cluster's workloads as listed a moment ago. Listing every workload kind from the
// Kubernetes API costs seconds and hundreds of MB at 10,000 workloads; the pages of one
// ListWorkloads and the readers of the same moment share one listing instead of each
// making their own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"
#include "services/cluster-syncer/workloads.h"

namespace ferry::cluster_syncer {

// How old a listing may be when it is answered from.
inline constexpr absl::Duration kWorkloadListMaxAge = absl::Seconds(2);

// Thread-safe.
class WorkloadListCache {
 public:
  using Workloads = std::vector<ClusterWorkloadInfo>;
  using Lister = std::function<absl::StatusOr<Workloads>(const std::string& namespace_)>;

  // Namespaces remembered at once; the oldest listing goes first.
  static constexpr size_t kMaxNamespaces = 64;

  WorkloadListCache(Lister list, runtime::Clock& clock, absl::Duration max_age);

  // The workloads of `namespace_` ("" for all): the listing of at most max_age ago, or a new
  // one. One listing runs at a time; callers meanwhile wait for it and share it. A failed
  // listing is answered to its caller and not kept.
  absl::StatusOr<std::shared_ptr<const Workloads>> Get(const std::string& namespace_);

 private:
  struct Entry {
    absl::Time listed;
    std::shared_ptr<const Workloads> workloads;
  };

  const Lister list_;
  runtime::Clock& clock_;
  const absl::Duration max_age_;
  absl::Mutex mu_;  // held while listing
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::cluster_syncer
