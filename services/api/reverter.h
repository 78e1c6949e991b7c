// Rollouts that revert themselves (policy `rollback: auto`).
//
// After a release (RELEASE or AUTOMATED_RELEASE job) applied its commit, the Reverter reads
// the released workloads' policies at that commit and follows the rollout of each one whose
// policy says `rollback: auto` (cluster-syncer's WaitRollout, as `--watch` does), within
// the workload's `rollback-timeout` (policy::kDefaultRollbackTimeout when it has none). The
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
// A healthy rollout (ROLLOUT_STATE_READY) ends the follow; a workload without rollback: auto
// is not followed. A follow that cannot tell (the syncer unreachable, the api shutting down)
// reverts nothing.
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
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/api/executor.h"
#include "services/api/jobs.h"
#include "services/api/peers.h"

namespace ferry::api {

// Rollouts followed at once (each one a thread and a WaitRollout stream); beyond it a
// released workload is not followed (logged, counted as not_followed).
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
  std::string workload;
  std::vector<ferry::v1::ContainerUpdate> updates;  // what the release changed in it
  absl::Duration timeout = absl::ZeroDuration();    // its rollback-timeout
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

// What a revert job of `w` (job `revert_job`) commits for `reason`.
struct RevertPlan {
  ferry::v1::Job job;                              // kind REVERT, reverts_job, cause "ferry"
  std::vector<ferry::v1::WorkloadResult> results;  // the workload, its updates new -> old
  // Image compare-and-sets (from the released image to the previous one) in `w.updates`
  // order, then the lock, then one reject_tag per container.
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
  Reverter(const PeerClients& peers, JobStore& store, JobRunner& runner, Executor& executor,
           RevertMetrics& metrics);
  // Join().
  ~Reverter();
  Reverter(const Reverter&) = delete;
  Reverter& operator=(const Reverter&) = delete;

  // The Executor's ReleaseApplied hook: follows, on threads of its own, the rollouts of
  // the workloads `released` (results of `job`, applied at `revision`) with rollback: auto.
  // Returns at once.
  void Released(const ferry::v1::Job& job, const std::string& revision,
                const std::vector<ferry::v1::WorkloadResult>& released);
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
  // A thread's work: reads the policies of `released` at `revision`, follows each.
  void FollowRelease(const ferry::v1::Job& job, const std::string& revision,
                     const std::vector<ferry::v1::WorkloadResult>& released);
  // Follows one workload's rollout; reverts it when it fails.
  void Follow(const FollowedWorkload& w);
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
  std::atomic<int> following_{0};
  absl::Mutex mu_;
  std::list<Follower> followers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::api
