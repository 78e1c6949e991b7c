// ferry-cluster-syncer: keeps the cluster in sync with the config repo.
#include <memory>

#include "services/cluster-syncer/config.h"
#include "services/cluster-syncer/cluster_syncer_service.h"
#include "lib/runtime/signals.h"

int main(int argc, char** argv) {
  ferry::runtime::BlockShutdownSignals();
  CLI::App app{"ferry-cluster-syncer: keeps the cluster in sync with the config repo", "ferry-cluster-syncer"};
  ferry::cluster_syncer::Flags flags;
  ferry::cluster_syncer::AddFlags(app, flags);
  if (auto exit_code = ferry::runtime::ParseCommandLine(app, argc, argv)) return *exit_code;
  absl::StatusOr<ferry::cluster_syncer::Config> config = ferry::cluster_syncer::ToConfig(flags);
  if (!config.ok()) return ferry::runtime::ConfigError(app.get_name(), config.status());
  ferry::runtime::InitLogging(ferry::cluster_syncer::kComponent, flags.server);

  ferry::cluster_syncer::ClusterSyncerService service;
  return ferry::runtime::ServeUntilSignal(config->server, {{&service, ferry::v1::ClusterSyncer::service_full_name()}},
                                          std::make_shared<prometheus::Registry>());
}
