// What jobs do: plan against git, the cluster and the registry, commit through git-writer,
// apply through cluster-syncer, follow rollouts, and record every step in the JobStore.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/runtime/snapshot_cache.h"
#include "services/api/jobs.h"
#include "services/api/peers.h"
#include "services/api/release_planner.h"

namespace ferry::api {

// The scanner's tag lists shared by the api's readers (ListImages): one ListTags per
// repository per kTagListMaxAge for all of them, not one per request. Releases and the
// automation ask the scanner themselves: they must see a tag pushed a moment ago.
using SharedTagLists = runtime::SnapshotCache<ferry::v1::ListTagsResponse>;
// How old a shared tag list may be when it is answered from as it is; up to
// kTagListMaxStale while a reader fetches it anew.
inline constexpr absl::Duration kTagListMaxAge = absl::Seconds(2);
inline constexpr absl::Duration kTagListMaxStale = absl::Seconds(10);
// Repositories whose tag lists are shared at once (a list of 100 tags is ~10 KB).
inline constexpr size_t kTagListRepositories = 1000;
// Shared tag lists fetched from `registry` (which must outlive them), each call within
// kPeerCallTimeout.
std::unique_ptr<SharedTagLists> NewSharedTagLists(const PeerClients& peers);

// The scanner's tag lists (every tag, newest first by creation time), fetched once per
// repository for the lifetime of the object (one planning pass or one listing). Not
// thread-safe.
class TagCache {
 public:
  // Each lookup is an answer of `shared` (a reader's listing), waited for until `budget`'s
  // deadline at most.
  TagCache(SharedTagLists& shared, CallBudget budget)
      : registry_(nullptr), shared_(&shared), budget_(budget) {}
  // Each lookup is a call to the scanner under `budget`, and within kPeerCallTimeout. When
  // the budget waits for peers (a job's or the automation's), the scanner is waited for
  // once: after it did not connect, every lookup fails at once. A request's listing (no
  // waiting) fails each lookup at once while the scanner is down.
  TagCache(const PeerClient<RegistryScannerStub>& registry, CallBudget budget)
      : registry_(&registry), budget_(budget) {}
  const RepositoryTags& Get(const std::string& repository);
  TagLookup Lookup() {
    return [this](const std::string& r) -> const RepositoryTags& { return Get(r); };
  }

 private:
  const PeerClient<RegistryScannerStub>* registry_;
  SharedTagLists* shared_ = nullptr;
  const CallBudget budget_;
  std::optional<absl::Status> connected_;  // the outcome of waiting for the scanner, once
  std::map<std::string, RepositoryTags> cache_;
};

// How a revert job (Executor::RunRevert) ended.
enum class RevertOutcome {
  kReverted,  // committed (and applied, or its apply failed: the job says which)
  kConflict,  // a container changed in git since the release: nothing committed
  kFailed,    // anything else: the job's error says what
};

// Runs jobs. Each Run* finishes its job (JobStore::Finish) whatever happens. Thread-safe:
// jobs run concurrently on the JobRunner's workers.
class Executor {
 public:
  // Each stage's calls go to `peers` under the stage's budget (PeerClients::ForStage).
  Executor(const PeerClients& peers, JobStore& store);

  // Plans and executes a release job (job.release_spec, validated).
  void RunRelease(const ferry::v1::Job& job);
  // Executes a policy job (job.policy_changes, validated).
  void RunPolicy(const ferry::v1::Job& job);
  // Fetches git now and applies the head.
  void RunSync(const ferry::v1::Job& job);

  // Executes an automated release of the planned container moves (to_image set).
  void RunAutomated(const ferry::v1::Job& job, const std::vector<AutomationCandidate>& planned,
                    const std::string& planning_note);

  // Executes a revert job (see reverter.h): `edits` (image compare-and-sets back to the
  // previous images, then policy changes) are committed in one commit (ApplyUpdatesRequest
  // all_or_nothing) or not at all; when a container changed in git since, nothing is
  // committed and the job fails naming it (kConflict). `results` is the reverted workload
  // with its updates (new -> old).
  RevertOutcome RunRevert(const ferry::v1::Job& job, std::vector<ferry::v1::WorkloadResult> results,
                          const std::vector<ferry::v1::Edit>& edits, const std::string& message);

