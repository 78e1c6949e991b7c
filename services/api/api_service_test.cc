// ApiService over an in-process channel, with the generated mock stubs of git-writer,
// registry-scanner and cluster-syncer behind it: jobs, their stages and results, what is
// sent downstream, and what is refused before anything is written.
#include "services/api/api_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "absl/synchronization/notification.h"
#include "ferry/v1/cluster_syncer_mock.grpc.pb.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "ferry/v1/registry_scanner_mock.grpc.pb.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"
#include "services/api/automation.h"
#include "tests/support/metrics.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::DoAll;
using ::testing::Eq;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::SaveArg;

const std::string kHead(40, 'a');
const std::string kCommit(40, 'b');
constexpr char kApp[] = "registry.test/team/app";

ferry::v1::ManifestWorkload GitWorkload(const std::string& id, const std::string& image) {
  ferry::v1::ManifestWorkload w;
  w.set_id(id);
  ferry::v1::Container* c = w.add_containers();
  c->set_name("app");
  c->set_image(image);
  w.set_path("apps/" + id.substr(id.rfind('/') + 1) + ".yaml");
  return w;
}

class ApiServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    access_ = std::make_unique<Access>(Access::Open());
    metrics_ = std::make_shared<prometheus::Registry>();
    job_metrics_ = std::make_unique<JobMetrics>(*metrics_);
    store_ = std::make_unique<JobStore>(100, *job_metrics_);
    runner_ = std::make_unique<JobRunner>(*store_, 4);
    peers_ = std::make_unique<PeerClients>(Peers{git_, registry_, cluster_}, runner_->cancel());
    executor_ = std::make_unique<Executor>(*peers_, *store_);
    service_ = std::make_unique<ApiService>(*access_, *peers_, *store_, *runner_, *executor_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = ferry::v1::Ferry::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));

    // git: two workloads, one locked; both run in the cluster.
    in_git_.set_revision(kHead);
    *in_git_.add_workloads() = GitWorkload("default:deployment/app", std::string(kApp) + ":1.0.0");
    auto locked = GitWorkload("default:deployment/locked", std::string(kApp) + ":1.0.0");
    locked.mutable_policy()->set_locked(true);
    *in_git_.add_workloads() = locked;
    ON_CALL(git_, ListWorkloads(_, _, _))
        .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
    for (const auto& w : in_git_.workloads()) in_cluster_.add_workloads()->set_id(w.id());
    ON_CALL(cluster_, ListWorkloads(_, _, _))
        .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_cluster_), Return(grpc::Status::OK)));
    ON_CALL(registry_, GetImage(_, _, _)).WillByDefault(Return(grpc::Status::OK));
    ON_CALL(git_, ApplyUpdates(_, _, _))
        .WillByDefault(Invoke([this](grpc::ClientContext*, const ferry::v1::ApplyUpdatesRequest& r,
                                     ferry::v1::ApplyUpdatesResponse* out) {
          std::lock_guard<std::mutex> lock(mu_);
          applied_.push_back(r);
          out->set_revision(r.dry_run() ? "" : kCommit);
          for (const auto& e : r.edits()) *out->add_results()->mutable_edit() = e;
          return grpc::Status::OK;
        }));
    ON_CALL(cluster_, SyncNow(_, _, _))
        .WillByDefault(Invoke([this](grpc::ClientContext*, const ferry::v1::SyncNowRequest& r,
                                     ferry::v1::SyncResult* out) {
          std::lock_guard<std::mutex> lock(mu_);
          synced_.push_back(r.revision());
          skip_if_applied_.push_back(r.skip_if_applied());
          out->set_revision(r.revision());
          out->set_applied(1);
          return grpc::Status::OK;
        }));
  }

  void TearDown() override {
    server_->Shutdown();
    runner_.reset();
  }

  // Follows a job with WatchJob until it finishes; every streamed state is kept.
  ferry::v1::Job Follow(const std::string& id, std::vector<ferry::v1::Job>* seen = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    auto stream = stub_->WatchJob(&ctx, request);
    ferry::v1::Job job;
    ferry::v1::Job last;
    while (stream->Read(&job)) {
      last = job;
      if (seen != nullptr) seen->push_back(job);
    }
    FERRY_EXPECT_OK(stream->Finish());
    return last;
  }

  grpc::Status Release(const ferry::v1::ReleaseSpec& spec, ferry::v1::Job* job,
                       const std::string& user = "alice") {
    ferry::v1::ReleaseRequest request;
    *request.mutable_spec() = spec;
    request.mutable_cause()->set_user(user);
    request.mutable_cause()->set_message("build 42");
    grpc::ClientContext ctx;
    return stub_->Release(&ctx, request, job);
  }

  static ferry::v1::ReleaseSpec AllTo(const std::string& tag) {
    ferry::v1::ReleaseSpec spec;
    spec.set_all_workloads(true);
    spec.set_image(std::string(kApp) + ":" + tag);
    return spec;
  }

  static std::vector<ferry::v1::JobStageKind> Stages(const ferry::v1::Job& job) {
    std::vector<ferry::v1::JobStageKind> out;
    for (const auto& s : job.stages()) out.push_back(s.kind());
    return out;
  }

  ::testing::NiceMock<ferry::v1::MockGitWriterStub> git_;
  ::testing::NiceMock<ferry::v1::MockRegistryScannerStub> registry_;
  ::testing::NiceMock<ferry::v1::MockClusterSyncerStub> cluster_;
  ferry::v1::ListManifestWorkloadsResponse in_git_;
  ferry::v1::ListClusterWorkloadsResponse in_cluster_;
  std::mutex mu_;
  std::vector<ferry::v1::ApplyUpdatesRequest> applied_;
  std::vector<std::string> synced_;
  std::vector<bool> skip_if_applied_;

  std::unique_ptr<Access> access_;
  std::shared_ptr<prometheus::Registry> metrics_;
  std::unique_ptr<JobMetrics> job_metrics_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<PeerClients> peers_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<ApiService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ferry::v1::Ferry::Stub> stub_;
};

// A listing up to 10 s old may predate a workload's first sync: before a release reports a
// workload as not in the cluster, a new listing is read, and the workload is released.
TEST_F(ApiServiceTest, AWorkloadMissingFromAnOlderListingIsLookedUpInANewOne) {
  ferry::v1::ListClusterWorkloadsResponse older;  // app not there yet
  older.add_workloads()->set_id("default:deployment/locked");
  EXPECT_CALL(
      cluster_,
      ListWorkloads(
          _, ::testing::Property(&ferry::v1::ListClusterWorkloadsRequest::max_age_ms, 10000), _))
      .WillRepeatedly(DoAll(::testing::SetArgPointee<2>(older), Return(grpc::Status::OK)));
  // Only the workload the older listing lacks is looked up again.
  EXPECT_CALL(
      cluster_,
      ListWorkloads(_,
                    ::testing::AllOf(
                        ::testing::Property(&ferry::v1::ListClusterWorkloadsRequest::max_age_ms, 1),
                        ::testing::Property(&ferry::v1::ListClusterWorkloadsRequest::ids,
                                            ::testing::ElementsAre("default:deployment/app"))),
                    _))
      .WillRepeatedly(DoAll(::testing::SetArgPointee<2>(in_cluster_), Return(grpc::Status::OK)));
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  ASSERT_EQ(done.results_size(), 2);
  EXPECT_EQ(done.results(0).workload(), "default:deployment/app");
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(applied_[0].edits(0).workload(), "default:deployment/app");

  // Missing from the new listing too: skipped as not in the cluster, nothing committed.
  EXPECT_CALL(
      cluster_,
      ListWorkloads(_, ::testing::Property(&ferry::v1::ListClusterWorkloadsRequest::max_age_ms, 1),
                    _))
      .Times(1)
      .WillRepeatedly(DoAll(::testing::SetArgPointee<2>(older), Return(grpc::Status::OK)));
  FERRY_ASSERT_OK(Release(AllTo("1.2.0"), &job));
  done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  ASSERT_EQ(done.results_size(), 2);
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED);
  EXPECT_EQ(done.results(0).reason(), "not accessible in cluster");
  EXPECT_EQ(applied_.size(), 1u);
}

