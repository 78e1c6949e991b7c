// Rollouts that revert themselves: which released workloads are followed, what a revert
// commits (compare-and-sets back, the lock, the rejected tags, in one all-or-nothing
// request), the job that records it, a conflict that commits nothing, a healthy rollout and a
// workload without rollback: auto left alone. Mock peers, real JobStore/JobRunner/Executor.
#include "services/api/reverter.h"

#include <gmock/gmock.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <mutex>

#include "absl/synchronization/notification.h"
#include "ferry/v1/cluster_syncer_mock.grpc.pb.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "ferry/v1/registry_scanner_mock.grpc.pb.h"
#include "lib/limits/limits.h"
#include "lib/names/names.h"
#include "lib/status/status_matchers.h"
#include "tests/support/metrics.h"

namespace ferry::api {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::SetArgPointee;

constexpr char kWorkload[] = "default:deployment/app";
constexpr char kOld[] = "registry.test/team/app:1.0.0";
constexpr char kNew[] = "registry.test/team/app:1.1.0";
const std::string kCommit(40, 'b');
const std::string kRevertCommit(40, 'c');

ferry::v1::WorkloadResult Released(const std::string& workload = kWorkload) {
  ferry::v1::WorkloadResult r;
  r.set_workload(workload);
  r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  auto* u = r.add_updates();
  u->set_container("app");
  u->set_from_image(kOld);
  u->set_to_image(kNew);
  return r;
}

ferry::v1::Policy Auto(const std::string& timeout = "") {
  ferry::v1::Policy p;
  p.set_rollback("auto");
  p.set_rollback_timeout(timeout);
  return p;
}

TEST(WorkloadsToFollowTest, OnlyReleasedWorkloadsWithRollbackAuto) {
  ferry::v1::WorkloadResult skipped = Released("default:deployment/skipped");
  skipped.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED);
  ferry::v1::Policy off;
  off.set_rollback("off");
  std::map<std::string, ferry::v1::Policy> policies = {
      {kWorkload, Auto("30s")},
      {"default:deployment/off", off},
      {"default:deployment/none", ferry::v1::Policy()},
      {"default:deployment/default", Auto()},
      {"default:deployment/bad", Auto("soon")},
      {"default:deployment/skipped", Auto()}};
  std::vector<FollowedWorkload> followed = WorkloadsToFollow(
      "job-1",
      {Released(), Released("default:deployment/off"), Released("default:deployment/none"),
       Released("default:deployment/default"), Released("default:deployment/bad"), skipped,
       Released("default:deployment/not-in-git")},
      policies);
  ASSERT_EQ(followed.size(), 3u);
  EXPECT_EQ(followed[0].workload, kWorkload);
  EXPECT_EQ(followed[0].release_job, "job-1");
  EXPECT_EQ(followed[0].timeout, absl::Seconds(30));
  ASSERT_EQ(followed[0].updates.size(), 1u);
  EXPECT_EQ(followed[0].updates[0].to_image(), kNew);
  EXPECT_EQ(followed[1].workload, "default:deployment/default");
  EXPECT_EQ(followed[1].timeout, policy::kDefaultRollbackTimeout);
  EXPECT_EQ(followed[2].workload, "default:deployment/bad");
  EXPECT_EQ(followed[2].timeout, policy::kDefaultRollbackTimeout) << "logged, not silent";
}

TEST(RolloutFailureTest, OnlyAnErrorIsAFailure) {
  ferry::v1::RolloutStatus s;
  s.set_state(ferry::v1::ROLLOUT_STATE_ERROR);
  s.add_messages("progress deadline exceeded: ReplicaSet \"app-1\" has timed out progressing.");
  EXPECT_EQ(RolloutFailure(s),
            "rollout failed: progress deadline exceeded: ReplicaSet \"app-1\" has timed out "
            "progressing.");
  for (auto state : {ferry::v1::ROLLOUT_STATE_READY, ferry::v1::ROLLOUT_STATE_UPDATING,
                     ferry::v1::ROLLOUT_STATE_UNKNOWN}) {
    s.set_state(state);
    EXPECT_EQ(RolloutFailure(s), std::nullopt) << state;
  }
}

