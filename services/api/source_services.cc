#include "services/api/source_services.h"

namespace ferry::api {

SourceServices::SourceServices(const SourceConfig& config, const ChannelFactory& channel_to,
                               RegistryScannerStub& registry, PeerLink registry_link,
                               JobTimeouts timeouts, JobStore& jobs, int job_workers,
                               RevertMetrics& revert_metrics, AutomationMetrics& automation_metrics,
                               absl::Duration automation_interval)
    : name(config.name),
      links_{{config.git_writer_address, channel_to(config.git_writer_address)},
             std::move(registry_link),
             {config.cluster_syncer_address, channel_to(config.cluster_syncer_address)}},
      git_(ferry::v1::GitWriter::NewStub(links_.git.channel)),
      cluster_(ferry::v1::ClusterSyncer::NewStub(links_.cluster.channel)),
      runner(jobs, job_workers),
      // Every call to a peer: deadlines from --peer_wait and --job_*_timeout, cancelled by
      // runner.Stop() at shutdown.
      peers(Peers{*git_, registry, *cluster_}, runner.cancel(), timeouts, links_),
      executor(peers, jobs),
      reverter(peers, jobs, runner, executor, revert_metrics),
      automation(peers, jobs, executor, automation_metrics, automation_interval) {
  executor.SetReleaseApplied(reverter.Hook());
}

Sources SourcesOf(const std::vector<std::unique_ptr<SourceServices>>& services) {
  std::vector<Source> sources;
  for (const auto& s : services) {
    sources.push_back(Source{s->name, &s->peers, &s->executor, &s->runner});
  }
  return Sources(std::move(sources));
}

}  // namespace ferry::api
