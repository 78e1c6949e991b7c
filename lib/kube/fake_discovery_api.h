// DeploymentsOnlyApi: a KubeApi that serves the discovery documents of apps/v1 Deployments
// alone, for tests of code that looks kinds up (discovery.h) and reads workloads.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/kube/kube_api.h"

namespace ferry::kube {

// Discovery for apps/v1 Deployments; every other GET is NotFound and recorded in `gets`;
// writes are Unimplemented. Thread-compatible (`gets`).
class DeploymentsOnlyApi : public KubeApi {
 public:
  std::vector<std::string> gets;

  // The discovery document at `path` ("/api", "/apis", "/apis/apps/v1"); none for another.
  static std::optional<nlohmann::json> DiscoveryDocument(const std::string& path) {
    if (path == "/api") return nlohmann::json{{"versions", nlohmann::json::array()}};
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
    return std::nullopt;
  }

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    if (std::optional<nlohmann::json> document = DiscoveryDocument(path)) return *document;
    gets.push_back(path);
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

}  // namespace ferry::kube
