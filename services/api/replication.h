// Several ferry-api replicas behind one Service (--leader_elect, issue 21): what each replica
// needs from the Kubernetes API. The automation runs only on the replica that holds the
// automation's Lease (lib/kube/leader.h; Automation::SetLeading and SetWritePermit); every
// replica serves the API and runs the jobs people submit, since git-writer serializes the
// commits; the jobs are shared as records in ConfigMaps of the Lease's namespace
// (job_records.h), so any replica answers GetJob, WatchJob and ListJobs for any job.
// Without --leader_elect a replica needs no Kubernetes access, nothing here is made, and the
// jobs stay in its memory (and git notes) as before.
#pragma once

#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/kube/election.h"
#include "lib/kube/kube_client.h"
#include "services/api/automation.h"
#include "services/api/config.h"
#include "services/api/job_records.h"
#include "services/api/jobs.h"

namespace ferry::api {

// The Kubernetes client and the election; members in the order they must be built (and the
// reverse of the order they go): the elector releases its Lease through the client.
struct Replication {
  kube::Election election;  // with the Kubernetes client the records use too
  std::unique_ptr<JobRecordMetrics> record_metrics;
  std::unique_ptr<ConfigMapJobRecords> records;
  std::unique_ptr<JobRecordPublisher> publisher;
  std::unique_ptr<JobRecordCollector> collector;  // the leader deletes stale records

  // Null without --leader_elect.
  kube::LeaderElector* elector() const { return election.elector.get(); }
  JobRecordStore* shared_jobs() const { return records.get(); }
  // Whether this replica leads now (always true without --leader_elect); for what one replica
  // does for all, like announcing cluster-syncer's failed syncs.
  std::function<bool()> Leading() const;

  // Publishes every change of `jobs` to the shared records from now on (call it before any
  // job is submitted). Nothing without --leader_elect.
  void Share(JobStore& jobs);

  // Makes every one of `automations` (one per source) follow the election (its passes run while
  // this replica leads, each asks for the write permit before it submits) and starts the elector.
  // Nothing without
  // --leader_elect.
  void Lead(const std::vector<Automation*>& automations);
  // Stops following and the elector, which releases the Lease so that a standby takes over
  // at once, and publishes the jobs' last changes for a few seconds at most. Call it once
  // the jobs ended, before `automation` and `jobs` go. Idempotent.
  void Stop(JobStore& jobs);
};

// With config.leader.enabled: the cluster access of --kubeconfig / --context (or the pod's
// service account), the elector on the api's Lease (not started) and the shared job records
// in the Lease's namespace. Without it: an empty
// Replication. InvalidArgument starting with "--leader_elect" when the Kubernetes API cannot
// be reached that way (no kubeconfig and not in a pod, a missing context): a configuration
// error, exit 2.
absl::StatusOr<Replication> MakeReplication(const Config& config, prometheus::Registry& registry);

}  // namespace ferry::api
