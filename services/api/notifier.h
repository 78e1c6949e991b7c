// Notifications: a JSON POST to every --notify_url for what people want to hear about without
// watching jobs: releases (manual and automated), automatic reverts, locks, failed syncs (sync
// jobs and the cluster-syncer's own background syncs) and failed jobs.
//
//   EventsForJob, EventForSyncFailure  pure functions: a finished job (a sync result) -> the
//                                      events it produces, JSON objects with a Slack-compatible
//                                      "text" line and bounded lists.
//   Notifier                           one bounded FIFO queue and one delivery thread per URL:
//                                      Notify() never blocks on the network; delivery retries
//                                      with backoff and keeps each URL's order.
//   SyncFailureWatch                   follows cluster-syncer's WatchSync and hands the failed
//                                      syncs to a Notifier.
//   Notifications                      the three wired as ferry-api runs them.
//
// A URL may carry a secret in its path or query (Slack's webhook URLs do), and a token file
// holds one: logs, errors and metric labels name a URL only by its position and host
// (NotifyTarget::Describe), never by its path, query or token.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.pb.h"
#include "ferry/v1/types.pb.h"
#include "lib/http/curl_http_client.h"
#include "lib/http/http_client.h"
#include "lib/runtime/clock.h"
#include "services/api/config.h"
#include "services/api/jobs.h"
#include "services/api/peers.h"

namespace ferry::api {

// Bounds of one event: list entries (workloads, container updates, locks, resource errors)
// beyond kMaxEventListed are cut and counted in a "<list>_more" field; strings are cut at
// kMaxEventString bytes; the text lists at most kMaxTextListed entries ("and N more").
inline constexpr size_t kMaxEventListed = 20;
inline constexpr size_t kMaxEventString = 1000;
inline constexpr size_t kMaxTextListed = 5;

// The events of a finished job, in the order they are sent (none for a dry run or a job that
// has not finished):
//   "release" / "automated_release" / "revert"  such a job succeeded (also when it had
//                                               nothing to change: the text says so);
//   "lock"        a policy or revert job that succeeded locked workloads (after "revert");
//   "sync_failed" a sync job failed, or succeeded with objects that failed to apply;
//   "job_failed"  any other job failed.
// Fields: event, job, kind, state, revision, error, user, message (the cause's), time
// (RFC 3339, when it finished), text, reverts_job (for reverts), source_name (the job's
// source, with several: sources.h); "workloads" (changed and failed
// ones, with their container updates) and "skipped" (a count) for releases and reverts; "locks" for
// locks.
std::vector<nlohmann::json> EventsForJob(const ferry::v1::Job& job);

// The "sync_failed" event (source "cluster-syncer") of a background sync that failed as a
// whole or for some objects; nullopt for a sync that applied everything. With several
// sources (sources.h) `source` names the one synced: field source_name, and the text says
// it.
std::optional<nlohmann::json> EventForSyncFailure(const ferry::v1::SyncResult& result,
                                                  const std::string& source = "");

// Notification metrics, declared in one place (`target` is the URL's position, "1", "2"...):
//   ferry_notifications_total{target,outcome}  delivered; retried (a connection error, a
//       timeout, 5xx or 429: sent again later); failed (any other answer: given up); dropped
//       (the queue was full and this oldest event made room, or it was still queued when the
//       api stopped)
//   ferry_notification_queue_length{target}    events waiting or being sent
//   ferry_notification_events_total{event}     events produced (release, lock, ...)
class NotifierMetrics {
 public:
  explicit NotifierMetrics(prometheus::Registry& registry);

 private:
  friend class Notifier;
  prometheus::Family<prometheus::Counter>& outcomes_;
  prometheus::Family<prometheus::Gauge>& queue_length_;
  prometheus::Family<prometheus::Counter>& events_;
};

struct NotifierOptions {
  // Events waiting per URL; when full, the oldest is dropped for the new one.
  size_t queue_capacity = 1000;
  // One POST's deadline.
  absl::Duration request_timeout = absl::Seconds(5);
  // Retry delay after the first retryable failure, doubled up to max_retry (with up to 20%
  // jitter); a 429's Retry-After (seconds) is honoured up to max_retry.
  absl::Duration first_retry = absl::Seconds(1);
  absl::Duration max_retry = absl::Seconds(60);
  // Set by Stop() once its grace has passed, so that the HTTP client (CurlOptions::cancelled)
  // aborts a transfer in flight. Optional.
  std::shared_ptr<std::atomic<bool>> cancel_transfers;
};

// Delivers events to the targets. Thread-safe.
class Notifier {
 public:
  // `http` (thread-safe, e.g. CurlHttpClient with the http:// targets' hosts in its
  // insecure_hosts), `metrics` and `clock` outlive the Notifier.
  Notifier(std::vector<NotifyTarget> targets, http::HttpClient& http, NotifierMetrics& metrics,
           runtime::Clock& clock, NotifierOptions options = {});
  // Stop(absl::ZeroDuration()) unless stopped.
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Starts one delivery thread per target.
  void Start();

  // Queues `event` for every target: serialized once, O(1) per target under a short lock,
  // never waits for the network. After Stop() it is dropped.
  void Notify(const nlohmann::json& event);

  // Notify() for each of EventsForJob(job); for sync events, see OnSyncResult. Meant as the
  // JobStore's finish observer.
  void OnJobFinished(const ferry::v1::Job& job);

