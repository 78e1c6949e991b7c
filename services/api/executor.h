// What jobs do: plan against git, the cluster and the registry, commit through git-writer,
// apply through cluster-syncer, follow rollouts, and record every step in the JobStore.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "services/api/jobs.h"
#include "services/api/release_planner.h"

namespace ferry::api {

// The three services behind the api.
struct Peers {
  ferry::v1::GitWriter::StubInterface& git;
  ferry::v1::RegistryScanner::StubInterface& registry;
  ferry::v1::ClusterSyncer::StubInterface& cluster;
};

// A downstream failure as an absl::Status naming the service: DEADLINE_EXCEEDED becomes
// UNAVAILABLE (the peer did not answer), the message is prefixed with the service's name.
absl::Status Downstream(const char* service, const grpc::Status& status);

// The scanner's tag lists, fetched once per repository and ordering for the lifetime of
// the object (one planning pass). With `background` (jobs, automation) a restarting scanner
// is waited for, the calls registered in that CancelSet so a shutdown cuts them short;
// without (reads answering a person) they fail at once. Not thread-safe.
class TagCache {
 public:
  explicit TagCache(ferry::v1::RegistryScanner::StubInterface& registry,
                    CancelSet* background = nullptr)
      : registry_(registry), background_(background) {}
  const RepositoryTags& Get(const std::string& repository, ferry::v1::TagOrdering ordering);
  TagLookup Lookup() {
    return [this](const std::string& r, ferry::v1::TagOrdering o) -> const RepositoryTags& {
      return Get(r, o);
    };
  }

 private:
  ferry::v1::RegistryScanner::StubInterface& registry_;
  CancelSet* const background_;
  std::map<std::pair<std::string, int>, RepositoryTags> cache_;
};

// Runs jobs. Each Run* finishes its job (JobStore::Finish) whatever happens. Thread-safe:
// jobs run concurrently on the JobRunner's workers.
class Executor {
 public:
  Executor(Peers peers, JobStore& store, CancelSet& cancel);

  // The workload index at git-writer's head.
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> GitWorkloads(const std::string& ns = "");

  // Plans and executes a release job (job.release_spec, validated).
  void RunRelease(const ferry::v1::Job& job);
  // Executes a policy job (job.policy_changes, validated).
  void RunPolicy(const ferry::v1::Job& job);
  // Fetches git now and applies the head.
  void RunSync(const ferry::v1::Job& job);
  // The scanner's tag lists for a background pass (waits for a restarting scanner; cut short
  // at shutdown).
  TagCache BackgroundTags() { return TagCache(peers_.registry, &cancel_); }

  // Executes an automated release of the planned container moves (to_image set).
  void RunAutomated(const ferry::v1::Job& job, const std::vector<AutomationCandidate>& planned,
                    const std::string& planning_note);

 private:
  // Commits `edits`, applies the revision, follows rollouts if asked; updates `results`
  // (failed edits, failed applies) and finishes the job.
  void CommitAndApply(const ferry::v1::Job& job, std::vector<ferry::v1::WorkloadResult> results,
                      const std::vector<ferry::v1::Edit>& edits, const std::string& message,
                      bool wait_rollout, int rollout_timeout_seconds);
  // SyncNow of `revision` ("" = fetch and apply the head). The result, or the whole-sync
  // failure.
  absl::StatusOr<ferry::v1::SyncResult> Apply(const std::string& revision);

  Peers peers_;
  JobStore& store_;
  CancelSet& cancel_;
};

}  // namespace ferry::api
