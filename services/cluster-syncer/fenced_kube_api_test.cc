#include "services/cluster-syncer/fenced_kube_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <vector>

#include "lib/kube/fake_lease_api.h"
#include "lib/kube/leader.h"
#include "lib/runtime/fake_clock.h"
#include "lib/status/status_matchers.h"
#include "services/cluster-syncer/fake_kube_api.h"

namespace ferry::cluster_syncer {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

TEST(FencedKubeApiTest, RefusesWritesWithoutPermitAndPassesReadsAndDryRuns) {
  FakeKubeApi inner;
  inner.Put({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}});
  absl::StatusOr<absl::Duration> permit = absl::UnavailableError("a standby; the leader is X");
  FencedKubeApi fenced(inner, [&] { return permit; });
  nlohmann::json cm = {{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", {{"name", "c"}, {"namespace", "default"}}}};
  const std::string path = "/api/v1/namespaces/default/configmaps/c";
  EXPECT_THAT(fenced.Apply(path, cm, "ferry", true, false).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("leader is X")));
  EXPECT_THAT(fenced.Delete(path, false), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(fenced.Get(path, "get").status(), StatusIs(absl::StatusCode::kNotFound));
  FERRY_EXPECT_OK(fenced.Apply(path, cm, "ferry", true, /*dry_run=*/true).status());
  EXPECT_EQ(inner.writes(), 0);
  permit = absl::Seconds(5);
  FERRY_EXPECT_OK(fenced.Apply(path, cm, "ferry", true, false).status());
  FERRY_EXPECT_OK(fenced.Get(path, "get").status());
  EXPECT_EQ(inner.writes(), 1);
}

// A KubeApi whose writes hang, as a server that does not answer: each gives up after the
// timeout it is given (as KubeClient's requests do), or after 30 s.
class HangingKubeApi final : public kube::KubeApi {
 public:
  absl::StatusOr<nlohmann::json> Get(const std::string&, const std::string&) override {
    return absl::NotFoundError("not found");
  }
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string&) override {
    return nlohmann::json::object();
  }
  absl::StatusOr<nlohmann::json> Apply(const std::string& path, const nlohmann::json& object,
                                       const std::string& manager, bool force,
                                       bool dry_run) override {
    return ApplyWithin(path, object, manager, force, dry_run, absl::Seconds(60));
  }
  absl::Status Delete(const std::string& path, bool dry_run) override {
    return DeleteWithin(path, dry_run, absl::Seconds(60));
  }
  absl::StatusOr<nlohmann::json> ApplyWithin(const std::string&, const nlohmann::json&,
                                             const std::string&, bool, bool,
                                             absl::Duration timeout) override {
    return Hang(timeout);
  }
  absl::Status DeleteWithin(const std::string&, bool, absl::Duration timeout) override {
    return Hang(timeout);
  }
  std::vector<absl::Duration> timeouts;

 private:
  absl::Status Hang(absl::Duration timeout) {
    timeouts.push_back(timeout);
    absl::SleepFor(std::min(timeout, absl::Seconds(30)));
    return absl::DeadlineExceededError("the API server did not answer in time");
  }
};

// A write that hangs is given up by the leader's renew deadline: its request's timeout is
// what is left of the leadership (not the usual 60 s); with under 100 ms left nothing is sent.
TEST(FencedKubeApiTest, AFencedWriteEndsByTheRenewDeadline) {
  kube::FakeLeaseApi api;
  runtime::FakeClock clock;
  prometheus::Registry registry;
  kube::LeaderElector::Options options;
  options.lease = "ns/lease";
  options.identity = "ferry-cluster-syncer/pod-a/fedcba9876543210";
  kube::LeaderElector elector(api, options, registry, clock);
  const absl::Time attempt = clock.Now();
  elector.UpdateLeadership(elector.TryAcquireOrRenew(), attempt);
  ASSERT_TRUE(elector.IsLeader());
  HangingKubeApi inner;
  FencedKubeApi fenced(inner, [&] { return elector.WriteValidity(); });
  const nlohmann::json cm = {{"apiVersion", "v1"},
                             {"kind", "ConfigMap"},
                             {"metadata", {{"name", "c"}, {"namespace", "default"}}}};
  const std::string path = "/api/v1/namespaces/default/configmaps/c";
  // 9.6 s of the 10 s renew deadline have passed since the renewal began.
  clock.Advance(absl::Milliseconds(9600));
  ASSERT_EQ(elector.WriteValidity().value_or(absl::ZeroDuration()), absl::Milliseconds(400));
  const absl::Time start = absl::Now();
  EXPECT_THAT(fenced.Apply(path, cm, "ferry", true, false).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(fenced.Delete(path, false), StatusIs(absl::StatusCode::kDeadlineExceeded));
  // Both were over within what was left (plus scheduling slack), not 60 s.
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(inner.timeouts,
            (std::vector<absl::Duration>{absl::Milliseconds(400), absl::Milliseconds(400)}));
  // A shorter timeout of the caller's own stays.
  EXPECT_THAT(fenced.ApplyWithin(path, cm, "ferry", true, false, absl::Milliseconds(50)).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(inner.timeouts.back(), absl::Milliseconds(50));
  // Under 100 ms left: refused, nothing sent; dry runs still pass, with their own timeout.
  clock.Advance(absl::Milliseconds(350));
  EXPECT_THAT(elector.WriteValidity(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(elector.IsLeader());
  EXPECT_THAT(fenced.Apply(path, cm, "ferry", true, false).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("less than")));
  EXPECT_THAT(fenced.Delete(path, false), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(inner.timeouts.size(), 3u);
  EXPECT_THAT(fenced.ApplyWithin(path, cm, "ferry", true, true, absl::Milliseconds(20)).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(inner.timeouts.back(), absl::Milliseconds(20));
}

}  // namespace
}  // namespace ferry::cluster_syncer