TEST_F(ApiServiceTest, ReleaseCommitsAppliesAndReportsEveryStage) {
  // Which workloads run: a listing up to 10 s old will do when it has them all; no new one
  // is asked for.
  EXPECT_CALL(
      cluster_,
      ListWorkloads(
          _, ::testing::Property(&ferry::v1::ListClusterWorkloadsRequest::max_age_ms, 10000), _))
      .Times(::testing::AtLeast(1));
  EXPECT_CALL(
      cluster_,
      ListWorkloads(_, ::testing::Property(&ferry::v1::ListClusterWorkloadsRequest::max_age_ms, 1),
                    _))
      .Times(0);
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  EXPECT_EQ(job.id().size(), 36u);
  EXPECT_EQ(job.kind(), ferry::v1::JOB_KIND_RELEASE);
  EXPECT_TRUE(job.state() == ferry::v1::JOB_STATE_QUEUED ||
              job.state() == ferry::v1::JOB_STATE_RUNNING);
  std::vector<ferry::v1::Job> seen;
  ferry::v1::Job done = Follow(job.id(), &seen);
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_THAT(Stages(done), ::testing::ElementsAre(ferry::v1::JOB_STAGE_KIND_SUBMITTED,
                                                   ferry::v1::JOB_STAGE_KIND_PLANNING,
                                                   ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED,
                                                   ferry::v1::JOB_STAGE_KIND_APPLIED,
                                                   ferry::v1::JOB_STAGE_KIND_DONE));
  EXPECT_EQ(done.stages(2).revision(), kCommit);
  EXPECT_EQ(done.stages(3).revision(), kCommit);
  EXPECT_EQ(done.revision(), kCommit);
  EXPECT_TRUE(done.has_finished());
  ASSERT_EQ(done.results_size(), 2);
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(done.results(1).reason(), "locked");
  EXPECT_GE(seen.size(), 1u);

  ASSERT_EQ(applied_.size(), 1u);
  const ferry::v1::ApplyUpdatesRequest& commit = applied_[0];
  ASSERT_EQ(commit.edits_size(), 1);
  EXPECT_EQ(commit.edits(0).workload(), "default:deployment/app");
  EXPECT_EQ(commit.edits(0).image().from_image(), std::string(kApp) + ":1.0.0");
  EXPECT_EQ(commit.edits(0).image().to_image(), std::string(kApp) + ":1.1.0");
  EXPECT_EQ(commit.cause().user(), "alice");
  EXPECT_THAT(commit.message(), ::testing::StartsWith("Release registry.test/team/app:1.1.0 to "
                                                      "default:deployment/app"));
  EXPECT_THAT(commit.message(), ::testing::EndsWith("build 42"));
  EXPECT_EQ(commit.job().id(), job.id()) << "the job is recorded in the git note";
  EXPECT_EQ(commit.job().state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(synced_, ::testing::ElementsAre(kCommit));
  // The release's commit: the sync that already applied it answers.
  EXPECT_THAT(skip_if_applied_, ::testing::ElementsAre(true));

  EXPECT_EQ(ferry::testing::MetricSum(*metrics_, "ferry_jobs_total",
                                      {{"kind", "release"}, {"outcome", "succeeded"}}),
            1);
}

TEST_F(ApiServiceTest, ReleaseReadsGitAndTheClusterSideBySide) {
  // Each answer waits until the other peer has been asked: read one after the other, in
  // either order, the first read would wait out its 5 s and not see the other call.
  absl::Notification cluster_asked;
  absl::Notification git_asked;
  std::atomic<bool> git_saw_cluster{false};
  std::atomic<bool> cluster_saw_git{false};
  EXPECT_CALL(cluster_, ListWorkloads(_, _, _))
      .WillRepeatedly(
          Invoke([&](grpc::ClientContext*, const ferry::v1::ListClusterWorkloadsRequest&,
                     ferry::v1::ListClusterWorkloadsResponse* out) {
            cluster_asked.Notify();
            if (git_asked.WaitForNotificationWithTimeout(absl::Seconds(5))) cluster_saw_git = true;
            *out = in_cluster_;
            return grpc::Status::OK;
          }));
  EXPECT_CALL(git_, ListWorkloads(_, _, _))
      .WillRepeatedly(
          Invoke([&](grpc::ClientContext*, const ferry::v1::ListManifestWorkloadsRequest&,
                     ferry::v1::ListManifestWorkloadsResponse* out) {
            git_asked.Notify();
            if (cluster_asked.WaitForNotificationWithTimeout(absl::Seconds(5)))
              git_saw_cluster = true;
            *out = in_git_;
            return grpc::Status::OK;
          }));
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_TRUE(git_saw_cluster && cluster_saw_git)
      << "one peer was asked only after the other answered";
}

TEST_F(ApiServiceTest, AFailedPlanningReadSaysWhichPeerFailedGitFirst) {
  // Read side by side, git's answer still decides first, as when git was read first: its
  // error, then its read-only refusal, then the cluster's error. Nothing is committed.
  EXPECT_CALL(git_, ApplyUpdates(_, _, _)).Times(0);
  const grpc::Status git_down(grpc::StatusCode::UNAVAILABLE, "git is down");
  const grpc::Status cluster_down(grpc::StatusCode::UNAVAILABLE, "cluster is down");
  ferry::v1::ListManifestWorkloadsResponse readonly = in_git_;
  readonly.set_readonly(true);
  struct Case {
    std::string name;
    std::optional<ferry::v1::ListManifestWorkloadsResponse> git;  // nullopt: git fails
    std::string error;  // what the job's error says (the cluster's read fails in every case)
  };
  const std::vector<Case> cases = {
      {"both fail", std::nullopt, "git is down"},
      {"git read-only, cluster fails", readonly, "read-only"},
      {"only the cluster fails", in_git_, "cluster is down"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    if (c.git.has_value()) {
      EXPECT_CALL(git_, ListWorkloads(_, _, _))
          .WillRepeatedly(DoAll(::testing::SetArgPointee<2>(*c.git), Return(grpc::Status::OK)));
    } else {
      EXPECT_CALL(git_, ListWorkloads(_, _, _)).WillRepeatedly(Return(git_down));
    }
    EXPECT_CALL(cluster_, ListWorkloads(_, _, _)).WillRepeatedly(Return(cluster_down));
    ferry::v1::Job job;
    FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
    ferry::v1::Job done = Follow(job.id());
    EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_FAILED);
    EXPECT_THAT(done.error(), ::testing::HasSubstr(c.error));
    for (const char* other : {"git is down", "read-only", "cluster is down"}) {
      if (other != c.error) {
        EXPECT_THAT(done.error(), ::testing::Not(::testing::HasSubstr(other)));
      }
    }
  }
}

TEST_F(ApiServiceTest, ANamedReleaseReadsThoseWorkloadsAndItsNoteLeavesOutTheOthers) {
  std::vector<ferry::v1::ListManifestWorkloadsRequest> asked;
  EXPECT_CALL(git_, ListWorkloads(_, _, _))
      .WillRepeatedly(DoAll(Invoke([&](grpc::ClientContext*, const auto& r, auto*) {
                              std::lock_guard<std::mutex> lock(mu_);
                              asked.push_back(r);
                            }),
                            ::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  ferry::v1::ReleaseSpec spec;
  spec.add_workloads("default:deployment/app");
  spec.set_image(std::string(kApp) + ":1.1.0");
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(spec, &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSERT_FALSE(asked.empty());
    EXPECT_THAT(asked[0].ids(), ::testing::ElementsAre("default:deployment/app"));
    EXPECT_GT(asked[0].limit(), 0) << "read in pages";
  }
  // This fake answers every workload: the other one is IGNORED in the job, and not recorded
  // in the note.
  ASSERT_EQ(done.results_size(), 2);
  EXPECT_EQ(done.results(1).status(), ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED);
  ASSERT_EQ(applied_.size(), 1u);
  ASSERT_EQ(applied_[0].job().results_size(), 1);
  EXPECT_EQ(applied_[0].job().results(0).workload(), "default:deployment/app");
}

// Answers a page of `all` (sorted by id) as git-writer and cluster-syncer do: ids after
// start_after, at most limit, `more` when some are left.
template <typename Request, typename Response, typename Item>
grpc::Status AnswerPage(const std::vector<Item>& all, const Request& request, Response* out) {
  for (const Item& w : all) {
    if (w.id() <= request.start_after()) continue;
    if (request.limit() > 0 && out->workloads_size() == request.limit()) {
      out->set_more(true);
      break;
    }
    *out->add_workloads() = w;
  }
  return grpc::Status::OK;
}

TEST_F(ApiServiceTest, ReadersOfOneMomentShareAPageReadAtGitsHeadOfNow) {
  std::string head_revision = std::string(40, '1');
  std::vector<std::string> read_at;  // the revision of each read of git's list
  ON_CALL(git_, Head(_, _, _))
      .WillByDefault(Invoke([&](grpc::ClientContext*, const auto&, ferry::v1::HeadResponse* out) {
        std::lock_guard<std::mutex> lock(mu_);
        out->set_revision(head_revision);
        return grpc::Status::OK;
      }));
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(
          Invoke([&](grpc::ClientContext*, const ferry::v1::ListManifestWorkloadsRequest& request,
                     ferry::v1::ListManifestWorkloadsResponse* out) {
            std::lock_guard<std::mutex> lock(mu_);
            read_at.push_back(request.revision());
            *out = in_git_;
            out->set_revision(request.revision());
            return grpc::Status::OK;
          }));
  auto list = [&](const std::string& container) {
    ferry::v1::ListWorkloadsRequest request;
    request.set_container(container);
    grpc::ClientContext ctx;
    ferry::v1::ListWorkloadsResponse response;
    EXPECT_TRUE(stub_->ListWorkloads(&ctx, request, &response).ok());
    return response;
  };
  EXPECT_EQ(list("").revision(), std::string(40, '1'));
  EXPECT_EQ(list("").revision(), std::string(40, '1'));  // the same page, not read again
  EXPECT_EQ(read_at, std::vector<std::string>{std::string(40, '1')});
  // Another filter is another page.
  list("app");
  EXPECT_EQ(read_at.size(), 2u);
  // A commit: the next reader reads at the new head at once.
  {
    std::lock_guard<std::mutex> lock(mu_);
    head_revision = std::string(40, '2');
  }
  EXPECT_EQ(list("").revision(), std::string(40, '2'));
  EXPECT_EQ(read_at.back(), std::string(40, '2'));
  // Filters too long to be names are refused before anything is read or kept.
  ferry::v1::ListWorkloadsRequest huge;
  huge.set_container(std::string(1000, 'a'));
  grpc::ClientContext ctx;
  ferry::v1::ListWorkloadsResponse response;
  EXPECT_EQ(stub_->ListWorkloads(&ctx, huge, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(read_at.size(), 3u);
}

TEST_F(ApiServiceTest, ListWorkloadsPagesMergeGitAndClusterWithoutGapsOrRepeats) {
  // In git: a, c, d, f. In the cluster: a, b, c, e, g (b, e, g not in git).
  std::vector<ferry::v1::ManifestWorkload> git;
  for (const char* name : {"a", "c", "d", "f"}) {
    git.push_back(GitWorkload(absl::StrCat("default:deployment/", name), "registry.test/x:1"));
  }
  std::vector<ferry::v1::ClusterWorkload> cluster;
  for (const char* name : {"a", "b", "c", "e", "g"}) {
    cluster.emplace_back().set_id(absl::StrCat("default:deployment/", name));
  }
  std::vector<std::string> revisions_asked;
  EXPECT_CALL(git_, ListWorkloads(_, _, _))
      .WillRepeatedly(Invoke([&](grpc::ClientContext*, const auto& r, auto* out) {
        revisions_asked.push_back(r.revision());
        out->set_revision(kHead);
        return AnswerPage(git, r, out);
      }));
  EXPECT_CALL(cluster_, ListWorkloads(_, _, _))
      .WillRepeatedly(Invoke([&](grpc::ClientContext*, const auto& r, auto* out) {
        return AnswerPage(cluster, r, out);
      }));
  for (int page_size : {1, 2, 3, 100}) {
    SCOPED_TRACE(page_size);
    revisions_asked.clear();
    ferry::v1::ListWorkloadsRequest request;
    request.set_namespace_("default");
    request.set_page_size(page_size);
    std::vector<std::string> ids;
    for (int page = 0; page < 20; ++page) {
      grpc::ClientContext ctx;
      ferry::v1::ListWorkloadsResponse answer;
      FERRY_ASSERT_OK(stub_->ListWorkloads(&ctx, request, &answer));
      EXPECT_LE(answer.workloads_size(), page_size);
      for (const auto& w : answer.workloads()) {
        ids.push_back(w.id().substr(std::string("default:deployment/").size()) +
                      (w.read_only() == ferry::v1::READ_ONLY_REASON_NOT_IN_REPO ? "!" : ""));
      }
      if (answer.next_page_token().empty()) break;
      request.set_page_token(answer.next_page_token());
    }
    EXPECT_THAT(ids, ::testing::ElementsAre("a", "b!", "c", "d", "e!", "f", "g!"));
    // Pages after the first read git at the first page's revision.
    for (size_t i = 1; i < revisions_asked.size(); ++i) EXPECT_EQ(revisions_asked[i], kHead);
  }
}

TEST_F(ApiServiceTest, APersonsSyncAppliesAgainEvenAnUnchangedHead) {
  ON_CALL(git_, Notify(_, _, _))
      .WillByDefault(DoAll(
          Invoke([](grpc::ClientContext*, const auto&, auto* out) { out->set_revision(kHead); }),
          Return(grpc::Status::OK)));
  ferry::v1::Job sync;
  grpc::ClientContext ctx;
  FERRY_ASSERT_OK(stub_->Sync(&ctx, ferry::v1::SyncRequest(), &sync));
  EXPECT_EQ(Follow(sync.id()).state(), ferry::v1::JOB_STATE_SUCCEEDED);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_THAT(synced_, ::testing::ElementsAre(kHead));
  EXPECT_THAT(skip_if_applied_, ::testing::ElementsAre(false)) << "drift is corrected";
}

// git-writer's --git_verify_signatures refuses upstream's head (Notify: FAILED_PRECONDITION)
// and serves the last verified revision: a person's sync applies that one and says why.
TEST_F(ApiServiceTest, ASyncWithAnUnverifiedGitHeadAppliesTheLastVerifiedRevision) {
  ON_CALL(git_, Notify(_, _, _))
      .WillByDefault(Return(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                         "upstream head 0123456789ab is not served: the commit "
                                         "is not signed")));
  ferry::v1::HeadResponse head;
  head.set_revision(kHead);
  head.set_verify_error("upstream head 0123456789ab is not served: the commit is not signed");
  ON_CALL(git_, Head(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(head), Return(grpc::Status::OK)));
  ferry::v1::Job sync;
  grpc::ClientContext ctx;
  FERRY_ASSERT_OK(stub_->Sync(&ctx, ferry::v1::SyncRequest(), &sync));
  ferry::v1::Job done = Follow(sync.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.revision(), kHead);
  EXPECT_THAT(done.stages().rbegin()->message(),
              ::testing::HasSubstr("the last verified revision: upstream head 0123456789ab is "
                                   "not served"));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_THAT(synced_, ::testing::ElementsAre(kHead));
}

// git-writer with --git_push_branch: the commit is on a branch the syncer does not follow, so
// the job ends at COMMIT_PUSHED, saying where the change is, instead of waiting for a sync.
TEST_F(ApiServiceTest, AReleasePushedToAReleaseBranchEndsAtCommitPushed) {
  ON_CALL(git_, ApplyUpdates(_, _, _))
      .WillByDefault(Invoke([](grpc::ClientContext*, const ferry::v1::ApplyUpdatesRequest& r,
                               ferry::v1::ApplyUpdatesResponse* out) {
        out->set_revision(kCommit);
        out->set_pushed_branch("ferry/releases");
        out->add_dropped_commits("abc123def456 (\"Release x\" by Ferry <f@x>): dropped, why");
        for (const auto& e : r.edits()) *out->add_results()->mutable_edit() = e;
        return grpc::Status::OK;
      }));
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_THAT(Stages(done), ::testing::ElementsAre(ferry::v1::JOB_STAGE_KIND_SUBMITTED,
                                                   ferry::v1::JOB_STAGE_KIND_PLANNING,
                                                   ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED,
                                                   ferry::v1::JOB_STAGE_KIND_DONE));
  EXPECT_EQ(done.revision(), kCommit);
  EXPECT_EQ(done.pushed_branch(), "ferry/releases");
  const std::string& message = done.stages(3).message();
  EXPECT_THAT(message, ::testing::HasSubstr("to branch ferry/releases"));
  EXPECT_THAT(message, ::testing::HasSubstr("applied once merged"));
  EXPECT_THAT(message, ::testing::HasSubstr("abc123def456"));
  EXPECT_TRUE(synced_.empty()) << "no sync waited for";
}

// git-writer holds an unsigned head back (--git_verify_signatures): ListWorkloads says so,
// with the verified revision's workloads. (GetVersion, which carries the reason too, reads
// its peers' response metadata, which the mock stubs do not make: the binary test covers it.)
TEST_F(ApiServiceTest, AGitHeadThatDidNotVerifyIsReportedByListWorkloads) {
  in_git_.set_verify_error("commit 0123456789ab is not signed");
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  ferry::v1::ListWorkloadsResponse listed;
  grpc::ClientContext list_ctx;
  FERRY_ASSERT_OK(stub_->ListWorkloads(&list_ctx, ferry::v1::ListWorkloadsRequest(), &listed));
  EXPECT_EQ(listed.git_verify_error(), "commit 0123456789ab is not signed");
  EXPECT_EQ(listed.revision(), kHead);
  EXPECT_EQ(listed.workloads_size(), 2);
}

// A job pushed to a release branch is still answered for after a restart: its git note
// (as git-writer returns it) names the branch.
TEST_F(ApiServiceTest, AJobFromTheNotesSaysWhichBranchHoldsItsChange) {
  ON_CALL(git_, ListJobNotes(_, _, _))
      .WillByDefault(Invoke([](grpc::ClientContext*, const ferry::v1::ListJobNotesRequest&,
                               ferry::v1::ListJobNotesResponse* out) {
        ferry::v1::Job* job = out->add_jobs();
        job->set_id("from-a-note");
        job->set_state(ferry::v1::JOB_STATE_SUCCEEDED);
        job->set_revision(kCommit);
        job->set_pushed_branch("ferry/releases");
        return grpc::Status::OK;
      }));
  ferry::v1::GetJobRequest request;
  request.set_id("from-a-note");
  ferry::v1::Job job;
  grpc::ClientContext ctx;
  FERRY_ASSERT_OK(stub_->GetJob(&ctx, request, &job));
  EXPECT_EQ(job.pushed_branch(), "ferry/releases");
  EXPECT_EQ(job.revision(), kCommit);
}

TEST_F(ApiServiceTest, DryRunCommitsNothing) {
  ferry::v1::ReleaseSpec spec = AllTo("1.1.0");
  spec.set_dry_run(true);
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(spec, &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(done.dry_run());
  EXPECT_TRUE(done.revision().empty());
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_TRUE(applied_[0].dry_run());
  EXPECT_FALSE(applied_[0].has_job()) << "no note for a dry run";
  EXPECT_TRUE(synced_.empty());
}

TEST_F(ApiServiceTest, MalformedReleasesAreRefusedBeforeAnythingRuns) {
  EXPECT_CALL(git_, ApplyUpdates(_, _, _)).Times(0);
  ferry::v1::Job job;
  ferry::v1::ReleaseSpec spec = AllTo("1.1.0");
  spec.set_image(kApp);
  grpc::Status s = Release(spec, &job);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("has no tag")));
  spec = AllTo("1.1.0");
  spec.add_workloads("app");
  EXPECT_THAT(Release(spec, &job), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Release(ferry::v1::ReleaseSpec(), &job),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(store_->List(0).empty()) << "no job was created";
}

TEST_F(ApiServiceTest, AnImageTheRegistryDoesNotHaveIsAnErrorUnlessForced) {
  // Whether the image exists is all the release asks (digest_only: one request).
  EXPECT_CALL(registry_,
              GetImage(_, ::testing::Property(&ferry::v1::GetImageRequest::digest_only, true), _))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::NOT_FOUND, "manifest unknown")));
  ferry::v1::Job job;
  grpc::Status s = Release(AllTo("9.9.9"), &job);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("push it first, or force")));
  ferry::v1::ReleaseSpec forced = AllTo("9.9.9");
  forced.set_force(true);
  FERRY_ASSERT_OK(Release(forced, &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(applied_[0].edits_size(), 2) << "force also releases the locked workload";
}

TEST_F(ApiServiceTest, ADownstreamServiceDownFailsTheJobNamingIt) {
  ON_CALL(cluster_, ListWorkloads(_, _, _))
      .WillByDefault(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_EQ(done.error(), "cluster-syncer: connection refused");
  EXPECT_EQ(done.stages(done.stages_size() - 1).kind(), ferry::v1::JOB_STAGE_KIND_FAILED);
  EXPECT_TRUE(applied_.empty());
  EXPECT_EQ(ferry::testing::MetricSum(*metrics_, "ferry_jobs_total",
                                      {{"kind", "release"}, {"outcome", "failed"}}),
            1);
}

TEST_F(ApiServiceTest, FailedEditsAndRefusedObjectsFailTheirWorkloads) {
  in_git_.mutable_workloads(1)->mutable_policy()->set_locked(false);
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  ON_CALL(git_, ApplyUpdates(_, _, _))
      .WillByDefault(Invoke([](grpc::ClientContext*, const ferry::v1::ApplyUpdatesRequest& r,
                               ferry::v1::ApplyUpdatesResponse* out) {
        out->set_revision(kCommit);
        for (const auto& e : r.edits()) {
          auto* result = out->add_results();
          *result->mutable_edit() = e;
          if (e.workload() == "default:deployment/locked") {
            result->set_code(static_cast<int>(grpc::StatusCode::ABORTED));
            result->set_error("container app runs registry.test/team/app:0.9, not 1.0.0");
          }
        }
        return grpc::Status::OK;
      }));
  ON_CALL(cluster_, SyncNow(_, _, _))
      .WillByDefault(Invoke(
          [](grpc::ClientContext*, const ferry::v1::SyncNowRequest& r, ferry::v1::SyncResult* out) {
            out->set_revision(r.revision());
            auto* e = out->add_errors();
            e->set_resource("default:deployment/app");
            e->set_error("admission webhook denied the request");
            return grpc::Status::OK;
          }));
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(done.results_size(), 2);
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
  EXPECT_THAT(done.results(0).reason(), ::testing::HasSubstr("admission webhook denied"));
  EXPECT_EQ(done.results(1).status(), ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
  EXPECT_THAT(done.results(1).reason(), ::testing::HasSubstr("not 1.0.0"));
}

TEST_F(ApiServiceTest, WaitRolloutReportsProgressAsStages) {
  auto* reader = new grpc::testing::MockClientReader<ferry::v1::WaitRolloutProgress>();
  ferry::v1::WaitRolloutProgress updating;
  auto* r = updating.add_rollouts();
  r->set_workload("default:deployment/app");
  r->mutable_status()->set_state(ferry::v1::ROLLOUT_STATE_UPDATING);
  ferry::v1::WaitRolloutProgress ready = updating;
  ready.mutable_rollouts(0)->mutable_status()->set_state(ferry::v1::ROLLOUT_STATE_READY);
  ready.set_done(true);
  EXPECT_CALL(*reader, Read(_))
      .WillOnce(DoAll(::testing::SetArgPointee<0>(updating), Return(true)))
      .WillOnce(DoAll(::testing::SetArgPointee<0>(ready), Return(true)))
      .WillOnce(Return(false));
  EXPECT_CALL(*reader, Finish()).WillOnce(Return(grpc::Status::OK));
  ferry::v1::WaitRolloutRequest asked;
  EXPECT_CALL(cluster_, WaitRolloutRaw(_, _)).WillOnce(DoAll(SaveArg<1>(&asked), Return(reader)));
  ferry::v1::ReleaseSpec spec = AllTo("1.1.0");
  spec.set_wait_rollout(true);
  spec.set_rollout_timeout_seconds(60);
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(spec, &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(Stages(done),
              ::testing::ElementsAre(
                  ferry::v1::JOB_STAGE_KIND_SUBMITTED, ferry::v1::JOB_STAGE_KIND_PLANNING,
                  ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED, ferry::v1::JOB_STAGE_KIND_APPLIED,
                  ferry::v1::JOB_STAGE_KIND_ROLLOUT, ferry::v1::JOB_STAGE_KIND_ROLLOUT,
                  ferry::v1::JOB_STAGE_KIND_DONE));
  EXPECT_EQ(done.stages(5).message(), "1 of 1 workload(s) ready");
  EXPECT_THAT(asked.workloads(), ::testing::ElementsAre("default:deployment/app"));
  EXPECT_EQ(asked.revision(), kCommit);
  EXPECT_EQ(asked.timeout_seconds(), 60);
}

TEST_F(ApiServiceTest, AReleaseDoesNotWaitBehindASlowSync) {
  // The sync job's apply hangs until released; a release submitted meanwhile finishes.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  ferry::v1::HeadResponse head;
  head.set_revision(kHead);
  ON_CALL(git_, Notify(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(head), Return(grpc::Status::OK)));
  ON_CALL(cluster_, SyncNow(_, _, _))
      .WillByDefault(Invoke([&](grpc::ClientContext*, const ferry::v1::SyncNowRequest& r,
                                ferry::v1::SyncResult* out) {
        if (r.revision() == kHead) {
          std::unique_lock<std::mutex> lock(gate_mu);
          gate_cv.wait(lock, [&] { return open; });
        }
        out->set_revision(r.revision());
        return grpc::Status::OK;
      }));
  ferry::v1::Job sync;
  {
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stub_->Sync(&ctx, ferry::v1::SyncRequest(), &sync));
  }
  ferry::v1::Job release;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &release));
  EXPECT_EQ(Follow(release.id()).state(), ferry::v1::JOB_STATE_SUCCEEDED);
  grpc::ClientContext ctx;
  ferry::v1::GetJobRequest get;
  get.set_id(sync.id());
  ferry::v1::Job still;
  FERRY_ASSERT_OK(stub_->GetJob(&ctx, get, &still));
  EXPECT_EQ(still.state(), ferry::v1::JOB_STATE_RUNNING);
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  ferry::v1::Job synced = Follow(sync.id());
  EXPECT_EQ(synced.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(synced.revision(), kHead);
}

TEST_F(ApiServiceTest, PolicyChangesAreValidatedThenCommittedInOneGo) {
  auto request = [](const std::string& workload, std::vector<ferry::v1::PolicyChange> changes) {
    ferry::v1::UpdatePolicyRequest r;
    auto* w = r.add_changes();
    w->set_workload(workload);
    for (auto& c : changes) *w->add_changes() = c;
    r.mutable_cause()->set_user("bob");
    r.mutable_cause()->set_message("incident 7");
    return r;
  };
  ferry::v1::PolicyChange automate, deautomate, lock, filter, bad_filter, other_container;
  automate.set_automate(true);
  deautomate.set_deautomate(true);
  lock.mutable_lock();
  filter.mutable_set_tag_filter()->set_container("app");
  filter.mutable_set_tag_filter()->set_pattern("semver:~1");
  bad_filter.mutable_set_tag_filter()->set_container("app");
  bad_filter.mutable_set_tag_filter()->set_pattern("semver:~>>1");
  other_container.mutable_set_tag_filter()->set_container("sidecar");
  other_container.mutable_set_tag_filter()->set_pattern("glob:*");

  struct Case {
    ferry::v1::UpdatePolicyRequest request;
    grpc::StatusCode code;
    std::string message_part;
  };
  std::vector<Case> refused = {
      {request("default:deployment/app", {automate, deautomate}),
       grpc::StatusCode::INVALID_ARGUMENT, "automate and deautomate contradict each other"},
      {request("default:deployment/app", {bad_filter}), grpc::StatusCode::INVALID_ARGUMENT,
       "tag filter of container app"},
      {request("default:deployment/app", {other_container}), grpc::StatusCode::INVALID_ARGUMENT,
       "has no container sidecar (containers: app)"},
      {request("default:deployment/ghost", {automate}), grpc::StatusCode::NOT_FOUND,
       "not in the repository"},
      {request("deployment/app", {automate}), grpc::StatusCode::INVALID_ARGUMENT,
       "is not a workload id"},
      {request("default:deployment/app", {}), grpc::StatusCode::INVALID_ARGUMENT, "no changes"},
  };
  for (const Case& c : refused) {
    grpc::ClientContext ctx;
    ferry::v1::Job job;
    grpc::Status s = stub_->UpdatePolicy(&ctx, c.request, &job);
    EXPECT_THAT(
        s, StatusIs(static_cast<absl::StatusCode>(c.code), ::testing::HasSubstr(c.message_part)))
        << c.message_part;
  }
  EXPECT_TRUE(applied_.empty());

  grpc::ClientContext ctx;
  ferry::v1::Job job;
  FERRY_ASSERT_OK(
      stub_->UpdatePolicy(&ctx, request("default:deployment/app", {automate, lock, filter}), &job));
  EXPECT_EQ(job.kind(), ferry::v1::JOB_KIND_POLICY);
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  ASSERT_EQ(applied_.size(), 1u);
  ASSERT_EQ(applied_[0].edits_size(), 3);
  EXPECT_TRUE(applied_[0].edits(0).policy().automate());
  EXPECT_EQ(applied_[0].edits(1).policy().lock().user(), "bob") << "the lock records who";
  EXPECT_EQ(applied_[0].edits(1).policy().lock().message(), "incident 7");
  EXPECT_EQ(applied_[0].edits(2).policy().set_tag_filter().pattern(), "semver:~1");
  EXPECT_THAT(applied_[0].message(),
              ::testing::StartsWith("Update policy of default:deployment/app: automate, lock, tag "
                                    "app=semver:~1"));
  EXPECT_THAT(synced_, ::testing::ElementsAre(kCommit)) << "policies are applied as annotations";
}

TEST_F(ApiServiceTest, FinishedJobsComeBackFromTheGitNotes) {
  ferry::v1::Job recorded;
  recorded.set_id("0b0e4a8e-0000-4000-8000-000000000001");
  recorded.set_kind(ferry::v1::JOB_KIND_RELEASE);
  recorded.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
  recorded.set_revision(kCommit);
  recorded.mutable_submitted()->set_seconds(1000);
  EXPECT_CALL(git_, ListJobNotes(_, _, _))
      .WillRepeatedly(Invoke([&](grpc::ClientContext*, const ferry::v1::ListJobNotesRequest& r,
                                 ferry::v1::ListJobNotesResponse* out) {
        if (!r.job_id().empty() && r.job_id() != recorded.id()) {
          return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job in the git notes");
        }
        *out->add_jobs() = recorded;
        return grpc::Status::OK;
      }));
  ferry::v1::GetJobRequest get;
  get.set_id(recorded.id());
  ferry::v1::Job job;
  {
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stub_->GetJob(&ctx, get, &job));
  }
  EXPECT_EQ(job.revision(), kCommit);
  EXPECT_EQ(Follow(recorded.id()).id(), recorded.id()) << "WatchJob answers from the notes too";
  get.set_id("11111111-0000-4000-8000-000000000000");
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->GetJob(&ctx, get, &job);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
  }
  // ListJobs: this process's jobs first (newest), then the notes' older ones.
  ferry::v1::Job fresh;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &fresh));
  Follow(fresh.id());
  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse list;
  FERRY_ASSERT_OK(stub_->ListJobs(&ctx, ferry::v1::ListJobsRequest(), &list));
  ASSERT_EQ(list.jobs_size(), 2);
  EXPECT_EQ(list.jobs(0).id(), fresh.id());
  EXPECT_EQ(list.jobs(1).id(), recorded.id());
}

