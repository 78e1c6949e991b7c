// Jobs: every change the api makes (release, policy, sync, automated release) is a job with
// an id, a state, timestamped stages and per-workload results.
//
// JobStore keeps the jobs of this process (a bounded history; finished jobs beyond it are
// forgotten, the git notes still hold those that committed) and wakes watchers on every
// change. JobRunner runs submitted jobs on a few worker threads, so a release never queues
// behind a long sync or another release's rollout wait; writes are serialized by git-writer.
#pragma once

#include <grpcpp/client_context.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ferry/v1/types.pb.h"

namespace ferry::api {

// Job metrics, declared in one place:
//   ferry_jobs_total{kind,outcome}          finished jobs (succeeded, failed)
//   ferry_job_duration_seconds{kind}        submitted -> finished
//   ferry_job_stage_duration_seconds{kind,stage}  previous stage -> this stage
//   ferry_job_queue_wait_seconds{kind}      submitted -> started running
class JobMetrics {
 public:
  explicit JobMetrics(prometheus::Registry& registry);

  void Finished(ferry::v1::JobKind kind, bool succeeded, absl::Duration duration);
  void Stage(ferry::v1::JobKind kind, ferry::v1::JobStageKind stage, absl::Duration since_previous);
  void QueueWait(ferry::v1::JobKind kind, absl::Duration wait);

 private:
  prometheus::Family<prometheus::Counter>& jobs_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& stage_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
};

// "release", "policy", "sync", "automated_release".
const char* JobKindName(ferry::v1::JobKind kind);
// "submitted", "planning", "commit_pushed", ...
const char* StageName(ferry::v1::JobStageKind stage);

// Told of every change of the jobs of a JobStore, in the order they happen (for the shared
// job records of several replicas: job_records.h). Called with the store's lock held: an
// implementation only takes note (its own lock, no call back into the store, no I/O).
class JobListener {
 public:
  virtual ~JobListener() = default;
  // `job` as it is now: submitted, or changed (stage, results, finished, reverted).
  virtual void Changed(const ferry::v1::Job& job) = 0;
  // Job `id` left the bounded history.
  virtual void Forgotten(const std::string& id) = 0;
};

// The jobs of this process. Thread-safe.
class JobStore {
 public:
  // Finished jobs that keep their IGNORED results (workloads the job did not concern: another
  // image, not named). Older ones keep what their git note keeps, all but those: at 10,000
  // workloads a release of one image has ~9,000 of them, and a history of 1,000 such jobs
  // would hold a gigabyte.
  static constexpr size_t kJobsWithIgnoredResults = 8;

  // Keeps at most `history` jobs; when full, the oldest finished job is forgotten.
  JobStore(size_t history, JobMetrics& metrics);

  // Registers `job` (kind, cause, spec set by the caller) with a new id, state QUEUED, the
  // SUBMITTED stage and the submission time. Returns the stored job.
  ferry::v1::Job Submit(ferry::v1::Job job);

  // Marks a job RUNNING (records the queue wait).
  void Start(const std::string& id);
  // Appends a stage; `revision` also becomes the job's revision when not empty.
  void AddStage(const std::string& id, ferry::v1::JobStageKind kind, const std::string& message,
                const std::string& revision = "",
                const std::vector<ferry::v1::WorkloadRollout>& rollouts = {});
  // Records that the job's commit went to the release branch `branch` (Job.pushed_branch)
  // rather than to the branch Ferry syncs.
  void SetPushedBranch(const std::string& id, const std::string& branch);
  // Replaces the per-workload results.
  void SetResults(const std::string& id, std::vector<ferry::v1::WorkloadResult> results);
  // Finishes a job: SUCCEEDED with the DONE stage when `error` is empty, FAILED with the
  // FAILED stage otherwise. Idempotent: a finished job stays as it is.
  void Finish(const std::string& id, const std::string& error,
              const std::string& done_message = "");

  // Calls `observer` with the job each time Finish finishes one (notifications), on the
  // finishing thread once the store's lock is released, so it may read the store; it should
  // return quickly (a job's worker waits for it). Replaces the previous observer.
  void SetFinishObserver(std::function<void(const ferry::v1::Job&)> observer)
      ABSL_LOCKS_EXCLUDED(observer_mu_);

  // Tells `listener` (which must outlive the store, or be replaced by nullptr first) of every
  // change from now on. Replaces the previous listener.
  void SetListener(JobListener* listener) ABSL_LOCKS_EXCLUDED(mu_);

  // Records on a job, finished or not, that REVERT job `revert_job` took it back
  // (Job.reverted_by_job) and wakes its watchers. Unknown ids are ignored.
  void MarkReverted(const std::string& id, const std::string& revert_job);

