#include "services/api/replication.h"

#include "absl/strings/str_cat.h"
#include "lib/log/log.h"

namespace ferry::api {

absl::StatusOr<Replication> MakeReplication(const Config& config, prometheus::Registry& registry) {
  Replication replication;
  if (!config.leader.enabled) return replication;
  absl::StatusOr<kube::ClusterAccess> access =
      kube::LoadClusterAccess(config.kubeconfig, config.context);
  if (!access.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--leader_elect needs the Kubernetes API (--kubeconfig, or the service "
                     "account of a pod): ",
                     access.status().message()));
  }
  log::Info("kubernetes", {{"server", access->server}, {"context", access->context}});
  replication.client = std::make_unique<kube::KubeClient>(*std::move(access), registry);
  replication.election = kube::MakeElection(config.leader, *replication.client,
                                            std::string(kComponent.name), registry);
  return replication;
}

void Replication::Lead(Automation& automation) {
  kube::LeaderElector* leader = elector();
  if (leader == nullptr) return;
  automation.SetWritePermit([leader] { return leader->WritePermit(); });
  leader->SetLeadershipSink([&automation](bool leading) { automation.SetLeading(leading); });
  leader->Start();
}

void Replication::Stop() {
  kube::LeaderElector* leader = elector();
  if (leader == nullptr) return;
  leader->SetLeadershipSink(nullptr);
  leader->Stop();
}

}  // namespace ferry::api
