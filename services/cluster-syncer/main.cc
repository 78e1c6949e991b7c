// ferry-cluster-syncer: keeps the cluster in sync with the config repo.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <tuple>

#include "lib/log/log.h"
#include "lib/runtime/channel.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/start_service.h"
#include "services/cluster-syncer/cluster_syncer_service.h"
#include "services/cluster-syncer/config.h"
#include "services/cluster-syncer/kube_client.h"
#include "services/cluster-syncer/kube_lease.h"

namespace {

// glibc malloc arenas. By default each thread that allocates gets its own, up to 8 per core,
// and each keeps the memory its thread freed: with the parse and apply workers of a sync of
// 6,000 objects (bench/scale_bench, 3,000 workloads) the syncer peaked at 94 MB resident with
// the default and at 82 MB with 2.
constexpr int kMallocArenas = 2;

// The elector of --leader_elect, on its Lease (in the kubeconfig's / pod's namespace unless
// --leader_elect_namespace names one), with this process's identity (the pod's name from
// POD_NAME or the host name).
std::pair<std::unique_ptr<ferry::cluster_syncer::KubeLeaseApi>,
          std::unique_ptr<ferry::cluster_syncer::LeaderElector>>
MakeElector(const ferry::cluster_syncer::Config& config, ferry::cluster_syncer::KubeClient& client,
            prometheus::Registry& registry) {
  using namespace ferry::cluster_syncer;  // NOLINT: this binary's own namespace
  const LeaderElectionConfig& leader = config.leader;
  const std::string ns =
      leader.lease_namespace.empty() ? client.access().default_namespace : leader.lease_namespace;
  const char* pod = std::getenv("POD_NAME");
  char host[256] = {};
  if (pod == nullptr || *pod == '\0') pod = gethostname(host, sizeof host - 1) == 0 ? host : "";
  auto lease = std::make_unique<KubeLeaseApi>(
      client, ns, leader.lease_name, std::max(leader.renew_deadline / 2, absl::Seconds(1)));
  LeaderElector::Options options;
  options.component = std::string(kComponent.name);
  options.lease = ns + "/" + leader.lease_name;
  options.identity = MakeIdentity(options.component, pod);
  options.lease_duration = leader.lease_duration;
  options.renew_deadline = leader.renew_deadline;
  options.retry_period = leader.retry_period;
  auto elector = std::make_unique<LeaderElector>(*lease, options, registry);
  return {std::move(lease), std::move(elector)};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ferry::cluster_syncer;  // NOLINT: this binary's own namespace
  ferry::runtime::LimitAllocatorArenas(kMallocArenas);
  ferry::runtime::ServiceStart<Flags, Config> start(
      argc, argv, kComponent,
      "ferry-cluster-syncer: keeps the cluster in sync with the config repo", AddFlags, ToConfig,
      {.internal = true, .calls_peers = true});
  if (!start.ok()) return start.exit_code();
  Config& config = start.config();
  const ferry::runtime::PeerOptions& peer = start.peer();

  absl::StatusOr<ClusterAccess> access = config.kubeconfig.empty()
                                             ? InClusterAccess()
                                             : LoadKubeconfig(config.kubeconfig, config.context);
  if (!access.ok()) return start.ConfigError(access.status());
  ferry::log::Info("kubernetes", {{"server", access->server}, {"context", access->context}});

  auto registry = std::make_shared<prometheus::Registry>();
  KubeClient client(*access, *registry);
  // The Lease before its elector: destroyed after it (the elector releases the Lease in its
  // destructor when Stop() was not reached).
  std::unique_ptr<KubeLeaseApi> lease;
  std::unique_ptr<LeaderElector> elector;
  if (config.leader.enabled) std::tie(lease, elector) = MakeElector(config, client, *registry);
  // Every apply and delete checks leadership first and must be over by the renew deadline
  // (FencedKubeApi).
  auto permit = [&elector]() -> absl::StatusOr<absl::Duration> {
    return elector ? elector->WriteValidity() : absl::InfiniteDuration();
  };
  FencedKubeApi kube(client, permit);
  Discovery discovery(kube);
  SyncOptions sync_options = config.sync;
  sync_options.default_namespace = access->default_namespace;
  Syncer syncer(kube, discovery, sync_options);
  SyncMetrics metrics(*registry);
  auto git =
      ferry::v1::GitWriter::NewStub(ferry::runtime::ChannelTo(config.git_writer_address, peer));
  SyncLoop::Options loop_options;
  loop_options.interval = config.sync_interval;
  loop_options.state = config.sync_state;
  loop_options.state_namespace =
      config.sync_state_namespace.empty() ? access->default_namespace : config.sync_state_namespace;
  if (elector) loop_options.write_permit = permit;
  SyncLoop loop(*git, kube, syncer, metrics, loop_options);
  ClusterSyncerService service(kube, discovery, loop, config.sync.allow_namespaces);
  if (elector) {
    elector->SetLeadershipSink([&loop](bool leading) { loop.SetLeading(leading); });
    elector->Start();
  }
  loop.Start();
  int code = ferry::runtime::ServeUntilSignal(
      config.server, {{&service, ferry::v1::ClusterSyncer::service_full_name()}}, registry,
      [&loop](ferry::runtime::Server* server) {
        if (server == nullptr) {
          loop.SetReadinessSink(nullptr);
          // Shutting down: cancel the sync in progress and its calls to git-writer (a
          // ReadManifests would otherwise wait out its deadline), so that in-flight SyncNow
          // calls answer within the drain timeout.
          loop.Stop();
          return;
        }
        loop.SetReadinessSink(
            [server](bool ready) { server->SetServingStatus(kReadinessHealthName, ready); });
      });
  loop.Stop();
  if (elector) elector->Stop();  // releases the Lease: a standby takes over at once
  return code;
}