// Another replica's job, through the shared job records (job_records.h): each Get of the
// record answers the next of `states` (the last one from then on).
class ScriptedJobRecords final : public JobRecordStore {
 public:
  explicit ScriptedJobRecords(std::vector<ferry::v1::Job> states) : states_(std::move(states)) {}
  absl::Status Put(const ferry::v1::Job&) override { return absl::OkStatus(); }
  absl::Status Delete(const std::string&) override { return absl::OkStatus(); }
  absl::StatusOr<ferry::v1::Job> Get(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    if (id != states_[0].id()) return absl::NotFoundError(id);
    ++gets_;
    return states_[std::min(next_++, states_.size() - 1)];
  }
  absl::StatusOr<std::vector<JobRecordSummary>> ListSummaries() override {
    return std::vector<JobRecordSummary>{
        {states_[0].id(), runtime::FromProtoTimestamp(states_[0].submitted()), std::nullopt}};
  }
  int gets() {
    absl::MutexLock lock(&mu_);
    return gets_;
  }

 private:
  absl::Mutex mu_;
  const std::vector<ferry::v1::Job> states_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  int gets_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(ApiServiceTest, AnotherReplicasJobIsReadWatchedAndListedFromItsRecord) {
  ferry::v1::Job running;
  running.set_id("22222222-0000-4000-8000-000000000000");
  running.set_kind(ferry::v1::JOB_KIND_RELEASE);
  running.set_state(ferry::v1::JOB_STATE_RUNNING);
  running.mutable_submitted()->set_seconds(2000000000);  // newer than this process's jobs
  running.add_stages()->set_kind(ferry::v1::JOB_STAGE_KIND_SUBMITTED);
  ferry::v1::Job planned = running;
  planned.add_stages()->set_kind(ferry::v1::JOB_STAGE_KIND_PLANNING);
  ferry::v1::Job done = planned;
  done.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
  done.set_revision(kCommit);
  done.add_stages()->set_kind(ferry::v1::JOB_STAGE_KIND_DONE);
  // GetJob reads the first state; the watch then sees it again (unchanged: not sent twice),
  // then the planned and done states.
  ScriptedJobRecords shared({running, running, running, planned, done});
  server_->Shutdown();
  service_ =
      std::make_unique<ApiService>(*access_, *peers_, *store_, *runner_, *executor_, &shared);
  grpc::ServerBuilder builder;
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  stub_ = ferry::v1::Ferry::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  EXPECT_CALL(git_, ListJobNotes(_, _, _)).Times(::testing::AtMost(1));  // ListJobs' only

  ferry::v1::GetJobRequest get;
  get.set_id(running.id());
  ferry::v1::Job job;
  {
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stub_->GetJob(&ctx, get, &job));
  }
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_RUNNING);
  std::vector<ferry::v1::Job> seen;
  const ferry::v1::Job last = Follow(running.id(), &seen);
  EXPECT_EQ(last.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(last.revision(), kCommit);
  ASSERT_EQ(seen.size(), 3u) << "each state once";
  EXPECT_EQ(Stages(seen[0]).size(), 1u);
  EXPECT_EQ(Stages(seen[1]).size(), 2u);
  EXPECT_EQ(Stages(seen[2]).size(), 3u);
  EXPECT_EQ(shared.gets(), 5);

  // ListJobs merges this replica's jobs with the records, newest first.
  ferry::v1::Job mine;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &mine));
  Follow(mine.id());
  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse list;
  FERRY_ASSERT_OK(stub_->ListJobs(&ctx, ferry::v1::ListJobsRequest(), &list));
  ASSERT_EQ(list.jobs_size(), 2);
  EXPECT_EQ(list.jobs(0).id(), running.id());
  EXPECT_EQ(list.jobs(1).id(), mine.id());
}

