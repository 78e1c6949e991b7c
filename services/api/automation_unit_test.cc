// When the automation loop runs its passes, on a FakeClock: the first at once, then every
// interval; a failed pass retried after 1 s, doubling up to 30 s and never beyond the
// interval; a (re)connected event stream and a new tag for an automated repository at once;
// a soaking tag's eligibility (at least 1 s later, at most the interval).
// Leader election (issue 21): a standby runs no pass, a new leader runs one at once, and a pass
// whose leadership lapsed while it planned submits no job (a LeaderElector on a FakeLeaseApi).
// The peers are the generated mock stubs; the event stream is a scripted reader.
#include <gmock/gmock.h>
#include <grpcpp/test/client_context_test_peer.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "ferry/v1/cluster_syncer_mock.grpc.pb.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "ferry/v1/registry_scanner_mock.grpc.pb.h"
#include "lib/kube/fake_lease_api.h"
#include "lib/kube/leader.h"
#include "lib/runtime/fake_clock.h"
#include "lib/runtime/proto_time.h"
#include "services/api/automation.h"
#include "tests/support/metrics.h"

namespace ferry::api {
namespace {

using ::testing::_;
using ::testing::Invoke;
using ::testing::NiceMock;
using ::testing::Return;

constexpr char kApp[] = "registry.test/team/app";

// The scanner's WatchEvents streams, as the test scripts them: a stream connects when the
// test says so, then reads the events the test sends, until the test closes every stream.
class EventStreams {
 public:
  grpc::ClientReaderInterface<ferry::v1::TagEvent>* Open(grpc::ClientContext* context) {
    auto* reader = new NiceMock<grpc::testing::MockClientReader<ferry::v1::TagEvent>>();
    ON_CALL(*reader, WaitForInitialMetadata()).WillByDefault(Invoke([this, context] {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return connect_ || closed_; });
      // A stream that reached the scanner carries its initial metadata.
      peers_.push_back(std::make_unique<grpc::testing::ClientContextTestPeer>(context));
      peers_.back()->AddServerInitialMetadata("ferry-version", "test");
    }));
    ON_CALL(*reader, Read(_)).WillByDefault(Invoke([this](ferry::v1::TagEvent* event) {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return !events_.empty() || closed_; });
      if (events_.empty()) return false;
      *event = events_.front();
      events_.pop_front();
      return true;
    }));
    ON_CALL(*reader, Finish()).WillByDefault(Return(grpc::Status::CANCELLED));
    return reader;
  }
  void Connect() {
    Set([&] { connect_ = true; });
  }
  void Send(const std::string& repository, ferry::v1::TagEventKind kind) {
    ferry::v1::TagEvent event;
    event.set_repository(repository);
    event.set_kind(kind);
    Set([&] { events_.push_back(event); });
  }
  void Close() {
    Set([&] { closed_ = true; });
  }

 private:
  template <typename F>
  void Set(F change) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      change();
    }
    changed_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable changed_;
  bool connect_ = false;
  bool closed_ = false;
  std::deque<ferry::v1::TagEvent> events_;
  std::vector<std::unique_ptr<grpc::testing::ClientContextTestPeer>> peers_;
};

class AutomationUnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One automated workload whose repository lists no newer tag: passes release nothing.
    ferry::v1::ManifestWorkload* w = in_git_.add_workloads();
    w->set_id("default:deployment/app");
    w->mutable_policy()->set_automated(true);
    w->add_containers()->set_image(std::string(kApp) + ":1.0.0");
    ON_CALL(git_, ListWorkloads(_, _, _))
        .WillByDefault(Invoke([this](grpc::ClientContext*, const auto&, auto* out) {
          if (git_failures_ > 0) {
            --git_failures_;
            return grpc::Status(grpc::StatusCode::UNAVAILABLE, "git-writer is starting");
          }
          *out = in_git_;
          return grpc::Status::OK;
        }));
    ON_CALL(registry_, WatchEventsRaw(_, _))
        .WillByDefault(Invoke(
            [this](grpc::ClientContext* context, const auto&) { return streams_.Open(context); }));
  }
  void TearDown() override {
    streams_.Close();
    if (automation_) automation_->Stop();
  }

  void Start(absl::Duration interval) {
    automation_ =
        std::make_unique<Automation>(peers_, store_, executor_, metrics_, interval, clock_);
    automation_->Start();
    // The first wait ends at once (a pass is asked for at the start); the second begins
    // after that pass.
    ASSERT_TRUE(clock_.AwaitWaits(2));
    ASSERT_EQ(automation_->passes(), 1u);
  }
  // Advances the clock to just before the next pass is due and checks none runs, then to
  // when it is due, and waits for that pass to end (the loop waits again).
  void ExpectPassAfter(absl::Duration pause) {
    const uint64_t passes = automation_->passes();
    const int64_t waits = clock_.waits_begun();
    clock_.Advance(pause - absl::Milliseconds(1));
    EXPECT_EQ(clock_.waits_begun(), waits) << "a pass before " << pause;
    EXPECT_EQ(clock_.waiting(), 1) << "a pass before " << pause;
    clock_.Advance(absl::Milliseconds(1));
    ASSERT_TRUE(clock_.AwaitWaits(waits + 1)) << "no pass after " << pause;
    EXPECT_EQ(automation_->passes(), passes + 1);
  }
  // Does `cause` and waits for the pass it asks for, the clock standing still.
  void ExpectPassOn(const std::function<void()>& cause) {
    const uint64_t passes = automation_->passes();
    const int64_t waits = clock_.waits_begun();
    cause();
    ASSERT_TRUE(clock_.AwaitWaits(waits + 1)) << "no pass";
    EXPECT_EQ(automation_->passes(), passes + 1);
  }

  NiceMock<ferry::v1::MockGitWriterStub> git_;
  NiceMock<ferry::v1::MockRegistryScannerStub> registry_;
  NiceMock<ferry::v1::MockClusterSyncerStub> cluster_;
  CancelSet cancel_;
  PeerClients peers_{Peers{git_, registry_, cluster_}, cancel_};
  prometheus::Registry metrics_registry_;
  JobMetrics job_metrics_{metrics_registry_};
  JobStore store_{10, job_metrics_};
  Executor executor_{peers_, store_};
  AutomationMetrics metrics_{metrics_registry_};
  runtime::FakeClock clock_;
  EventStreams streams_;
  ferry::v1::ListManifestWorkloadsResponse in_git_;
  std::atomic<int> git_failures_{0};
  std::unique_ptr<Automation> automation_;

  // The value of an unlabelled gauge of the automation's metrics.
  double prometheus_gauge(const std::string& name) {
    for (const auto& family : metrics_registry_.Collect()) {
      if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
    }
    return -1;
  }
};

TEST_F(AutomationUnitTest, FirstPassAtOnceThenOneEveryInterval) {
  Start(absl::Minutes(5));
  ExpectPassAfter(absl::Minutes(5));
  ExpectPassAfter(absl::Minutes(5));
}

TEST_F(AutomationUnitTest, AFailedPassIsRetriedDoublingUpTo30Seconds) {
  git_failures_ = 7;
  Start(absl::Minutes(5));  // the first failure
  for (int seconds : {1, 2, 4, 8, 16, 30, 30}) ExpectPassAfter(absl::Seconds(seconds));
  // Git answered the last one: the interval again, and the next failure starts from 1 s.
  ExpectPassAfter(absl::Minutes(5));
  git_failures_ = 1;
  ExpectPassAfter(absl::Minutes(5));
  ExpectPassAfter(absl::Seconds(1));
}

