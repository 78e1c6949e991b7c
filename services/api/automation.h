// The automation loop: automated, unlocked, not ignored workloads follow their image
// repositories without anyone asking.
//
// A pass reads the workload index from git-writer, tells registry-scanner which repositories
// to watch (every image used in git, so ListImages is fresh too), plans each automated
// container's move to its newest filter-passing tag (PlanAutomation) and, when there is
// any, runs one AUTOMATED_RELEASE job that commits every move in one commit. Passes run on a
// new-tag event from the scanner's WatchEvents stream for a repository an automated
// workload uses, after the stream reconnects (events may have been missed), when a tag held
// back by its soak time (`min-age`) becomes eligible (the earliest such time of the last
// pass, at least 1 s later), and every `interval` as a safety net. Passes never overlap.
//
// What keeps a container from moving (a policy error, a tag soaking or rejected, no tag
// passing the filter, a registry error) is logged at every pass ("automation" with the
// note) and written into the planning stage of the pass's job when it releases anything.
//
// With several replicas (--leader_elect) only the one holding the automation's Lease runs
// passes (SetLeading); a pass also asks for a write permit (SetWritePermit) when it starts
// and again right before it submits its job, so a replica whose leadership lapsed while it
// planned (its renew deadline passed) submits nothing. The other replicas stand by: their
// loops wait and their event streams only mark that a pass is due.
//
// Metrics:
//   ferry_automation_runs_total{outcome}   passes: released, nothing, error, standby (not
//                                          the leader when the pass began or was to submit)
//   ferry_automation_releases_total        containers released
//   ferry_automation_incomplete_tags_total tags passed over: metadata incomplete
//   ferry_automation_blocked_containers    automated containers that cannot move now
//                                          (registry error, bad filter, no candidate tag,
//                                          policy error)
//   ferry_automation_held_containers       automated containers whose best tag is held back
//                                          (soaking or rejected)
//   ferry_workloads{policy}                workloads in git: all, automated, locked, ignored
// With several sources (sources.h) each source has its own Automation, its own Lease-gated
// loop and event stream; the scanner's watch list is their union (ScannerWatchList), and
// every series above has a `source` label.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"
#include "services/api/executor.h"
#include "services/api/jobs.h"

namespace ferry::api {

class AutomationMetrics {
 public:
  explicit AutomationMetrics(prometheus::Registry& registry);

 private:
  friend class Automation;
  prometheus::Family<prometheus::Counter>& runs_;
  prometheus::Family<prometheus::Counter>& releases_;
  prometheus::Family<prometheus::Counter>& incomplete_;
  prometheus::Family<prometheus::Gauge>& blocked_;
  prometheus::Family<prometheus::Gauge>& held_;
  prometheus::Family<prometheus::Gauge>& workloads_;
};

// The scanner's watch list (WatchRequest replaces the whole list) for the automations of
// every source: the union of their repositories, sent when it differs from what was sent
// last. Thread-safe.
class ScannerWatchList {
 public:
  // Calls the scanner through `peers`, each call within kPeerCallTimeout.
  explicit ScannerWatchList(const PeerClients& peers) : peers_(peers) {}

  // Sets `source`'s repositories and sends the union when it changed (or after Resend). A
  // failed call is logged and sent again by the next Set.
  void Set(const std::string& source, std::set<std::string> repositories);
  // Forgets what was sent: the next Set sends the union whatever it is (the scanner at the
  // other end may be a new one that does not have it).
  void Resend();

 private:
  const PeerClients& peers_;
  // Held over the call, so lists reach the scanner in the order they are set; Resend never
  // waits for it (a leadership change calls it).
  absl::Mutex send_mu_;
  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(send_mu_);
  std::map<std::string, std::set<std::string>> by_source_ ABSL_GUARDED_BY(mu_);
  std::optional<std::set<std::string>> sent_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> resend_{false};
};

class Automation {
 public:
  // Reads git and the scanner through `peers` (a pass's calls under the planning stage's
  // budget), releases through `executor`. `clock` times the interval between passes, the
  // retries of a failed pass and the event stream's reconnects (the peers' call deadlines
  // stay in real time).
  Automation(const PeerClients& peers, JobStore& store, Executor& executor,
             AutomationMetrics& metrics, absl::Duration interval,
             runtime::Clock& clock = runtime::SystemClock());
  // Stop().
  ~Automation();