TEST_F(ApiServiceTest, AutomationReleasesEveryNewerTagInOneCommitAndWatchesTheRepositories) {
  in_git_.mutable_workloads(0)->mutable_policy()->set_automated(true);
  in_git_.mutable_workloads(0)->mutable_policy()->set_tag_all("semver:~1");
  in_git_.mutable_workloads(1)->mutable_policy()->set_automated(true);  // but locked
  auto web = GitWorkload("default:deployment/web", "registry.test/team/web:v1");
  web.mutable_policy()->set_automated(true);
  *in_git_.add_workloads() = web;
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  ON_CALL(registry_, ListTags(_, _, _))
      .WillByDefault(Invoke([](grpc::ClientContext*, const ferry::v1::ListTagsRequest& r,
                               ferry::v1::ListTagsResponse* out) {
        auto add = [&](const std::string& tag, int64_t created) {
          auto* t = out->add_tags();
          t->set_tag(tag);
          t->mutable_created()->set_seconds(created);
        };
        if (r.repository() == kApp) {
          add("1.0.0", 100);
          add("1.2.0", 200);
          add("2.0.0", 300);
        } else {
          add("v1", 100);
          add("v2", 200);
        }
        return grpc::Status::OK;
      }));
  std::vector<ferry::v1::WatchRequest> watched;
  EXPECT_CALL(registry_, Watch(_, _, _))
      .WillOnce(DoAll(::testing::Invoke([&](grpc::ClientContext*, const ferry::v1::WatchRequest& r,
                                            ferry::v1::WatchResponse*) { watched.push_back(r); }),
                      Return(grpc::Status::OK)));
  AutomationMetrics metrics(*metrics_);
  Automation automation(*peers_, *store_, *executor_, metrics, absl::Minutes(5));
  std::optional<std::string> id = automation.RunOnce();
  ASSERT_TRUE(id.has_value());
  std::optional<ferry::v1::Job> job = store_->Get(*id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->kind(), ferry::v1::JOB_KIND_AUTOMATED_RELEASE);
  EXPECT_EQ(job->state(), ferry::v1::JOB_STATE_SUCCEEDED) << job->error();
  EXPECT_EQ(job->revision(), kCommit);
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(applied_[0].edits_size(), 2) << "the locked workload is not touched";
  EXPECT_EQ(applied_[0].message(),
            "Auto-release multiple (2) images\n\n - registry.test/team/app:1.2.0\n"
            " - registry.test/team/web:v2");
  ASSERT_EQ(watched.size(), 1u);
  EXPECT_THAT(watched[0].repositories(),
              ::testing::ElementsAre("registry.test/team/app", "registry.test/team/web"));
  EXPECT_EQ(ferry::testing::MetricSum(*metrics_, "ferry_automation_releases_total"), 2);
  EXPECT_EQ(ferry::testing::MetricSum(*metrics_, "ferry_automation_runs_total",
                                      {{"outcome", "released"}}),
            1);
  EXPECT_EQ(ferry::testing::MetricSum(*metrics_, "ferry_workloads", {{"policy", "automated"}}), 3);

  // Git now runs the new tags: the next pass has nothing to do and does not re-send the
  // unchanged watch list (Watch was expected once).
  in_git_.mutable_workloads(0)->mutable_containers(0)->set_image(std::string(kApp) + ":1.2.0");
  in_git_.mutable_workloads(2)->mutable_containers(0)->set_image("registry.test/team/web:v2");
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  EXPECT_FALSE(automation.RunOnce().has_value());
  EXPECT_EQ(applied_.size(), 1u);
  EXPECT_EQ(
      ferry::testing::MetricSum(*metrics_, "ferry_automation_runs_total", {{"outcome", "nothing"}}),
      1);
}

