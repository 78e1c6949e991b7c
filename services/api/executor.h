// What jobs do: plan against git, the cluster and the registry, commit through git-writer,
// apply through cluster-syncer, follow rollouts, and record every step in the JobStore.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "services/api/config.h"
#include "services/api/jobs.h"
#include "services/api/peers.h"
#include "services/api/release_planner.h"

namespace ferry::api {

// What the Executor needs beyond the stubs.
struct ExecutorOptions {
  JobTimeouts timeouts;
  PeerLink git, registry, cluster;
};

// A downstream failure as an absl::Status naming the service: DEADLINE_EXCEEDED becomes
// UNAVAILABLE (the peer did not answer), the message is prefixed with the service's name.
absl::Status Downstream(const char* service, const grpc::Status& status);

// The scanner's tag lists (every tag, newest first by creation time), fetched once per
// repository for the lifetime of the object (one planning pass). Not thread-safe.
class TagCache {
 public:
  // How a background pass reaches the scanner: a restarting scanner is waited for up to
  // `peer_wait`, every lookup ends by `deadline`, a shutdown (`cancel`) cuts them short.
  struct Background {
    CancelSet* cancel = nullptr;  // required
    PeerLink link;
    absl::Duration peer_wait = absl::Seconds(10);
    absl::Time deadline = absl::InfiniteFuture();
  };
  // For a read answering a person: each lookup fails at once when the scanner is down.
  explicit TagCache(ferry::v1::RegistryScanner::StubInterface& registry) : registry_(registry) {}
  TagCache(ferry::v1::RegistryScanner::StubInterface& registry, Background background)
      : registry_(registry), background_(std::move(background)) {}
  const RepositoryTags& Get(const std::string& repository);
  TagLookup Lookup() {
    return [this](const std::string& r) -> const RepositoryTags& { return Get(r); };
  }

 private:
  ferry::v1::RegistryScanner::StubInterface& registry_;
  std::optional<Background> background_;
  absl::Status unreachable_;  // once the scanner did not connect, later lookups fail at once
  std::map<std::string, RepositoryTags> cache_;
};

// Runs jobs. Each Run* finishes its job (JobStore::Finish) whatever happens. Thread-safe:
// jobs run concurrently on the JobRunner's workers.
class Executor {
 public:
  Executor(Peers peers, JobStore& store, CancelSet& cancel, ExecutorOptions options = {});

  // The workload index at git-writer's head, for a job's planning or the automation: a
  // git-writer that is not connected is waited for up to --peer_wait, the call ends within
  // --job_planning_timeout (or by `deadline` when earlier: a caller's own).
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> GitWorkloads(
      absl::Time deadline = absl::InfiniteFuture());

  // Waits up to --peer_wait (not past `deadline`) for the peer named "git-writer",
  // "registry-scanner" or "cluster-syncer" to be connected: for a request's own calls, so a
  // restarting peer is waited for briefly and one that is down is named with its address.
  absl::Status AwaitPeer(const char* service, absl::Time deadline = absl::InfiniteFuture());

  // Plans and executes a release job (job.release_spec, validated).
  void RunRelease(const ferry::v1::Job& job);
  // Executes a policy job (job.policy_changes, validated).
  void RunPolicy(const ferry::v1::Job& job);
  // Fetches git now and applies the head.
  void RunSync(const ferry::v1::Job& job);
  // The scanner's tag lists for a background pass (waits for a restarting scanner; cut short
  // at shutdown).
  TagCache BackgroundTags() {
    return TagCache(peers_.registry, Background(Deadline(Stage::kPlanning)));
  }

  const JobTimeouts& timeouts() const { return options_.timeouts; }

  // Executes an automated release of the planned container moves (to_image set).
  void RunAutomated(const ferry::v1::Job& job, const std::vector<AutomationCandidate>& planned,
                    const std::string& planning_note);

 private:
  // Commits `edits`, applies the revision, follows rollouts if asked; updates `results`
  // (failed edits, failed applies) and finishes the job.
  void CommitAndApply(const ferry::v1::Job& job, std::vector<ferry::v1::WorkloadResult> results,
                      const std::vector<ferry::v1::Edit>& edits, const std::string& message,
                      bool wait_rollout, int rollout_timeout_seconds);
  // SyncNow of `revision` ("" = fetch and apply the head). The result, or the whole-sync
  // failure.
  absl::StatusOr<ferry::v1::SyncResult> Apply(const std::string& revision);

  // The stages of a job with a deadline of their own.
  enum class Stage { kPlanning, kCommit, kApply };
  // The timeout of `stage` and its limit (with the flag that sets it).
  std::pair<absl::Duration, const limits::Limit*> TimeoutOf(Stage stage) const;
  // The deadline of `stage` if it starts now.
  absl::Time Deadline(Stage stage) const { return absl::Now() + TimeoutOf(stage).first; }
  // Readies `ctx` for a call to `service` that must end by `deadline` (its stage's): waits
  // for the peer to connect (up to --peer_wait), sets the deadline. The call is then to be
  // registered with cancel_ (ScopedCancel).
  absl::Status Prepare(const char* service, grpc::ClientContext& ctx, absl::Time deadline);
  // A failed call within `stage` as a Status naming the peer and its address, and the
  // stage's flag when its deadline passed.
  absl::Status CallFailed(const char* service, Stage stage, const grpc::Status& status) const;
  const PeerLink& LinkOf(const char* service) const;
  TagCache::Background Background(absl::Time deadline);

  Peers peers_;
  JobStore& store_;
  CancelSet& cancel_;
  const ExecutorOptions options_;
};

}  // namespace ferry::api
