// The cluster's workloads as listed a moment ago. Listing every workload kind from the
// Kubernetes API costs seconds and hundreds of MB at 10,000 workloads; the pages of one
// ListWorkloads and the readers of the same moment share one listing instead of each
// making their own, and a reader never waits for a listing while a recent one is at hand.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"
#include "services/cluster-syncer/workloads.h"

namespace ferry::cluster_syncer {

// How old a listing may be when it is answered from as it is.
inline constexpr absl::Duration kWorkloadListMaxAge = absl::Seconds(2);
// How old a listing may be when it is answered from while a new one is being made.
inline constexpr absl::Duration kWorkloadListMaxStale = absl::Seconds(10);

// Thread-safe.
class WorkloadListCache {
 public:
  using Workloads = std::vector<ClusterWorkloadInfo>;
  using Lister = std::function<absl::StatusOr<Workloads>(const std::string& namespace_)>;

  // Namespaces remembered at once; the oldest listing goes first.
  static constexpr size_t kMaxNamespaces = 64;

  WorkloadListCache(Lister list, runtime::Clock& clock, absl::Duration max_age,
                    absl::Duration max_stale);

  // The workloads of `namespace_` ("" for all):
  // - the listing of at most max_age ago;
  // - else, while another caller is making a new listing, the last one when it is at most
  //   max_stale old;
  // - else the outcome of the listing in progress, waited for and shared, its failure too;
  // - else a new listing, made by this caller (without the lock: the others are answered
  //   meanwhile). A failed listing is not kept: the next caller lists again.
  absl::StatusOr<std::shared_ptr<const Workloads>> Get(const std::string& namespace_)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Callers now waiting for a listing in progress.
  int Waiting() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    absl::Time listed;
    std::shared_ptr<const Workloads> workloads;
  };
  // A listing in progress, and its outcome once done.
  struct Listing {
    bool done = false;
    absl::StatusOr<std::shared_ptr<const Workloads>> outcome;
  };
  using Outcome = absl::StatusOr<std::shared_ptr<const Workloads>>;

  // Under mu_: the answer when there is one without listing, or the listing to wait for
  // (`wait`), or, when both are empty, the listing this caller was registered to make
  // (`mine`).
  struct Lookup {
    std::optional<Outcome> answer;
    std::shared_ptr<Listing> wait;
    std::shared_ptr<Listing> mine;
  };
  Lookup Find(const std::string& namespace_, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the outcome of `listing` (started at `started`) and wakes its waiters.
  void Store(const std::string& namespace_, absl::Time started, Listing& listing, Outcome outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Lister list_;
  runtime::Clock& clock_;
  const absl::Duration max_age_;
  const absl::Duration max_stale_;
  mutable absl::Mutex mu_;  // never held while listing
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Listing>> listings_ ABSL_GUARDED_BY(mu_);
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::cluster_syncer
