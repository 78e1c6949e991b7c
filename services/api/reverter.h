// Rollouts that revert themselves (policy `rollback: auto`).
//
// After a release (RELEASE or AUTOMATED_RELEASE job) pushed its commit, the Reverter reads
// the released workloads' policies at that commit and follows the rollout of each one whose
// policy says `rollback: auto` (cluster-syncer's WaitRollout, as `--watch` does), within
// the workload's `rollback-timeout` (policy::kDefaultRollbackTimeout when it has none). When
// the release job could not apply its commit (the apply failed or timed out; the background
// sync applies it later), the follow first waits for that revision to be applied, within
// the same rollback-timeout; a later revision applied instead means no verdict. A commit
// pushed to a release branch (git-writer's --git_push_branch) is not followed: it is applied
// only once a review merges it. The
// release job itself ends as before (at "committed and applied", or after its own rollout
// wait when it asked for one): following is not its work, so neither the job runner's
// workers nor the automation loop wait on it. Its record is not changed afterwards (the
// JobStore keeps finished jobs as they finished): the REVERT job names it (reverts_job), as
// do the revert's commit and the lock message.
//
// When the rollout fails (ROLLOUT_STATE_ERROR: a Deployment's progress deadline exceeded, a
// replica failure, pods of the new spec in CrashLoopBackOff / ImagePullBackOff (the
// cluster-syncer lists them), a failed HelmRelease; or not ready within rollback-timeout,
// which is how a StatefulSet or DaemonSet that does not progress fails), the Reverter
// submits a REVERT job (Job.reverts_job = the release job; cause user "ferry") that
// commits, in one commit:
// compare-and-set image edits back from the released image to the previous one for exactly
// the containers that release changed in that workload, a lock (user "ferry", a message
// naming the release job, the containers, tags and the reason), and the released tag of each
// container recorded as rejected (ferry.dev/rejected.<container>: TAG=REVERT_JOB) so that
// the automation never picks it again. When any of those containers changed in git since
// (someone released again), the revert commits nothing (no lock either: a person is already
// in charge) and its job fails saying so.
//
// A released image pinned by digest (no tag) is reverted and locked, but no tag is rejected
// (the job and the lock message say so). The lock message is one line of UTF-8 within
// git-writer's name limit (limits::kRequestNameBytes): control characters become spaces and
// the reason is cut.
//
// A failure verdict belongs to the latest release of the workload: a newer release of a
// workload (Released) supersedes the older follow of it, which stops (its WaitRollout is
// cancelled) and never submits a revert, so a healthy older release is never reverted for a
// newer one's failure.
//
// A healthy rollout (ROLLOUT_STATE_READY) ends the follow; a workload without rollback: auto
// is not followed. A follow that cannot tell (the syncer unreachable, the api shutting down,
// the workload's state unknown when rollback-timeout passes: not found, GETs failing, a
// HelmRelease without conditions, its revision never applied) reverts nothing; only a
// rollout last seen updating (or failed) when rollback-timeout passes is reverted.
//
// Metrics:
//   ferry_automatic_reverts_total{outcome}   reverted, conflict (a container changed since,
//                                            nothing committed), failed (the revert job
//                                            failed otherwise), not_followed (more than
//                                            kMaxFollowedRollouts followed at once)
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/api/executor.h"
#include "services/api/jobs.h"
#include "services/api/peers.h"

namespace ferry::api {

// Rollouts followed at once by default (each one a thread and a WaitRollout stream); beyond
// it a released workload is not followed (logged, counted as not_followed) and no thread is
// started for it. A thread that cannot be started counts the same.
inline constexpr int kMaxFollowedRollouts = 64;
// The longest rollout failure reason kept in a revert's job, lock message and commit.
inline constexpr size_t kMaxRevertReasonBytes = 400;

class RevertMetrics {
 public:
  explicit RevertMetrics(prometheus::Registry& registry);
  void Count(RevertOutcome outcome);
  void NotFollowed();

