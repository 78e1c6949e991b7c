#include "services/api/jobs.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>

#include "lib/log/log.h"
#include "lib/runtime/proto_time.h"
#include "re2/re2.h"

namespace ferry::api {
namespace {

const prometheus::Histogram::BucketBoundaries kSeconds = {0.01, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                          5,    10,   30,  60,   120, 300};

bool Finished(const ferry::v1::Job& job) {
  return job.state() == ferry::v1::JOB_STATE_SUCCEEDED ||
         job.state() == ferry::v1::JOB_STATE_FAILED;
}

}  // namespace

const char* JobKindName(ferry::v1::JobKind kind) {
  switch (kind) {
    case ferry::v1::JOB_KIND_RELEASE:
      return "release";
    case ferry::v1::JOB_KIND_POLICY:
      return "policy";
    case ferry::v1::JOB_KIND_SYNC:
      return "sync";
    case ferry::v1::JOB_KIND_AUTOMATED_RELEASE:
      return "automated_release";
    case ferry::v1::JOB_KIND_REVERT:
      return "revert";
    default:
      return "unspecified";
  }
}

const char* StageName(ferry::v1::JobStageKind stage) {
  switch (stage) {
    case ferry::v1::JOB_STAGE_KIND_SUBMITTED:
      return "submitted";
    case ferry::v1::JOB_STAGE_KIND_PLANNING:
      return "planning";
    case ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED:
      return "commit_pushed";
    case ferry::v1::JOB_STAGE_KIND_APPLIED:
      return "applied";
    case ferry::v1::JOB_STAGE_KIND_ROLLOUT:
      return "rollout";
    case ferry::v1::JOB_STAGE_KIND_DONE:
      return "done";
    case ferry::v1::JOB_STAGE_KIND_FAILED:
      return "failed";
    default:
      return "unspecified";
  }
}

JobMetrics::JobMetrics(prometheus::Registry& registry)
    : jobs_(prometheus::BuildCounter()
                .Name("ferry_jobs_total")
                .Help("Finished jobs by kind and outcome (succeeded, failed).")
                .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("ferry_job_duration_seconds")
                    .Help("Jobs from submission to finish, by kind.")
                    .Register(registry)),
      stage_(prometheus::BuildHistogram()
                 .Name("ferry_job_stage_duration_seconds")
                 .Help("Time from a job's previous stage to this stage, by kind and stage.")
                 .Register(registry)),
      queue_wait_(prometheus::BuildHistogram()
                      .Name("ferry_job_queue_wait_seconds")
                      .Help("Time jobs waited for a worker, by kind.")
                      .Register(registry)) {}

void JobMetrics::Finished(ferry::v1::JobKind kind, bool succeeded, absl::Duration duration) {
  jobs_.Add({{"kind", JobKindName(kind)}, {"outcome", succeeded ? "succeeded" : "failed"}})
      .Increment();
  duration_.Add({{"kind", JobKindName(kind)}}, kSeconds).Observe(absl::ToDoubleSeconds(duration));
}

void JobMetrics::Stage(ferry::v1::JobKind kind, ferry::v1::JobStageKind stage,
                       absl::Duration since_previous) {
  stage_.Add({{"kind", JobKindName(kind)}, {"stage", StageName(stage)}}, kSeconds)
      .Observe(absl::ToDoubleSeconds(since_previous));
}

void JobMetrics::QueueWait(ferry::v1::JobKind kind, absl::Duration wait) {
  queue_wait_.Add({{"kind", JobKindName(kind)}}, kSeconds).Observe(absl::ToDoubleSeconds(wait));
}

bool IsJobId(const std::string& id) {
  static const LazyRE2 kJobId = {"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"};
  return RE2::FullMatch(id, *kJobId);
}

std::string NewJobId() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    // Never expected; a time-and-counter id keeps ids unique within the process.
    static std::atomic<uint64_t> counter{0};
    uint64_t t = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^ (++counter << 48);
    for (int i = 0; i < 16; ++i) b[i] = static_cast<unsigned char>(t >> ((i % 8) * 8));
  }
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof(out),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

JobStore::JobStore(size_t history, JobMetrics& metrics) : history_(history), metrics_(metrics) {}

