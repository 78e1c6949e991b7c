// What ferry-api runs for one source (sources.h): the channels and stubs of its git-writer
// and cluster-syncer, their clients (with the registry-scanner every source shares), the
// executor of its jobs, the reverter following its releases, and its automation loop.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "services/api/automation.h"
#include "services/api/config.h"
#include "services/api/executor.h"
#include "services/api/jobs.h"
#include "services/api/peers.h"
#include "services/api/reverter.h"
#include "services/api/sources.h"

namespace ferry::api {

class SourceServices {
 public:
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;

  // The source `config`, its peers reached through `channel_to` and the shared `registry`
  // (at `registry_link`); its jobs in `jobs`, run by `job_workers` workers of its own
  // within `timeouts`. The metrics are shared by every source. Everything passed in
  // outlives this object. The automation starts with automation.Start(); at shutdown
  // runner.Stop() cuts the source's calls short, then runner.Join() and reverter.Join().
  SourceServices(const SourceConfig& config, const ChannelFactory& channel_to,
                 RegistryScannerStub& registry, PeerLink registry_link, JobTimeouts timeouts,
                 JobStore& jobs, int job_workers, RevertMetrics& revert_metrics,
                 AutomationMetrics& automation_metrics, absl::Duration automation_interval);
  // Waits for the jobs and follows still running (they use the executor and the clients).
  ~SourceServices() {
    runner.Join();
    reverter.Join();
  }
  SourceServices(const SourceServices&) = delete;
  SourceServices& operator=(const SourceServices&) = delete;

  const std::string name;  // "" for the one unnamed source

 private:
  PeerLinks links_;
  std::unique_ptr<ferry::v1::GitWriter::Stub> git_;
  std::unique_ptr<ferry::v1::ClusterSyncer::Stub> cluster_;

 public:
  JobRunner runner;
  PeerClients peers;
  Executor executor;
  // Rollouts that revert themselves (rollback: auto): followed after each release.
  Reverter reverter;
  Automation automation;
};

// The routing view of `services` (which outlive it).
Sources SourcesOf(const std::vector<std::unique_ptr<SourceServices>>& services);

}  // namespace ferry::api
