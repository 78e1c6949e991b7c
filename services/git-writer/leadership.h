// ferry-git-writer with --leader_elect (issue 21): several replicas of one repo and branch,
// of which only the Lease's holder commits and pushes. Every replica keeps its own mirror,
// fetches upstream and serves reads; a standby's writes answer UNAVAILABLE naming it and the
// leader (WriterOptions::write_permit), every push is bounded by the leadership left
// (Libgit2Options::push_permit), and the "readiness" health check is SERVING on the leader
// alone, so that a Kubernetes Service, or ChannelTo's replica list, sends writes to it.
// Without --leader_elect nothing here talks to Kubernetes and readiness is always SERVING.
#pragma once

#include <prometheus/registry.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "lib/kube/election.h"
#include "lib/kube/kube_client.h"
#include "lib/runtime/server.h"
#include "services/git-writer/config.h"

namespace ferry::git_writer {

// The elector on the Lease, with the Kubernetes client that reaches it.
struct Leadership {
  kube::Election election;

  // Null without --leader_elect.
  kube::LeaderElector* elector() const { return election.elector.get(); }
  // Sets the write and push permits of `config` (nothing without --leader_elect).
  void Fence(Config& config) const;
  // For ServeUntilSignal's `attach`: readiness follows leadership while the server serves.
  std::function<void(runtime::Server*)> Readiness() const;
  // Starts the elector / stops it, releasing the Lease so that a standby takes over at once.
  // Nothing without --leader_elect.
  void Start() const;
  void Stop() const;
};

// The elector of config.leader, not started (an empty Leadership without --leader_elect).
// InvalidArgument starting with "--leader_elect" when the Kubernetes API cannot be reached
// (no --kubeconfig and not in a pod, an unreadable kubeconfig, a missing --context): a
// configuration error, exit 2.
absl::StatusOr<Leadership> MakeLeadership(const Config& config, prometheus::Registry& registry);

}  // namespace ferry::git_writer