  // A sync's outcome seen by cluster-syncer: a failure is announced (EventForSyncFailure)
  // unless the same failure was announced last and no sync succeeded since (from this stream
  // or a sync job). The same failure: the same objects failed (whatever the revision and the
  // messages), or the same error stopped the whole sync. So an object that keeps failing at
  // every re-sync and every new commit is announced once, and again after a sync applied
  // everything; a sync job that meets it (the same objects, or the syncer's same whole-sync
  // error) adds no "sync_failed" of its own. A sync job that never reached the syncer is
  // always announced. Each source (`source`, a sync job's Job.source) is followed on its
  // own.
  void OnSyncResult(const ferry::v1::SyncResult& result, const std::string& source = "");

  // No more events are accepted; waits up to `grace` for the queues to empty (retries
  // included), then gives up on what is left (counted dropped), sets cancel_transfers and
  // joins the threads: returns within `grace` plus one request's remainder. Idempotent.
  void Stop(absl::Duration grace);

  // Events waiting or being sent to the target at `index` (0-based).
  size_t QueueLength(size_t index) const;

 private:
  struct Target {
    NotifyTarget config;
    std::string label;                                     // "1", "2", ... for metrics
    std::deque<std::shared_ptr<const std::string>> queue;  // oldest first
    bool sending = false;                                  // one taken from `queue` is in flight
    std::thread thread;
  };
  enum class Outcome { kDelivered, kRetry, kFailed };

  void Deliver(Target& target);
  // One POST; the outcome and, for kRetry, a Retry-After delay (zero when none).
  Outcome Send(const Target& target, const std::string& body, absl::Duration* retry_after);
  void Count(const Target& target, const char* outcome, double n = 1);
  void SetQueueGauge(const Target& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the sync failure `key` is news (see OnSyncResult); records it.
  bool NewSyncFailure(const std::string& source, const std::string& key);

  http::HttpClient& http_;
  NotifierMetrics& metrics_;
  runtime::Clock& clock_;
  const NotifierOptions options_;
  mutable absl::Mutex mu_;
  // Deque of targets: threads keep references to their own.
  std::deque<Target> targets_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // no new events; drain until drain_deadline_
  bool abandon_ ABSL_GUARDED_BY(mu_) = false;   // grace over: threads end now
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Mutex sync_mu_;
  // Per source: the sync failure announced last (its failed objects, or its error); none
  // once a sync applied everything.
  std::map<std::string, std::string> failing_ ABSL_GUARDED_BY(sync_mu_);
};

// Follows cluster-syncer's WatchSync (reconnecting with backoff, as the automation follows
// the scanner) and passes each result to Notifier::OnSyncResult, except a result that
// finished before the watch started (an old failure is not announced again by a restarted
// api). Thread-safe.
class SyncFailureWatch {
 public:
  // `source`: the name of the source whose syncer `peers` reach ("" with one unnamed).
  SyncFailureWatch(const PeerClients& peers, Notifier& notifier,
                   runtime::Clock& clock = runtime::SystemClock(), std::string source = "");
  // Stop().
  ~SyncFailureWatch();

  void Start();
  // Ends the stream and the thread; returns once it has. Idempotent.
  void Stop();
  // Results that come while `announce()` is false are not passed on: of several api replicas
  // only the leader announces the syncs they all see. Call it before Start().
  void SetGate(std::function<bool()> announce) { announce_ = std::move(announce); }

 private:
  void Follow();

  const PeerClients& peers_;
  Notifier& notifier_;
  runtime::Clock& clock_;
  const std::string source_;
  std::function<bool()> announce_;
  absl::Time started_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

// The notifications as ferry-api runs them (--notify_url): a CurlHttpClient (plain http allowed
// to the http:// targets' hosts, transfers cancelled when Stop's grace is over), the
// Notifier as `jobs`' finish observer, and a SyncFailureWatch. Without targets nothing is
// started and no observer is set. `peers`, `jobs` and `registry` outlive it.
class Notifications {
 public:
  // Follows the syncs of each of `sources` (its name, "" with one unnamed, and its clients).
  Notifications(std::vector<NotifyTarget> targets,
                const std::vector<std::pair<std::string, const PeerClients*>>& sources,
                JobStore& jobs, prometheus::Registry& registry);
  Notifications(const Notifications&) = delete;
  Notifications& operator=(const Notifications&) = delete;

  // Logs each target (by Describe()), starts delivery and follows cluster-syncer's syncs.
  void Start();
  // Stops following cluster-syncer (at shutdown, with the other calls to peers).
  void StopWatching();
  // Sends what is queued for up to `grace`, then gives up on the rest (Notifier::Stop).
  void Stop(absl::Duration grace);
  // Several replicas (--leader_elect): cluster-syncer's failed syncs are announced only while
  // `leading()` (SyncFailureWatch::SetGate); each replica announces the jobs it ran. Call it
  // before Start().
  void AnnounceSyncsWhile(std::function<bool()> leading);

 private:
  const std::vector<NotifyTarget> targets_;
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
  http::CurlHttpClient http_;
  NotifierMetrics metrics_;
  Notifier notifier_;
  std::vector<std::unique_ptr<SyncFailureWatch>> sync_failures_;  // one per source
};

}  // namespace ferry::api
