#include "services/git-writer/leadership.h"

#include <string>
#include <utility>

namespace ferry::git_writer {

absl::StatusOr<Leadership> MakeLeadership(const Config& config, prometheus::Registry& registry) {
  absl::StatusOr<kube::Election> election = kube::MakeElection(
      config.leader, config.kubeconfig, config.context, std::string(kComponent.name), registry);
  if (!election.ok()) return election.status();
  Leadership out;
  out.election = *std::move(election);
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
  return kube::ReadinessFollowsLeadership(elector());
}

void Leadership::Start() const {
  if (elector() != nullptr) elector()->Start();
}

void Leadership::Stop() const {
  if (elector() != nullptr) elector()->Stop();
}

}  // namespace ferry::git_writer
