#include "services/api/job_records.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/convert/json.h"
#include "lib/kube/json_fields.h"
#include "lib/kube/list.h"
#include "lib/log/log.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_macros.h"

namespace ferry::api {
namespace {

constexpr char kManagedBy[] = "app.kubernetes.io/managed-by";
constexpr char kManager[] = "ferry-api";
constexpr char kDataKey[] = "job.json";
constexpr char kSubmitted[] = "ferry.dev/submitted";
constexpr char kFinished[] = "ferry.dev/finished";

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  return absl::FormatTime(absl::RFC3339_full, runtime::FromProtoTimestamp(t), absl::UTCTimeZone());
}

// The job of a ConfigMap's JSON.
absl::StatusOr<ferry::v1::Job> JobOfConfigMap(const nlohmann::json& object) {
  const auto data = object.find("data");
  if (data == object.end() || !data->is_object() || !data->contains(kDataKey) ||
      !(*data)[kDataKey].is_string()) {
    return absl::InvalidArgumentError("the job record has no data." + std::string(kDataKey));
  }
  return ParseJobRecord((*data)[kDataKey].get<std::string>());
}

}  // namespace

std::string JobRecordName(const std::string& id) { return "ferry-job-" + id; }

absl::StatusOr<std::string> JobRecordJson(const ferry::v1::Job& job, size_t max_bytes,
                                          bool* truncated) {
  if (truncated != nullptr) *truncated = false;
  FERRY_ASSIGN_OR_RETURN(std::string json, convert::ToJson(job, convert::JsonNames::kProto));
  if (json.size() <= max_bytes) return json;
  if (truncated != nullptr) *truncated = true;
  ferry::v1::Job cut = job;
  const int results = job.results_size();
  // Halve the results kept until the record fits (a few dozen encodings at most).
  int kept = results;
  while (true) {
    kept /= 2;
    cut.clear_results();
    for (int i = 0; i < kept; ++i) *cut.add_results() = job.results(i);
    if (kept < results) {
      ferry::v1::WorkloadResult* marker = cut.add_results();
      marker->set_reason(absl::StrCat(results - kept,
                                      " more workload results are not in the shared job record "
                                      "(limited to ",
                                      max_bytes / 1024, " KiB); the replica that ran it has them"));
    }
    FERRY_ASSIGN_OR_RETURN(json, convert::ToJson(cut, convert::JsonNames::kProto));
    if (json.size() <= max_bytes || kept == 0) break;
  }
  for (int i = 0; json.size() > max_bytes && i + 1 < cut.stages_size(); ++i) {
    cut.mutable_stages(i)->clear_rollouts();
    FERRY_ASSIGN_OR_RETURN(json, convert::ToJson(cut, convert::JsonNames::kProto));
  }
  return json;
}

absl::StatusOr<ferry::v1::Job> ParseJobRecord(const std::string& json) {
  ferry::v1::Job job;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a record written by a newer replica
  if (!google::protobuf::util::JsonStringToMessage(json, &job, options).ok() || job.id().empty()) {
    return absl::InvalidArgumentError("the job record is not a job's JSON");
  }
  return job;
}

JobRecordMetrics::JobRecordMetrics(prometheus::Registry& registry)
    : writes_(prometheus::BuildCounter()
                  .Name("ferry_job_records_writes_total")
                  .Help("Shared job records written (put) and deleted (delete).")
                  .Register(registry)),
      errors_(prometheus::BuildCounter()
                  .Name("ferry_job_records_errors_total")
                  .Help("Calls about shared job records that failed (put, delete, get, list).")
                  .Register(registry)) {}

ConfigMapJobRecords::ConfigMapJobRecords(kube::KubeClient& client, std::string ns,
                                         std::string replica, JobRecordMetrics& metrics,
                                         absl::Duration list_timeout)
    : client_(client),
      ns_(std::move(ns)),
      replica_(std::move(replica)),
      metrics_(metrics),
      list_timeout_(list_timeout) {}

std::string ConfigMapJobRecords::Path(const std::string& id) const {
  return absl::StrCat("/api/v1/namespaces/", ns_, "/configmaps/", JobRecordName(id));
}

absl::Status ConfigMapJobRecords::Failed(const char* op, const absl::Status& status) {
  metrics_.Failed(op);
  log::Warn("job records: a call to the Kubernetes API failed",
            {{"op", op}, {"namespace", ns_}, {"error", std::string(status.message())}});
  return status;
}