  // Called by a RELEASE or AUTOMATED_RELEASE job once its commit `revision` is pushed, on
  // the job's thread: it must return quickly. With `applied` the cluster took the commit and
  // `released` are the workloads it took (SUCCESS results); without, applying it failed or
  // timed out (the background sync applies it later) and `released` are the workloads the
  // commit changed. (Rollouts that revert themselves: Reverter.)
  using ReleaseApplied =
      std::function<void(const ferry::v1::Job& job, const std::string& revision,
                         const std::vector<ferry::v1::WorkloadResult>& released, bool applied)>;
  // Sets the hook; call it before any job runs.
  void SetReleaseApplied(ReleaseApplied hook) { release_applied_ = std::move(hook); }

 private:
  // Adds to `running` those of `ids` that the cluster has, read from a listing made since
  // this call (ids in pages of WorkloadSelection::kMaxIds, all from that one listing).
  absl::Status AddRunningNow(const std::vector<std::string>& ids, const CallBudget& budget,
                             std::map<std::string, bool>& running) const;
  // Commits `edits`, applies the revision, follows rollouts if asked; updates `results`
  // (failed edits, failed applies) and finishes the job.
  void CommitAndApply(const ferry::v1::Job& job, std::vector<ferry::v1::WorkloadResult> results,
                      const std::vector<ferry::v1::Edit>& edits, const std::string& message,
                      bool wait_rollout, int rollout_timeout_seconds);
  // CommitAndApply's steps.
  // After the commit call: records failed edits, applies the pushed revision, calls the
  // release hook, follows rollouts if asked, and finishes the job.
  void ApplyCommitted(const ferry::v1::Job& job, std::vector<ferry::v1::WorkloadResult> results,
                      const ferry::v1::ApplyUpdatesResponse& applied, bool wait_rollout,
                      int rollout_timeout_seconds);
  // The release hook for the `released` workloads of a release job's `results`.
  void CallReleaseHook(const ferry::v1::Job& job, const std::string& revision,
                       const std::vector<ferry::v1::WorkloadResult>& results,
                       const std::set<std::string>& released, bool applied);
  // RunRevert's ends: the failed commit call (kConflict for ABORTED), and how the job ended.
  RevertOutcome FailRevert(const ferry::v1::Job& job,
                           std::vector<ferry::v1::WorkloadResult> results,
                           const absl::Status& status);
  RevertOutcome RevertOutcomeOf(const std::string& id);
  // The ApplyUpdates request for `edits`, with the job's record as it will have finished
  // (the git note) unless it is a dry run.
  ferry::v1::ApplyUpdatesRequest CommitRequest(
      const ferry::v1::Job& job, const std::vector<ferry::v1::WorkloadResult>& results,
      const std::vector<ferry::v1::Edit>& edits, const std::string& message);
  // Follows the rollout of the `released` workloads at `revision` and finishes job `id`;
  // rollout errors fail their workloads in `results`.
  void FollowRollout(const std::string& id, const std::string& revision,
                     const std::set<std::string>& released, int rollout_timeout_seconds,
                     std::vector<ferry::v1::WorkloadResult>& results);
  // Records every new rollout progress of `stream` as a stage of job `id`; returns the last.
  ferry::v1::WaitRolloutProgress RecordRollout(
      const std::string& id, grpc::ClientReaderInterface<ferry::v1::WaitRolloutProgress>& stream);
  // SyncNow of `revision` ("" = fetch and apply the head); with `skip_if_applied` the sync
  // that already applied `revision` answers (see SyncNowRequest). The result, or the
  // whole-sync failure.
  absl::StatusOr<ferry::v1::SyncResult> Apply(const std::string& revision, bool skip_if_applied);

  const PeerClients& peers_;
  JobStore& store_;
  ReleaseApplied release_applied_;
};

}  // namespace ferry::api
