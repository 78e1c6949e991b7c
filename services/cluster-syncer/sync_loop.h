// When syncs run: on every new head git-writer streams (WatchHead), every --sync_interval
// (drift correction), and on SyncNow. One sync at a time; a sync that cannot run at all
// (git-writer or the Kubernetes API unreachable) is retried with backoff, and readiness
// reports whether the last attempt reached both.
//
// A new head is synced from the last sync's record (Syncer::Live::kFromRecord: it writes
// what changed in git, listing nothing), and so is the revision a release waits for; the
// interval's sync, SyncNow, the first sync, a retry and a new leader's sync list the cluster
// and so write again what was deleted or changed out of band. The interval counts from the
// loop's own last listing sync (SyncNow's do not move it).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/runtime/clock.h"
#include "services/cluster-syncer/syncer.h"

namespace ferry::cluster_syncer {

// Where the "last applied revision" is recorded: git-writer's sync marker, or a ConfigMap
// (ferry-sync-state) in the cluster.
enum class SyncState { kGit, kCluster };

class SyncLoop {
 public:
  struct Options {
    absl::Duration interval = absl::Minutes(5);
    SyncState state = SyncState::kGit;
    std::string state_namespace = "default";
    absl::Duration max_backoff = absl::Seconds(60);
    // With leader election: how long this instance may still write
    // (LeaderElector::WriteValidity), an error when it may not. A standby neither syncs on
    // its own nor moves the sync marker, and SyncNow (not a dry run) answers with the
    // permit's status. The sync marker is moved only with a permit asked for right before
    // the call, whose deadline is at most what is left of it. Empty: always allowed.
    std::function<absl::StatusOr<absl::Duration>()> write_permit;
    // Connects to git-writer (grpc::Channel::WaitForConnected): whether its channel is
    // connected by the deadline. A sync without a revision waits up to 5 s for the
    // connection; then, until git-writer has served a first revision to this loop, up to a
    // minute for Head's answer (a fresh git-writer answers after its first fetch, which takes
    // seconds on a big repository), and 5 s once it has. Empty: the whole Head call has 5 s.
    std::function<bool(absl::Time)> git_connected;
  };
  // `clock` times the interval, the backoff and the reports; `kube` records the sync state
  // when Options::state is kCluster.
  SyncLoop(ferry::v1::GitWriter::StubInterface& git, kube::KubeApi& kube, Syncer& syncer,
           SyncMetrics& metrics, Options options, runtime::Clock& clock = runtime::SystemClock());
  ~SyncLoop();

  // Starts watching heads and the interval timer.
  void Start();

  // Syncs `revision` (empty: git-writer fetches and its new head is used) now, after any
  // sync in progress. With `skip_if_applied`, when `revision` is the last one recorded and
  // that sync applied every object, its report is returned without syncing again (a release
  // waiting for its commit is answered as soon as the sync WatchHead started for it ends).
  // Dry runs are not recorded as the last sync.
  SyncReport SyncNow(const std::string& revision, bool dry_run, bool skip_if_applied = false);

  // With leader election: whether this instance leads. Readiness is reported only while it
  // does; becoming the leader syncs at once, as though the interval had passed. The loop
  // never calls write_permit with its own lock held, so this may be called under the lock
  // write_permit takes.
  void SetLeading(bool leading);
  // Whether this instance leads (always true without leader election).
  bool Leading() const;

  // The last recorded sync and its sequence number (0: none yet).
  std::pair<uint64_t, std::optional<SyncReport>> Last();
  // Waits up to `timeout` (real time: a caller's wait, not the loop's clock) for a sync
  // recorded after sequence `after`.
  std::pair<uint64_t, std::optional<SyncReport>> WaitNext(uint64_t after, absl::Duration timeout);

  // Called with the readiness after every sync attempt (and at once with the current one).
  void SetReadinessSink(std::function<void(bool)> sink);

  // Cancels waits and every call to git-writer in progress (a sync in progress fails at
  // once, and so do later SyncNow calls), then stops the threads (the destructor does too).
  // Idempotent.
  void Stop();

 private:
  void WatchHeads();
  void Work();
  // Gives the pages a sync freed back to the system; called after each sync, outside
  // sync_mu_.
  void ReturnSyncMemory() ABSL_LOCKS_EXCLUDED(sync_mu_);
  // One sync.
  SyncReport RunSync(const std::string& revision, bool dry_run, bool fetch_first,
                     Syncer::Live live = Syncer::Live::kList)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_);
  // RunSync's steps. git-writer's head, after a fetch when `fetch_first`; Unavailable when
  // git-writer cannot be reached in time, its own code otherwise, named "git-writer: ...".
  absl::StatusOr<std::string> HeadRevision(bool fetch_first) ABSL_LOCKS_EXCLUDED(mu_);
  // Options::git_connected in slices, until `deadline` or Stop(); whether it connected.
  bool AwaitGitConnection(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The manifest files at `revision`; those served the same at `known_revision` (optional)
  // come without their text, marked unchanged. Unavailable when the read timed out,
  // git-writer's code otherwise.
  absl::StatusOr<std::vector<ManifestFileContent>> ReadManifests(const std::string& revision,
                                                                 const std::string& known_revision);
  // Records a finished sync: the sync state when it succeeded, metrics, the last report and
  // readiness (waking WaitNext), a log line.
  void Record(const SyncReport& report);
  void RecordState(const SyncReport& report);
  void Trigger(const std::string& revision);
  // options_.write_permit(); InfiniteDuration when there is none.
  absl::StatusOr<absl::Duration> WriteValidity() const;
  absl::Status WritePermit() const { return WriteValidity().status(); }
  // Calls the readiness sink when ready_ && leading_ changed since it was last told.
  void ReportReadiness() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Registers a call to git-writer for Stop() to cancel (cancelled at once after Stop()).
  class TrackedCall {
   public:
    TrackedCall(SyncLoop& loop, grpc::ClientContext& context);
    ~TrackedCall();

   private:
    SyncLoop& loop_;
    grpc::ClientContext& context_;
  };

  ferry::v1::GitWriter::StubInterface& git_;
  kube::KubeApi& kube_;
  Syncer& syncer_;
  SyncMetrics& metrics_;
  const Options options_;
  runtime::Clock& clock_;

  absl::Mutex sync_mu_;  // one sync at a time

  // The loop's threads and WaitNext wait on conditions of mu_ (woken by its unlock).
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool triggered_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;  // SetLeading(true): sync even an applied head
  bool leading_ ABSL_GUARDED_BY(mu_) = true;
  bool reported_ready_ ABSL_GUARDED_BY(mu_) = false;
  // Newest head seen; empty: ask git-writer.
  std::string wanted_revision_ ABSL_GUARDED_BY(mu_);
  // git-writer has served a revision (WatchHead or Head): its first fetch is done.
  bool git_served_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<SyncReport> last_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void(bool)> readiness_sink_ ABSL_GUARDED_BY(mu_);
  // To cancel the head stream.
  grpc::ClientContext* watch_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Calls in progress, to cancel on Stop().
  std::set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);

  std::thread watcher_;
  std::thread worker_;
};

}  // namespace ferry::cluster_syncer