ferry::v1::Job JobStore::Submit(ferry::v1::Job job) {
  const absl::Time now = absl::Now();
  job.set_id(NewJobId());
  job.set_state(ferry::v1::JOB_STATE_QUEUED);
  *job.mutable_submitted() = runtime::ToProtoTimestamp(now);
  ferry::v1::JobStage* stage = job.add_stages();
  stage->set_kind(ferry::v1::JOB_STAGE_KIND_SUBMITTED);
  *stage->mutable_time() = job.submitted();
  absl::MutexLock lock(&mu_);
  while (order_.size() >= history_) {
    // Forget the oldest finished job; while every kept job still runs, keep them all.
    auto oldest = std::find_if(order_.begin(), order_.end(),
                               [&](const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                 return Finished(jobs_.at(id).job);
                               });
    if (oldest == order_.end()) break;
    if (listener_ != nullptr) listener_->Forgotten(*oldest);
    jobs_.erase(*oldest);
    order_.erase(oldest);
  }
  Entry& e = jobs_[job.id()];
  e.job = job;
  e.submitted = now;
  e.last_stage = now;
  order_.push_back(job.id());
  if (listener_ != nullptr) listener_->Changed(job);
  return job;
}

void JobStore::SetListener(JobListener* listener) {
  absl::MutexLock lock(&mu_);
  listener_ = listener;
}

void JobStore::Change(const std::string& id, const std::function<void(Entry&)>& change) {
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || Finished(it->second.job)) return;
    change(it->second);
    ++it->second.version;
    if (listener_ != nullptr) listener_->Changed(it->second.job);
  }
}

void JobStore::MarkReverted(const std::string& id, const std::string& revert_job) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  it->second.job.set_reverted_by_job(revert_job);
  ++it->second.version;
  if (listener_ != nullptr) listener_->Changed(it->second.job);
}

void JobStore::Start(const std::string& id) {
  Change(id, [&](Entry& e) {
    e.job.set_state(ferry::v1::JOB_STATE_RUNNING);
    metrics_.QueueWait(e.job.kind(), absl::Now() - e.submitted);
  });
}

void JobStore::AddStage(const std::string& id, ferry::v1::JobStageKind kind,
                        const std::string& message, const std::string& revision,
                        const std::vector<ferry::v1::WorkloadRollout>& rollouts) {
  Change(id, [&](Entry& e) {
    const absl::Time now = absl::Now();
    ferry::v1::JobStage* stage = e.job.add_stages();
    stage->set_kind(kind);
    *stage->mutable_time() = runtime::ToProtoTimestamp(now);
    stage->set_message(message);
    stage->set_revision(revision);
    for (const auto& r : rollouts) *stage->add_rollouts() = r;
    if (!revision.empty()) e.job.set_revision(revision);
    metrics_.Stage(e.job.kind(), kind, now - e.last_stage);
    e.last_stage = now;
  });
}

void JobStore::SetPushedBranch(const std::string& id, const std::string& branch) {
  Change(id, [&](Entry& e) { e.job.set_pushed_branch(branch); });
}

void JobStore::SetResults(const std::string& id, std::vector<ferry::v1::WorkloadResult> results) {
  Change(id, [&](Entry& e) {
    e.job.clear_results();
    for (auto& r : results) *e.job.add_results() = std::move(r);
  });
}

void JobStore::SetFinishObserver(std::function<void(const ferry::v1::Job&)> observer) {
  absl::MutexLock lock(&observer_mu_);
  finish_observer_ = std::move(observer);
}

void JobStore::Finish(const std::string& id, const std::string& error,
                      const std::string& done_message) {
  std::optional<ferry::v1::Job> finished;
  Change(id, [&](Entry& e) {
    const absl::Time now = absl::Now();
    const bool ok = error.empty();
    e.job.set_state(ok ? ferry::v1::JOB_STATE_SUCCEEDED : ferry::v1::JOB_STATE_FAILED);
    e.job.set_error(error);
    ferry::v1::JobStage* stage = e.job.add_stages();
    stage->set_kind(ok ? ferry::v1::JOB_STAGE_KIND_DONE : ferry::v1::JOB_STAGE_KIND_FAILED);
    *stage->mutable_time() = runtime::ToProtoTimestamp(now);
    stage->set_message(ok ? done_message : error);
    *e.job.mutable_finished() = stage->time();
    metrics_.Stage(e.job.kind(), stage->kind(), now - e.last_stage);
    metrics_.Finished(e.job.kind(), ok, now - e.submitted);
    log::Info(ok ? "job done" : "job failed", {{"job", id},
                                               {"kind", JobKindName(e.job.kind())},
                                               {"revision", e.job.revision()},
                                               {"error", error}});
    finished = e.job;
  });
  if (finished) DropIgnoredResultsOfOlderJobs(id);
  if (!finished) return;  // unknown or already finished
  std::function<void(const ferry::v1::Job&)> observer;
  {
    absl::MutexLock lock(&observer_mu_);
    observer = finish_observer_;
  }
  if (observer) observer(*finished);
}

