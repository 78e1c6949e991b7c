// The shared job records' form (JSON within a size limit, parsed back) and their publisher:
// a JobStore's changes written one at a time, coalesced (the latest state wins), retried,
// and deleted when the job leaves the history; with an in-memory JobRecordStore. The real
// ConfigMaps on a real kube-apiserver: tests/api_replicas_binary_test.cc.
#include "services/api/job_records.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

// Records in memory; Put can be held (to queue changes behind a write) or fail.
class MemoryJobRecords final : public JobRecordStore {
 public:
  absl::Status Put(const ferry::v1::Job& job) override {
    absl::MutexLock lock(&mu_);
    ++entered_;
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    puts_.push_back(job);
    if (failures_ > 0) {
      --failures_;
      return absl::Status(failure_, "the write failed");
    }
    jobs_[job.id()] = job;
    return absl::OkStatus();
  }
  absl::Status Delete(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    jobs_.erase(id);
    deletes_.push_back(id);
    return absl::OkStatus();
  }
  absl::StatusOr<ferry::v1::Job> Get(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return absl::NotFoundError(id);
    return it->second;
  }
  absl::StatusOr<std::vector<JobRecordSummary>> ListSummaries() override {
    absl::MutexLock lock(&mu_);
    std::vector<JobRecordSummary> out;
    for (const auto& [id, job] : jobs_) {
      JobRecordSummary summary{id, runtime::FromProtoTimestamp(job.submitted()), std::nullopt};
      if (job.has_finished()) summary.finished = runtime::FromProtoTimestamp(job.finished());
      out.push_back(summary);
    }
    return out;
  }
  void Hold(bool held) {
    absl::MutexLock lock(&mu_);
    held_ = held;
  }
  // Waits until `n` Put calls have begun.
  void AwaitPuts(int n) {
    absl::MutexLock lock(&mu_);
    auto begun = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    mu_.Await(absl::Condition(&begun));
  }

  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::StatusCode failure_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kUnavailable;
  std::map<std::string, ferry::v1::Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<ferry::v1::Job> puts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> deletes_ ABSL_GUARDED_BY(mu_);
};

// A job id from a request names a path of the Kubernetes API (the record's ConfigMap) only
// when it has NewJobId's form: "x/.." would make a GET of a record a LIST of the namespace.
TEST(JobIdTest, OnlyTheFormOfNewJobIdIsAJobId) {
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(IsJobId(NewJobId()));
  for (const std::string bad :
       {"", "x/..", "../x", "0e5a3e57-9c1b-4b7e-8f3a-2d9c1e0b7a6",
        "0E5A3E57-9C1B-4B7E-8F3A-2D9C1E0B7A61", "0e5a3e57-9c1b-4b7e-8f3a-2d9c1e0b7a61/..",
        "ferry-job-0e5a3e57-9c1b-4b7e-8f3a-2d9c1e0b7a61",
        "0e5a3e57-9c1b-4b7e-8f3a-2d9c1e0b7a61?watch=1"}) {
    EXPECT_FALSE(IsJobId(bad)) << bad;
  }
  EXPECT_TRUE(IsJobId("0e5a3e57-9c1b-4b7e-8f3a-2d9c1e0b7a61"));
}