TEST_F(ApiServiceTest, ReadOnlyGitMeansReadOnlyWorkloadsAndNoReleases) {
  in_git_.set_readonly(true);
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  ferry::v1::ListWorkloadsResponse listed;
  {
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stub_->ListWorkloads(&ctx, {}, &listed));
  }
  ASSERT_EQ(listed.workloads_size(), 2);
  EXPECT_EQ(listed.workloads(0).read_only(), ferry::v1::READ_ONLY_REASON_READ_ONLY_MODE);
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release(AllTo("1.1.0"), &job));
  ferry::v1::Job done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(done.error(), ::testing::HasSubstr("read-only"));
  ferry::v1::ReleaseSpec dry = AllTo("1.1.0");
  dry.set_dry_run(true);
  FERRY_ASSERT_OK(Release(dry, &job));
  done = Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  EXPECT_TRUE(applied_.empty());
}

TEST_F(ApiServiceTest, AnUnknownNamespaceIsNotFound) {
  ON_CALL(git_, ListWorkloads(_, _, _)).WillByDefault(Return(grpc::Status::OK));
  ON_CALL(cluster_, ListWorkloads(_, _, _)).WillByDefault(Return(grpc::Status::OK));
  ferry::v1::ListWorkloadsRequest request;
  request.set_namespace_("defualt");
  ferry::v1::ListWorkloadsResponse response;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->ListWorkloads(&ctx, request, &response);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound,
                          ::testing::HasSubstr("namespace defualt has no workloads")));
  ferry::v1::ListImagesRequest images;
  images.set_namespace_("defualt");
  ferry::v1::ListImagesResponse listed;
  grpc::ClientContext images_ctx;
  EXPECT_THAT(stub_->ListImages(&images_ctx, images, &listed),
              StatusIs(absl::StatusCode::kNotFound));
  // Every namespace: an empty answer is an answer.
  request.clear_namespace_();
  grpc::ClientContext all_ctx;
  FERRY_EXPECT_OK(stub_->ListWorkloads(&all_ctx, request, &response));
}

