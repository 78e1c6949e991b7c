// Discovery's loading: callers that arrive together share one load of the API's discovery
// documents; a misbehaving aggregated API is left out; overlapping refreshes.
#include "lib/kube/discovery.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "lib/kube/fake_discovery_api.h"

namespace ferry::kube {
namespace {

// DeploymentsOnlyApi's discovery, each answer after a few milliseconds; counts the loads
// (GETs of /api).
class SlowDiscoveryApi : public DeploymentsOnlyApi {
 public:
  std::atomic<int> loads{0};

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    absl::SleepFor(absl::Milliseconds(20));  // room for the other callers to arrive
    if (path == "/api") ++loads;
    std::optional<nlohmann::json> document = DiscoveryDocument(path);
    if (!document) return absl::NotFoundError(path);
    return *document;
  }
};

TEST(Discovery, CallersArrivingTogetherShareOneLoad) {
  SlowDiscoveryApi api;
  Discovery discovery(api);
  std::atomic<int> found{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<ApiResource> r = i % 2 == 0 ? discovery.FindPreferred("apps", "Deployment")
                                                 : discovery.Find("apps/v1", "Deployment");
      if (r.ok() && r->name == "deployments") ++found;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(found.load(), 8);
  EXPECT_EQ(api.loads.load(), 1);
}

// DeploymentsOnlyApi's discovery with a second group, metrics.k8s.io/v1beta1, whose document
// is `metrics`; /apis is `apis` when set.
class AggregatedApi : public DeploymentsOnlyApi {
 public:
  nlohmann::json metrics;
  bool metrics_gone = false;
  std::optional<nlohmann::json> apis;

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    if (path == "/apis") {
      if (apis) return *apis;
      nlohmann::json groups = *DiscoveryDocument(path);
      groups["groups"].push_back({{"name", "metrics.k8s.io"},
                                  {"preferredVersion", {{"version", "v1beta1"}}},
                                  {"versions", {{{"version", "v1beta1"}}}}});
      return groups;
    }
    if (path == "/apis/metrics.k8s.io/v1beta1") {
      if (metrics_gone) return absl::NotFoundError(path);
      return metrics;
    }
    std::optional<nlohmann::json> document = DiscoveryDocument(path);
    if (!document) return absl::NotFoundError(path);
    return *document;
  }
};

TEST(Discovery, AGroupVersionNotOfDiscoverysShapeIsLeftOut) {
  for (const nlohmann::json& metrics :
       {nlohmann::json("metrics are here"), nlohmann::json{{"resources", 5}},
        nlohmann::json{{"resources", {{{"name", "pods"}, {"kind", 7}}}}},
        nlohmann::json{{"resources", {{{"name", "nodes"}, {"verbs", {"get", 1}}}}}}}) {
    AggregatedApi api;
    api.metrics = metrics;
    Discovery discovery(api);
    absl::StatusOr<ApiResource> deployments = discovery.Find("apps/v1", "Deployment");
    ASSERT_TRUE(deployments.ok()) << metrics << ": " << deployments.status();
    EXPECT_EQ(deployments->name, "deployments");
    EXPECT_EQ(discovery.FindPreferred("metrics.k8s.io", "PodMetrics").status().code(),
              absl::StatusCode::kNotFound);
  }
}

// A group version that was served and then answers badly keeps its kinds; one that is gone
// (NotFound) loses them.
TEST(Discovery, AGroupVersionThatAnswersBadlyKeepsItsKindsUntilItIsGone) {
  AggregatedApi api;
  api.metrics = {{"resources", {{{"name", "pods"}, {"kind", "PodMetrics"}}}}};
  Discovery discovery(api);
  ASSERT_TRUE(discovery.FindPreferred("metrics.k8s.io", "PodMetrics").ok());
  api.metrics = "metrics are elsewhere today";
  ASSERT_TRUE(discovery.Refresh().ok());
  EXPECT_TRUE(discovery.FindPreferred("metrics.k8s.io", "PodMetrics").ok());
  EXPECT_TRUE(discovery.FindPreferred("apps", "Deployment").ok());
  api.metrics_gone = true;
  ASSERT_TRUE(discovery.Refresh().ok());
  EXPECT_EQ(discovery.FindPreferred("metrics.k8s.io", "PodMetrics").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Discovery, AMalformedGroupListIsAnErrorAndKeepsWhatWasLoaded) {
  AggregatedApi api;
  api.metrics = {{"resources", {{{"name", "pods"}, {"kind", "PodMetrics"}}}}};
  Discovery discovery(api);
  ASSERT_TRUE(discovery.FindPreferred("metrics.k8s.io", "PodMetrics").ok());
  for (const nlohmann::json& apis :
       {nlohmann::json::array(), nlohmann::json{{"groups", 5}},
        nlohmann::json{{"groups", {{{"name", "apps"}, {"versions", "v1"}}}}}}) {
    api.apis = apis;
    EXPECT_EQ(discovery.Refresh().code(), absl::StatusCode::kInternal) << apis;
    EXPECT_TRUE(discovery.FindPreferred("metrics.k8s.io", "PodMetrics").ok()) << apis;
  }
}

// Discovery of apps/v1: the first read of it waits for `release` and has Deployments alone;
// later reads also have Widgets (a kind added meanwhile).
class ChangingDiscoveryApi : public DeploymentsOnlyApi {
 public:
  absl::Notification first_waiting;
  absl::Notification release;

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    std::optional<nlohmann::json> document = DiscoveryDocument(path);
    if (!document) return absl::NotFoundError(path);
    if (path != "/apis/apps/v1") return *document;
    if (reads_++ == 0) {
      first_waiting.Notify();
      release.WaitForNotification();
      return *document;
    }
    (*document)["resources"].push_back(
        {{"name", "widgets"}, {"kind", "Widget"}, {"namespaced", true}});
    return *document;
  }

 private:
  std::atomic<int> reads_{0};
};

TEST(Discovery, OfOverlappingRefreshesTheOneBegunLastDecides) {
  ChangingDiscoveryApi api;
  Discovery discovery(api);
  std::thread older([&] { EXPECT_TRUE(discovery.Refresh().ok()); });
  api.first_waiting.WaitForNotification();
  ASSERT_TRUE(discovery.Refresh().ok());  // begun later, done first: has Widgets
  ASSERT_TRUE(discovery.FindPreferred("apps", "Widget").ok());
  api.release.Notify();
  older.join();  // done last, with what it read before Widgets were added
  EXPECT_TRUE(discovery.FindPreferred("apps", "Widget").ok()) << "the older answer won";
}

}  // namespace
}  // namespace ferry::kube
