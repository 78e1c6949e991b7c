// The cluster's workloads kept current by watching them, as Kubernetes controllers' informers
// do: each workload kind is listed once, then watched from that listing's resourceVersion; a
// watch the API server ends is resumed where it stopped, and one that fails (or that the
// server can no longer resume: 410 Gone) is followed by a new listing. ListWorkloads answers
// from it, so neither a release's planning nor the api's reads cost a request to the
// Kubernetes API: a listing of 10,000 workloads costs the API server seconds, a read of 100
// named ones 100 GETs.
//
// What it holds is as fresh as the API server's watch: usually moments behind etcd, with no
// bound promised (the freshness of the API server's watch cache).
//
// Thread-safe. One thread per workload kind while started.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/kube/discovery.h"
#include "lib/kube/kube_api.h"
#include "services/cluster-syncer/workload_cache.h"
#include "services/cluster-syncer/workloads.h"

namespace ferry::cluster_syncer {

// How long the API server keeps one watch open (its timeoutSeconds) before it is resumed.
inline constexpr absl::Duration kWatchRequestTimeout = absl::Minutes(5);
// The wait after a failed listing or watch, doubled after each further failure up to the max.
inline constexpr absl::Duration kWatchRetryDelay = absl::Seconds(1);
inline constexpr absl::Duration kWatchMaxRetryDelay = absl::Seconds(30);
// A kind whose watch failed is not answered from for longer than this until a watch of it
// gives an event again (or a new listing is made): ListWorkloads then reads the API itself,
// as it does before the first listing.
inline constexpr absl::Duration kWatchFailureGrace = absl::Seconds(5);
// A watch that lasted this long (or gave an event) was up: a failure after it starts the
// backoff afresh. A failed watch is resumed from where it stopped; only 410 Gone (or a
// failed listing) leads to a new listing.
inline constexpr absl::Duration kWatchUpAfter = absl::Seconds(10);
// How often a kind the API does not serve (e.g. no HelmRelease CRD) is looked for again in
// the syncer's discovery (refreshed when a sync meets a kind it does not know, or when a
// watched kind's listing answers NotFound).
inline constexpr absl::Duration kWatchAbsentKindRecheck = absl::Seconds(30);

// The watch's waits and limits (the constants above); tests shorten them.
struct WatchTiming {
  absl::Duration retry_delay = kWatchRetryDelay;
  absl::Duration max_retry_delay = kWatchMaxRetryDelay;
  absl::Duration failure_grace = kWatchFailureGrace;
  absl::Duration up_after = kWatchUpAfter;
  absl::Duration absent_kind_recheck = kWatchAbsentKindRecheck;
};

class WorkloadWatch {
 public:
  // `to_listed` turns a workload into what Workloads() answers.
  using ToListed = std::function<ListedWorkload(ClusterWorkloadInfo)>;
  WorkloadWatch(kube::KubeApi& client, kube::Discovery& discovery, ToListed to_listed,
                WatchTiming timing = {});
  ~WorkloadWatch();  // stops
  WorkloadWatch(const WorkloadWatch&) = delete;
  WorkloadWatch& operator=(const WorkloadWatch&) = delete;

  // Starts listing and watching every workload kind (WorkloadKinds()), each on a thread of
  // its own, once `wait` (optional) has returned on that thread: it returns when the watch
  // may begin, or soon after its argument (the watch's stop flag) is set. Once only.
  using StartWhen = std::function<void(const std::atomic<bool>& stop)>;
  void Start(StartWhen wait = nullptr);
  // Ends the watches (within about a second, or once the page of a listing in progress has
  // been read) and waits for their threads. Idempotent.
  void Stop();

  // The workloads of namespace `ns` ("" for all) as ForEachClusterWorkload gives them (add-ons
  // and CronJobs' Jobs left out), sorted by id; nullptr while some kind has not been listed
  // yet or its watch has been failing for more than the failure grace (kWatchFailureGrace).
  std::shared_ptr<const std::vector<ListedWorkload>> Workloads(const std::string& ns);
  // Those of Workloads(ns) whose id is in `ids` (sorted by id; an id given twice answered
  // once, though a HelmRelease served by two groups is two entries, as in Workloads), looked
  // up one by one: a read of a few named workloads costs that few lookups, not a copy of all.
  std::shared_ptr<const std::vector<ListedWorkload>> Named(const std::string& ns,
                                                           const std::vector<std::string>& ids);

  // Listings made so far (the first of each kind included); for tests and metrics.
  int64_t listings() const { return listings_.load(); }

 private:
  struct KindState {
    bool listed = false;                                // its objects are in entries_
    absl::Time failing_since = absl::InfiniteFuture();  // since when its watch is broken
  };
  struct Entry {
    size_t kind;  // index into WorkloadKinds()
    std::string namespace_;
    ListedWorkload workload;
  };

  void Run(size_t kind);
  // Lists kind `k` (served as `api`) into entries_; `resource_version` receives the list's.
  absl::Status List(size_t k, const kube::ApiResource& api, std::string& resource_version);
  // Watches kind `k` from `resource_version` (advanced by each event) until the stream ends;
  // `events` counts the events received. Aborted when the server can no longer resume it (a
  // new listing is needed).
  absl::Status Watch(size_t k, const kube::ApiResource& api, std::string& resource_version,
                     int64_t& events);
  // Entry of `object` (of kind `k`) set or removed as a watch event says.
  void Apply(size_t k, const std::string& type, const nlohmann::json& object);
  // Removes the entries of kind `k`; whether there were any.
  bool EraseKind(size_t k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether every kind has been listed and none has been failing past the grace.
  bool Answering() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Failing(size_t k);
  void Healthy(size_t k);
  // Waits `d` or until stopped; false when stopped.
  bool Wait(absl::Duration d);

  kube::KubeApi& client_;
  kube::Discovery& discovery_;
  const ToListed to_listed_;
  const WatchTiming timing_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> listings_{0};
  std::vector<std::thread> threads_;

  absl::Mutex mu_;
  std::vector<KindState> kinds_ ABSL_GUARDED_BY(mu_);
  // By id, then "\n", then the kind's group (two groups serve a HelmRelease kind).
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by every change of entries_
  // Workloads() answers by namespace, as of the version they were made at.
  std::map<std::string, std::pair<uint64_t, std::shared_ptr<const std::vector<ListedWorkload>>>>
      answers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::cluster_syncer