TEST_F(AutomationUnitTest, RetriesNeverWaitLongerThanTheInterval) {
  git_failures_ = 5;
  Start(absl::Seconds(5));
  for (int seconds : {1, 2, 4, 5, 5}) ExpectPassAfter(absl::Seconds(seconds));
}

TEST_F(AutomationUnitTest, AConnectedStreamAndANewTagOfAnAutomatedRepositoryAskForAPass) {
  Start(absl::Minutes(5));
  const absl::Time start = clock_.Now();
  // Events may have been missed before the stream connected: a pass looks at every tag.
  ExpectPassOn([&] { streams_.Connect(); });
  ExpectPassOn([&] { streams_.Send(kApp, ferry::v1::TAG_EVENT_KIND_NEW_TAG); });
  ExpectPassOn([&] { streams_.Send(kApp, ferry::v1::TAG_EVENT_KIND_TAG_MOVED); });
  EXPECT_EQ(clock_.Now(), start) << "no pass waited for the clock";
  // A triggered pass starts the interval again.
  ExpectPassAfter(absl::Minutes(5));
}

// The watch list goes to the scanner when it changes and again on every (re)connection of
// the event stream: the scanner at the other end may be a new leader of its replicas (issue
// 21) that never got it.
TEST_F(AutomationUnitTest, TheWatchListIsSentAgainWhenTheEventStreamConnects) {
  std::atomic<int> watches{0};
  ON_CALL(registry_, Watch(_, _, _))
      .WillByDefault(Invoke([&](grpc::ClientContext*, const ferry::v1::WatchRequest& request,
                                ferry::v1::WatchResponse*) {
        EXPECT_EQ(request.repositories_size(), 1);
        ++watches;
        return grpc::Status::OK;
      }));
  Start(absl::Minutes(5));
  EXPECT_EQ(watches, 1);
  ExpectPassAfter(absl::Minutes(5));
  EXPECT_EQ(watches, 1) << "an unchanged list is not sent again";
  ExpectPassOn([&] { streams_.Connect(); });
  EXPECT_EQ(watches, 2);
  ExpectPassAfter(absl::Minutes(5));
  EXPECT_EQ(watches, 2);
}

// Soak times (issue 19): a pass that leaves a tag soaking asks for the next pass when the
// tag becomes eligible (never sooner than 1 s, never later than the interval), so the
// automation takes it then instead of an interval later.
class SoakingAutomationUnitTest : public AutomationUnitTest {
 protected:
  // The repository lists 1.0.0 (old) and 1.1.0 created `age` ago; the workload soaks tags
  // for `min_age`.
  void Soak(const std::string& min_age, absl::Duration age) {
    in_git_.mutable_workloads(0)->mutable_policy()->set_min_age_all(min_age);
    const absl::Time start = clock_.Now();
    ON_CALL(registry_, ListTags(_, _, _))
        .WillByDefault(Invoke(
            [start, age](grpc::ClientContext*, const auto&, ferry::v1::ListTagsResponse* out) {
              for (const auto& [tag, created] :
                   {std::pair{"1.1.0", start - age}, std::pair{"1.0.0", start - absl::Hours(24)}}) {
                ferry::v1::TagInfo* t = out->add_tags();
                t->set_tag(tag);
                *t->mutable_created() = runtime::ToProtoTimestamp(created);
              }
              out->set_total(2);
              return grpc::Status::OK;
            }));
  }
  // From now on git says the container runs 1.1.0: a pass finds nothing to release.
  void Released() {
    in_git_.mutable_workloads(0)->mutable_containers(0)->set_image(std::string(kApp) + ":1.1.0");
  }
};

