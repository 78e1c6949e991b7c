// Configuration of ferry-cluster-syncer: flags (and FERRY_* environment variables) -> a validated
// Config. Every option is documented next to the flag that sets it, in config.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/kube/election.h"
#include "lib/limits/limits.h"
#include "lib/manifest/document.h"
#include "lib/runtime/flags.h"
#include "lib/runtime/server.h"
#include "services/cluster-syncer/sync_loop.h"
#include "services/cluster-syncer/syncer.h"

namespace ferry::cluster_syncer {

// Identity and default ports of this component.
inline const runtime::ComponentDefaults kComponent{"cluster-syncer", 3033, 9794};

// Flags as given on the command line, before validation.
struct Flags {
  runtime::ServerFlags server;
  std::string kubeconfig;
  std::string context;
  std::string git_writer_address = "127.0.0.1:3031";
  std::string sync_interval = "5m";
  std::vector<std::string> allow_namespaces;
  bool garbage_collection = false;
  bool gc_dry_run = false;
  std::string sync_state = "git";
  std::string sync_state_namespace;
  std::string sync_set = "ferry";
  bool force_conflicts = true;
  int parallelism = 8;
  bool watch_workloads = true;
  // Limits on each manifest document (lib/manifest/document_flags.h).
  manifest::DocumentLimits manifest_limits;
  kube::LeaderElectionFlags leader;
};

// The validated configuration.
struct Config {
  runtime::ServerOptions server;
  std::string kubeconfig;  // empty: in-cluster service account
  std::string context;
  std::string git_writer_address;
  absl::Duration sync_interval = absl::Minutes(5);
  SyncOptions sync;
  SyncState sync_state = SyncState::kGit;
  std::string sync_state_namespace;   // empty: the kubeconfig's / pod's namespace
  kube::LeaderElectionConfig leader;  // lease name LeaseNameFor(sync) unless given
  bool watch_workloads = true;        // ListWorkloads answers from a WorkloadWatch
};

// The default lease name of a sync set: "ferry-cluster-syncer-" and 10 hex digits of a hash of
// the --sync_set value and the --allow_namespace list, so that replicas of one configuration
// share a Lease and different sync sets never do.
std::string LeaseNameFor(const SyncOptions& sync);

// Registers every flag of ferry-cluster-syncer on `app`.
void AddFlags(CLI::App& app, Flags& flags);

// Validates `flags`. InvalidArgument naming the offending flag.
absl::StatusOr<Config> ToConfig(const Flags& flags);

}  // namespace ferry::cluster_syncer
