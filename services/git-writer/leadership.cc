#include "services/git-writer/leadership.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/kube/kubeconfig.h"
#include "lib/log/log.h"

namespace ferry::git_writer {

absl::StatusOr<Leadership> MakeLeadership(const Config& config, prometheus::Registry& registry) {
  Leadership out;
  if (!config.leader.enabled) return out;
  absl::StatusOr<kube::ClusterAccess> access =
      kube::LoadClusterAccess(config.kubeconfig, config.context);
  if (!access.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--leader_elect needs the Kubernetes API (--kubeconfig, or the service "
                     "account of a pod): ",
                     access.status().message()));
  }
  log::Info("leader election", {{"server", access->server}, {"lease", config.leader.lease_name}});
  out.client = std::make_unique<kube::KubeClient>(*std::move(access), registry);
  out.election =
      kube::MakeElection(config.leader, *out.client, std::string(kComponent.name), registry);
  return out;
}

void Leadership::Fence(Config& config) const {
  kube::LeaderElector* leader = elector();
  if (leader == nullptr) return;
  // Only the leader commits and pushes, and each push must be over while it still leads.
  WritePermit permit = [leader] { return leader->WriteValidity(); };
  config.repository.push_permit = permit;
  config.writer.write_permit = permit;
}

std::function<void(runtime::Server*)> Leadership::Readiness() const {
  kube::LeaderElector* leader = elector();
  return [leader](runtime::Server* server) {
    if (leader == nullptr) {
      if (server != nullptr) server->SetServingStatus(runtime::kReadinessHealthName, true);
      return;
    }
    // The sink is called under the elector's lock: once it is removed, no call is under way.
    if (server == nullptr) {
      leader->SetLeadershipSink(nullptr);
      return;
    }
    leader->SetLeadershipSink([server](bool leading) {
      server->SetServingStatus(runtime::kReadinessHealthName, leading);
    });
  };
}

void Leadership::Start() const {
  if (elector() != nullptr) elector()->Start();
}

void Leadership::Stop() const {
  if (elector() != nullptr) elector()->Stop();
}

}  // namespace ferry::git_writer
