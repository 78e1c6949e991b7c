// Leader election on a coordination.k8s.io/v1 Lease, with client-go's leaderelection
// semantics: the holder renews the Lease every retry period; an instance takes the Lease when
// it is free or when its record has not changed for a lease duration, judged by this
// instance's own steady clock from when it last saw the record change (never by comparing
// clocks across machines, nor by this machine's wall clock, which may step); a leader whose renewal
// has not succeeded within the renew deadline stops leading, before any other instance can take
// over (renew deadline < lease duration). Every write to the Lease carries the resourceVersion
// read, so of two instances racing for it one wins and the other gets a conflict.
//
// A Lease held by an identity that is not a Ferry instance (IsFerryIdentity) is never taken
// over, expired or not: it is reported (log, ferry_leader_foreign_holder) and waited out.
//
// The elector talks to the Lease through LeaseApi (kube_lease.h implements it over the
// Kubernetes API), and to time through runtime::Clock, so that its state machine is tested
// with fakes in milliseconds. Nothing in it is specific to cluster-syncer: it is meant to move
// to lib/ with the Kubernetes client when git-writer elects a leader too.
//
// Metrics (labels component, lease):
//   ferry_leader                       1 while this instance leads, else 0
//   ferry_leader_transitions_total     times this instance became the leader
//   ferry_leader_foreign_holder        1 while a non-Ferry identity holds the lease
//   ferry_leader_vacant_seconds_total  time the lease stood expired or free before this
//                                      instance took it (time without a leader it observed)
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"

namespace ferry::kube {

// The spec of a Lease and the resourceVersion it was read at.
struct LeaseRecord {
  std::string holder_identity;  // empty: free
  absl::Duration lease_duration = absl::ZeroDuration();
  absl::Time acquire_time = absl::InfinitePast();
  absl::Time renew_time = absl::InfinitePast();
  int64_t lease_transitions = 0;
  std::string resource_version;

  bool operator==(const LeaseRecord& o) const {
    return holder_identity == o.holder_identity && lease_duration == o.lease_duration &&
           acquire_time == o.acquire_time && renew_time == o.renew_time &&
           lease_transitions == o.lease_transitions && resource_version == o.resource_version;
  }
  bool operator!=(const LeaseRecord& o) const { return !(*this == o); }
};

// One Lease (its namespace and name are the implementation's). Thread-compatible.
class LeaseApi {
 public:
  virtual ~LeaseApi() = default;
  // NotFound when there is no such Lease; Unavailable (and others) when it cannot be read.
  virtual absl::StatusOr<LeaseRecord> Get() = 0;
  // Creates the Lease with `record`'s spec. AlreadyExists when another instance created it
  // first. The record as stored (with its resourceVersion).
  virtual absl::StatusOr<LeaseRecord> Create(const LeaseRecord& record) = 0;
  // Replaces the Lease's spec if its resourceVersion is still `record.resource_version`;
  // Aborted (HTTP 409 Conflict) when it changed since. The record as stored.
  virtual absl::StatusOr<LeaseRecord> Update(const LeaseRecord& record) = 0;
};

// "ferry-<component>/<pod>/<random hex>": unique per process, and recognisable as Ferry's.
std::string MakeIdentity(const std::string& component, const std::string& pod);
// Whether `identity` has MakeIdentity's form.
bool IsFerryIdentity(const std::string& identity);

class LeaderElector {
 public:
  // Below this much leadership left, a write is refused rather than sent with a timeout too
  // short to succeed.
  static constexpr absl::Duration kMinWriteValidity = absl::Milliseconds(100);

  struct Options {
    std::string component = "cluster-syncer";
    std::string lease;     // "namespace/name", for metrics, logs and messages
    std::string identity;  // MakeIdentity's
    absl::Duration lease_duration = absl::Seconds(15);
    absl::Duration renew_deadline = absl::Seconds(10);
    absl::Duration retry_period = absl::Seconds(2);
  };

  LeaderElector(LeaseApi& api, Options options, prometheus::Registry& registry,
                runtime::Clock& clock = runtime::SystemClock());
  ~LeaderElector();  // Stop()

  // Starts the election thread: tries to acquire, then renews, every retry period.
  void Start();
  // Stops the thread; a leader then releases the Lease (empty holder) so that a standby
  // takes over at once rather than after a lease duration. Idempotent.
  void Stop();

  // Whether this instance may write now: it leads and its last successful acquire or renewal
  // began less than a renew deadline ago, measured on the clock's steady reading (a step of
  // the wall clock neither lengthens nor shortens it). Cheap (a lock and the clock): call it
  // before every write.
  bool IsLeader();
  // How long this instance may still write: the time left until its renew deadline (its
  // last successful acquire or renewal began + renew deadline), when it leads and at least
  // kMinWriteValidity is left. A write must be over by then, so its request's timeout is
  // at most this. Otherwise Unavailable naming this instance, the lease and the leader it last
  // saw (or that there is none), to be retried once a leader is elected.
  absl::StatusOr<absl::Duration> WriteValidity();
  // WriteValidity()'s status.
  absl::Status WritePermit();
  // The holder this instance last saw (itself while leading); empty when none.
  std::string Leader();
  const Options& options() const { return options_; }

  // Called (from the election thread, or at once with the current value) whenever this
  // instance starts or stops leading; nullptr removes it. It must not call back into the
  // elector.
  void SetLeadershipSink(std::function<void(bool)> sink);

  // One attempt to acquire or renew the Lease, as the thread makes every retry period;
  // returns whether this instance holds it afterwards. Exposed for tests.
  bool TryAcquireOrRenew();
  // Updates leadership after an attempt begun at `attempt` (the clock's SteadyNow()) that
  // returned `held`: starts
  // leading, or stops when the renew deadline has passed or another holder was seen. The
  // thread calls it after every attempt. Exposed for tests.
  void UpdateLeadership(bool held, absl::Time attempt);

 private:
  void Run();
  void Release();
  // Remembers `record` as seen at `now` (the expiry clock restarts when it changed).
  void Observe(const LeaseRecord& record, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetLeading(bool leading) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LeaseApi& api_;
  const Options options_;
  runtime::Clock& clock_;
  prometheus::Gauge& leader_gauge_;
  prometheus::Counter& transitions_;
  prometheus::Gauge& foreign_gauge_;
  prometheus::Counter& vacant_seconds_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  // When the last successful acquire or renewal began, and when observed_ last changed: both
  // steady readings (Clock::SteadyNow), never wall time, which only goes into the Lease.
  absl::Time renewed_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::optional<LeaseRecord> observed_ ABSL_GUARDED_BY(mu_);
  absl::Time observed_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string reported_foreign_ ABSL_GUARDED_BY(mu_);  // logged once per holder
  std::function<void(bool)> sink_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace ferry::kube