// ListImages' readers of the same moment share the scanner's tag list of a repository: one
// ListTags for all of them (a release or the automation still asks for itself).
TEST_F(ApiServiceTest, ReadersOfTheSameMomentShareOneTagList) {
  ferry::v1::ListManifestWorkloadsResponse in_git;
  in_git.set_revision(kHead);
  for (const char* id : {"default:deployment/web", "default:deployment/worker"}) {
    ferry::v1::ManifestWorkload* w = in_git.add_workloads();
    *w = GitWorkload(id, "ghcr.io/team/app:1.0.0");
    ferry::v1::ImageRef* ref = w->mutable_containers(0)->mutable_image_ref();
    ref->set_registry("ghcr.io");
    ref->set_repository("team/app");
    ref->set_tag("1.0.0");
  }
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git), Return(grpc::Status::OK)));
  EXPECT_CALL(registry_, ListTags(_, _, _))
      .WillOnce(Invoke([](grpc::ClientContext*, const ferry::v1::ListTagsRequest& r,
                          ferry::v1::ListTagsResponse* out) {
        out->set_repository(r.repository());
        out->add_tags()->set_tag("1.0.0");
        out->set_total(1);
        return grpc::Status::OK;
      }));
  for (const char* workload : {"default:deployment/web", "default:deployment/worker"}) {
    ferry::v1::ListImagesRequest request;
    request.set_workload(workload);
    ferry::v1::ListImagesResponse listed;
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stub_->ListImages(&ctx, request, &listed));
    ASSERT_EQ(listed.workloads_size(), 1);
    ASSERT_EQ(listed.workloads(0).containers_size(), 1);
    EXPECT_EQ(listed.workloads(0).containers(0).total(), 1) << listed.ShortDebugString();
  }
}