TEST(JobRecordTest, AJobRoundTripsThroughItsRecord) {
  ferry::v1::Job job;
  job.set_id("0b5c7d1e-0000-4000-8000-000000000001");
  job.set_kind(ferry::v1::JOB_KIND_RELEASE);
  job.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
  job.add_results()->set_workload("default:deployment/app");
  job.add_stages()->set_kind(ferry::v1::JOB_STAGE_KIND_DONE);
  bool truncated = true;
  const std::string json = JobRecordJson(job, kMaxJobRecordBytes, &truncated).value();
  EXPECT_FALSE(truncated);
  absl::StatusOr<ferry::v1::Job> parsed = ParseJobRecord(json);
  FERRY_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->SerializeAsString(), job.SerializeAsString());
  EXPECT_EQ(JobRecordName(job.id()), "ferry-job-0b5c7d1e-0000-4000-8000-000000000001");
  EXPECT_THAT(ParseJobRecord("{\"kind\": 3}"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseJobRecord("not json"), StatusIs(absl::StatusCode::kInvalidArgument));
  // A time the JSON mapping cannot write: no record at all, rather than an empty one.
  job.mutable_finished()->set_seconds(int64_t{1} << 40);
  EXPECT_THAT(JobRecordJson(job), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(JobRecordTest, AnOversizedJobKeepsItsFirstResultsAndSaysHowManyAreMissing) {
  ferry::v1::Job job;
  job.set_id("big");
  for (int i = 0; i < 1000; ++i) {
    ferry::v1::WorkloadResult* r = job.add_results();
    r->set_workload("default:deployment/app-" + std::to_string(i));
    r->set_reason(std::string(100, 'x'));
  }
  bool truncated = false;
  const std::string json = JobRecordJson(job, 20000, &truncated).value();
  EXPECT_TRUE(truncated);
  EXPECT_LE(json.size(), 20000u);
  absl::StatusOr<ferry::v1::Job> parsed = ParseJobRecord(json);
  FERRY_ASSERT_OK(parsed);
  ASSERT_GE(parsed->results_size(), 2);
  EXPECT_EQ(parsed->results(0).workload(), "default:deployment/app-0");
  const ferry::v1::WorkloadResult& marker = parsed->results(parsed->results_size() - 1);
  EXPECT_EQ(marker.workload(), "");
  EXPECT_THAT(marker.reason(), HasSubstr(std::to_string(1000 - (parsed->results_size() - 1)) +
                                         " more workload results"));
}

class JobRecordPublisherTest : public ::testing::Test {
 protected:
  prometheus::Registry registry_;
  JobMetrics metrics_{registry_};
  MemoryJobRecords records_;
  JobRecordPublisher publisher_{records_};
};

TEST_F(JobRecordPublisherTest, ChangesAreWrittenCoalescedAndTheLatestWins) {
  JobStore store(10, metrics_);
  store.SetListener(&publisher_);
  publisher_.Start();
  records_.Hold(true);  // the submission's write waits: the changes queue behind it
  ferry::v1::Job job = store.Submit(ferry::v1::Job());
  records_.AwaitPuts(1);
  store.Start(job.id());
  store.AddStage(job.id(), ferry::v1::JOB_STAGE_KIND_PLANNING, "planning");
  store.Finish(job.id(), "");
  records_.Hold(false);
  ASSERT_TRUE(publisher_.AwaitIdle(absl::Seconds(10)));
  absl::MutexLock lock(&records_.mu_);
  // The submission (held), then one write of the latest state for the three changes.
  ASSERT_EQ(records_.puts_.size(), 2u);
  EXPECT_EQ(records_.puts_[0].state(), ferry::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(records_.jobs_.at(job.id()).state(), ferry::v1::JOB_STATE_SUCCEEDED);
  store.SetListener(nullptr);
}

TEST_F(JobRecordPublisherTest, AFailedWriteIsRetriedAndAForgottenJobDeleted) {
  JobStore store(10, metrics_);
  store.SetListener(&publisher_);
  publisher_.Start();
  {
    absl::MutexLock lock(&records_.mu_);
    records_.failures_ = 1;
  }
  ferry::v1::Job first = store.Submit(ferry::v1::Job());
  store.Finish(first.id(), "");
  ASSERT_TRUE(publisher_.AwaitIdle(absl::Seconds(10)));
  {
    absl::MutexLock lock(&records_.mu_);
    ASSERT_EQ(records_.jobs_.count(first.id()), 1u);
    EXPECT_EQ(records_.jobs_.at(first.id()).state(), ferry::v1::JOB_STATE_SUCCEEDED);
  }
  // Ten more jobs: the first leaves the history of 10, and its record goes.
  for (int i = 0; i < 10; ++i) store.Finish(store.Submit(ferry::v1::Job()).id(), "");
  ASSERT_TRUE(publisher_.AwaitIdle(absl::Seconds(10)));
  absl::MutexLock lock(&records_.mu_);
  EXPECT_EQ(records_.jobs_.count(first.id()), 0u);
  EXPECT_THAT(records_.deletes_, ::testing::ElementsAre(first.id()));
  EXPECT_EQ(records_.jobs_.size(), 10u);
  store.SetListener(nullptr);
}

// A record the store refuses (InvalidArgument: the job has no JSON form, or the API server
// finds the object invalid) would be refused again: it is not retried, and the next state
// of the job is written as usual.
TEST_F(JobRecordPublisherTest, ARefusedRecordIsNotRetried) {
  JobStore store(10, metrics_);
  store.SetListener(&publisher_);
  publisher_.Start();
  {
    absl::MutexLock lock(&records_.mu_);
    records_.failures_ = 1;
    records_.failure_ = absl::StatusCode::kInvalidArgument;
  }
  ferry::v1::Job job = store.Submit(ferry::v1::Job());
  ASSERT_TRUE(publisher_.AwaitIdle(absl::Seconds(10)));
  {
    absl::MutexLock lock(&records_.mu_);
    EXPECT_EQ(records_.puts_.size(), 1u) << "a refused record was written again";
    EXPECT_EQ(records_.jobs_.count(job.id()), 0u);
  }
  store.Finish(job.id(), "");
  ASSERT_TRUE(publisher_.AwaitIdle(absl::Seconds(10)));
  absl::MutexLock lock(&records_.mu_);
  EXPECT_EQ(records_.puts_.size(), 2u);
  EXPECT_EQ(records_.jobs_.at(job.id()).state(), ferry::v1::JOB_STATE_SUCCEEDED);
  store.SetListener(nullptr);
}

TEST(JobRecordTest, ListGetsTheNewestRecordsNewestFirst) {
  MemoryJobRecords records;
  for (int i = 0; i < 5; ++i) {
    ferry::v1::Job j;
    j.set_id("job-" + std::to_string(i));
    j.mutable_submitted()->set_seconds(1000 + (i * 7) % 5);  // 1000, 1002, 1004, 1001, 1003
    FERRY_ASSERT_OK(records.Put(j));
  }
  absl::StatusOr<std::vector<ferry::v1::Job>> listed = records.List(3);
  FERRY_ASSERT_OK(listed);
  std::vector<std::string> ids;
  for (const ferry::v1::Job& j : *listed) ids.push_back(j.id());
  EXPECT_THAT(ids, ::testing::ElementsAre("job-2", "job-4", "job-1"));
  listed = records.List(0);
  FERRY_ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 5u);
  // Records the caller knows are not read.
  listed = records.List(3, {"job-4"});
  FERRY_ASSERT_OK(listed);
  ids.clear();
  for (const ferry::v1::Job& j : *listed) ids.push_back(j.id());
  EXPECT_THAT(ids, ::testing::ElementsAre("job-2", "job-1"));
}

TEST(JobRecordCollectorTest, RecordsOfLongFinishedAndLongUnfinishedJobsAreDeleted) {
  MemoryJobRecords records;
  const absl::Time now = absl::FromUnixSeconds(2000000000);
  auto job = [&](const std::string& id, absl::Duration submitted_ago,
                 std::optional<absl::Duration> finished_ago) {
    ferry::v1::Job j;
    j.set_id(id);
    *j.mutable_submitted() = runtime::ToProtoTimestamp(now - submitted_ago);
    if (finished_ago) *j.mutable_finished() = runtime::ToProtoTimestamp(now - *finished_ago);
    FERRY_ASSERT_OK(records.Put(j));
  };
  job("old-done", kJobRecordMaxAge + absl::Hours(2), kJobRecordMaxAge + absl::Hours(1));
  job("recent-done", kJobRecordMaxAge + absl::Hours(2), kJobRecordMaxAge - absl::Hours(1));
  job("orphan", kJobRecordMaxUnfinished + absl::Minutes(1), std::nullopt);
  job("running", kJobRecordMaxUnfinished - absl::Minutes(1), std::nullopt);
  EXPECT_EQ(JobRecordCollector::CollectOnce(records, now), 2);
  absl::MutexLock lock(&records.mu_);
  EXPECT_THAT(records.deletes_, ::testing::UnorderedElementsAre("old-done", "orphan"));
  EXPECT_EQ(records.jobs_.count("recent-done"), 1u);
  EXPECT_EQ(records.jobs_.count("running"), 1u);
}

}  // namespace
}  // namespace ferry::api
