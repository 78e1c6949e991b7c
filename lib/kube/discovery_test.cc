// Discovery's loading: callers that arrive together share one load of the API's discovery
// documents.
#include "lib/kube/discovery.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"

namespace ferry::kube {
namespace {

// Serves discovery for apps/v1 Deployments, each answer after a few milliseconds, and
// counts the loads (GETs of /api).
class SlowDiscoveryApi : public KubeApi {
 public:
  std::atomic<int> loads{0};

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    absl::SleepFor(absl::Milliseconds(20));  // room for the other callers to arrive
    if (path == "/api") {
      ++loads;
      return nlohmann::json{{"versions", nlohmann::json::array()}};
    }
    if (path == "/apis") {
      return nlohmann::json{{"groups",
                             {{{"name", "apps"},
                               {"preferredVersion", {{"version", "v1"}}},
                               {"versions", {{{"version", "v1"}}}}}}}};
    }
    if (path == "/apis/apps/v1") {
      return nlohmann::json{
          {"resources", {{{"name", "deployments"}, {"kind", "Deployment"}, {"namespaced", true}}}}};
    }
    return absl::NotFoundError(path);
  }
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override {
    return absl::UnimplementedError(path);
  }
  absl::StatusOr<nlohmann::json> Apply(const std::string& path, const nlohmann::json&,
                                       const std::string&, bool, bool) override {
    return absl::UnimplementedError(path);
  }
  absl::Status Delete(const std::string& path, bool) override {
    return absl::UnimplementedError(path);
  }
};

TEST(Discovery, CallersArrivingTogetherShareOneLoad) {
  SlowDiscoveryApi api;
  Discovery discovery(api);
  std::atomic<int> found{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<ApiResource> r = i % 2 == 0
                                          ? discovery.FindPreferred("apps", "Deployment")
                                          : discovery.Find("apps/v1", "Deployment");
      if (r.ok() && r->name == "deployments") ++found;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(found.load(), 8);
  EXPECT_EQ(api.loads.load(), 1);
}

}  // namespace
}  // namespace ferry::kube