void JobStore::DropIgnoredResultsOfOlderJobs(const std::string& finished) {
  absl::MutexLock lock(&mu_);
  finished_whole_.push_back(finished);
  while (finished_whole_.size() > kJobsWithIgnoredResults) {
    auto it = jobs_.find(finished_whole_.front());
    finished_whole_.pop_front();
    if (it == jobs_.end()) continue;  // already forgotten
    // Not a change a watcher or the shared records need: the job reads as its note does.
    auto* results = it->second.job.mutable_results();
    results->erase(std::remove_if(results->begin(), results->end(),
                                  [](const ferry::v1::WorkloadResult& r) {
                                    return r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED;
                                  }),
                   results->end());
  }
}

std::optional<ferry::v1::Job> JobStore::Get(const std::string& id, uint64_t* version) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  if (version != nullptr) *version = it->second.version;
  return it->second.job;
}

std::optional<ferry::v1::Job> JobStore::WaitChange(const std::string& id, uint64_t* version,
                                                   absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = jobs_.find(id);
    return it == jobs_.end() || it->second.version != *version;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  *version = it->second.version;
  return it->second.job;
}

std::vector<ferry::v1::Job> JobStore::List(size_t limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<ferry::v1::Job> out;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    if (limit > 0 && out.size() >= limit) break;
    out.push_back(jobs_.at(*it).job);
  }
  return out;
}

void CancelSet::Add(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  calls_.insert(ctx);
  if (cancelled_) ctx->TryCancel();
}

void CancelSet::Remove(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  calls_.erase(ctx);
}

void CancelSet::CancelAll() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : calls_) ctx->TryCancel();
}

JobRunner::JobRunner(JobStore& store, int workers) : store_(store) {
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(false); });
  threads_.emplace_back([this] { Work(true); });
}

JobRunner::~JobRunner() { Join(); }

void JobRunner::Join() {
  Stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void JobRunner::Run(const std::string& id, std::function<void()> work, bool read_only) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      // Workers wait on conditions of mu_: each one able to take this job wakes on unlock.
      (read_only ? read_only_queue_ : queue_).push_back(Queued{submitted_++, id, std::move(work)});
      return;
    }
  }
  store_.Finish(id, "the api is shutting down; submit the job again");
}

void JobRunner::Stop() {
  std::deque<Queued> dropped, dropped_read_only;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(queue_);
    dropped_read_only.swap(read_only_queue_);
  }
  cancel_.CancelAll();
  for (const std::deque<Queued>* queue : {&dropped, &dropped_read_only}) {
    for (const Queued& q : *queue) {
      store_.Finish(q.id, "the api shut down before the job started; submit it again");
    }
  }
}

void JobRunner::Work(bool read_only_lane) {
  for (;;) {
    Queued next;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !read_only_queue_.empty() || (!read_only_lane && !queue_.empty());
      };
      auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || has_work(); };
      mu_.Await(absl::Condition(&wake));
      if (!has_work()) return;
      std::deque<Queued>* from = &read_only_queue_;
      if (!read_only_lane && !queue_.empty() &&
          (read_only_queue_.empty() || queue_.front().order < read_only_queue_.front().order)) {
        from = &queue_;
      }
      next = std::move(from->front());
      from->pop_front();
    }
    store_.Start(next.id);
    next.work();
    // A job its work forgot to finish is not left running forever.
    store_.Finish(next.id, "the job ended without a result (a bug in ferry-api)");
  }
}

}  // namespace ferry::api