// A request's own calls end by the caller's deadline when it is the earlier, else within
// kPeerCallTimeout; the calls of one request share that one deadline.
TEST_F(ApiServiceTest, ARequestsCallsEndByItsCallersDeadlineOrWithin30s) {
  std::vector<std::chrono::system_clock::time_point> deadlines;
  auto keep = [&](grpc::ClientContext* ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    deadlines.push_back(ctx->deadline());
  };
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(Invoke([&](grpc::ClientContext* ctx, const auto&, auto* out) {
        keep(ctx);
        *out = in_git_;
        return grpc::Status::OK;
      }));
  ON_CALL(git_, Head(_, _, _))
      .WillByDefault(Invoke([&](grpc::ClientContext* ctx, const auto&, auto*) {
        keep(ctx);
        return grpc::Status::OK;
      }));
  // ListImages of one workload: its read of git is the request's own.
  ferry::v1::ListImagesRequest images;
  images.set_workload("default:deployment/app");
  const absl::Time asked = absl::Now();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(asked + absl::Seconds(4)));
    ferry::v1::ListImagesResponse listed;
    FERRY_ASSERT_OK(stub_->ListImages(&ctx, images, &listed));
  }
  ASSERT_EQ(deadlines.size(), 1u);
  // (gRPC rounds a deadline it sends up a little.)
  EXPECT_LE(absl::FromChrono(deadlines[0]), asked + absl::Seconds(5)) << "the caller's";
  EXPECT_GT(absl::FromChrono(deadlines[0]), asked + absl::Seconds(3));
  deadlines.clear();
  const absl::Time unbounded = absl::Now();
  {
    grpc::ClientContext ctx;  // no deadline
    ferry::v1::ListImagesResponse listed;
    FERRY_ASSERT_OK(stub_->ListImages(&ctx, images, &listed));
  }
  ASSERT_EQ(deadlines.size(), 1u);
  EXPECT_GE(absl::FromChrono(deadlines[0]), unbounded + kPeerCallTimeout);
  EXPECT_LE(absl::FromChrono(deadlines[0]), absl::Now() + kPeerCallTimeout);
  // ListWorkloads: git's head is asked by the caller's deadline; the page itself is shared
  // by the readers of the moment, so its calls end within kPeerCallTimeout whatever the
  // caller's deadline.
  deadlines.clear();
  const absl::Time listed_at = absl::Now();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(listed_at + absl::Seconds(4)));
    ferry::v1::ListWorkloadsResponse listed;
    FERRY_ASSERT_OK(stub_->ListWorkloads(&ctx, {}, &listed));
  }
  ASSERT_EQ(deadlines.size(), 2u) << "head, then the page's read of git";
  EXPECT_LE(absl::FromChrono(deadlines[0]), listed_at + absl::Seconds(5));
  EXPECT_GE(absl::FromChrono(deadlines[1]), listed_at + kPeerCallTimeout);
}

// A read answering a person names the peer that failed it.
TEST_F(ApiServiceTest, AReadNamesThePeerThatFailedIt) {
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  grpc::ClientContext ctx;
  ferry::v1::ListWorkloadsResponse listed;
  grpc::Status s = stub_->ListWorkloads(&ctx, {}, &listed);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable, Eq("git-writer: connection refused")));
  // The cluster down: the list still answers, marked not ready.
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(in_git_), Return(grpc::Status::OK)));
  ON_CALL(cluster_, ListWorkloads(_, _, _))
      .WillByDefault(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  grpc::ClientContext again;
  FERRY_ASSERT_OK(stub_->ListWorkloads(&again, {}, &listed));
  ASSERT_EQ(listed.workloads_size(), 2);
  EXPECT_EQ(listed.workloads(0).read_only(), ferry::v1::READ_ONLY_REASON_NOT_READY);
}

