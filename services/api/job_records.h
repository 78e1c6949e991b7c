// Job records every api replica reads (issue 21): a job submitted to one replica can be read
// (GetJob, ListJobs) and watched (WatchJob) on any other.
//
// Where they live: one ConfigMap per job in the api's namespace (the Lease's), named
// "ferry-job-<id>", labelled app.kubernetes.io/managed-by=ferry-api and ferry.dev/job-kind,
// its data "job.json" the Job as protobuf JSON. Why there: Kubernetes is Ferry's distributed
// engine (DESIGN.md, "HA"), replicas already reach its API for their Lease, and it needs no
// component of its own; git notes only record jobs that committed, once finished, and every
// write would be a commit to push; the git-writer leader would make one replica's jobs depend
// on another service's leader and on its memory. A ConfigMap holds at most 1 MiB: a record is
// at most kMaxJobRecordBytes (per-workload results beyond are dropped, with a marker result).
//
// The replica that runs a job writes its record on submission and on every change
// (JobRecordPublisher, coalesced: the latest state wins, one write at a time), and deletes it
// when the job leaves that replica's bounded history. A job whose replica died stays as its
// last recorded state (a running job then never finishes in its record); the replica leading
// the automation deletes, every hour, the records of jobs finished more than
// kJobRecordMaxAge ago and of jobs still unfinished kJobRecordMaxUnfinished after their
// submission (JobRecordCollector), so records of replicas that are gone do not pile up.
// Failures talking to Kubernetes never fail a job: they are logged and counted.
//
// Metrics:
//   ferry_job_records_writes_total{op}   records written (put) and deleted (delete)
//   ferry_job_records_errors_total{op}   calls that failed: put, delete, get, list
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ferry/v1/types.pb.h"
#include "lib/kube/kube_client.h"
#include "services/api/jobs.h"

namespace ferry::api {

// The largest "job.json" of a record (a ConfigMap holds at most 1 MiB in all).
inline constexpr size_t kMaxJobRecordBytes = 512 * 1024;
// Each call to the Kubernetes API about records.
inline constexpr absl::Duration kJobRecordCallTimeout = absl::Seconds(10);
// Listing reads the metadata of at most this many records (pages of kJobRecordPage), then
// the records of the newest it asks for, one by one (ListJobs' limit: at most 1000).
inline constexpr size_t kMaxJobRecordsListed = 5000;
inline constexpr size_t kJobRecordPage = 500;
// The whole listing of the records' metadata (a server that hands out empty pages without
// end is not waited for 10,000 times kJobRecordCallTimeout).
inline constexpr absl::Duration kJobRecordListTimeout = absl::Seconds(60);
// WatchJob of another replica's job reads its record this often, for at most this long.
inline constexpr absl::Duration kJobRecordPoll = absl::Milliseconds(500);
// How long a reader looks for the record of a job that another replica has just accepted.
inline constexpr absl::Duration kJobRecordLag = absl::Seconds(2);
inline constexpr absl::Duration kMaxJobRecordWatch = absl::Hours(1);
// JobRecordCollector: records of jobs finished longer ago than this, and of jobs not finished
// this long after submission (no job runs that long: its stages have deadlines), are deleted
// every kJobRecordCollectEvery.
inline constexpr absl::Duration kJobRecordMaxAge = absl::Hours(24 * 7);
inline constexpr absl::Duration kJobRecordMaxUnfinished = absl::Hours(24);
inline constexpr absl::Duration kJobRecordCollectEvery = absl::Hours(1);

// "ferry-job-<id>".
std::string JobRecordName(const std::string& id);
// The record of `job`: its protobuf JSON, at most `max_bytes`; over it, results are dropped
// from the end and one result without a workload says how many are missing (`truncated` is
// set), then rollouts of all stages but the last. InvalidArgument when the job holds a value
// the JSON mapping cannot write (convert::ToJson).
absl::StatusOr<std::string> JobRecordJson(const ferry::v1::Job& job,
                                          size_t max_bytes = kMaxJobRecordBytes,
                                          bool* truncated = nullptr);
// A record's job. InvalidArgument when it is not a Job's JSON.
absl::StatusOr<ferry::v1::Job> ParseJobRecord(const std::string& json);

// What a record's metadata says of its job (annotations ferry.dev/submitted and
// ferry.dev/finished, RFC 3339).
struct JobRecordSummary {
  std::string id;
  absl::Time submitted = absl::InfinitePast();
  std::optional<absl::Time> finished;  // nullopt: not finished when last written
};

// Where the records are. Thread-safe.
class JobRecordStore {
 public:
  virtual ~JobRecordStore() = default;
  // Creates or replaces the record of `job`.
  virtual absl::Status Put(const ferry::v1::Job& job) = 0;
  // Deletes the record of job `id`; OK when there is none.
  virtual absl::Status Delete(const std::string& id) = 0;
  // The job of record `id`; NotFound when there is none.
  virtual absl::StatusOr<ferry::v1::Job> Get(const std::string& id) = 0;
  // Every record's summary (at most kMaxJobRecordsListed), in no particular order.
  virtual absl::StatusOr<std::vector<JobRecordSummary>> ListSummaries() = 0;
  // Of the newest `limit` records (by submission time, 0: all), the jobs whose ids are not in
  // `known` (the caller holds those), newest first: ListSummaries, then a Get of each (a
  // record deleted meanwhile is left out).
  absl::StatusOr<std::vector<ferry::v1::Job>> List(size_t limit,
                                                   const std::set<std::string>& known = {});
};

class JobRecordMetrics {
 public:
  explicit JobRecordMetrics(prometheus::Registry& registry);
  void Written(const char* op) { writes_.Add({{"op", op}}).Increment(); }
  void Failed(const char* op) { errors_.Add({{"op", op}}).Increment(); }