TEST_F(SoakingAutomationUnitTest, APassRunsWhenTheSoakingTagBecomesEligible) {
  Soak("1m", absl::Seconds(10));
  const absl::Time start = clock_.Now();
  Start(absl::Minutes(5));
  EXPECT_EQ(automation_->wake_at(), start + absl::Seconds(50));
  EXPECT_EQ(prometheus_gauge("ferry_automation_held_containers"), 1);
  EXPECT_EQ(prometheus_gauge("ferry_automation_blocked_containers"), 0);
  Released();
  ExpectPassAfter(absl::Seconds(50));
  EXPECT_EQ(automation_->wake_at(), absl::InfiniteFuture());
  ExpectPassAfter(absl::Minutes(5));
}

// A pass that cannot read git plans nothing: the wake-up time of the pass before it (now in
// the past) must not replace the retries' doubling with a pass every second.
TEST_F(SoakingAutomationUnitTest, AFailedPassAfterAWakeUpRetriesWithTheBackoff) {
  Soak("1m", absl::Seconds(10));
  Start(absl::Minutes(5));
  git_failures_ = 4;
  ExpectPassAfter(absl::Seconds(50));  // the wake-up; git fails
  EXPECT_EQ(automation_->wake_at(), absl::InfiniteFuture());
  for (int seconds : {1, 2, 4}) ExpectPassAfter(absl::Seconds(seconds));
  // Git answers again (the container runs 1.1.0 by now: nothing to do): the interval.
  Released();
  ExpectPassAfter(absl::Seconds(8));
  ExpectPassAfter(absl::Minutes(5));
}

TEST_F(SoakingAutomationUnitTest, AWakeUpIsNeverSoonerThanASecondNorLaterThanTheInterval) {
  Soak("1m", absl::Seconds(60) - absl::Milliseconds(200));
  Start(absl::Minutes(5));
  Released();
  ExpectPassAfter(Automation::kMinWake);
  ExpectPassAfter(absl::Minutes(5));
}

TEST_F(SoakingAutomationUnitTest, ASoakLongerThanTheIntervalWaitsForTheInterval) {
  Soak("1h", absl::ZeroDuration());
  Start(absl::Minutes(5));
  ExpectPassAfter(absl::Minutes(5));
  ExpectPassAfter(absl::Minutes(5));
}

// Several replicas (issue 21): the automation follows a LeaderElector on an in-memory Lease,
// driven round by round on the same FakeClock.
class LeaderAutomationUnitTest : public AutomationUnitTest {
 protected:
  void SetUp() override {
    AutomationUnitTest::SetUp();
    kube::LeaderElector::Options options;
    options.component = "api";
    options.lease = "ns/ferry-api";
    options.identity = kube::MakeIdentity("api", "pod-a");
    options.lease_duration = absl::Seconds(15);
    options.renew_deadline = absl::Seconds(10);
    options.retry_period = absl::Seconds(2);
    elector_ = std::make_unique<kube::LeaderElector>(lease_, options, metrics_registry_, clock_);
    automation_ =
        std::make_unique<Automation>(peers_, store_, executor_, metrics_, absl::Minutes(5), clock_);
    automation_->SetWritePermit([this] { return elector_->WritePermit(); });
    ON_CALL(registry_, Watch(_, _, _)).WillByDefault(Invoke([this](auto...) {
      ++watches_;
      return grpc::Status::OK;
    }));
    elector_->SetLeadershipSink([this](bool leading) { automation_->SetLeading(leading); });
  }
  // One round of the election thread.
  bool Round() {
    const absl::Time attempt = clock_.SteadyNow();
    const bool held = elector_->TryAcquireOrRenew();
    elector_->UpdateLeadership(held, attempt);
    return held;
  }
  // Another replica holds the Lease, renewed now.
  void HeldByOther() {
    kube::LeaseRecord r;
    r.holder_identity = kube::MakeIdentity("api", "pod-b");
    r.lease_duration = absl::Seconds(15);
    r.acquire_time = r.renew_time = clock_.Now();
    lease_.Set(r);
  }
  // The registry lists 1.1.0, newer than the 1.0.0 in git: a pass releases it. Listing the
  // tags takes `planning_` of the clock.
  void NewerTag() {
    ON_CALL(registry_, ListTags(_, _, _))
        .WillByDefault(
            Invoke([this](grpc::ClientContext*, const auto&, ferry::v1::ListTagsResponse* out) {
              const absl::Time now = clock_.Now();
              for (const auto& [tag, created] : {std::pair{"1.1.0", now - absl::Hours(1)},
                                                 std::pair{"1.0.0", now - absl::Hours(24)}}) {
                ferry::v1::TagInfo* t = out->add_tags();
                t->set_tag(tag);
                *t->mutable_created() = runtime::ToProtoTimestamp(created);
              }
              out->set_total(2);
              clock_.Advance(planning_);
              return grpc::Status::OK;
            }));
  }
  double Runs(const std::string& outcome) {
    return testing::MetricSum(metrics_registry_, "ferry_automation_runs_total",
                              {{"outcome", outcome}});
  }

