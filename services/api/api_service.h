// The ferry.v1.Ferry gRPC service of ferry-api: checks access, validates requests, asks the
// services behind it, merges their answers, and maps errors to gRPC status codes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "ferry/v1/api.grpc.pb.h"
#include "lib/runtime/clock.h"
#include "lib/runtime/snapshot_cache.h"
#include "services/api/access.h"
#include "services/api/executor.h"
#include "services/api/job_records.h"
#include "services/api/jobs.h"
#include "services/api/paging.h"
#include "services/api/peers.h"
#include "services/api/sources.h"

namespace ferry::api {

// How old a ListWorkloads page (git's at one revision, the cluster's as it is) may be when
// another reader is answered with it, and how many pages are kept.
inline constexpr absl::Duration kWorkloadPageMaxAge = absl::Seconds(1);
// While one reader reads a page anew, the others are answered with the last one for up to
// this long (a page of 10,000 workloads' index takes a while; they do not all wait for it).
inline constexpr absl::Duration kWorkloadPageMaxStale = absl::Seconds(3);
inline constexpr size_t kWorkloadPagesShared = 64;

// Each method checks access, validates, calls the peers (through `peers`, under the
// request's budget: PeerClients::ForRequest) or submits a job, and converts the answer; the
// merging is in pure functions (workload_listing.h, image_listing.h, tag_explanation.h).
// Answers shared by the readers of a moment (ListWorkloads' pages, GetVersion, the tag
// lists) are loaded within their own timeout by the first reader, whose thread may go on
// past its deadline for that long; the others wait by theirs.
// RPCs not overridden here are not built yet: they answer UNIMPLEMENTED with a message
// naming the method (see lib/runtime/unimplemented.h), never a fake success.
class ApiService final : public ferry::v1::Ferry::Service {
 public:
  // Requests go to `sources` (sources.h says how they are routed); jobs are submitted to
  // `jobs` and run on their source's runner and executor. `shared` (null without
  // --leader_elect): the job records of every replica (job_records.h), read for jobs this
  // process does not hold.
  ApiService(const Access& access, const Sources& sources, JobStore& jobs,
             JobRecordStore* shared = nullptr);
  // One unnamed source: `peers` and `executor`.
  ApiService(const Access& access, const PeerClients& peers, JobStore& jobs, JobRunner& runner,
             Executor& executor, JobRecordStore* shared = nullptr);

  grpc::Status ListWorkloads(grpc::ServerContext* context,
                             const ferry::v1::ListWorkloadsRequest* request,
                             ferry::v1::ListWorkloadsResponse* response) override;
  grpc::Status ListImages(grpc::ServerContext* context, const ferry::v1::ListImagesRequest* request,
                          ferry::v1::ListImagesResponse* response) override;
  grpc::Status Release(grpc::ServerContext* context, const ferry::v1::ReleaseRequest* request,
                       ferry::v1::Job* response) override;
  grpc::Status UpdatePolicy(grpc::ServerContext* context,
                            const ferry::v1::UpdatePolicyRequest* request,
                            ferry::v1::Job* response) override;
  grpc::Status Sync(grpc::ServerContext* context, const ferry::v1::SyncRequest* request,
                    ferry::v1::Job* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const ferry::v1::GetJobRequest* request,
                      ferry::v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const ferry::v1::GetJobRequest* request,
                        grpc::ServerWriter<ferry::v1::Job>* writer) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const ferry::v1::ListJobsRequest* request,
                        ferry::v1::ListJobsResponse* response) override;
  grpc::Status GetIdentity(grpc::ServerContext* context,
                           const ferry::v1::GetIdentityRequest* request,
                           ferry::v1::Identity* response) override;
  grpc::Status GetVersion(grpc::ServerContext* context, const ferry::v1::GetVersionRequest* request,
                          ferry::v1::VersionInfo* response) override;
  grpc::Status Export(grpc::ServerContext* context, const ferry::v1::ExportRequest* request,
                      grpc::ServerWriter<ferry::v1::ExportedResource>* writer) override;
  // Read role. INVALID_ARGUMENT for a malformed request (ValidateExplainTagsRequest),
  // NOT_FOUND for a workload not in git or a container it does not have; the answer is
  // tag_explanation.h's ExplainTagsOf over the shared tag lists.
  grpc::Status ExplainTags(grpc::ServerContext* context,
                           const ferry::v1::ExplainTagsRequest* request,
                           ferry::v1::ExplainTagsResponse* response) override;

