// Discovery's loading: callers that arrive together share one load of the API's discovery
// documents.
#include "lib/kube/discovery.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace ferry::kube
