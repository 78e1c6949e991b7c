// ferry-cluster-syncer: keeps the cluster in sync with the config repo.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <memory>

#include "lib/kube/election.h"
#include "lib/kube/kube_client.h"
#include "lib/log/log.h"
#include "lib/runtime/channel.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/start_service.h"
#include "services/cluster-syncer/cluster_syncer_service.h"
#include "services/cluster-syncer/config.h"
#include "services/cluster-syncer/fenced_kube_api.h"

namespace {

// glibc malloc arenas. By default each thread that allocates gets its own, up to 8 per core,
// and each keeps the memory its thread freed: with the parse and apply workers of a sync of
// 6,000 objects (bench/scale_bench, 3,000 workloads) the syncer peaked at 94 MB resident with
// the default and at 82 MB with 2.
constexpr int kMallocArenas = 2;

}  // namespace

int main(int argc, char** argv) {
  using namespace ferry::cluster_syncer;  // NOLINT: this binary's own namespace
  namespace kube = ferry::kube;
  ferry::runtime::LimitAllocatorArenas(kMallocArenas);
  ferry::runtime::ServiceStart<Flags, Config> start(
      argc, argv, kComponent,
      "ferry-cluster-syncer: keeps the cluster in sync with the config repo", AddFlags, ToConfig,
      {.internal = true, .calls_peers = true});
  if (!start.ok()) return start.exit_code();
  Config& config = start.config();
  const ferry::runtime::PeerOptions& peer = start.peer();

  absl::StatusOr<kube::ClusterAccess> access =
      kube::LoadClusterAccess(config.kubeconfig, config.context);
  if (!access.ok()) return start.ConfigError(access.status());
  ferry::log::Info("kubernetes", {{"server", access->server}, {"context", access->context}});

  auto registry = std::make_shared<prometheus::Registry>();
  kube::KubeClient client(*access, *registry);
  kube::Election election;
  if (config.leader.enabled) {
    election = kube::MakeElection(config.leader, client, std::string(kComponent.name), *registry);
  }
  kube::LeaderElector* elector = election.elector.get();
  // Every apply and delete checks leadership first and must be over by the renew deadline
  // (FencedKubeApi).
  auto permit = [elector]() -> absl::StatusOr<absl::Duration> {
    return elector ? elector->WriteValidity() : absl::InfiniteDuration();
  };
  FencedKubeApi fenced(client, permit);
  kube::Discovery discovery(fenced);
  SyncOptions sync_options = config.sync;
  sync_options.default_namespace = access->default_namespace;
  Syncer syncer(fenced, discovery, sync_options);
  SyncMetrics metrics(*registry);
  std::shared_ptr<grpc::Channel> git_channel =
      ferry::runtime::ChannelTo(config.git_writer_address, peer);
  auto git = ferry::v1::GitWriter::NewStub(git_channel);
  SyncLoop::Options loop_options;
  loop_options.git_connected = [git_channel](absl::Time deadline) {
    return git_channel->WaitForConnected(absl::ToChronoTime(deadline));
  };
  loop_options.interval = config.sync_interval;
  loop_options.state = config.sync_state;
  loop_options.state_namespace =
      config.sync_state_namespace.empty() ? access->default_namespace : config.sync_state_namespace;
  if (elector) loop_options.write_permit = permit;
  SyncLoop loop(*git, fenced, syncer, metrics, loop_options);
  // Reads only: every replica watches, the standbys too (their ListWorkloads is served).
  std::unique_ptr<WorkloadWatch> watch;
  if (config.watch_workloads) {
    watch = std::make_unique<WorkloadWatch>(
        client, discovery, [](ClusterWorkloadInfo w) { return ToListed(std::move(w)); });
    // Not before this instance's first sync is over: while it creates every object, the API
    // server would encode each one's every status change for the watch (at 10,000 workloads,
    // 41 s more of the cluster's CPU and a first sync of 82 s instead of 54). A standby, which
    // does not sync, answers from listings until it leads and has synced.
    watch->Start([&loop](const std::atomic<bool>& stop) {
      while (!stop) {
        auto [sequence, last] = loop.Last();
        if (last) return;
        loop.WaitNext(sequence, absl::Seconds(1));
      }
    });
  }
  ClusterSyncerService service(fenced, discovery, loop, config.sync.allow_namespaces, watch.get());
  if (elector) {
    elector->SetLeadershipSink([&loop](bool leading) { loop.SetLeading(leading); });
    elector->Start();
  }
  loop.Start();
  int code = ferry::runtime::ServeUntilSignal(
      config.server, {{&service, ferry::v1::ClusterSyncer::service_full_name()}}, registry,
      [&loop, &watch, elector](ferry::runtime::Server* server) {
        // "leader" (what peers' replica lists route on) follows leadership alone; the sink is
        // called under the elector's lock, so once replaced no call uses `server`.
        if (elector != nullptr) {
          elector->SetLeadershipSink([&loop, server](bool leading) {
            loop.SetLeading(leading);
            if (server != nullptr) {
              server->SetServingStatus(ferry::runtime::kLeaderHealthName, leading);
            }
          });
        } else if (server != nullptr) {
          server->SetServingStatus(ferry::runtime::kLeaderHealthName, true);
        }
        if (server == nullptr) {
          // The watch first: the cancelled sync below would otherwise let it start listing.
          if (watch) watch->Stop();
          loop.SetReadinessSink(nullptr);
          // Shutting down: cancel the sync in progress and its calls to git-writer (a
          // ReadManifests would otherwise wait out its deadline), so that in-flight SyncNow
          // calls answer within the drain timeout.
          loop.Stop();
          return;
        }
        loop.SetReadinessSink([server](bool ready) {
          server->SetServingStatus(ferry::runtime::kReadinessHealthName, ready);
        });
      });
  loop.Stop();
  if (watch) watch->Stop();
  if (elector) elector->Stop();  // releases the Lease: a standby takes over at once
  return code;
}