 private:
  // The source a list's page reads: the request's (`requested`), or with several sources
  // and none requested, the one the list continues with (`from`, the first for a first
  // page).
  absl::StatusOr<const Source*> PageSource(const std::string& requested,
                                           const PagePosition& from) const;
  // The token of the page after `source`'s last when a list reads every source: the next
  // source's first page; "" at the end (or with a requested or unnamed source).
  std::string NextSourceToken(const std::string& requested, const Source& source,
                              absl::string_view request_key) const;
  // With several sources and none `requested`, a list's page of `source` whose git-writer
  // did not answer (`failed`: UNAVAILABLE or DEADLINE_EXCEEDED) is passed over: the token of
  // the page after it (NextSourceToken). nullopt: the failure fails the call.
  std::optional<std::string> PassOver(const std::string& requested, const Source& source,
                                      const absl::Status& failed,
                                      absl::string_view request_key) const;
  // ListWorkloads' page_token key (the fields a continuation repeats).
  static std::string WorkloadsRequestKey(const ferry::v1::ListWorkloadsRequest& request);
  // One page of one source's workloads, for workload_pages_: `key` is the source's name and
  // the page's query (see ListWorkloads). Git's failure as it came (the caller names the
  // source); the cluster's leaves the page marked not ready.
  absl::StatusOr<ferry::v1::ListWorkloadsResponse> LoadWorkloadPage(const std::string& key) const;
  // GetVersion's answer, for versions_.
  absl::StatusOr<ferry::v1::VersionInfo> LoadVersions() const;
  // A job recorded in the git notes (GetJob and WatchJob for jobs this process does not
  // hold).
  grpc::Status JobFromNotes(const grpc::ServerContext& caller, const std::string& id,
                            ferry::v1::Job* out) const;

  // The shared record of another replica's job `id`. A job just submitted there may not be
  // recorded yet (its replica writes the record after it answers): a missing record is looked
  // for again for up to kJobRecordLag, while the caller waits.
  absl::StatusOr<ferry::v1::Job> SharedRecord(const grpc::ServerContext& context,
                                              const std::string& id);
  // WatchJob of a job another replica runs: its record, read every kJobRecordPoll, written
  // to `writer` when it changed, until the job finished, the caller went away or
  // kMaxJobRecordWatch passed (the replica running it may be gone: DEADLINE_EXCEEDED).
  grpc::Status WatchRecord(grpc::ServerContext* context, ferry::v1::Job job,
                           grpc::ServerWriter<ferry::v1::Job>* writer);

  const Access& access_;
  std::optional<Sources> own_sources_;  // the second constructor's one unnamed source
  const Sources& sources_;
  // The first source's clients: the budgets of requests, and the shared registry-scanner.
  const PeerClients& peers_;
  JobStore& jobs_;
  JobRecordStore* const shared_;
  // ListImages' and ExplainTags' tag lists, shared by the readers of the same moment.
  const std::unique_ptr<SharedTagLists> tag_lists_ = NewSharedTagLists(peers_);
  // ListWorkloads' pages, shared by the readers of the same moment at the same git
  // revision: a page is read again kWorkloadPageMaxAge after it was, so the cluster's
  // rollouts and sync errors shown are at most that old.
  using WorkloadPages = runtime::SnapshotCache<ferry::v1::ListWorkloadsResponse>;
  const std::unique_ptr<WorkloadPages> workload_pages_ = std::make_unique<WorkloadPages>(
      [this](const std::string& key) { return LoadWorkloadPage(key); }, runtime::SystemClock(),
      kWorkloadPageMaxAge, kWorkloadPageMaxStale, kWorkloadPagesShared);
  // GetVersion's answer, shared by the readers of the same second (each asks every peer).
  using Versions = runtime::SnapshotCache<ferry::v1::VersionInfo>;
  const std::unique_ptr<Versions> versions_ = std::make_unique<Versions>(
      [this](const std::string&) { return LoadVersions(); }, runtime::SystemClock(),
      kWorkloadPageMaxAge, kWorkloadPageMaxAge, 1);
  const absl::Time started_ = absl::Now();
};

}  // namespace ferry::api
