// The leader election state machine with an in-memory Lease and a fake clock: acquiring a
// free, expired or unexpired lease, a lost race (conflict), renewals, stopping at the renew
// deadline, a non-Ferry holder, release; plus the Lease's JSON form and the fence. The real
// API server and two processes: tests/leader_syncer_binary_test.cc.
#include "lib/kube/leader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/kube/fake_lease_api.h"
#include "lib/kube/lease.h"
#include "lib/runtime/fake_clock.h"
#include "lib/status/status_matchers.h"
#include "tests/support/metrics.h"

namespace ferry::kube {
namespace {

using ::ferry::testing::MetricSum;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kOther[] = "ferry-cluster-syncer/pod-b/0123456789abcdef";

class LeaderTest : public ::testing::Test {
 protected:
  LeaderElector& Elector() {
    if (!elector_) {
      LeaderElector::Options options;
      options.lease = "ns/lease";
      options.identity = "ferry-cluster-syncer/pod-a/fedcba9876543210";
      elector_ = std::make_unique<LeaderElector>(api_, options, registry_, clock_);
      elector_->SetLeadershipSink([this](bool leading) { changes_.push_back(leading); });
    }
    return *elector_;
  }
  // One round of the election thread.
  bool Round() {
    const absl::Time attempt = clock_.Now();
    const bool held = Elector().TryAcquireOrRenew();
    Elector().UpdateLeadership(held, attempt);
    return held;
  }
  LeaseRecord HeldBy(const std::string& holder) {
    LeaseRecord r;
    r.holder_identity = holder;
    r.lease_duration = absl::Seconds(15);
    r.acquire_time = r.renew_time = clock_.Now();
    r.lease_transitions = 3;
    return r;
  }
  double Metric(const std::string& name) {
    return MetricSum(registry_, name, {{"component", "cluster-syncer"}, {"lease", "ns/lease"}});
  }

  FakeLeaseApi api_;
  runtime::FakeClock clock_;
  prometheus::Registry registry_;
  std::vector<bool> changes_;  // before elector_: its destructor's release reports here
  std::unique_ptr<LeaderElector> elector_;
};

TEST_F(LeaderTest, CreatesAMissingLeaseAndLeads) {
  EXPECT_FALSE(Elector().IsLeader());
  EXPECT_TRUE(Round());
  EXPECT_TRUE(Elector().IsLeader());
  FERRY_EXPECT_OK(Elector().WritePermit());
  ASSERT_TRUE(api_.lease);
  EXPECT_EQ(api_.lease->holder_identity, Elector().options().identity);
  EXPECT_EQ(api_.lease->lease_duration, absl::Seconds(15));
  EXPECT_EQ(api_.lease->lease_transitions, 0);
  EXPECT_EQ(changes_, (std::vector<bool>{false, true}));
  EXPECT_EQ(Metric("ferry_leader"), 1);
  EXPECT_EQ(Metric("ferry_leader_transitions_total"), 1);
}

TEST_F(LeaderTest, TakesAFreeLeaseAndCountsATransition) {
  api_.Set(HeldBy(""));
  EXPECT_TRUE(Round());
  EXPECT_EQ(api_.lease->holder_identity, Elector().options().identity);
  EXPECT_EQ(api_.lease->lease_transitions, 4);
  EXPECT_EQ(api_.lease->acquire_time, clock_.Now());
}

TEST_F(LeaderTest, WaitsOutAnUnexpiredLeaseJudgedByItsOwnClock) {
  // The holder's renewTime is far in the past by our clock (clock skew): not what counts;
  // only how long the record has stood unchanged since we saw it.
  LeaseRecord record = HeldBy(kOther);
  record.renew_time = clock_.Now() - absl::Hours(1);
  api_.Set(record);
  EXPECT_FALSE(Round());
  EXPECT_FALSE(Elector().IsLeader());
  EXPECT_EQ(api_.updates, 0);
  absl::Status permit = Elector().WritePermit();
  EXPECT_THAT(permit, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(kOther)));
  EXPECT_EQ(Elector().Leader(), kOther);