  kube::FakeLeaseApi lease_;
  std::unique_ptr<kube::LeaderElector> elector_;
  std::atomic<int> watches_{0};  // Watch calls to the scanner
  absl::Duration planning_ = absl::ZeroDuration();
};

TEST_F(LeaderAutomationUnitTest, OnlyTheLeaderRunsPassesAndANewLeaderRunsOneAtOnce) {
  HeldByOther();
  automation_->Start();
  EXPECT_FALSE(Round());
  ASSERT_TRUE(clock_.AwaitWaits(1));
  // A standby: the pass asked for at the start and the interval's pass wait for leadership.
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(clock_.AwaitWaits(2));
  EXPECT_EQ(automation_->passes(), 0u);
  // The other replica stopped renewing a lease duration ago: this one takes over and runs a
  // pass at once, without waiting for the clock.
  ExpectPassOn([&] { EXPECT_TRUE(Round()); });
  EXPECT_EQ(Runs("nothing"), 1);
  // It loses the Lease (the other replica took it back): no pass an interval later.
  HeldByOther();
  EXPECT_FALSE(Round());
  const int64_t waits = clock_.waits_begun();
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(clock_.AwaitWaits(waits + 1));
  EXPECT_EQ(automation_->passes(), 1u);
  // It leads again (the other stopped renewing): its first pass sends the scanner the watch
  // list again, though it did not change, since another leader may have set another.
  EXPECT_EQ(watches_, 1);
  ExpectPassOn([&] { EXPECT_TRUE(Round()); });
  EXPECT_EQ(watches_, 2);
}

TEST_F(LeaderAutomationUnitTest, APassWhoseLeadershipLapsedWhilePlanningSubmitsNoJob) {
  NewerTag();
  ASSERT_TRUE(Round());
  // Planning outlasts the renew deadline (no renewal meanwhile): the permit asked for right
  // before submitting fails.
  planning_ = absl::Seconds(11);
  EXPECT_EQ(automation_->RunOnce(), std::nullopt);
  EXPECT_TRUE(store_.List(0).empty());
  EXPECT_EQ(Runs("standby"), 1);
  // Renewed, and planning within the deadline: the pass submits its automated release.
  planning_ = absl::ZeroDuration();
  ASSERT_TRUE(Round());
  std::optional<std::string> job = automation_->RunOnce();
  ASSERT_TRUE(job.has_value());
  ASSERT_EQ(store_.List(0).size(), 1u);
  EXPECT_EQ(store_.List(0)[0].kind(), ferry::v1::JOB_KIND_AUTOMATED_RELEASE);
}

TEST_F(LeaderAutomationUnitTest, AStandbyPassReadsNothing) {
  HeldByOther();
  EXPECT_FALSE(Round());
  EXPECT_CALL(git_, ListWorkloads(_, _, _)).Times(0);
  EXPECT_EQ(automation_->RunOnce(), std::nullopt);
  EXPECT_EQ(Runs("standby"), 1);
}

}  // namespace
}  // namespace ferry::api