// ExplainTags: read from git and the scanner's shared lists, every tag judged; bad requests
// and unknown names refused with the status saying which.
TEST_F(ApiServiceTest, ExplainTagsAnswersForAWorkloadAndRefusesUnknownNames) {
  ON_CALL(registry_, ListTags(_, _, _))
      .WillByDefault(Invoke([](grpc::ClientContext*, const ferry::v1::ListTagsRequest& r,
                               ferry::v1::ListTagsResponse* out) {
        out->set_repository(r.repository());
        for (const auto& [tag, day] : {std::pair<const char*, int>{"1.0.0", 1}, {"1.1.0", 2}}) {
          ferry::v1::TagInfo* t = out->add_tags();
          t->set_tag(tag);
          *t->mutable_created() =
              runtime::ToProtoTimestamp(absl::FromUnixSeconds(1'700'000'000 + day * 86400));
        }
        out->set_total(2);
        return grpc::Status::OK;
      }));
  auto explain = [this](const std::string& workload, const std::string& container = "",
                        int limit = 0) {
    ferry::v1::ExplainTagsRequest request;
    request.set_workload(workload);
    request.set_container(container);
    request.set_limit(limit);
    ferry::v1::ExplainTagsResponse response;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->ExplainTags(&ctx, request, &response);
    return std::make_pair(s, response);
  };
  auto [ok, answer] = explain("default:deployment/app");
  FERRY_ASSERT_OK(ok);
  EXPECT_EQ(answer.workload(), "default:deployment/app");
  EXPECT_EQ(answer.automation_blocked(), "not automated");
  ASSERT_EQ(answer.containers_size(), 1);
  const ferry::v1::ContainerExplanation& app = answer.containers(0);
  EXPECT_EQ(app.repository(), kApp);
  ASSERT_EQ(app.tags_size(), 2) << app.ShortDebugString();
  EXPECT_EQ(app.tags(0).tag(), "1.1.0");
  EXPECT_EQ(app.tags(0).verdict(), ferry::v1::TAG_VERDICT_CHOSEN);
  EXPECT_EQ(app.tags(1).verdict(), ferry::v1::TAG_VERDICT_CURRENT);
  EXPECT_EQ(app.next(), "nothing: not automated");
  EXPECT_EQ(explain("default:deployment/locked", "app").second.automation_blocked(),
            "locked; not automated");

  EXPECT_THAT(explain("default/app").first,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::StartsWith("workload: ")));
  EXPECT_THAT(explain("default:deployment/app", "app", 1001).first,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("limit")));
  EXPECT_THAT(explain("default:deployment/app", "bad\nname").first,
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("container")));
  EXPECT_THAT(explain("default:deployment/gone").first,
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::HasSubstr("default:deployment/gone is not in the repository")));
  EXPECT_THAT(explain("default:deployment/app", "sidecar").first,
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::HasSubstr("has no container sidecar (its containers: app)")));
  // The scanner down: an answer, each container saying why it has no tags. (Another
  // repository: the tag list read a moment ago is still shared.)
  ferry::v1::ListManifestWorkloadsResponse other;
  *other.add_workloads() = GitWorkload("default:deployment/other", "registry.test/team/other:1");
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(DoAll(::testing::SetArgPointee<2>(other), Return(grpc::Status::OK)));
  ON_CALL(registry_, ListTags(_, _, _))
      .WillByDefault(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  auto [down, without_tags] = explain("default:deployment/other");
  FERRY_ASSERT_OK(down);
  EXPECT_THAT(without_tags.containers(0).error(), ::testing::HasSubstr("connection refused"));
  // git down: the call fails naming it.
  ON_CALL(git_, ListWorkloads(_, _, _))
      .WillByDefault(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  EXPECT_THAT(explain("default:deployment/app").first,
              StatusIs(absl::StatusCode::kUnavailable, Eq("git-writer: connection refused")));
}

TEST(JobStoreTest, HistoryIsBoundedAndKeepsRunningJobs) {
  prometheus::Registry registry;
  JobMetrics metrics(registry);
  JobStore store(3, metrics);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ferry::v1::Job job;
    job.set_kind(ferry::v1::JOB_KIND_SYNC);
    ids.push_back(store.Submit(job).id());
  }
  store.Finish(ids[1], "");
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_SYNC);
  ids.push_back(store.Submit(job).id());
  EXPECT_TRUE(store.Get(ids[0]).has_value()) << "unfinished jobs are kept";
  EXPECT_FALSE(store.Get(ids[1]).has_value()) << "the oldest finished job goes";
  EXPECT_EQ(store.List(0).size(), 3u);
  EXPECT_EQ(store.List(0).front().id(), ids[3]);
  // A finished job does not change any more.
  store.Finish(ids[3], "boom");
  store.Finish(ids[3], "");
  EXPECT_EQ(store.Get(ids[3])->state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_NE(ids[0], ids[2]);
}

// Finished jobs beyond the newest kJobsWithIgnoredResults keep the results their git note
// keeps: every one but the IGNORED ones.
TEST(JobStoreTest, OlderFinishedJobsDropTheirIgnoredResults) {
  prometheus::Registry registry;
  JobMetrics metrics(registry);
  JobStore store(100, metrics);
  auto result = [](const std::string& workload, ferry::v1::WorkloadResultStatus status) {
    ferry::v1::WorkloadResult r;
    r.set_workload(workload);
    r.set_status(status);
    return r;
  };
  std::vector<std::string> ids;
  for (size_t i = 0; i <= JobStore::kJobsWithIgnoredResults; ++i) {
    ferry::v1::Job job;
    job.set_kind(ferry::v1::JOB_KIND_RELEASE);
    ids.push_back(store.Submit(job).id());
    store.SetResults(ids.back(),
                     {result("default:deployment/a", ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS),
                      result("default:deployment/b", ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED),
                      result("default:deployment/c", ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED)});
    EXPECT_EQ(store.Get(ids.back())->results_size(), 3) << "a running job keeps every result";
    store.Finish(ids.back(), "");
  }
  // The first one finished is the one pushed out of the newest.
  const ferry::v1::Job oldest = *store.Get(ids.front());
  ASSERT_EQ(oldest.results_size(), 2);
  EXPECT_EQ(oldest.results(0).workload(), "default:deployment/a");
  EXPECT_EQ(oldest.results(1).workload(), "default:deployment/c");
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_EQ(store.Get(ids[i])->results_size(), 3) << "job " << i << " is among the newest";
  }
}

// With every worker busy (here: on a job that does not end until released), a read-only job
// (a dry run) still runs at once on its own lane, while another job waits for a worker.
TEST(JobRunnerTest, AReadOnlyJobDoesNotWaitBehindBusyWorkers) {
  prometheus::Registry registry;
  JobMetrics metrics(registry);
  JobStore store(10, metrics);
  JobRunner runner(store, 1);
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  auto submit = [&] {
    ferry::v1::Job job;
    job.set_kind(ferry::v1::JOB_KIND_RELEASE);
    return store.Submit(job).id();
  };
  const std::string stuck = submit();
  runner.Run(stuck, [&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return released; });
    store.Finish(stuck, "");
  });
  const std::string queued = submit();
  runner.Run(queued, [&] { store.Finish(queued, ""); });
  const std::string dry = submit();
  runner.Run(
      dry, [&] { store.Finish(dry, "", "planned"); }, /*read_only=*/true);

  uint64_t version = 0;
  std::optional<ferry::v1::Job> job = store.Get(dry, &version);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (job->state() != ferry::v1::JOB_STATE_SUCCEEDED && absl::Now() < give_up) {
    job = store.WaitChange(dry, &version, give_up - absl::Now());
  }
  EXPECT_EQ(job->state(), ferry::v1::JOB_STATE_SUCCEEDED) << "the dry run waited for a worker";
  EXPECT_EQ(store.Get(queued)->state(), ferry::v1::JOB_STATE_QUEUED);
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  version = 0;
  job = store.Get(queued, &version);
  while (job->state() != ferry::v1::JOB_STATE_SUCCEEDED && absl::Now() < give_up) {
    job = store.WaitChange(queued, &version, give_up - absl::Now());
  }
  EXPECT_EQ(job->state(), ferry::v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace ferry::api