  clock_.Advance(absl::Seconds(10));
  EXPECT_FALSE(Round());
  // The holder renews: the 15 s start again.
  api_.Set(HeldBy(kOther));
  clock_.Advance(absl::Seconds(6));
  EXPECT_FALSE(Round());
  clock_.Advance(absl::Seconds(14));
  EXPECT_FALSE(Round());
  EXPECT_EQ(api_.updates, 0);
  clock_.Advance(absl::Seconds(1));  // 15 s without a change: expired
  EXPECT_TRUE(Round());
  EXPECT_TRUE(Elector().IsLeader());
  EXPECT_EQ(api_.lease->holder_identity, Elector().options().identity);
  EXPECT_EQ(api_.lease->lease_transitions, 4);
  EXPECT_EQ(Metric("ferry_leader_transitions_total"), 1);
}

TEST_F(LeaderTest, LosesARaceOnConflictAndDoesNotLead) {
  api_.Set(HeldBy(kOther));
  EXPECT_FALSE(Round());
  clock_.Advance(absl::Seconds(16));
  // Between our read and our write, the other instance renews: our write conflicts.
  class Racing final : public LeaseApi {
   public:
    Racing(FakeLeaseApi& inner, LeaseRecord renewal) : inner_(inner), renewal_(renewal) {}
    absl::StatusOr<LeaseRecord> Get() override {
      absl::StatusOr<LeaseRecord> got = inner_.Get();
      inner_.Set(renewal_);
      return got;
    }
    absl::StatusOr<LeaseRecord> Create(const LeaseRecord& r) override { return inner_.Create(r); }
    absl::StatusOr<LeaseRecord> Update(const LeaseRecord& r) override { return inner_.Update(r); }

   private:
    FakeLeaseApi& inner_;
    LeaseRecord renewal_;
  } racing(api_, HeldBy(kOther));
  LeaderElector::Options options;
  options.lease = "ns/lease";
  options.identity = "ferry-cluster-syncer/pod-c/00112233445566778899";
  prometheus::Registry registry;
  LeaderElector elector(racing, options, registry, clock_);
  EXPECT_FALSE(elector.TryAcquireOrRenew());  // first sight: not expired yet for it
  clock_.Advance(absl::Seconds(16));
  EXPECT_FALSE(elector.TryAcquireOrRenew());  // expired, but the update conflicts
  EXPECT_FALSE(elector.IsLeader());
  EXPECT_EQ(api_.lease->holder_identity, kOther);
}

TEST_F(LeaderTest, RenewsEveryRoundAndKeepsAcquireTime) {
  ASSERT_TRUE(Round());
  const absl::Time acquired = api_.lease->acquire_time;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(2));
    ASSERT_TRUE(Round());
  }
  EXPECT_EQ(api_.lease->acquire_time, acquired);
  EXPECT_EQ(api_.lease->renew_time, clock_.Now());
  EXPECT_EQ(api_.lease->lease_transitions, 0);
  EXPECT_TRUE(Elector().IsLeader());
  EXPECT_EQ(Metric("ferry_leader_transitions_total"), 1);
}

