// Leader election as a service configures and starts it: the --leader_elect* flags every
// Ferry component that elects a leader shares (their names, defaults and checks are the same
// everywhere), the default Lease name of a component's work, and the wiring of a
// LeaderElector (leader.h) to its Lease over the Kubernetes API (lease.h).
#pragma once

#include <prometheus/registry.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/kube/kube_client.h"
#include "lib/kube/leader.h"
#include "lib/kube/lease.h"
#include "lib/runtime/server.h"

namespace ferry::kube {

// The flags as given, before validation.
struct LeaderElectionFlags {
  bool enabled = false;
  std::string lease_name;
  std::string lease_namespace;
  std::string lease_duration = "15s";
  std::string renew_deadline = "10s";
  std::string retry_period = "2s";
};

// Validated; client-go's defaults.
struct LeaderElectionConfig {
  bool enabled = false;
  std::string lease_name;       // the component's default unless given
  std::string lease_namespace;  // empty: the kubeconfig's / pod's namespace
  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);
  absl::Duration retry_period = absl::Seconds(2);
};

// Registers --leader_elect, --leader_elect_lease_name, --leader_elect_namespace,
// --leader_elect_lease_duration, --leader_elect_renew_deadline, --leader_elect_retry_period
// (and their FERRY_* environment variables) on `app`. `what_the_leader_does` completes the
// help text "only the leader ...".
void AddLeaderElectionFlags(CLI::App& app, LeaderElectionFlags& flags,
                            absl::string_view what_the_leader_does);

// Validates `flags`; `default_lease_name` is used when --leader_elect_lease_name is empty.
// InvalidArgument naming the flag: a duration outside 100ms..1h, a lease duration under 1s,
// a renew deadline not shorter than the lease duration, a retry period not shorter than the
// renew deadline, a lease or namespace name Kubernetes would refuse.
absl::StatusOr<LeaderElectionConfig> ParseLeaderElection(const LeaderElectionFlags& flags,
                                                         const std::string& default_lease_name);

// "ferry-<component>-" and 10 hex digits of a SHA-256 of `key`: replicas of one configuration
// share a Lease and different configurations (keyed by what makes them different) never do.
std::string DefaultLeaseName(absl::string_view component, absl::string_view key);

// This process's name for its identity: POD_NAME from the environment (the Downward API), or
// the host name.
std::string PodName();

// A LeaderElector on its Lease, and the Kubernetes client that reaches it when the election
// owns one. Declared in the order they are built: the elector releases its Lease through the
// Lease API and the client on destruction, so it goes first.
struct Election {
  std::unique_ptr<KubeClient> client;  // set by the MakeElection that reaches the API itself
  std::unique_ptr<KubeLeaseApi> lease;
  std::unique_ptr<LeaderElector> elector;  // null without --leader_elect
};

// The elector of `config`'s lease in its namespace (the cluster access's default namespace
// when none is given), reached through `client`, with a MakeIdentity identity for
// `component`; not started. For a component that talks to Kubernetes anyway (the syncer).
Election MakeElection(const LeaderElectionConfig& config, KubeClient& client,
                      const std::string& component, prometheus::Registry& registry);

// For a component that talks to Kubernetes only for its election: an empty Election without
// --leader_elect; else a client of `kubeconfig` / `context` (the pod's service account when
// `kubeconfig` is empty) and the elector on it, not started. InvalidArgument starting with
// "--leader_elect" when the API cannot be reached (no kubeconfig and not in a pod, an
// unreadable kubeconfig, a missing context): a configuration error, exit 2.
absl::StatusOr<Election> MakeElection(const LeaderElectionConfig& config,
                                      const std::string& kubeconfig, const std::string& context,
                                      const std::string& component, prometheus::Registry& registry);

// For ServeUntilSignal's `attach`: the "readiness" and "leader" health checks
// (runtime::kReadinessHealthName, kLeaderHealthName) follow `elector`'s leadership while the
// server serves (through its leadership sink, which this takes); always SERVING without an
// elector (null).
std::function<void(runtime::Server*)> ReadinessFollowsLeadership(LeaderElector* elector);

}  // namespace ferry::kube
