// The Kubernetes side of leader election: KubeLeaseApi reads and writes one
// coordination.k8s.io/v1 Lease through KubeClient, for LeaderElector (leader.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lib/kube/kube_client.h"
#include "lib/kube/leader.h"

namespace ferry::kube {

// A Lease's JSON (apiVersion, kind, metadata with name, namespace and resourceVersion when
// set, spec) and back. Times are MicroTime (RFC 3339, microseconds, UTC); leaseDurationSeconds
// is whole seconds (at least 1). LeaseFromJson: InvalidArgument when a time does not parse.
nlohmann::json LeaseToJson(const std::string& ns, const std::string& name,
                           const LeaseRecord& record);
absl::StatusOr<LeaseRecord> LeaseFromJson(const nlohmann::json& lease);

// The Lease `ns`/`name`. Each call is bounded by `timeout`. Thread-safe.
class KubeLeaseApi final : public LeaseApi {
 public:
  KubeLeaseApi(KubeClient& kube, std::string ns, std::string name, absl::Duration timeout);

  absl::StatusOr<LeaseRecord> Get() override;
  absl::StatusOr<LeaseRecord> Create(const LeaseRecord& record) override;
  absl::StatusOr<LeaseRecord> Update(const LeaseRecord& record) override;

 private:
  KubeClient& kube_;
  const std::string ns_, name_;
  const absl::Duration timeout_;
};

}  // namespace ferry::kube