TEST(TagOfTest, TagDigestOrText) {
  EXPECT_EQ(TagOf("registry.test:5000/team/app:1.1.0"), "1.1.0");
  EXPECT_EQ(TagOf("nginx"), "latest");
  EXPECT_EQ(TagOf("app@sha256:" + std::string(64, 'a')), "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(TagOf("Not An Image"), "Not An Image");
}

TEST(ExplicitTagOfTest, NoTagForADigestOnly) {
  EXPECT_EQ(ExplicitTagOf("registry.test:5000/team/app:1.1.0"), "1.1.0");
  EXPECT_EQ(ExplicitTagOf("app:1.1.0@sha256:" + std::string(64, 'a')), "1.1.0");
  EXPECT_EQ(ExplicitTagOf("app@sha256:" + std::string(64, 'a')), "");
  EXPECT_EQ(ExplicitTagOf("Not An Image"), "");
}

TEST(OneLineTest, ControlCharactersBecomeSpacesAndTheCutKeepsCharactersWhole) {
  EXPECT_EQ(OneLine("a\nb\r\tc\x7f", 100), "a b  c ");
  EXPECT_EQ(OneLine("x\xc2\x85y", 100), "x y") << "C1 control (NEL)";
  EXPECT_EQ(OneLine("bad \xff byte", 100), "bad ? byte");
  EXPECT_EQ(OneLine("short", 5), "short");
  // "é" is 2 bytes: a cut at 8 bytes would split the third one.
  const std::string cut = OneLine("ééééééé", 8);
  EXPECT_EQ(cut, "éé...");
  EXPECT_TRUE(names::IsUtf8(cut));
}

TEST(PlanRevertTest, TheLockMessageIsOneLineWithinTheNameLimit) {
  FollowedWorkload w;
  w.release_job = "release-7";
  w.workload = kWorkload;
  for (int i = 0; i < 20; ++i) {  // many containers with long tags
    ferry::v1::ContainerUpdate u;
    u.set_container(absl::StrCat("container-", i));
    u.set_from_image("registry.test/app:1.0.0");
    u.set_to_image("registry.test/app:" + std::string(60, 'v'));
    w.updates.push_back(u);
  }
  std::string reason = "rollout failed: pod app-1 container app:\nBack-off\r\n";
  for (int i = 0; i < 300; ++i) reason += "é";
  ferry::v1::Job job = RevertJob(w, reason);
  job.set_id("revert-8");
  RevertPlan plan = PlanRevert(w, reason, job);
  const std::string& lock = plan.edits[20].policy().lock().message();
  FERRY_EXPECT_OK(
      names::ValidateName("lock message", lock, limits::kRequestNameBytes.default_value));
  EXPECT_LE(lock.size(), limits::kRequestNameBytes.default_value);
  EXPECT_THAT(lock, HasSubstr("automatic revert of job release-7"));
  FERRY_EXPECT_OK(names::ValidateCommitMessage(plan.message, 64 * 1024));
}

TEST(PlanRevertTest, AReleasePinnedByDigestIsRevertedAndLockedWithoutARejectedTag) {
  FollowedWorkload w;
  w.release_job = "release-7";
  w.workload = kWorkload;
  ferry::v1::ContainerUpdate u;
  u.set_container("app");
  u.set_from_image(kOld);
  u.set_to_image("registry.test/team/app@sha256:" + std::string(64, 'a'));
  w.updates.push_back(u);
  ferry::v1::Job job = RevertJob(w, "rollout failed");
  job.set_id("revert-8");
  RevertPlan plan = PlanRevert(w, "rollout failed", job);
  ASSERT_EQ(plan.edits.size(), 2u) << "the compare-and-set and the lock, no reject_tag";
  EXPECT_EQ(plan.edits[0].image().to_image(), kOld);
  ASSERT_TRUE(plan.edits[1].policy().has_lock());
  EXPECT_THAT(plan.edits[1].policy().lock().message(),
              HasSubstr("pinned by digest, no tag rejected: app"));
  EXPECT_THAT(job.cause().message(), HasSubstr("pinned by digest, no tag rejected: app"));
  EXPECT_THAT(plan.message, HasSubstr("rejected: none (pinned by digest, no tag to reject: app)"));
}

TEST(PlanRevertTest, CompareAndSetsBackThenLockThenRejectedTags) {
  FollowedWorkload w;
  w.release_job = "release-7";
  w.workload = kWorkload;
  w.updates.push_back(Released().updates(0));
  ferry::v1::ContainerUpdate side;
  side.set_container("side");
  side.set_from_image("registry.test/side:2.0");
  side.set_to_image("registry.test/side:2.1");
  w.updates.push_back(side);
  const std::string reason = "rollout failed: progress deadline exceeded";
  ferry::v1::Job job = RevertJob(w, reason);
  EXPECT_EQ(job.kind(), ferry::v1::JOB_KIND_REVERT);
  EXPECT_EQ(job.reverts_job(), "release-7");
  EXPECT_EQ(job.cause().user(), "ferry");
  EXPECT_EQ(job.cause().message(),
            "default:deployment/app: automatic revert of job release-7: app 1.1.0, side 2.1 "
            "(rollout failed: progress deadline exceeded)");
  job.set_id("revert-8");
  RevertPlan plan = PlanRevert(w, reason, job);
  ASSERT_EQ(plan.edits.size(), 5u);
  EXPECT_EQ(plan.edits[0].workload(), kWorkload);
  EXPECT_EQ(plan.edits[0].image().container(), "app");
  EXPECT_EQ(plan.edits[0].image().from_image(), kNew) << "compare-and-set: the released image";
  EXPECT_EQ(plan.edits[0].image().to_image(), kOld);
  EXPECT_EQ(plan.edits[1].image().container(), "side");
  EXPECT_EQ(plan.edits[1].image().to_image(), "registry.test/side:2.0");
  ASSERT_TRUE(plan.edits[2].policy().has_lock());
  EXPECT_EQ(plan.edits[2].policy().lock().user(), "ferry");
  EXPECT_EQ(plan.edits[2].policy().lock().message(),
            "automatic revert of job release-7: app 1.1.0, side 2.1 (rollout failed: progress "
            "deadline exceeded)");
  ASSERT_TRUE(plan.edits[3].policy().has_reject_tag());
  EXPECT_EQ(plan.edits[3].policy().reject_tag().container(), "app");
  EXPECT_EQ(plan.edits[3].policy().reject_tag().tag(), "1.1.0");
  EXPECT_EQ(plan.edits[3].policy().reject_tag().job(), "revert-8");
  EXPECT_EQ(plan.edits[4].policy().reject_tag().container(), "side");
  EXPECT_EQ(plan.edits[4].policy().reject_tag().tag(), "2.1");
  ASSERT_EQ(plan.results.size(), 1u);
  EXPECT_EQ(plan.results[0].updates(0).from_image(), kNew);
  EXPECT_EQ(plan.results[0].updates(0).to_image(), kOld);
  EXPECT_THAT(plan.message, HasSubstr("Revert default:deployment/app (rollout of job release-7"));
  EXPECT_THAT(plan.message, HasSubstr("app: " + std::string(kNew) + " -> " + kOld));
  // A reason from the cluster is bounded.
  RevertPlan long_reason = PlanRevert(w, std::string(5000, 'x'), job);
  EXPECT_LT(long_reason.edits[2].policy().lock().message().size(), kMaxRevertReasonBytes + 200);
}

class ReverterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_ = std::make_shared<prometheus::Registry>();
    job_metrics_ = std::make_unique<JobMetrics>(*metrics_);
    store_ = std::make_unique<JobStore>(100, *job_metrics_);
    runner_ = std::make_unique<JobRunner>(*store_, 2);
    peers_ = std::make_unique<PeerClients>(Peers{git_, registry_, cluster_}, runner_->cancel());
    executor_ = std::make_unique<Executor>(*peers_, *store_);
    revert_metrics_ = std::make_unique<RevertMetrics>(*metrics_);
    reverter_ = std::make_unique<Reverter>(*peers_, *store_, *runner_, *executor_, *revert_metrics_,
                                           max_followed_);
    executor_->SetReleaseApplied(reverter_->Hook());

    ferry::v1::ManifestWorkload w;
    w.set_id(kWorkload);
    *w.mutable_policy() = Auto("30s");
    *in_git_.add_workloads() = w;
    ON_CALL(git_, ListWorkloads(_, _, _))
        .WillByDefault(
            Invoke([this](grpc::ClientContext*, const ferry::v1::ListManifestWorkloadsRequest& r,
                          ferry::v1::ListManifestWorkloadsResponse* out) {
              std::lock_guard<std::mutex> lock(mu_);
              read_revisions_.push_back(r.revision());
              *out = in_git_;
              return grpc::Status::OK;
            }));
    ON_CALL(git_, ApplyUpdates(_, _, _))
        .WillByDefault(Invoke([this](grpc::ClientContext*, const ferry::v1::ApplyUpdatesRequest& r,
                                     ferry::v1::ApplyUpdatesResponse* out) {
          std::lock_guard<std::mutex> lock(mu_);
          applied_.push_back(r);
          const bool revert = r.edits_size() > 1;
          if (conflict_ && revert && r.all_or_nothing()) {
            return grpc::Status(grpc::StatusCode::ABORTED,
                                "nothing committed (all or nothing): edit 1 (" +
                                    std::string(kWorkload) +
                                    " container app) failed: container app has image "
                                    "registry.test/team/app:1.2.0, not 1.1.0");
          }
          for (const auto& e : r.edits()) {
            ferry::v1::EditResult* result = out->add_results();
            *result->mutable_edit() = e;
            if (conflict_ && revert && e.has_image()) {
              result->set_code(static_cast<int>(grpc::StatusCode::ABORTED));
              result->set_error("container app has image registry.test/team/app:1.2.0, not 1.1.0");
            }
          }
          if (!r.dry_run()) out->set_revision(revert ? kRevertCommit : kCommit);
          return grpc::Status::OK;
        }));
    ON_CALL(cluster_, SyncNow(_, _, _))
        .WillByDefault(Invoke([this](grpc::ClientContext*, const ferry::v1::SyncNowRequest& r,
                                     ferry::v1::SyncResult* out) {
          if (sync_fails_) return grpc::Status(grpc::StatusCode::INTERNAL, "apply refused");
          out->set_revision(r.revision());
          out->set_applied(1);
          return grpc::Status::OK;
        }));
  }

  void TearDown() override {
    reverter_->Join();
    runner_.reset();
  }

  // A reader of the rollout the syncer reports: `states` one after the other, then `end`.
  static grpc::testing::MockClientReader<ferry::v1::WaitRolloutProgress>* Reader(
      std::vector<ferry::v1::RolloutState> states, grpc::Status end = grpc::Status::OK,
      const std::string& workload = kWorkload) {
    auto* reader = new NiceMock<grpc::testing::MockClientReader<ferry::v1::WaitRolloutProgress>>();
    auto reads = std::make_shared<std::vector<ferry::v1::WaitRolloutProgress>>();
    for (auto state : states) {
      ferry::v1::WaitRolloutProgress p;
      auto* r = p.add_rollouts();
      r->set_workload(workload);
      r->mutable_status()->set_state(state);
      if (state == ferry::v1::ROLLOUT_STATE_ERROR) {
        r->mutable_status()->add_messages(
            "progress deadline exceeded: ReplicaSet \"app-2\" has timed out progressing.");
      } else if (state == ferry::v1::ROLLOUT_STATE_UPDATING) {
        r->mutable_status()->add_messages("0 of 1 updated replicas available");
      }
      reads->push_back(p);
    }
    auto next = std::make_shared<size_t>(0);
    ON_CALL(*reader, Read(_))
        .WillByDefault(Invoke([reads, next](ferry::v1::WaitRolloutProgress* out) {
          if (*next >= reads->size()) return false;
          *out = (*reads)[(*next)++];
          return true;
        }));
    ON_CALL(*reader, Finish()).WillByDefault(Return(end));
    return reader;
  }

  // The rollout the syncer reports: `states` one after the other, then `end`.
  void RolloutGoes(std::vector<ferry::v1::RolloutState> states,
                   grpc::Status end = grpc::Status::OK) {
    EXPECT_CALL(cluster_, WaitRolloutRaw(_, _))
        .WillOnce(DoAll(::testing::SaveArg<1>(&asked_), Return(Reader(states, end))));
  }

  // A job of the store, as a release job that finished.
  ferry::v1::Job ReleaseJob() {
    ferry::v1::Job job;
    job.set_kind(ferry::v1::JOB_KIND_RELEASE);
    job = store_->Submit(job);
    store_->Start(job.id());
    store_->Finish(job.id(), "", "committed and applied");
    return job;
  }

  // Runs an automated release of app 1.0.0 -> 1.1.0; returns its id once it finished and
  // its follows ended.
  std::string ReleaseAndFollow() {
    ferry::v1::Job job;
    job.set_kind(ferry::v1::JOB_KIND_AUTOMATED_RELEASE);
    job = store_->Submit(job);
    store_->Start(job.id());
    AutomationCandidate move;
    move.workload = kWorkload;
    move.container = "app";
    move.from_image = kOld;
    move.to_image = kNew;
    executor_->RunAutomated(job, {move}, "1 container(s) to release");
    reverter_->Join();
    return job.id();
  }

  // The REVERT jobs, each waited for until it finished; no job runs after.
  std::vector<ferry::v1::Job> Reverts() {
    std::vector<ferry::v1::Job> out;
    for (const ferry::v1::Job& j : store_->List(0)) {
      if (j.kind() != ferry::v1::JOB_KIND_REVERT) continue;
      uint64_t version = 0;
      std::optional<ferry::v1::Job> job = store_->Get(j.id(), &version);
      const absl::Time deadline = absl::Now() + absl::Seconds(20);
      while (job.has_value() && !job->has_finished() && absl::Now() < deadline) {
        job = store_->WaitChange(j.id(), &version, absl::Seconds(1));
      }
      if (job.has_value()) out.push_back(*job);
    }
    runner_->Join();  // the revert's work (and its metric) ends after its job finished
    return out;
  }

  double Reverted(const std::string& outcome) {
    return testing::MetricSum(*metrics_, "ferry_automatic_reverts_total", {{"outcome", outcome}});
  }

  NiceMock<ferry::v1::MockGitWriterStub> git_;
  NiceMock<ferry::v1::MockRegistryScannerStub> registry_;
  NiceMock<ferry::v1::MockClusterSyncerStub> cluster_;
  std::shared_ptr<prometheus::Registry> metrics_;
  std::unique_ptr<JobMetrics> job_metrics_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<PeerClients> peers_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<RevertMetrics> revert_metrics_;
  std::unique_ptr<Reverter> reverter_;
  ferry::v1::ListManifestWorkloadsResponse in_git_;
  ferry::v1::WaitRolloutRequest asked_;
  std::mutex mu_;
  std::vector<ferry::v1::ApplyUpdatesRequest> applied_;
  std::vector<std::string> read_revisions_;
  bool conflict_ = false;
  std::atomic<bool> sync_fails_{false};
  int max_followed_ = kMaxFollowedRollouts;
};

