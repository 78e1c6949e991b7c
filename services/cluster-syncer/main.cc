// ferry-cluster-syncer: keeps the cluster in sync with the config repo.
#include <grpcpp/grpcpp.h>

#include <memory>

#include "lib/log/log.h"
#include "lib/runtime/signals.h"
#include "services/cluster-syncer/cluster_syncer_service.h"
#include "services/cluster-syncer/config.h"

int main(int argc, char** argv) {
  using namespace ferry::cluster_syncer;  // NOLINT: this binary's own namespace
  ferry::runtime::BlockShutdownSignals();
  CLI::App app{"ferry-cluster-syncer: keeps the cluster in sync with the config repo",
               "ferry-cluster-syncer"};
  Flags flags;
  AddFlags(app, flags);
  if (auto exit_code = ferry::runtime::ParseCommandLine(app, argc, argv)) return *exit_code;
  absl::StatusOr<Config> config = ToConfig(flags);
  if (!config.ok()) return ferry::runtime::ConfigError(app.get_name(), config.status());
  ferry::runtime::InitLogging(kComponent, flags.server);

  absl::StatusOr<ClusterAccess> access = config->kubeconfig.empty()
                                             ? InClusterAccess()
                                             : LoadKubeconfig(config->kubeconfig, config->context);
  if (!access.ok()) return ferry::runtime::ConfigError(app.get_name(), access.status());
  ferry::log::Info("kubernetes", {{"server", access->server}, {"context", access->context}});

  auto registry = std::make_shared<prometheus::Registry>();
  KubeClient kube(*access, *registry);
  Discovery discovery(kube);
  SyncOptions sync_options = config->sync;
  sync_options.default_namespace = access->default_namespace;
  Syncer syncer(kube, discovery, sync_options);
  SyncMetrics metrics(*registry);
  // Reconnect quickly after git-writer restarts (gRPC's default backoff grows to 2 min).
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  auto channel = grpc::CreateCustomChannel(config->git_writer_address,
                                           grpc::InsecureChannelCredentials(), channel_args);
  auto git = ferry::v1::GitWriter::NewStub(channel);
  SyncLoop::Options loop_options;
  loop_options.interval = config->sync_interval;
  loop_options.state = config->sync_state;
  loop_options.state_namespace = config->sync_state_namespace.empty()
                                     ? access->default_namespace
                                     : config->sync_state_namespace;
  SyncLoop loop(*git, kube, syncer, metrics, loop_options);
  ClusterSyncerService service(kube, discovery, loop, config->sync.allow_namespaces);
  loop.Start();
  int code = ferry::runtime::ServeUntilSignal(
      config->server, {{&service, ferry::v1::ClusterSyncer::service_full_name()}}, registry,
      [&loop](ferry::runtime::Server* server) {
        if (server == nullptr) {
          loop.SetReadinessSink(nullptr);
          return;
        }
        loop.SetReadinessSink([server](bool ready) {
          server->SetServingStatus(kReadinessHealthName, ready);
        });
      });
  loop.Stop();
  return code;
}