  // Starts the loop and the event stream; the first pass runs at once.
  void Start();
  // Stops both and waits for a running pass to end.
  void Stop();

  // Asks for a pass soon (coalesced with one already asked for).
  void Trigger();

  // Whether this replica leads (leader election): while it does not, the loop runs no pass;
  // when it starts leading a pass runs at once (tags may have come while it stood by).
  // Without any call it leads. Thread-safe; cheap (a leadership sink may call it).
  void SetLeading(bool leading);
  // Asked when a pass begins and right before it submits its job; not OK: the pass ends
  // ("standby") without a job. Default: always OK. Set it before Start().
  void SetWritePermit(std::function<absl::Status()> permit) { permit_ = std::move(permit); }
  // One of several sources (sources.h): its jobs carry `name`, its metrics the label
  // source="name", and its repositories go into the shared `watch_list` (which outlives
  // this object). Default: one unnamed source with a watch list of its own. Set it before
  // Start().
  void SetSource(std::string name, ScannerWatchList& watch_list);

  // Runs one pass now, on the calling thread. Returns the id of the job it ran, if any.
  std::optional<std::string> RunOnce();

  // Passes completed so far (for tests that wait for one).
  uint64_t passes() const { return passes_; }

  // When the last pass asked to look again because a held-back tag becomes eligible then
  // (InfiniteFuture: nothing to wait for).
  absl::Time wake_at() {
    absl::MutexLock pass(&pass_mu_);
    return wake_at_;
  }

  // The earliest pause before a pass for a soak ending: a wake-up never comes sooner.
  static constexpr absl::Duration kMinWake = absl::Seconds(1);

 private:
  void Loop();
  // Adds the series of this source's labels.
  void AddSeries();
  // permit_'s answer (true without one); a refusal is logged with `when` (start, submit).
  bool Permitted(const char* when);
  void FollowEvents();
  // Counts the pass (metrics, passes_) with `outcome`; returns `job_id`.
  std::optional<std::string> EndPass(const char* outcome, std::optional<std::string> job_id);
  // Sets the workload gauges and the automated repositories from git, and sends the scanner
  // the repositories to watch when they changed.
  void WatchRepositoriesOf(const ferry::v1::ListManifestWorkloadsResponse& in_git);
  // Records a plan: wake_at_, the gauges, the notes (logged, and appended to `notes` for the
  // job). Returns the containers to release.
  int RecordPlan(const std::vector<AutomationCandidate>& planned, std::vector<std::string>& notes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);

  const PeerClients& peers_;
  JobStore& store_;
  Executor& executor_;
  AutomationMetrics& metrics_;
  const absl::Duration interval_;
  runtime::Clock& clock_;
  std::string source_;                         // "" for the one unnamed source
  std::map<std::string, std::string> labels_;  // {source=...} with a named source
  std::unique_ptr<ScannerWatchList> own_watch_list_;
  ScannerWatchList* watch_list_;

  absl::Mutex pass_mu_;  // one pass at a time
  absl::Mutex mu_;       // Loop and FollowEvents wait on conditions of it
  bool triggered_ ABSL_GUARDED_BY(mu_) = false;
  bool leading_ ABSL_GUARDED_BY(mu_) = true;
  std::function<absl::Status()> permit_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> automated_repositories_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* events_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<uint64_t> passes_{0};
  bool last_pass_failed_ ABSL_GUARDED_BY(pass_mu_) = false;
  absl::Time wake_at_ ABSL_GUARDED_BY(pass_mu_) = absl::InfiniteFuture();
  std::thread loop_;
  std::thread events_;
};

}  // namespace ferry::api