TEST_F(ReverterTest, AFailedRolloutIsRevertedLockedAndItsTagRejectedInOneCommit) {
  RolloutGoes({ferry::v1::ROLLOUT_STATE_UPDATING, ferry::v1::ROLLOUT_STATE_ERROR});
  const std::string release = ReleaseAndFollow();
  EXPECT_EQ(store_->Get(release)->state(), ferry::v1::JOB_STATE_SUCCEEDED)
      << "the release itself ends as before";
  EXPECT_THAT(asked_.workloads(), ::testing::ElementsAre(kWorkload));
  EXPECT_EQ(asked_.timeout_seconds(), 30) << "the workload's rollback-timeout";
  std::vector<ferry::v1::Job> reverts = Reverts();
  ASSERT_EQ(reverts.size(), 1u);
  const ferry::v1::Job& revert = reverts[0];
  EXPECT_EQ(revert.state(), ferry::v1::JOB_STATE_SUCCEEDED) << revert.DebugString();
  EXPECT_EQ(revert.reverts_job(), release);
  EXPECT_EQ(revert.cause().user(), "ferry");
  EXPECT_THAT(revert.cause().message(), HasSubstr("automatic revert of job " + release));
  EXPECT_THAT(revert.cause().message(), HasSubstr("app 1.1.0"));
  EXPECT_THAT(revert.cause().message(), HasSubstr("progress deadline exceeded"));
  EXPECT_EQ(revert.revision(), kRevertCommit);
  ASSERT_EQ(revert.results_size(), 1);
  EXPECT_EQ(revert.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(revert.results(0).updates(0).to_image(), kOld);

  EXPECT_EQ(asked_.revision(), "") << "applied: whatever runs is followed";
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_THAT(read_revisions_, ::testing::Contains(kCommit)) << "policies at the release";
  // The release, the revert: one request, all or nothing.
  ASSERT_EQ(applied_.size(), 2u);
  EXPECT_FALSE(applied_[0].all_or_nothing());
  EXPECT_TRUE(applied_[0].omit_diff()) << "the api shows no diff";
  const ferry::v1::ApplyUpdatesRequest& commit = applied_[1];
  EXPECT_FALSE(commit.dry_run());
  EXPECT_TRUE(commit.all_or_nothing());
  ASSERT_EQ(commit.edits_size(), 3);
  EXPECT_EQ(commit.edits(0).image().from_image(), kNew);
  EXPECT_EQ(commit.edits(0).image().to_image(), kOld);
  EXPECT_THAT(commit.edits(1).policy().lock().message(), HasSubstr(release));
  EXPECT_EQ(commit.edits(2).policy().reject_tag().tag(), "1.1.0");
  EXPECT_EQ(commit.edits(2).policy().reject_tag().job(), revert.id());
  EXPECT_EQ(commit.cause().user(), "ferry");
  EXPECT_EQ(commit.job().reverts_job(), release) << "the git note records the revert";
  EXPECT_EQ(Reverted("reverted"), 1);
  EXPECT_EQ(Reverted("conflict"), 0);
  EXPECT_EQ(store_->Get(release)->reverted_by_job(), revert.id())
      << "the release's own record names its revert";
}

TEST_F(ReverterTest, AContainerChangedSinceCommitsNothingAndSaysSo) {
  conflict_ = true;
  RolloutGoes({ferry::v1::ROLLOUT_STATE_ERROR});
  const std::string release = ReleaseAndFollow();
  std::vector<ferry::v1::Job> reverts = Reverts();
  ASSERT_EQ(reverts.size(), 1u);
  EXPECT_EQ(reverts[0].state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_EQ(store_->Get(release)->reverted_by_job(), "") << "nothing was reverted";
  EXPECT_THAT(reverts[0].error(), HasSubstr("nothing reverted: default:deployment/app changed "
                                            "in git since job"));
  EXPECT_THAT(reverts[0].error(), HasSubstr("not locked"));
  EXPECT_THAT(reverts[0].error(),
              HasSubstr("container app has image registry.test/team/app:1.2.0"));
  EXPECT_EQ(reverts[0].results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(applied_.size(), 2u) << "the release and the revert git-writer refused whole";
  EXPECT_TRUE(applied_[1].all_or_nothing());
  EXPECT_EQ(Reverted("conflict"), 1);
  EXPECT_EQ(Reverted("reverted"), 0);
}

TEST_F(ReverterTest, NotReadyWithinRollbackTimeoutIsAFailure) {
  RolloutGoes({ferry::v1::ROLLOUT_STATE_UPDATING},
              grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the rollout did not finish"));
  ReleaseAndFollow();
  std::vector<ferry::v1::Job> reverts = Reverts();
  ASSERT_EQ(reverts.size(), 1u);
  EXPECT_EQ(reverts[0].state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(reverts[0].cause().message(),
              HasSubstr("not ready within rollback-timeout 30s: 0 of 1 updated replicas"));
}

TEST_F(ReverterTest, AnUnknownStateAtRollbackTimeoutRevertsNothing) {
  // GETs failing, the workload not found, a HelmRelease without conditions: cannot tell.
  for (auto state : {ferry::v1::ROLLOUT_STATE_UNKNOWN, ferry::v1::ROLLOUT_STATE_UNSPECIFIED}) {
    RolloutGoes({state},
                grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the rollout did not finish"));
    ReleaseAndFollow();
  }
  RolloutGoes({}, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "revision not applied"));
  ReleaseAndFollow();
  EXPECT_TRUE(Reverts().empty());
  EXPECT_EQ(Reverted("reverted") + Reverted("conflict") + Reverted("failed"), 0);
}

TEST_F(ReverterTest, ACommitWhoseApplyFailedIsFollowedOnceItsRevisionIsApplied) {
  sync_fails_ = true;
  RolloutGoes({ferry::v1::ROLLOUT_STATE_UPDATING, ferry::v1::ROLLOUT_STATE_ERROR});
  const std::string release = ReleaseAndFollow();
  EXPECT_EQ(store_->Get(release)->state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_EQ(asked_.revision(), kCommit) << "the follow waits for the release's commit";
  sync_fails_ = false;
  std::vector<ferry::v1::Job> reverts = Reverts();
  ASSERT_EQ(reverts.size(), 1u);
  EXPECT_EQ(reverts[0].reverts_job(), release);
}

TEST_F(ReverterTest, ANewerReleaseSupersedesTheOlderFollowWhichNeverReverts) {
  // 1.1.0 (job A) is still rolling out when 1.2.0 (job B) is released; the rollout then
  // fails, which is 1.2.0's failure: only B is reverted.
  const ferry::v1::Job a = ReleaseJob();
  const ferry::v1::Job b = ReleaseJob();
  absl::Notification b_released, a_watching;
  EXPECT_CALL(cluster_, WaitRolloutRaw(_, _))
      .WillRepeatedly(Invoke([&](grpc::ClientContext*, const ferry::v1::WaitRolloutRequest& r)
                                 -> grpc::ClientReaderInterface<ferry::v1::WaitRolloutProgress>* {
        if (r.revision() == "rev-b") return Reader({ferry::v1::ROLLOUT_STATE_ERROR});
        // A's follow: its rollout goes on until B is released, then it sees B's failure.
        auto* reader = Reader({ferry::v1::ROLLOUT_STATE_UPDATING, ferry::v1::ROLLOUT_STATE_ERROR});
        a_watching.Notify();
        b_released.WaitForNotificationWithTimeout(absl::Seconds(10));
        return reader;
      }));
  ferry::v1::WorkloadResult a_released = Released();
  ferry::v1::WorkloadResult b_released_result = Released();
  b_released_result.mutable_updates(0)->set_from_image(kNew);
  b_released_result.mutable_updates(0)->set_to_image("registry.test/team/app:1.2.0");
  reverter_->Released(a, "rev-a", {a_released}, /*applied=*/false);
  a_watching.WaitForNotificationWithTimeout(absl::Seconds(10));
  reverter_->Released(b, "rev-b", {b_released_result}, /*applied=*/false);
  b_released.Notify();
  reverter_->Join();
  std::vector<ferry::v1::Job> reverts = Reverts();
  ASSERT_EQ(reverts.size(), 1u);
  EXPECT_EQ(reverts[0].reverts_job(), b.id());
  EXPECT_THAT(reverts[0].cause().message(), HasSubstr("app 1.2.0"));
  EXPECT_EQ(store_->Get(a.id())->reverted_by_job(), "");
  EXPECT_EQ(Reverted("reverted"), 1);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : applied_) {
    for (const auto& e : r.edits()) {
      if (e.policy().has_reject_tag()) {
        EXPECT_EQ(e.policy().reject_tag().tag(), "1.2.0");
      }
    }
  }
}

TEST_F(ReverterTest, AHealthyRolloutIsNotReverted) {
  RolloutGoes({ferry::v1::ROLLOUT_STATE_UPDATING, ferry::v1::ROLLOUT_STATE_READY});
  ReleaseAndFollow();
  EXPECT_TRUE(Reverts().empty());
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(applied_.size(), 1u);
  EXPECT_EQ(Reverted("reverted") + Reverted("conflict") + Reverted("failed"), 0);
}

TEST_F(ReverterTest, AFollowThatCannotTellRevertsNothing) {
  RolloutGoes({ferry::v1::ROLLOUT_STATE_UPDATING},
              grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset"));
  ReleaseAndFollow();
  EXPECT_TRUE(Reverts().empty());
}

TEST_F(ReverterTest, AWorkloadWithoutRollbackAutoIsNotFollowed) {
  in_git_.mutable_workloads(0)->mutable_policy()->set_rollback("off");
  EXPECT_CALL(cluster_, WaitRolloutRaw(_, _)).Times(0);
  ReleaseAndFollow();
  EXPECT_TRUE(Reverts().empty());
}

class ReverterLimitTest : public ReverterTest {
 protected:
  ReverterLimitTest() { max_followed_ = 1; }
};

TEST_F(ReverterLimitTest, FollowsBeyondTheLimitAreNotFollowedAndStartNoThread) {
  std::vector<ferry::v1::WorkloadResult> released;
  for (const char* id : {"default:deployment/a", "default:deployment/b", "default:deployment/c"}) {
    ferry::v1::ManifestWorkload w;
    w.set_id(id);
    *w.mutable_policy() = Auto("30s");
    *in_git_.add_workloads() = w;
    released.push_back(Released(id));
  }
  EXPECT_CALL(cluster_, WaitRolloutRaw(_, _))
      .WillOnce(Return(
          Reader({ferry::v1::ROLLOUT_STATE_READY}, grpc::Status::OK, "default:deployment/a")));
  reverter_->Released(ReleaseJob(), kCommit, released);
  reverter_->Join();
  EXPECT_EQ(Reverted("not_followed"), 2);
  // The slot is free again: the next release is followed.
  EXPECT_CALL(cluster_, WaitRolloutRaw(_, _))
      .WillOnce(Return(
          Reader({ferry::v1::ROLLOUT_STATE_READY}, grpc::Status::OK, "default:deployment/b")));
  reverter_->Released(ReleaseJob(), kCommit, {released[1]});
  reverter_->Join();
  EXPECT_EQ(Reverted("not_followed"), 2);
  EXPECT_TRUE(Reverts().empty());
}

}  // namespace
}  // namespace ferry::api