absl::Status ConfigMapJobRecords::Put(const ferry::v1::Job& job) {
  bool truncated = false;
  absl::StatusOr<std::string> json = JobRecordJson(job, kMaxJobRecordBytes, &truncated);
  if (!json.ok()) {  // no call was made: a value the JSON mapping cannot hold
    metrics_.Failed("put");
    log::Warn("job records: the job cannot be stored as JSON; its record is not shared",
              {{"job", job.id()}, {"error", std::string(json.status().message())}});
    return json.status();
  }
  nlohmann::json annotations = {{"ferry.dev/replica", replica_},
                                {kSubmitted, Rfc3339(job.submitted())}};
  if (job.has_finished()) annotations[kFinished] = Rfc3339(job.finished());
  if (truncated) annotations["ferry.dev/truncated"] = "true";
  const nlohmann::json object = {
      {"apiVersion", "v1"},
      {"kind", "ConfigMap"},
      {"metadata",
       {{"name", JobRecordName(job.id())},
        {"namespace", ns_},
        {"labels", {{kManagedBy, kManager}, {"ferry.dev/job-kind", JobKindName(job.kind())}}},
        {"annotations", annotations}}},
      {"data", {{kDataKey, *json}}}};
  absl::StatusOr<nlohmann::json> applied = client_.ApplyWithin(
      Path(job.id()), object, kManager, /*force=*/true, /*dry_run=*/false, kJobRecordCallTimeout);
  if (!applied.ok()) return Failed("put", applied.status());
  metrics_.Written("put");
  return absl::OkStatus();
}

absl::Status ConfigMapJobRecords::Delete(const std::string& id) {
  if (!IsJobId(id)) return absl::OkStatus();  // never recorded
  absl::Status deleted = client_.DeleteWithin(Path(id), /*dry_run=*/false, kJobRecordCallTimeout);
  if (deleted.code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  if (!deleted.ok()) return Failed("delete", deleted);
  metrics_.Written("delete");
  return absl::OkStatus();
}

absl::StatusOr<ferry::v1::Job> ConfigMapJobRecords::Get(const std::string& id) {
  // The id names a path of the Kubernetes API: only a job id's form gets that far.
  if (!IsJobId(id)) return absl::NotFoundError(absl::StrCat("no job record for id '", id, "'"));
  absl::StatusOr<nlohmann::json> object = client_.GetWithin(Path(id), "get", kJobRecordCallTimeout);
  if (object.status().code() == absl::StatusCode::kNotFound) return object.status();
  if (!object.ok()) return Failed("get", object.status());
  absl::StatusOr<ferry::v1::Job> job = JobOfConfigMap(*object);
  if (!job.ok()) return Failed("get", job.status());
  return job;
}

absl::StatusOr<std::vector<JobRecordSummary>> ConfigMapJobRecords::ListSummaries() {
  std::vector<JobRecordSummary> out;
  const std::string path = absl::StrCat("/api/v1/namespaces/", ns_,
                                        "/configmaps?labelSelector=", kManagedBy, "%3D", kManager);
  absl::Status listed = kube::ForEachListItem(
      client_, path,
      {.metadata_only = true,
       .page_size = static_cast<int>(kJobRecordPage),
       .page_timeout = kJobRecordCallTimeout,
       .deadline = absl::Now() + list_timeout_},
      [&](const nlohmann::json& item) {
        const nlohmann::json& meta = kube::Field(item, "metadata");
        const nlohmann::json& annotations = kube::Field(meta, "annotations");
        const std::string name = kube::StringField(meta, "name");
        if (!absl::StartsWith(name, JobRecordName(""))) return true;
        JobRecordSummary summary;
        summary.id = name.substr(JobRecordName("").size());
        std::string error;
        absl::Time t;
        if (absl::ParseTime(absl::RFC3339_full, kube::StringField(annotations, kSubmitted), &t,
                            &error)) {
          summary.submitted = t;
        }
        if (absl::ParseTime(absl::RFC3339_full, kube::StringField(annotations, kFinished), &t,
                            &error)) {
          summary.finished = t;
        }
        out.push_back(std::move(summary));
        return out.size() < kMaxJobRecordsListed;
      });
  if (!listed.ok()) return Failed("list", listed);
  return out;
}

absl::StatusOr<std::vector<ferry::v1::Job>> JobRecordStore::List(
    size_t limit, const std::set<std::string>& known) {
  absl::StatusOr<std::vector<JobRecordSummary>> summaries = ListSummaries();
  if (!summaries.ok()) return summaries.status();
  std::stable_sort(summaries->begin(), summaries->end(),
                   [](const JobRecordSummary& a, const JobRecordSummary& b) {
                     return a.submitted > b.submitted;
                   });
  if (limit > 0 && summaries->size() > limit) summaries->resize(limit);
  std::vector<ferry::v1::Job> jobs;
  for (const JobRecordSummary& summary : *summaries) {
    if (known.count(summary.id) > 0) continue;
    absl::StatusOr<ferry::v1::Job> job = Get(summary.id);
    if (job.ok()) jobs.push_back(*std::move(job));
  }
  return jobs;
}

JobRecordPublisher::JobRecordPublisher(JobRecordStore& records) : records_(records) {}

JobRecordPublisher::~JobRecordPublisher() { Stop(absl::ZeroDuration()); }

void JobRecordPublisher::Queue(const std::string& id, std::optional<ferry::v1::Job> job) {
  auto [it, added] = pending_.try_emplace(id);
  it->second = Pending{std::move(job)};  // replaces a state not yet written, and its retries
  if (added) order_.push_back(id);
}

void JobRecordPublisher::Changed(const ferry::v1::Job& job) {
  absl::MutexLock lock(&mu_);
  Queue(job.id(), job);
}

void JobRecordPublisher::Forgotten(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Queue(id, std::nullopt);
}

void JobRecordPublisher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void JobRecordPublisher::Stop(absl::Duration flush) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) flush_until_ = absl::Now() + flush;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool JobRecordPublisher::AwaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_.empty() && !writing_; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

