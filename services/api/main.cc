// ferry-api: the public ferry.v1.Ferry API: jobs, release planning, automation.
#include <grpcpp/grpcpp.h>

#include <memory>

#include "lib/log/log.h"
#include "lib/runtime/channel.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/poller.h"
#include "lib/runtime/start_service.h"
#include "services/api/api_service.h"
#include "services/api/automation.h"
#include "services/api/config.h"
#include "services/api/notifier.h"
#include "services/api/replication.h"
#include "services/api/reverter.h"
#include "services/api/source_services.h"

namespace {

// glibc malloc arenas. By default every thread that allocates (gRPC's readers, the job
// workers) gets its own, up to 8 per core, each keeping what its thread freed: with releases
// and 16 readers at 3,000 workloads (bench/scale_bench) the api peaked at 120 MB resident
// with the default, 85 MB with 4 arenas and 68 MB with 2, for 1,155, 1,076 and 1,044 reads/s.
constexpr int kMallocArenas = 2;

}  // namespace

int main(int argc, char** argv) {
  using namespace ferry::api;  // NOLINT: this binary's own namespace
  ferry::runtime::LimitAllocatorArenas(kMallocArenas);
  ferry::runtime::ServiceStart<Flags, Config> start(
      argc, argv, kComponent,
      "ferry-api: the public ferry.v1.Ferry API: jobs, release planning, automation", AddFlags,
      ToConfig, {.calls_peers = true});
  if (!start.ok()) return start.exit_code();
  Config& config = start.config();
  // Memory: large buffers (pages of workloads, planning over a whole index) get mappings of
  // their own, and what the readers' and jobs' threads free is handed back every 10 s
  // (glibc otherwise keeps it in its arenas: 240 MB kept against 40 MB in use, 10,000
  // workloads under read load, before the arenas were limited too).
  ferry::runtime::MapLargeAllocations(64 * 1024);
  const ferry::runtime::Poller memory_return(absl::Seconds(10), ferry::runtime::ReturnFreeMemory);
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
  // One scanner for every source; per source its peers, executor, reverter and automation.
  const auto registry_channel = channel_to(config.registry_scanner_address);
  auto registry = ferry::v1::RegistryScanner::NewStub(registry_channel);
  auto metrics = std::make_shared<prometheus::Registry>();
  // Replicas (--leader_elect): the automation's Lease and the shared job records.
  absl::StatusOr<Replication> replication = MakeReplication(config, *metrics);
  if (!replication.ok()) return start.ConfigError(replication.status());
  JobMetrics job_metrics(*metrics);
  JobStore jobs(config.job_history, job_metrics);
  replication->Share(jobs);  // every replica reads the jobs of every other
  RevertMetrics revert_metrics(*metrics);
  AutomationMetrics automation_metrics(*metrics);
  std::vector<std::unique_ptr<SourceServices>> stacks;
  for (const SourceConfig& source : config.sources) {
    stacks.push_back(std::make_unique<SourceServices>(
        source, channel_to, *registry, PeerLink{config.registry_scanner_address, registry_channel},
        config.timeouts, jobs, config.job_workers, revert_metrics, automation_metrics,
        config.automation_interval));
  }
  Sources sources = SourcesOf(stacks);
  ScannerWatchList watch_list(sources.shared());  // the union of every source's repositories
  std::vector<Automation*> automations;
  for (auto& stack : stacks) {
    if (sources.named()) stack->automation.SetSource(stack->name, watch_list);
    automations.push_back(&stack->automation);
  }
  ApiService service(*access, sources, jobs, replication->shared_jobs());
  if (!config.automation) ferry::log::Info("automation is off (--no_automation)");
  replication->Lead(automations);  // passes only while this replica leads
  // Notifications (--notify_url): finished jobs and the cluster-syncers' failed syncs.
  std::vector<std::pair<std::string, const PeerClients*>> synced;
  for (const Source& source : sources.all()) synced.emplace_back(source.name, source.peers);
  Notifications notifications(config.notify, synced, jobs, *metrics);
  notifications.AnnounceSyncsWhile(replication->Leading());  // one replica announces syncs
  const int exit_code = ferry::runtime::ServeUntilSignal(
      config.server, {{&service, ferry::v1::Ferry::service_full_name()}}, metrics,
      [&](ferry::runtime::Server* server) {
        if (server != nullptr) {
          // Serving: the automation starts now, so a server that cannot start (a port in
          // use) exits at once instead of waiting on a pass.
          if (config.automation) {
            for (Automation* automation : automations) automation->Start();
          }
          notifications.Start();
          return;
        }
        // Shutting down: cut in-flight downstream calls short (rollout waits, applies, also
        // an automated release's), then stop the automation loop.
        for (auto& stack : stacks) stack->runner.Stop();
        for (Automation* automation : automations) automation->Stop();
        notifications.StopWatching();
      });
  // The jobs still running use the executor and the peer clients: they end before those go.
  for (auto& stack : stacks) {
    stack->runner.Join();
    stack->reverter.Join();  // its calls were cancelled with the jobs'
  }
  replication->Stop(jobs);  // releases the Lease (a standby automates at once), last records
  // What the last jobs announced is sent, for a few seconds at most.
  notifications.Stop(absl::Seconds(5));
  return exit_code;
}