 private:
  prometheus::Family<prometheus::Counter>& writes_;
  prometheus::Family<prometheus::Counter>& errors_;
};

// The records as ConfigMaps in namespace `ns` through `client`; each call within
// kJobRecordCallTimeout. `replica` (the pod's name) goes into the annotation
// ferry.dev/replica of the records this replica writes. Failures are logged (the API's
// message, never a credential) and counted, and returned.
class ConfigMapJobRecords final : public JobRecordStore {
 public:
  // `list_timeout` bounds each ListSummaries as a whole (tests shorten or lengthen it).
  ConfigMapJobRecords(kube::KubeClient& client, std::string ns, std::string replica,
                      JobRecordMetrics& metrics,
                      absl::Duration list_timeout = kJobRecordListTimeout);

  absl::Status Put(const ferry::v1::Job& job) override;
  absl::Status Delete(const std::string& id) override;
  absl::StatusOr<ferry::v1::Job> Get(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecordSummary>> ListSummaries() override;

  const std::string& ns() const { return ns_; }

 private:
  std::string Path(const std::string& id) const;
  absl::Status Failed(const char* op, const absl::Status& status);

  kube::KubeClient& client_;
  const std::string ns_;
  const std::string replica_;
  JobRecordMetrics& metrics_;
  const absl::Duration list_timeout_;
};

// Writes the changes of a JobStore (as its JobListener) to `records` from a thread of its
// own: one write at a time, so at most one per job in flight; the latest state of a job
// replaces a state not yet written (coalesced); a failed write is tried twice more (after
// 1 s, then 2 s) unless a newer state replaced it. Thread-safe.
class JobRecordPublisher final : public JobListener {
 public:
  explicit JobRecordPublisher(JobRecordStore& records);
  // Stop(0).
  ~JobRecordPublisher() override;

  void Changed(const ferry::v1::Job& job) override;
  void Forgotten(const std::string& id) override;

  void Start();
  // Writes what is pending for at most `flush` (no retries), then stops. Idempotent.
  void Stop(absl::Duration flush);
  // Blocks until nothing is pending nor being written (retries included), or `timeout`
  // passed; returns whether it is idle. For tests.
  bool AwaitIdle(absl::Duration timeout);

 private:
  struct Pending {
    std::optional<ferry::v1::Job> job;  // nullopt: delete
    int attempts = 0;
    absl::Time not_before = absl::InfinitePast();
  };
  void Queue(const std::string& id, std::optional<ferry::v1::Job> job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();

  JobRecordStore& records_;
  absl::Mutex mu_;
  std::map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // ids in pending_, first queued first
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time flush_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;
};

// Deletes stale records (kJobRecordMaxAge, kJobRecordMaxUnfinished) every
// kJobRecordCollectEvery while `leading()` says this replica leads (one replica does it), from
// a thread of its own. Thread-safe.
class JobRecordCollector {
 public:
  JobRecordCollector(JobRecordStore& records, std::function<bool()> leading);
  // Stop().
  ~JobRecordCollector();

  void Start();
  void Stop();

  // One collection of the records `records` lists, as of `now`; returns how many it deleted.
  static int CollectOnce(JobRecordStore& records, absl::Time now);

 private:
  JobRecordStore& records_;
  const std::function<bool()> leading_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ferry::api