void JobRecordPublisher::Run() {
  for (;;) {
    std::string id;
    Pending next;
    {
      absl::MutexLock lock(&mu_);
      // The first queued state that is due; while only retries wait, the earliest of them.
      auto due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        const absl::Time now = absl::Now();
        return std::find_if(order_.begin(), order_.end(),
                            [&](const std::string& i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                              return stopping_ || pending_.at(i).not_before <= now;
                            });
      };
      for (;;) {
        if (stopping_ && (order_.empty() || absl::Now() >= flush_until_)) return;
        if (due() != order_.end()) break;
        absl::Time wake = absl::InfiniteFuture();
        for (const std::string& i : order_) wake = std::min(wake, pending_.at(i).not_before);
        auto changed = [this, size = order_.size()]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || order_.size() != size;
        };
        mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
      }
      auto it = due();
      id = *it;
      order_.erase(it);
      next = std::move(pending_.at(id));
      pending_.erase(id);
      writing_ = true;
    }
    const absl::Status written = next.job ? records_.Put(*next.job) : records_.Delete(id);
    absl::MutexLock lock(&mu_);
    writing_ = false;
    // Retried unless a newer state came meanwhile (or the api is stopping), or the record
    // itself was refused: the same record would be refused again.
    const bool refused = written.code() == absl::StatusCode::kInvalidArgument ||
                         written.code() == absl::StatusCode::kFailedPrecondition;
    if (!written.ok() && !refused && !stopping_ && ++next.attempts < 3 && pending_.count(id) == 0) {
      next.not_before = absl::Now() + absl::Seconds(next.attempts);
      pending_.emplace(id, std::move(next));
      order_.push_back(id);
    }
  }
}

JobRecordCollector::JobRecordCollector(JobRecordStore& records, std::function<bool()> leading)
    : records_(records), leading_(std::move(leading)) {}

JobRecordCollector::~JobRecordCollector() { Stop(); }

void JobRecordCollector::Start() {
  thread_ = std::thread([this] {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), kJobRecordCollectEvery);
        if (stopping_) return;
      }
      if (!leading_()) continue;
      const int deleted = CollectOnce(records_, absl::Now());
      if (deleted > 0) log::Info("job records: stale records deleted", {{"count", deleted}});
    }
  });
}

void JobRecordCollector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

int JobRecordCollector::CollectOnce(JobRecordStore& records, absl::Time now) {
  absl::StatusOr<std::vector<JobRecordSummary>> listed = records.ListSummaries();
  if (!listed.ok()) return 0;  // logged and counted by the store
  int deleted = 0;
  for (const JobRecordSummary& job : *listed) {
    const bool stale = job.finished ? *job.finished < now - kJobRecordMaxAge
                                    : job.submitted < now - kJobRecordMaxUnfinished;
    if (stale && records.Delete(job.id).ok()) ++deleted;
  }
  return deleted;
}

}  // namespace ferry::api