TEST_F(LeaderTest, StopsWritingAtTheRenewDeadlineWhenRenewalsFail) {
  ASSERT_TRUE(Round());
  api_.update_error = absl::UnavailableError("API server down");
  clock_.Advance(absl::Seconds(2));
  EXPECT_FALSE(Round());
  EXPECT_TRUE(Elector().IsLeader());  // within the deadline: still leads
  clock_.Advance(absl::Seconds(7));
  EXPECT_TRUE(Elector().IsLeader());
  clock_.Advance(absl::Seconds(1));
  // 10 s after the last successful renewal began: no write may start, even before the
  // election thread's next round notices.
  EXPECT_FALSE(Elector().IsLeader());
  EXPECT_THAT(Elector().WritePermit(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Metric("ferry_leader"), 1);
  Round();
  EXPECT_EQ(Metric("ferry_leader"), 0);
  EXPECT_EQ(changes_, (std::vector<bool>{false, true, false}));
  // Renewals work again: it leads again.
  api_.update_error = absl::OkStatus();
  EXPECT_TRUE(Round());
  EXPECT_TRUE(Elector().IsLeader());
  EXPECT_EQ(Metric("ferry_leader_transitions_total"), 2);
}

TEST_F(LeaderTest, StopsLeadingAtOnceWhenAnotherHolderIsSeen) {
  ASSERT_TRUE(Round());
  api_.Set(HeldBy(kOther));  // (as after a pause past our deadline)
  clock_.Advance(absl::Seconds(2));
  EXPECT_FALSE(Round());
  EXPECT_FALSE(Elector().IsLeader());
  EXPECT_EQ(changes_, (std::vector<bool>{false, true, false}));
}

TEST_F(LeaderTest, NeverTakesALeaseHeldByANonFerryIdentity) {
  api_.Set(HeldBy("kube-controller-manager_0d4c"));
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(Round());
    clock_.Advance(absl::Minutes(1));
  }
  EXPECT_EQ(api_.updates, 0);
  EXPECT_EQ(api_.lease->holder_identity, "kube-controller-manager_0d4c");
  EXPECT_EQ(Metric("ferry_leader_foreign_holder"), 1);
  EXPECT_THAT(Elector().WritePermit(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not a Ferry instance")));
  // Once it is released, it is taken.
  api_.Set(HeldBy(""));
  EXPECT_TRUE(Round());
  EXPECT_EQ(Metric("ferry_leader_foreign_holder"), 0);
}

TEST_F(LeaderTest, ReleasesTheLeaseOnStop) {
  ASSERT_TRUE(Round());
  Elector().Stop();
  EXPECT_EQ(api_.lease->holder_identity, "");
  EXPECT_EQ(api_.lease->lease_duration, absl::Seconds(1));
  EXPECT_FALSE(Elector().IsLeader());
  EXPECT_EQ(Metric("ferry_leader"), 0);
}

TEST_F(LeaderTest, ReadFailuresDoNotLead) {
  api_.get_error = absl::UnavailableError("down");
  EXPECT_FALSE(Round());
  EXPECT_FALSE(Elector().IsLeader());
  EXPECT_THAT(Elector().WritePermit(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no leader")));
}

TEST(IdentityTest, FerryIdentities) {
  const std::string id = MakeIdentity("cluster-syncer", "ferry-cluster-syncer-7d9f-x2");
  EXPECT_TRUE(IsFerryIdentity(id)) << id;
  EXPECT_NE(id, MakeIdentity("cluster-syncer", "ferry-cluster-syncer-7d9f-x2"));
  EXPECT_FALSE(IsFerryIdentity("kube-controller-manager_0d4c"));
  EXPECT_FALSE(IsFerryIdentity("ferry-cluster-syncer/pod"));
  EXPECT_FALSE(IsFerryIdentity(""));
}

TEST(LeaseJsonTest, RoundTripsWithMicroseconds) {
  LeaseRecord record;
  record.holder_identity = kOther;
  record.lease_duration = absl::Seconds(15);
  record.acquire_time = absl::FromUnixMicros(1700000000123456);
  record.renew_time = absl::FromUnixMicros(1700000005000001);
  record.lease_transitions = 7;
  record.resource_version = "42";
  nlohmann::json json = LeaseToJson("ns", "lease", record);
  EXPECT_EQ(json["spec"]["renewTime"], "2023-11-14T22:13:25.000001Z");
  EXPECT_EQ(json["metadata"]["resourceVersion"], "42");
  FERRY_ASSERT_OK_AND_ASSIGN(LeaseRecord back, LeaseFromJson(json));
  EXPECT_EQ(back, record);
  json["spec"]["renewTime"] = "yesterday";
  EXPECT_THAT(LeaseFromJson(json), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A clock whose wall time can be stepped (as NTP or an operator does) while its steady
// reading, and so every interval, goes on: FakeClock's time is the steady reading.
class SteppedClock final : public runtime::Clock {
 public:
  absl::Time Now() override { return steady.Now() + step; }
  absl::Time SteadyNow() override { return steady.Now(); }
  void SleepFor(absl::Duration d) override { steady.SleepFor(d); }
  bool WaitUntil(absl::Mutex& mu, absl::Time deadline, const std::function<bool()>& done) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return steady.WaitUntil(mu, deadline - step, done);
  }
  runtime::FakeClock steady;
  absl::Duration step = absl::ZeroDuration();
};

TEST(LeaderClockTest, AWallClockStepNeitherExtendsNorEndsLeadership) {
  FakeLeaseApi api;
  SteppedClock clock;
  prometheus::Registry registry;
  LeaderElector::Options options;
  options.lease = "ns/lease";
  options.identity = "ferry-cluster-syncer/pod-a/fedcba9876543210";
  LeaderElector elector(api, options, registry, clock);
  api.update_error = absl::UnavailableError("etcd is slow");  // renewals fail from now on
  ASSERT_TRUE(elector.TryAcquireOrRenew());                   // a create
  elector.UpdateLeadership(true, clock.SteadyNow());
  // The Lease carries wall time, for others to read.
  EXPECT_EQ(api.lease->renew_time, clock.Now());
  // The wall clock steps back an hour: the renew deadline still passes 10 s after the
  // renewal, by the steady reading.
  clock.step = -absl::Hours(1);
  clock.steady.Advance(absl::Seconds(9));
  EXPECT_TRUE(elector.IsLeader());
  EXPECT_EQ(elector.WriteValidity().value_or(absl::ZeroDuration()), absl::Seconds(1));
  clock.steady.Advance(absl::Seconds(1));
  EXPECT_FALSE(elector.IsLeader());
  EXPECT_THAT(elector.WritePermit(), StatusIs(absl::StatusCode::kUnavailable));
  // A step forward does not end leadership early either.
  api.update_error = absl::OkStatus();
  ASSERT_TRUE(elector.TryAcquireOrRenew());
  elector.UpdateLeadership(true, clock.SteadyNow());
  clock.step = absl::Hours(2);
  EXPECT_TRUE(elector.IsLeader());
  EXPECT_EQ(elector.WriteValidity().value_or(absl::ZeroDuration()), absl::Seconds(10));
}

}  // namespace
}  // namespace ferry::kube
