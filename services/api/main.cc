// ferry-api: the public ferry.v1.Ferry API: jobs, release planning, automation.
#include <grpcpp/grpcpp.h>

#include <memory>

#include "lib/log/log.h"
#include "lib/runtime/channel.h"
#include "lib/runtime/start_service.h"
#include "services/api/api_service.h"
#include "services/api/automation.h"
#include "services/api/config.h"
#include "services/api/notifier.h"
#include "services/api/replication.h"
#include "services/api/reverter.h"

int main(int argc, char** argv) {
  using namespace ferry::api;  // NOLINT: this binary's own namespace
  ferry::runtime::ServiceStart<Flags, Config> start(
      argc, argv, kComponent,
      "ferry-api: the public ferry.v1.Ferry API: jobs, release planning, automation", AddFlags,
      ToConfig, {.calls_peers = true});
  if (!start.ok()) return start.exit_code();
  Config& config = start.config();
  // How to reach the peers (TLS, client certificate, token: --peer_*).
  const ferry::runtime::PeerOptions& peer = start.peer();
  auto channel_to = [&peer](const std::string& address) {
    return ferry::runtime::ChannelTo(address, peer);
  };

  absl::StatusOr<Access> access =
      config.tokens_path.empty() ? Access::Open() : Access::LoadTokens(config.tokens_path);
  if (!access.ok()) return start.ConfigError(access.status());
  if (access->open()) {
    ferry::log::Warn(
        "local mode: no --tokens_path, every caller on this loopback address may "
        "do everything",
        {{"grpc_address", config.server.grpc_address.ToString()}});
  } else {
    ferry::log::Info("access", {{"tokens", static_cast<int>(access->size())},
                                {"tls", config.server.credentials != nullptr}});
  }
  PeerLinks links{{config.git_writer_address, channel_to(config.git_writer_address)},
                  {config.registry_scanner_address, channel_to(config.registry_scanner_address)},
                  {config.cluster_syncer_address, channel_to(config.cluster_syncer_address)}};
  auto git = ferry::v1::GitWriter::NewStub(links.git.channel);
  auto registry = ferry::v1::RegistryScanner::NewStub(links.registry.channel);
  auto cluster = ferry::v1::ClusterSyncer::NewStub(links.cluster.channel);
  auto metrics = std::make_shared<prometheus::Registry>();
  // Replicas (--leader_elect): the automation's Lease and the shared job records.
  absl::StatusOr<Replication> replication = MakeReplication(config, *metrics);
  if (!replication.ok()) return start.ConfigError(replication.status());
  JobMetrics job_metrics(*metrics);
  JobStore jobs(config.job_history, job_metrics);
  replication->Share(jobs);  // every replica reads the jobs of every other
  JobRunner runner(jobs, config.job_workers);
  // Every call to a peer: deadlines from --peer_wait and --job_*_timeout, cancelled by
  // runner.Stop() at shutdown.
  PeerClients peers(Peers{*git, *registry, *cluster}, runner.cancel(), config.timeouts, links);
  Executor executor(peers, jobs);
  // Rollouts that revert themselves (rollback: auto): followed after each release.
  RevertMetrics revert_metrics(*metrics);
  Reverter reverter(peers, jobs, runner, executor, revert_metrics);
  executor.SetReleaseApplied(reverter.Hook());
  ApiService service(*access, peers, jobs, runner, executor, replication->shared_jobs());
  AutomationMetrics automation_metrics(*metrics);
  Automation automation(peers, jobs, executor, automation_metrics, config.automation_interval);
  if (!config.automation) ferry::log::Info("automation is off (--no_automation)");
  replication->Lead(automation);  // passes only while this replica leads
  // Notifications (--notify_url): finished jobs and the cluster-syncer's failed syncs.
  Notifications notifications(config.notify, peers, jobs, *metrics);
  notifications.AnnounceSyncsWhile(replication->Leading());  // one replica announces syncs
  const int exit_code = ferry::runtime::ServeUntilSignal(
      config.server, {{&service, ferry::v1::Ferry::service_full_name()}}, metrics,
      [&](ferry::runtime::Server* server) {
        if (server != nullptr) {
          // Serving: the automation starts now, so a server that cannot start (a port in
          // use) exits at once instead of waiting on a pass.
          if (config.automation) automation.Start();
          notifications.Start();
          return;
        }
        // Shutting down: cut in-flight downstream calls short (rollout waits, applies, also
        // an automated release's), then stop the automation loop.
        runner.Stop();
        automation.Stop();
        notifications.StopWatching();
      });
  // The jobs still running use the executor and the peer clients: they end before those go.
  runner.Join();
  reverter.Join();          // its follows' calls were cancelled with the jobs'
  replication->Stop(jobs);  // releases the Lease (a standby automates at once), last records
  // What the last jobs announced is sent, for a few seconds at most.
  notifications.Stop(absl::Seconds(5));
  return exit_code;
}
