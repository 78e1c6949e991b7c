#include "services/cluster-syncer/config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/manifest/document_flags.h"
#include "re2/re2.h"

namespace ferry::cluster_syncer {

void AddFlags(CLI::App& app, Flags& flags) {
  // --grpc_address, --metrics_address, --drain_timeout, --log_format, --log_level:
  // documented in lib/runtime/flags.h.
  runtime::AddServerFlags(app, kComponent, flags.server);
  // The kubeconfig to use; empty inside a pod (its service account is used).
  app.add_option("--kubeconfig", flags.kubeconfig, "kubeconfig file; empty for in-cluster")
      ->envname("FERRY_KUBECONFIG");
  // A context of the kubeconfig other than its current-context.
  app.add_option("--context", flags.context, "kubeconfig context")->envname("FERRY_CONTEXT");
  // git-writer's gRPC address: manifests, new heads, the sync marker.
  app.add_option("--git_writer_address", flags.git_writer_address, "git-writer HOST:PORT")
      ->envname("FERRY_GIT_WRITER_ADDRESS")
      ->capture_default_str();
  // Re-apply the current head this often (drift correction), besides every new head.
  app.add_option("--sync_interval", flags.sync_interval,
                 "How often the current head is synced with a listing of the cluster (drift "
                 "correction), e.g. 5m")
      ->envname("FERRY_SYNC_INTERVAL")
      ->capture_default_str();
  // Only these namespaces are synced, listed and exported (repeatable); all when none.
  app.add_option("--allow_namespace", flags.allow_namespaces, "Namespace to manage (repeatable)")
      ->envname("FERRY_ALLOW_NAMESPACE");
  // Delete objects this Ferry applied that are no longer in git.
  app.add_flag("--sync_garbage_collection", flags.garbage_collection, "Prune what left git")
      ->envname("FERRY_SYNC_GARBAGE_COLLECTION");
  // With garbage collection: only report what would be deleted.
  app.add_flag("--sync_gc_dry_run", flags.gc_dry_run, "Report what GC would delete")
      ->envname("FERRY_SYNC_GC_DRY_RUN");
  // Where the last applied revision is recorded: git (git-writer's sync tag) or cluster
  // (a ConfigMap ferry-sync-state).
  app.add_option("--sync_state", flags.sync_state, "git or cluster")
      ->envname("FERRY_SYNC_STATE")
      ->capture_default_str();
  // Namespace of the ferry-sync-state ConfigMap (--sync_state=cluster).
  app.add_option("--sync_state_namespace", flags.sync_state_namespace,
                 "Namespace for the sync state ConfigMap")
      ->envname("FERRY_SYNC_STATE_NAMESPACE");
  // Value of the ferry.dev/sync-set label: one per Ferry instance sharing a cluster.
  app.add_option("--sync_set", flags.sync_set, "Label value marking this Ferry's objects")
      ->envname("FERRY_SYNC_SET")
      ->capture_default_str();
  // Take over fields other field managers own (false: such objects fail with the conflict).
  app.add_option("--sync_force_conflicts", flags.force_conflicts, "Force apply conflicts")
      ->envname("FERRY_SYNC_FORCE_CONFLICTS")
      ->capture_default_str();
  // Objects of one dependency rank applied at once.
  app.add_option("--sync_parallelism", flags.parallelism, "Concurrent applies")
      ->envname("FERRY_SYNC_PARALLELISM")
      ->capture_default_str();
  // Keep the cluster's workloads current by watching them (list + watch per workload kind,
  // as controllers do) and answer ListWorkloads from that, rather than from listings and GETs
  // made per request. Needs the list and watch verbs on the workload kinds in every
  // namespace, so it is off with --allow_namespace (listings per namespace are used then).
  app.add_option("--watch_workloads", flags.watch_workloads,
                 "Answer workload lists from a watch of the cluster (true/false)")
      ->envname("FERRY_WATCH_WORKLOADS")
      ->capture_default_str();
  // --max_manifest_depth, --max_manifest_nodes, --max_manifest_expanded_bytes: documented
  // in lib/manifest/document_flags.h (shared with ferry-git-writer).
  manifest::AddDocumentLimitFlags(app, flags.manifest_limits);
  // --leader_elect and its Lease: lib/kube/election.h.
  kube::AddLeaderElectionFlags(app, flags.leader, "applies");
}

std::string LeaseNameFor(const SyncOptions& sync) {
  return kube::DefaultLeaseName(
      kComponent.name,
      absl::StrCat(sync.sync_set, "\n", absl::StrJoin(sync.allow_namespaces, ",")));
}

absl::StatusOr<Config> ToConfig(const Flags& flags) {
  Config config;
  absl::StatusOr<runtime::ServerOptions> server =
      runtime::ToServerOptions(kComponent, flags.server);
  if (!server.ok()) return server.status();
  config.server = *std::move(server);
  config.kubeconfig = flags.kubeconfig;
  config.context = flags.context;
  if (flags.git_writer_address.empty()) {
    return absl::InvalidArgumentError("--git_writer_address: git-writer's HOST:PORT is required");
  }
  config.git_writer_address = flags.git_writer_address;
  if (!absl::ParseDuration(flags.sync_interval, &config.sync_interval) ||
      config.sync_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat("--sync_interval: '", flags.sync_interval,
                                                   "' is not a duration of 1s or more"));
  }
  static const RE2 kDnsLabel("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
  for (const std::string& ns : flags.allow_namespaces) {
    if (!RE2::FullMatch(ns, kDnsLabel)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--allow_namespace: '", ns, "' is not a namespace name"));
    }
    config.sync.allow_namespaces.insert(ns);
  }
  static const RE2 kLabelValue("([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)");
  if (!RE2::FullMatch(flags.sync_set, kLabelValue)) {
    return absl::InvalidArgumentError(absl::StrCat("--sync_set: '", flags.sync_set,
                                                   "' is not a valid label value (1-63 characters, "
                                                   "alphanumerics, '-', '_', '.')"));
  }
  config.sync.sync_set = flags.sync_set;
  if (flags.gc_dry_run && !flags.garbage_collection) {
    return absl::InvalidArgumentError(
        "--sync_gc_dry_run needs --sync_garbage_collection (it previews what GC would delete)");
  }
  config.sync.garbage_collection = flags.garbage_collection;
  config.sync.gc_dry_run = flags.gc_dry_run;
  config.sync.force_conflicts = flags.force_conflicts;
  if (flags.parallelism < 1 || flags.parallelism > 64) {
    return absl::InvalidArgumentError("--sync_parallelism must be between 1 and 64");
  }
  config.sync.parallelism = flags.parallelism;
  config.sync.manifest_limits = flags.manifest_limits;
  if (absl::Status limits = manifest::ValidateDocumentLimitFlags(config.sync.manifest_limits);
      !limits.ok()) {
    return limits;
  }
  if (flags.sync_state == "git") {
    config.sync_state = SyncState::kGit;
  } else if (flags.sync_state == "cluster") {
    config.sync_state = SyncState::kCluster;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--sync_state: '", flags.sync_state, "' is not git or cluster"));
  }
  config.sync_state_namespace = flags.sync_state_namespace;
  config.watch_workloads = flags.watch_workloads && flags.allow_namespaces.empty();
  absl::StatusOr<kube::LeaderElectionConfig> leader =
      kube::ParseLeaderElection(flags.leader, LeaseNameFor(config.sync));
  if (!leader.ok()) return leader.status();
  config.leader = *std::move(leader);
  return config;
}

}  // namespace ferry::cluster_syncer
