#include "services/cluster-syncer/fenced_kube_api.h"

#include <algorithm>

namespace ferry::cluster_syncer {

FencedKubeApi::FencedKubeApi(kube::KubeApi& inner,
                             std::function<absl::StatusOr<absl::Duration>()> permit)
    : inner_(inner), permit_(std::move(permit)) {}

absl::StatusOr<nlohmann::json> FencedKubeApi::Get(const std::string& path,
                                                  const std::string& verb) {
  return inner_.Get(path, verb);
}

absl::StatusOr<nlohmann::json> FencedKubeApi::ListMetadata(const std::string& path) {
  return inner_.ListMetadata(path);
}

absl::StatusOr<nlohmann::json> FencedKubeApi::GetWithin(const std::string& path,
                                                        const std::string& verb,
                                                        absl::Duration timeout) {
  return inner_.GetWithin(path, verb, timeout);
}

absl::StatusOr<nlohmann::json> FencedKubeApi::ListMetadataWithin(const std::string& path,
                                                                 absl::Duration timeout) {
  return inner_.ListMetadataWithin(path, timeout);
}

absl::StatusOr<nlohmann::json> FencedKubeApi::Apply(const std::string& path,
                                                    const nlohmann::json& object,
                                                    const std::string& manager, bool force,
                                                    bool dry_run) {
  return ApplyWithin(path, object, manager, force, dry_run, kWriteTimeout);
}

absl::Status FencedKubeApi::Delete(const std::string& path, bool dry_run) {
  return DeleteWithin(path, dry_run, kWriteTimeout);
}

absl::StatusOr<nlohmann::json> FencedKubeApi::ApplyWithin(const std::string& path,
                                                          const nlohmann::json& object,
                                                          const std::string& manager, bool force,
                                                          bool dry_run, absl::Duration timeout) {
  if (!dry_run) {
    absl::StatusOr<absl::Duration> validity = permit_();
    if (!validity.ok()) return validity.status();
    timeout = std::min(timeout, *validity);
  }
  return inner_.ApplyWithin(path, object, manager, force, dry_run, timeout);
}

absl::Status FencedKubeApi::DeleteWithin(const std::string& path, bool dry_run,
                                         absl::Duration timeout) {
  if (!dry_run) {
    absl::StatusOr<absl::Duration> validity = permit_();
    if (!validity.ok()) return validity.status();
    timeout = std::min(timeout, *validity);
  }
  return inner_.DeleteWithin(path, dry_run, timeout);
}

}  // namespace ferry::cluster_syncer
