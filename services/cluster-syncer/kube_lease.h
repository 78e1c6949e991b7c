// The Kubernetes side of leader election: KubeLeaseApi reads and writes one
// coordination.k8s.io/v1 Lease through KubeClient, and FencedKubeApi refuses the writes of an
// instance that does not lead (a KubeApi decorator: every apply and delete checks first).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "services/cluster-syncer/kube_api.h"
#include "services/cluster-syncer/kube_client.h"
#include "services/cluster-syncer/leader.h"

namespace ferry::cluster_syncer {

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

// `inner` with its writes (Apply and Delete that are not dry runs) allowed only while
// `permit()` is OK; otherwise they fail with permit()'s status and nothing is sent. permit()
// returns how long the writer may still write (LeaderElector::WriteValidity; InfiniteDuration
// without leader election): a write's request timeout is the lesser of that and
// kWriteTimeout, so that it is over (given up by this client) by the leader's renew deadline
// even when the process paused between the check and the send, or the server is slow. Reads
// and dry runs pass, with their usual timeouts. Thread-safe as `inner` and `permit` are.
class FencedKubeApi final : public KubeApi {
 public:
  // A write's timeout when leadership lasts longer.
  static constexpr absl::Duration kWriteTimeout = absl::Seconds(60);

  FencedKubeApi(KubeApi& inner, std::function<absl::StatusOr<absl::Duration>()> permit);

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb) override;
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override;
  absl::StatusOr<nlohmann::json> Apply(const std::string& path, const nlohmann::json& object,
                                       const std::string& manager, bool force,
                                       bool dry_run) override;
  absl::Status Delete(const std::string& path, bool dry_run) override;
  // As Apply and Delete, bounded by `timeout` too.
  absl::StatusOr<nlohmann::json> ApplyWithin(const std::string& path, const nlohmann::json& object,
                                             const std::string& manager, bool force, bool dry_run,
                                             absl::Duration timeout) override;
  absl::Status DeleteWithin(const std::string& path, bool dry_run, absl::Duration timeout) override;

 private:
  KubeApi& inner_;
  const std::function<absl::StatusOr<absl::Duration>()> permit_;
};

}  // namespace ferry::cluster_syncer