  // A copy of the job; nullopt when this process does not know it. `version` (optional)
  // receives the job's change counter for WaitChange.
  std::optional<ferry::v1::Job> Get(const std::string& id, uint64_t* version = nullptr) const;
  // Blocks until the job changed after `version` or `timeout` passed; returns the job and
  // updates `version`. nullopt when the job is unknown.
  std::optional<ferry::v1::Job> WaitChange(const std::string& id, uint64_t* version,
                                           absl::Duration timeout) const;
  // Jobs newest first, at most `limit` (0: all kept).
  std::vector<ferry::v1::Job> List(size_t limit) const;

 private:
  struct Entry {
    ferry::v1::Job job;
    uint64_t version = 0;
    absl::Time submitted;
    absl::Time last_stage;
  };
  // Applies `change` to a live job and wakes watchers; a finished job is not changed.
  void Change(const std::string& id, const std::function<void(Entry&)>& change)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Counts `finished` among the newest finished jobs, and drops the IGNORED results of the
  // one it pushes out of them (kJobsWithIgnoredResults). Not a change of the job: its version
  // stays, and neither watchers nor the listener are told.
  void DropIgnoredResultsOfOlderJobs(const std::string& finished) ABSL_LOCKS_EXCLUDED(mu_);

  const size_t history_;
  JobMetrics& metrics_;
  // Waiters (WaitChange) wait on conditions of mu_; absl::Mutex wakes them on unlock.
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // oldest first
  // The newest finished jobs, oldest first: those that keep their IGNORED results.
  std::deque<std::string> finished_whole_ ABSL_GUARDED_BY(mu_);
  JobListener* listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Mutex observer_mu_;
  std::function<void(const ferry::v1::Job&)> finish_observer_ ABSL_GUARDED_BY(observer_mu_);
};

// Client calls that a shutdown must be able to cut short (rollout waits, syncs).
class CancelSet {
 public:
  void Add(grpc::ClientContext* ctx);
  void Remove(grpc::ClientContext* ctx);
  // Cancels every registered call, and every one registered from now on.
  void CancelAll();
  bool cancelled() const { return cancelled_; }

 private:
  absl::Mutex mu_;
  std::set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> cancelled_{false};
};

// Registers a ClientContext with a CancelSet for the lifetime of a scope.
class ScopedCancel {
 public:
  ScopedCancel(CancelSet& set, grpc::ClientContext& ctx) : set_(set), ctx_(ctx) { set_.Add(&ctx_); }
  ~ScopedCancel() { set_.Remove(&ctx_); }
  ScopedCancel(const ScopedCancel&) = delete;
  ScopedCancel& operator=(const ScopedCancel&) = delete;

 private:
  CancelSet& set_;
  grpc::ClientContext& ctx_;
};

// Runs jobs on `workers` threads in submission order, and read-only jobs (dry runs) also on
// a lane of their own: one more thread that takes only those, so a dry run never waits
// behind jobs stuck on a peer (each of those ends within its stage deadlines).
class JobRunner {
 public:
  JobRunner(JobStore& store, int workers);
  // Join().
  ~JobRunner();

  // Queues `work` for job `id`; the job is marked RUNNING when a worker picks it up. `work`
  // finishes the job itself (JobStore::Finish); a job it leaves unfinished is failed.
  // `read_only`: the job writes nothing (a dry run), so it may take the read-only lane.
  void Run(const std::string& id, std::function<void()> work, bool read_only = false);

  // Cancels running downstream calls and fails queued jobs ("the api is shutting down").
  void Stop();

  // Stop(), then waits for the running jobs to end. Call it before destroying what the jobs
  // use (the executor, the peer clients). Idempotent; not from a job's own thread.
  void Join();

  CancelSet& cancel() { return cancel_; }

 private:
  struct Queued {
    uint64_t order = 0;  // submission order across both queues
    std::string id;
    std::function<void()> work;
  };
  // A worker's loop; the read-only lane's worker takes only read-only jobs, the others take
  // any, oldest first.
  void Work(bool read_only_lane);

  JobStore& store_;
  CancelSet cancel_;
  absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Queued> read_only_queue_ ABSL_GUARDED_BY(mu_);
  uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// A random (version 4) UUID.
std::string NewJobId();
// Whether `id` has NewJobId's form (36 characters: lower-case hex in groups of 8-4-4-4-12).
// Ids from requests are checked before they name anything outside this process (a shared
// job record's ConfigMap).
bool IsJobId(const std::string& id);

}  // namespace ferry::api
