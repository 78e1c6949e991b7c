// Several ferry-api replicas behind one Service (--leader_elect, issue 21): what each replica
// needs from the Kubernetes API. The automation runs only on the replica that holds the
// automation's Lease (lib/kube/leader.h; Automation::SetLeading and SetWritePermit); every
// replica serves the API and runs the jobs people submit, since git-writer serializes the
// commits. Without --leader_elect a replica needs no Kubernetes access and nothing here is
// made.
#pragma once

#include <prometheus/registry.h>

#include <memory>

#include "absl/status/statusor.h"
#include "lib/kube/election.h"
#include "lib/kube/kube_client.h"
#include "services/api/automation.h"
#include "services/api/config.h"

namespace ferry::api {

// The Kubernetes client and the election; members in the order they must be built (and the
// reverse of the order they go): the elector releases its Lease through the client.
struct Replication {
  std::unique_ptr<kube::KubeClient> client;
  kube::Election election;

  // Null without --leader_elect.
  kube::LeaderElector* elector() const { return election.elector.get(); }

  // Makes `automation` follow the election (its passes run while this replica leads, each
  // asks for the write permit before it submits) and starts the elector. Nothing without
  // --leader_elect.
  void Lead(Automation& automation);
  // Stops following and the elector, which releases the Lease so that a standby takes over
  // at once. Call it before `automation` goes. Idempotent.
  void Stop();
};

// With config.leader.enabled: the cluster access of --kubeconfig / --context (or the pod's
// service account) and the elector on the api's Lease (not started). Without it: an empty
// Replication. InvalidArgument starting with "--leader_elect" when the Kubernetes API cannot
// be reached that way (no kubeconfig and not in a pod, a missing context): a configuration
// error, exit 2.
absl::StatusOr<Replication> MakeReplication(const Config& config, prometheus::Registry& registry);

}  // namespace ferry::api