 private:
  prometheus::Family<prometheus::Counter>& reverts_;
};

// A released workload whose rollout is followed.
struct FollowedWorkload {
  std::string release_job;  // the release job's id
  std::string source;       // the release job's source (sources.h)
  std::string workload;
  std::vector<ferry::v1::ContainerUpdate> updates;  // what the release changed in it
  absl::Duration timeout = absl::ZeroDuration();    // its rollback-timeout
  // The revision to wait for before following (the release's commit when the release job
  // could not apply it); empty: whatever the cluster runs.
  std::string revision;
  uint64_t sequence = 0;  // the Released call that follows it (Reverter: newer supersedes)
};

// The workloads of `released` (results of job `release_job`, SUCCESS with updates) whose
// policy in `policies` (by workload id) says rollback: auto, with their rollback-timeout
// (policy::kDefaultRollbackTimeout when unset; also when it does not parse, which
// ListWorkloads shows as the workload's policy error). In `released` order.
std::vector<FollowedWorkload> WorkloadsToFollow(
    const std::string& release_job, const std::vector<ferry::v1::WorkloadResult>& released,
    const std::map<std::string, ferry::v1::Policy>& policies);

// Why `status` is a failed rollout to revert ("progress deadline exceeded: ..."); nullopt
// while it is not (ready, updating, unknown).
std::optional<std::string> RolloutFailure(const ferry::v1::RolloutStatus& status);

// The tag of `image` ("1.1.0" of "registry/app:1.1.0"; the digest when it has no tag; the
// text itself when it does not parse).
std::string TagOf(const std::string& image);
// The tag `image` names explicitly ("1.1.0" of "registry/app:1.1.0", "1.1.0" of
// "app:1.1.0@sha256:..."); empty when it names none (pinned by digest only, or unparsable).
std::string ExplicitTagOf(const std::string& image);

// `text` as one line of UTF-8 of at most `max_bytes` bytes: control characters (newlines
// too) become spaces, bytes that are not UTF-8 become '?', and a longer text is cut at a
// character boundary and ends with "...".
std::string OneLine(const std::string& text, size_t max_bytes);

// What a revert job of `w` (job `revert_job`) commits for `reason`.
struct RevertPlan {
  ferry::v1::Job job;                              // kind REVERT, reverts_job, cause "ferry"
  std::vector<ferry::v1::WorkloadResult> results;  // the workload, its updates new -> old
  // Image compare-and-sets (from the released image to the previous one) in `w.updates`
  // order, then the lock (OneLine within limits::kRequestNameBytes), then one reject_tag
  // per container whose released image has a tag (ExplicitTagOf; none when pinned by digest).
  std::vector<ferry::v1::Edit> edits;
  std::string message;  // the commit message
};
// The revert job to submit for `w` (no id yet) and, once it has one, its plan.
ferry::v1::Job RevertJob(const FollowedWorkload& w, const std::string& reason);
RevertPlan PlanRevert(const FollowedWorkload& w, const std::string& reason,
                      const ferry::v1::Job& revert_job);

// Follows rollouts of released rollback: auto workloads and submits their reverts. Thread-
// safe. The follows' calls are cut short when `peers`' CancelSet is cancelled
// (JobRunner::Stop).
class Reverter {
 public:
  // Reads git and follows rollouts through `peers`; submits REVERT jobs to `store` and runs
  // them on `runner` with `executor` (Executor::RunRevert). All must outlive the Reverter.
  // At most `max_followed` rollouts are followed at once.
  Reverter(const PeerClients& peers, JobStore& store, JobRunner& runner, Executor& executor,
           RevertMetrics& metrics, int max_followed = kMaxFollowedRollouts);
  // Join().
  ~Reverter();
  Reverter(const Reverter&) = delete;
  Reverter& operator=(const Reverter&) = delete;

  // The Executor's ReleaseApplied hook: follows, on threads of its own, the rollouts of
  // the workloads `released` (results of `job`, committed at `revision`; `applied`: the
  // cluster took it, else the follow waits for it) with rollback: auto. Supersedes the
  // older follows of those workloads. Returns at once.
  void Released(const ferry::v1::Job& job, const std::string& revision,
                const std::vector<ferry::v1::WorkloadResult>& released, bool applied = true);
  // A hook for Executor::SetReleaseApplied that calls Released.
  Executor::ReleaseApplied Hook();

  // Waits for every follow to end (cancel the peers' calls first to make it quick).
  // Idempotent.
  void Join();

 private:
  struct Follower {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  // A thread's work: reads the policies of `released` at `revision`, follows each (the
  // Released call `sequence`; `applied` as given to Released).
  void FollowRelease(const ferry::v1::Job& job, const std::string& revision,
                     const std::vector<ferry::v1::WorkloadResult>& released, bool applied,
                     uint64_t sequence);
  // Follows one workload's rollout (a slot reserved); reverts it when it fails. Frees the
  // slot and forgets `w` as its workload's latest follow.
  void Follow(const FollowedWorkload& w);
  // A follow slot, when fewer than max_followed_ are taken.
  bool ReserveSlot();
  // `w` is no longer its workload's latest follow.
  bool Superseded(const FollowedWorkload& w);
  // Forgets `sequence` as `workload`'s latest follow (when it still is).
  void Forget(const std::string& workload, uint64_t sequence);
  // Why the rollout of `w` failed; nullopt when it is healthy or nobody can tell.
  std::optional<std::string> Watch(const FollowedWorkload& w);
  // Submits and runs the revert job of `w`.
  void Revert(const FollowedWorkload& w, const std::string& reason);
  // Joins the followers that ended.
  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PeerClients& peers_;
  JobStore& store_;
  JobRunner& runner_;
  Executor& executor_;
  RevertMetrics& metrics_;
  const int max_followed_;
  std::atomic<int> following_{0};
  absl::Mutex mu_;
  std::list<Follower> followers_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // workload -> the Released call whose follow of it is the latest.
  std::map<std::string, uint64_t> latest_ ABSL_GUARDED_BY(mu_);
  // (workload, sequence) -> the context of that follow's WaitRollout while it runs.
  std::map<std::pair<std::string, uint64_t>, grpc::ClientContext*> watching_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::api
