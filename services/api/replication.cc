#include "services/api/replication.h"

#include "absl/strings/str_cat.h"
#include "lib/log/log.h"

namespace ferry::api {

absl::StatusOr<Replication> MakeReplication(const Config& config, prometheus::Registry& registry) {
  Replication replication;
  if (!config.leader.enabled) return replication;
  absl::StatusOr<kube::Election> election = kube::MakeElection(
      config.leader, config.kubeconfig, config.context, std::string(kComponent.name), registry);
  if (!election.ok()) return election.status();
  replication.election = *std::move(election);
  kube::KubeClient& client = *replication.election.client;
  // The records in the Lease's namespace: the api's own, where its RBAC allows ConfigMaps.
  const std::string ns = config.leader.lease_namespace.empty() ? client.access().default_namespace
                                                               : config.leader.lease_namespace;
  replication.record_metrics = std::make_unique<JobRecordMetrics>(registry);
  replication.records = std::make_unique<ConfigMapJobRecords>(client, ns, kube::PodName(),
                                                              *replication.record_metrics);
  replication.publisher = std::make_unique<JobRecordPublisher>(*replication.records);
  replication.collector = std::make_unique<JobRecordCollector>(
      *replication.records,
      [elector = replication.election.elector.get()] { return elector->IsLeader(); });
  return replication;
}

void Replication::Lead(const std::vector<Automation*>& automations) {
  kube::LeaderElector* leader = elector();
  if (leader == nullptr) return;
  for (Automation* automation : automations) {
    automation->SetWritePermit([leader] { return leader->WritePermit(); });
  }
  leader->SetLeadershipSink([automations](bool leading) {
    for (Automation* automation : automations) automation->SetLeading(leading);
  });
  leader->Start();
}

std::function<bool()> Replication::Leading() const {
  kube::LeaderElector* leader = elector();
  return [leader] { return leader == nullptr || leader->IsLeader(); };
}

void Replication::Share(JobStore& jobs) {
  if (publisher == nullptr) return;
  jobs.SetListener(publisher.get());
  publisher->Start();
  collector->Start();
}

void Replication::Stop(JobStore& jobs) {
  kube::LeaderElector* leader = elector();
  if (leader == nullptr) return;
  leader->SetLeadershipSink(nullptr);
  leader->Stop();
  if (publisher != nullptr) {
    collector->Stop();
    publisher->Stop(absl::Seconds(5));
    jobs.SetListener(nullptr);
  }
}

}  // namespace ferry::api
