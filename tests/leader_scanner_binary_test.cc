// Leader election of ferry-registry-scanner through the real binaries, a real registry and a
// real kube-apiserver (issue 21): two scanners with --leader_elect on one Lease (8 s / 5 s /
// 1 s, as the syncer's test). Only the leader scans: the standby refuses Watch and a scan of a
// repository it never saw with UNAVAILABLE naming the leader, sends no request to the registry
// and is not ready; a SIGKILLed leader is replaced within a lease duration (plus slack), and
// the new leader takes the watch list and scans.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "absl/strings/match.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using testing::Running;

constexpr char kLease[] = "ferry-test-scanner";

class LeaderScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    auto registry = testing::RegistryServer::Start(dir_.path + "/registry");
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    FERRY_ASSERT_OK(
        registry_->PushImage("team/app", "1.0", R"({"created":"2026-01-01T00:00:00Z"})").status());
    Start(a_, "a");
    Start(b_, "b");
  }

  void Start(Running& r, const std::string& name) {
    testing::StartArgv(
        {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
         "--state_dir=" + dir_.path + "/" + name, "--registry_insecure_hosts=" + registry_->host(),
         "--kubeconfig=" + cluster_->kubeconfig(), "--leader_elect",
         "--leader_elect_namespace=default", std::string("--leader_elect_lease_name=") + kLease,
         "--leader_elect_lease_duration=8s", "--leader_elect_renew_deadline=5s",
         "--leader_elect_retry_period=1s"},
        r);
    ASSERT_GT(r.grpc_port, 0);
  }

  grpc::Status Watch(const Running& r, const std::string& repository) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ferry::v1::WatchRequest request;
    request.add_repositories(repository);
    ferry::v1::WatchResponse response;
    return ferry::v1::RegistryScanner::NewStub(r.Channel())->Watch(&ctx, request, &response);
  }

  grpc::Status ListTags(const Running& r, const std::string& repository,
                        ferry::v1::ListTagsResponse& response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::ListTagsRequest request;
    request.set_repository(repository);
    return ferry::v1::RegistryScanner::NewStub(r.Channel())->ListTags(&ctx, request, &response);
  }

  double RegistryRequests(const Running& r) {
    return testing::ScrapedMetric(r, "ferry_registry_requests_total");
  }

  testing::TempDir dir_;
  testing::KubeCluster* cluster_ = nullptr;
  std::unique_ptr<testing::RegistryServer> registry_;
  Running a_, b_;
};

TEST_F(LeaderScannerTest, OnlyTheLeaderScansAndAKilledLeaderIsReplaced) {
  const std::string lease = std::string("default/") + kLease;
  Running* leader = testing::WaitForOneLeader(a_, b_, lease, absl::Seconds(30));
  ASSERT_NE(leader, nullptr) << a_.process->Output() << b_.process->Output();
  Running* standby = leader == &a_ ? &b_ : &a_;
  const std::string repository = registry_->host() + "/team/app";

  // The leader takes the watch list and scans; it is ready, the standby is not.
  ASSERT_TRUE(Watch(*leader, repository).ok());
  ferry::v1::ListTagsResponse tags;
  ASSERT_TRUE(ListTags(*leader, repository, tags).ok()) << leader->process->Output();
  ASSERT_EQ(tags.tags_size(), 1) << tags.DebugString();
  EXPECT_EQ(tags.tags(0).tag(), "1.0");
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return testing::CheckHealth(*leader, "readiness") ==
               grpc::health::v1::HealthCheckResponse::SERVING;
      },
      absl::Seconds(10)));
  EXPECT_EQ(testing::CheckHealth(*standby, "readiness"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(testing::CheckHealth(*standby, ""), grpc::health::v1::HealthCheckResponse::SERVING);

  // The standby refuses the watch list and a scan, naming the leader, and never asked the
  // registry anything.
  grpc::Status refused = Watch(*standby, repository);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "ferry-registry-scanner/"))
      << refused.error_message();
  ferry::v1::ListTagsResponse none;
  refused = ListTags(*standby, repository, none);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  // Its event stream is refused too (the events are the leader's), and what replica lists
  // route on says so.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto events = ferry::v1::RegistryScanner::NewStub(standby->Channel())
                      ->WatchEvents(&ctx, ferry::v1::WatchEventsRequest());
    ferry::v1::TagEvent event;
    EXPECT_FALSE(events->Read(&event));
    EXPECT_EQ(events->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  EXPECT_EQ(testing::CheckHealth(*standby, "leader"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(testing::CheckHealth(*leader, "leader"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(RegistryRequests(*standby), 0);
  EXPECT_GT(RegistryRequests(*leader), 0);

  // SIGKILL: the standby leads once the Lease has stood unchanged for its duration, then
  // takes the watch list and scans, a tag pushed since among what it finds.
  leader->process->Signal(SIGKILL);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return testing::ScrapedMetric(*standby, "ferry_leader", lease) == 1; },
      absl::Seconds(25)))
      << standby->process->Output();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(8) + absl::Seconds(7));
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return testing::CheckHealth(*standby, "readiness") ==
               grpc::health::v1::HealthCheckResponse::SERVING;
      },
      absl::Seconds(10)));
  FERRY_ASSERT_OK(
      registry_->PushImage("team/app", "1.1", R"({"created":"2026-02-01T00:00:00Z"})").status());
  ASSERT_TRUE(Watch(*standby, repository).ok()) << standby->process->Output();
  ferry::v1::ListTagsResponse after;
  ASSERT_TRUE(ListTags(*standby, repository, after).ok()) << standby->process->Output();
  EXPECT_EQ(after.tags_size(), 2) << after.DebugString();
  EXPECT_GT(RegistryRequests(*standby), 0);
}

}  // namespace
}  // namespace ferry
