// FencedKubeApi: the writes of a cluster-syncer that does not lead are refused (a KubeApi
// decorator: every apply and delete checks the leader election's permit first).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/kube/kube_api.h"

namespace ferry::cluster_syncer {

// `inner` with its writes (Apply and Delete that are not dry runs) allowed only while
// `permit()` is OK; otherwise they fail with permit()'s status and nothing is sent. permit()
// returns how long the writer may still write (LeaderElector::WriteValidity; InfiniteDuration
// without leader election): a write's request timeout is the lesser of that and
// kWriteTimeout, so that it is over (given up by this client) by the leader's renew deadline
// even when the process paused between the check and the send, or the server is slow. Reads
// and dry runs pass, with their usual timeouts. Thread-safe as `inner` and `permit` are.
class FencedKubeApi final : public kube::KubeApi {
 public:
  // A write's timeout when leadership lasts longer.
  static constexpr absl::Duration kWriteTimeout = absl::Seconds(60);

  FencedKubeApi(kube::KubeApi& inner, std::function<absl::StatusOr<absl::Duration>()> permit);

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb) override;
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override;
  absl::StatusOr<nlohmann::json> GetWithin(const std::string& path, const std::string& verb,
                                           absl::Duration timeout) override;
  absl::StatusOr<nlohmann::json> ListMetadataWithin(const std::string& path,
                                                    absl::Duration timeout) override;
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
  kube::KubeApi& inner_;
  const std::function<absl::StatusOr<absl::Duration>()> permit_;
};

}  // namespace ferry::cluster_syncer
