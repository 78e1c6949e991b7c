#include "services/api/executor.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/limits/limits.h"
#include "lib/log/laps.h"
#include "lib/log/log.h"
#include "lib/manifest/workload_selection.h"
#include "lib/runtime/parallel.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_macros.h"

namespace ferry::api {
namespace {

using ferry::v1::WorkloadResult;

std::string Short(const std::string& revision) { return revision.substr(0, 12); }

// SKIPPED results kept in a job's git note (see CommitRequest).
constexpr int kNoteSkippedResults = 1000;

// How old the syncer's listing may be when a release's planning reads which workloads run
// (ListClusterWorkloadsRequest.max_age_ms; the syncer keeps one at most 10 s old).
constexpr int kPlanningListingMaxAgeMs = 10000;
// AddRunningNow: how much older than its first page's listing a later page accepts.
constexpr int64_t kPageAgeSlackMs = 1000;

// The room for the list of changes in a commit message with `cause` appended: the message
// stays under git-writer's default limit however long the cause is.
size_t ListBudget(const ferry::v1::Cause& cause) {
  const size_t limit = limits::kCommitMessageBytes.default_value - 1024;  // subject, spacing
  return std::min(kCommitListBytes,
                  limit > cause.message().size() ? limit - cause.message().size() : size_t{0});
}

// "Release X to Y" with the container moves and the cause's message.
std::string ReleaseMessage(const ferry::v1::ReleaseSpec& spec,
                           const std::vector<WorkloadResult>& results,
                           const ferry::v1::Cause& cause) {
  std::vector<std::string> ids;
  std::vector<std::string> moves;
  for (const WorkloadResult& r : results) {
    if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
    ids.push_back(r.workload());
    for (const auto& u : r.updates()) {
      moves.push_back(absl::StrCat(r.workload(), " ", u.container(), ": ", u.from_image(), " -> ",
                                   u.to_image()));
    }
  }
  std::string what = spec.image().empty() ? "latest images" : spec.image();
  std::string to = ids.size() == 1 ? ids[0] : absl::StrCat(ids.size(), " workloads");
  std::string message = absl::StrCat("Release ", what, " to ", to, "\n\n",
                                     ListWithin(moves, " - ", ListBudget(cause)));
  if (!cause.message().empty()) absl::StrAppend(&message, "\n\n", cause.message());
  return message;
}

std::string ChangeName(const ferry::v1::PolicyChange& c) {
  switch (c.change_case()) {
    case ferry::v1::PolicyChange::kAutomate:
      return "automate";
    case ferry::v1::PolicyChange::kDeautomate:
      return "deautomate";
    case ferry::v1::PolicyChange::kLock:
      return "lock";
    case ferry::v1::PolicyChange::kUnlock:
      return "unlock";
    case ferry::v1::PolicyChange::kSetTagFilter:
      return absl::StrCat("tag ", c.set_tag_filter().container(), "=",
                          c.set_tag_filter().pattern());
    case ferry::v1::PolicyChange::kRemoveTagFilter:
      return absl::StrCat("remove tag filter of ", c.remove_tag_filter());
    case ferry::v1::PolicyChange::kSetTagAll:
      return absl::StrCat("tag all=", c.set_tag_all());
    case ferry::v1::PolicyChange::kRemoveTagAll:
      return "remove tag filter of all containers";
    case ferry::v1::PolicyChange::kSetMinAge:
      return c.set_min_age().container().empty()
                 ? absl::StrCat("min-age=", c.set_min_age().duration())
                 : absl::StrCat("min-age ", c.set_min_age().container(), "=",
                                c.set_min_age().duration());
    case ferry::v1::PolicyChange::kRemoveMinAge:
      return c.remove_min_age().empty() ? "remove min-age"
                                        : absl::StrCat("remove min-age of ", c.remove_min_age());
    case ferry::v1::PolicyChange::kSetRollback:
      return absl::StrCat("rollback=", c.set_rollback());
    case ferry::v1::PolicyChange::kRemoveRollback:
      return "remove rollback";
    case ferry::v1::PolicyChange::kSetRollbackTimeout:
      return absl::StrCat("rollback-timeout=", c.set_rollback_timeout());
    case ferry::v1::PolicyChange::kRemoveRollbackTimeout:
      return "remove rollback-timeout";
    case ferry::v1::PolicyChange::kRejectTag:
      return absl::StrCat("reject ", c.reject_tag().container(), ":", c.reject_tag().tag());
    case ferry::v1::PolicyChange::kClearRejected:
      return c.clear_rejected().empty()
                 ? "clear rejected tags"
                 : absl::StrCat("clear rejected tags of ", c.clear_rejected());
    default:
      return "nothing";
  }
}

std::string PolicyMessage(const ferry::v1::Job& job) {
  std::vector<std::string> lines;
  for (const auto& w : job.policy_changes()) {
    std::vector<std::string> names;
    for (const auto& c : w.changes()) names.push_back(ChangeName(c));
    lines.push_back(absl::StrCat(w.workload(), ": ", absl::StrJoin(names, ", ")));
  }
  std::string message = lines.size() == 1
                            ? absl::StrCat("Update policy of ", lines[0])
                            : absl::StrCat("Update policy of ", lines.size(), " workloads\n\n",
                                           ListWithin(lines, " - ", ListBudget(job.cause())));
  if (!job.cause().message().empty()) absl::StrAppend(&message, "\n\n", job.cause().message());
  return message;
}

// The result of `workload` in `results`; null when it has none.
WorkloadResult* ResultOf(std::vector<WorkloadResult>& results, const std::string& workload) {
  for (WorkloadResult& r : results) {
    if (r.workload() == workload) return &r;
  }
  return nullptr;
}

// Every workload still to be released fails with `why`.
void FailReleased(std::vector<WorkloadResult>& results, const std::string& why) {
  for (WorkloadResult& r : results) {
    if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
    r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
    r.set_reason(why);
  }
}

// The workloads whose edits git-writer refused fail with its reason; the others name the
// kustomize roots their change alters.
void MarkFailedEdits(const ferry::v1::ApplyUpdatesResponse& applied,
                     std::vector<WorkloadResult>& results) {
  for (const ferry::v1::EditResult& r : applied.results()) {
    WorkloadResult* wr = ResultOf(results, r.edit().workload());
    if (wr == nullptr) continue;
    if (r.code() == 0) {
      for (const std::string& root : r.kustomize_roots()) {
        if (std::find(wr->kustomize_roots().begin(), wr->kustomize_roots().end(), root) ==
            wr->kustomize_roots().end()) {
          wr->add_kustomize_roots(root);
        }
      }
      continue;
    }
    wr->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
    wr->set_reason(r.error());
  }
}

// The released workloads the cluster refused fail; returns those it took.
std::set<std::string> MarkRefusedByCluster(const ferry::v1::SyncResult& synced,
                                           std::vector<WorkloadResult>& results) {
  std::set<std::string> released;
  for (const WorkloadResult& r : results) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) released.insert(r.workload());
  }
  for (const ferry::v1::ResourceError& e : synced.errors()) {
    WorkloadResult* wr = ResultOf(results, e.resource());
    if (wr == nullptr || wr->status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
    wr->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
    wr->set_reason(absl::StrCat("committed, but the cluster refused it: ", e.error()));
    released.erase(e.resource());
  }
  return released;
}

// The workloads whose rollout ended in an error (in the last progress seen) fail.
void MarkFailedRollouts(const ferry::v1::WaitRolloutProgress& last,
                        std::vector<WorkloadResult>& results) {
  for (const auto& r : last.rollouts()) {
    if (r.status().state() != ferry::v1::ROLLOUT_STATE_ERROR) continue;
    if (WorkloadResult* wr = ResultOf(results, r.workload())) {
      wr->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
      wr->set_reason(absl::StrCat("rollout failed: ", absl::StrJoin(r.status().messages(), "; ")));
    }
  }
}

}  // namespace

namespace {

// Every tag of `repository`, by creation time: the api ranks them by each container's filter
// (lib/policy).
ferry::v1::ListTagsRequest EveryTagOf(const std::string& repository) {
  ferry::v1::ListTagsRequest request;
  request.set_repository(repository);
  request.set_ordering(ferry::v1::TAG_ORDERING_CREATED);
  return request;
}

}  // namespace

std::unique_ptr<SharedTagLists> NewSharedTagLists(const PeerClients& peers) {
  return std::make_unique<SharedTagLists>(
      [&peers](const std::string& repository) {
        return peers.registry.Call(&RegistryScannerStub::ListTags, EveryTagOf(repository),
                                   peers.Until(absl::Now() + kPeerCallTimeout,
                                               /*await_peer=*/false));
      },
      runtime::SystemClock(), kTagListMaxAge, kTagListMaxStale, kTagListRepositories);
}

const RepositoryTags& TagCache::Get(const std::string& repository) {
  auto it = cache_.find(repository);
  if (it != cache_.end()) return it->second;
  RepositoryTags out;
  if (shared_ != nullptr) {
    SharedTagLists::Outcome listed = shared_->Get(repository, std::nullopt, budget_.deadline);
    if (listed.ok()) {
      out.tags = **listed;
    } else {
      out.status = listed.status();
    }
    return cache_.emplace(repository, std::move(out)).first->second;
  }
  CallBudget budget = budget_.AtMost(kPeerCallTimeout);
  if (budget.await_peer && !connected_.has_value()) connected_ = registry_->Await(budget);
  budget.await_peer = false;  // waited for once, above
  if (connected_.has_value() && !connected_->ok()) {
    out.status = *connected_;
  } else {
    absl::StatusOr<ferry::v1::ListTagsResponse> listed =
        registry_->Call(&RegistryScannerStub::ListTags, EveryTagOf(repository), budget);
    if (listed.ok()) {
      out.tags = *std::move(listed);
    } else {
      out.status = listed.status();
    }
  }
  return cache_.emplace(repository, std::move(out)).first->second;
}

Executor::Executor(const PeerClients& peers, JobStore& store) : peers_(peers), store_(store) {}

absl::StatusOr<ferry::v1::SyncResult> Executor::Apply(const std::string& revision,
                                                      bool skip_if_applied) {
  ferry::v1::SyncNowRequest request;
  request.set_revision(revision);
  request.set_skip_if_applied(skip_if_applied);
  absl::StatusOr<ferry::v1::SyncResult> out =
      peers_.cluster.Call(&ClusterSyncerStub::SyncNow, request, peers_.ForStage(Stage::kApply));
  if (out.ok() && !out->error().empty()) {
    return absl::UnavailableError(absl::StrCat(peers_.cluster.name(), ": ", out->error()));
  }
  return out;
}

void Executor::RunRelease(const ferry::v1::Job& job) {
  const std::string& id = job.id();
  const ferry::v1::ReleaseSpec& spec = job.release_spec();
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_PLANNING,
                  "reading git, the cluster and the registry");
  const CallBudget planning = peers_.ForStage(Stage::kPlanning);  // shared by its calls
  // A release of named workloads reads only those; one of every workload reads them all.
  ferry::v1::ListManifestWorkloadsRequest git_request;
  ferry::v1::ListClusterWorkloadsRequest cluster_request;
  if (!spec.all_workloads() && spec.workloads_size() > 0 &&
      spec.workloads_size() <= static_cast<int>(manifest::WorkloadSelection::kMaxIds)) {
    *git_request.mutable_ids() = spec.workloads();
    *cluster_request.mutable_ids() = spec.workloads();
  }
  // Which workloads run: a listing up to kPlanningListingMaxAgeMs old will do, as a new one
  // of every workload kind costs the syncer seconds at 10,000 workloads. It may predate a
  // workload's first sync, so it is not trusted to say a workload is missing: those are
  // looked up in a listing made since (AddRunningNow).
  cluster_request.set_max_age_ms(kPlanningListingMaxAgeMs);
  // Git and the cluster are read side by side: neither request needs the other's answer
  // (a release of 100 named workloads at 10,000 waits 2-9 ms for git and 55-140 ms for the
  // cluster). git_ms and cluster_ms in the log line both count from the start of the reads.
  // The job ends once both have answered, also when git's read failed first (bounded by the
  // planning's timeout, as each read is).
  const absl::Time reads_start = absl::Now();
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git =
      absl::UnknownError("git was not read");
  absl::StatusOr<ferry::v1::ListClusterWorkloadsResponse> in_cluster =
      absl::UnknownError("the cluster was not read");
  int64_t git_ms = 0;
  int64_t cluster_ms = 0;
  runtime::ParallelFor(2, 2, [&](size_t i) {
    if (i == 0) {
      in_git = peers_.ListAllInGit(git_request, planning);
      git_ms = absl::ToInt64Milliseconds(absl::Now() - reads_start);
    } else {
      in_cluster = peers_.ListAllInCluster(cluster_request, planning);
      cluster_ms = absl::ToInt64Milliseconds(absl::Now() - reads_start);
    }
  });
  log::Laps laps;  // the rest of the planning's time, in the "release planned" line
  if (!in_git.ok()) return store_.Finish(id, std::string(in_git.status().message()));
  if (in_git->readonly() && !spec.dry_run()) {
    return store_.Finish(id,
                         "git-writer runs read-only (--git_readonly): nothing can be released; "
                         "a dry run still plans");
  }
  if (!in_cluster.ok()) return store_.Finish(id, std::string(in_cluster.status().message()));
  TagCache tags(peers_.registry, planning);
  // Moved out of the answers, not copied: at 10,000 workloads each is megabytes.
  std::vector<ferry::v1::ManifestWorkload> workloads;
  workloads.reserve(in_git->workloads_size());
  for (ferry::v1::ManifestWorkload& w : *in_git->mutable_workloads()) {
    workloads.push_back(std::move(w));
  }
  in_git->clear_workloads();
  std::map<std::string, bool> running;  // as PlanRelease takes it
  for (const auto& w : in_cluster->workloads()) running[w.id()] = true;
  in_cluster->clear_workloads();  // only which ones run was needed
  ReleasePlan plan = PlanRelease(spec, workloads, running, tags.Lookup(), absl::Now());
  std::vector<std::string> missing;
  for (const WorkloadResult& r : plan.results) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED &&
        r.reason() == reason::kNotInCluster) {
      missing.push_back(r.workload());
    }
  }
  const int64_t plan_ms = laps.Next();
  if (!missing.empty()) {
    if (absl::Status looked = AddRunningNow(missing, planning, running); !looked.ok()) {
      return store_.Finish(id, std::string(looked.message()));
    }
    plan = PlanRelease(spec, workloads, running, tags.Lookup(), absl::Now());
  }
  store_.SetResults(id, plan.results);
  std::vector<ferry::v1::Edit> edits = plan.Edits();
  log::Info("release planned", {{"job", id},
                                {"workloads", static_cast<int>(workloads.size())},
                                {"edits", static_cast<int>(edits.size())},
                                {"git_ms", git_ms},
                                {"cluster_ms", cluster_ms},
                                {"plan_ms", plan_ms},
                                {"looked_up_again", static_cast<int>(missing.size())},
                                {"again_ms", laps.Next()}});
  if (edits.empty()) {
    return store_.Finish(id, "", "nothing to release: no workload needs a change");
  }
  if (in_git->readonly()) {
    return store_.Finish(id, "", "dry run, planned only: git-writer runs read-only");
  }
  CommitAndApply(job, plan.results, edits, ReleaseMessage(spec, plan.results, job.cause()),
                 spec.wait_rollout(), spec.rollout_timeout_seconds());
}

absl::Status Executor::AddRunningNow(const std::vector<std::string>& ids, const CallBudget& budget,
                                     std::map<std::string, bool>& running) const {
  const absl::Time since = absl::Now();
  const size_t page = manifest::WorkloadSelection::kMaxIds;
  for (size_t first = 0; first < ids.size(); first += page) {
    ferry::v1::ListClusterWorkloadsRequest request;
    for (size_t i = first; i < std::min(ids.size(), first + page); ++i) request.add_ids(ids[i]);
    // Made since `since`: the first page asks for a listing of now (1 ms: 0 would ask for the
    // syncer's default age; up to 100 ids the syncer reads each one instead); the next ones
    // accept the listing it caused, with a second to spare for the calls' own delays (only a
    // listing newer than the planning's matters).
    const int64_t ms =
        first == 0 ? 1 : absl::ToInt64Milliseconds(absl::Now() - since) + kPageAgeSlackMs;
    request.set_max_age_ms(
        static_cast<int32_t>(std::clamp<int64_t>(ms, 1, kPlanningListingMaxAgeMs)));
    FERRY_ASSIGN_OR_RETURN(ferry::v1::ListClusterWorkloadsResponse listed,
                           peers_.ListAllInCluster(std::move(request), budget));
    for (const auto& w : listed.workloads()) running[w.id()] = true;
  }
  return absl::OkStatus();
}

void Executor::RunPolicy(const ferry::v1::Job& job) {
  store_.AddStage(job.id(), ferry::v1::JOB_STAGE_KIND_PLANNING,
                  absl::StrCat(job.policy_changes_size(), " workload(s)"));
  std::vector<WorkloadResult> results;
  std::vector<ferry::v1::Edit> edits;
  for (const auto& w : job.policy_changes()) {
    WorkloadResult r;
    r.set_workload(w.workload());
    r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
    results.push_back(r);
    for (const auto& c : w.changes()) {
      ferry::v1::Edit e;
      e.set_workload(w.workload());
      *e.mutable_policy() = c;
      edits.push_back(std::move(e));
    }
  }
  std::sort(results.begin(), results.end(), [](const WorkloadResult& a, const WorkloadResult& b) {
    return a.workload() < b.workload();
  });
  store_.SetResults(job.id(), results);
  CommitAndApply(job, results, edits, PolicyMessage(job), false, 0);
}

void Executor::RunSync(const ferry::v1::Job& job) {
  const std::string& id = job.id();
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_PLANNING, "fetching git");
  absl::StatusOr<ferry::v1::HeadResponse> head = peers_.git.Call(
      &GitWriterStub::Notify, ferry::v1::NotifyRequest(), peers_.ForStage(Stage::kPlanning));
  if (absl::IsFailedPrecondition(head.status())) {
    // git-writer's --git_verify_signatures: upstream's head did not verify and is not served,
    // the last verified revision is. That one is synced; the job says why the head is not.
    absl::StatusOr<ferry::v1::HeadResponse> served = peers_.git.Call(
        &GitWriterStub::Head, ferry::v1::HeadRequest(), peers_.ForStage(Stage::kPlanning));
    if (served.ok() && !served->verify_error().empty() && !served->revision().empty()) {
      head = std::move(served);
    }
  }
  if (!head.ok()) return store_.Finish(id, std::string(head.status().message()));
  // A person's sync applies again even an unchanged head: it corrects drift.
  absl::StatusOr<ferry::v1::SyncResult> applied = Apply(head->revision(), false);
  if (!applied.ok()) return store_.Finish(id, std::string(applied.status().message()));
  std::vector<WorkloadResult> results;
  for (const ferry::v1::ResourceError& e : applied->errors()) {
    WorkloadResult r;
    r.set_workload(e.resource());
    r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
    r.set_reason(e.path().empty() ? e.error() : absl::StrCat(e.path(), ": ", e.error()));
    results.push_back(std::move(r));
  }
  store_.SetResults(id, results);
  store_.AddStage(
      id, ferry::v1::JOB_STAGE_KIND_APPLIED,
      absl::StrCat(applied->applied(), " applied, ", applied->unchanged(), " unchanged, ",
                   applied->failed(), " failed, ", applied->pruned(), " pruned"),
      applied->revision());
  store_.Finish(id, "",
                head->verify_error().empty()
                    ? absl::StrCat("synced ", Short(applied->revision()))
                    : absl::StrCat("synced ", Short(applied->revision()),
                                   ", the last verified revision: ", head->verify_error()));
}

void Executor::RunAutomated(const ferry::v1::Job& job,
                            const std::vector<AutomationCandidate>& planned,
                            const std::string& planning_note) {
  store_.AddStage(job.id(), ferry::v1::JOB_STAGE_KIND_PLANNING, planning_note);
  std::map<std::string, WorkloadResult> by_workload;
  std::vector<ferry::v1::Edit> edits;
  for (const AutomationCandidate& a : planned) {
    if (a.to_image.empty()) continue;
    WorkloadResult& r = by_workload[a.workload];
    r.set_workload(a.workload);
    r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
    ferry::v1::ContainerUpdate* u = r.add_updates();
    u->set_container(a.container);
    u->set_from_image(a.from_image);
    u->set_to_image(a.to_image);
    ferry::v1::Edit e;
    e.set_workload(a.workload);
    e.mutable_image()->set_container(a.container);
    e.mutable_image()->set_from_image(a.from_image);
    e.mutable_image()->set_to_image(a.to_image);
    edits.push_back(std::move(e));
  }
  std::vector<WorkloadResult> results;
  for (auto& [id, r] : by_workload) results.push_back(std::move(r));
  store_.SetResults(job.id(), results);
  if (edits.empty()) return store_.Finish(job.id(), "", "nothing to release");
  CommitAndApply(job, results, edits, AutomationCommitMessage(planned), false, 0);
}

RevertOutcome Executor::RunRevert(const ferry::v1::Job& job, std::vector<WorkloadResult> results,
                                  const std::vector<ferry::v1::Edit>& edits,
                                  const std::string& message) {
  const std::string& id = job.id();
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_PLANNING,
                  absl::StrCat("reverting job ", job.reverts_job(),
                               ": one commit only if git still has the released images"));
  store_.SetResults(id, results);
  // One commit or none: with all_or_nothing git-writer commits nothing when any edit fails
  // (also after a rebase), so the lock and the rejected tags never land without the revert.
  ferry::v1::ApplyUpdatesRequest request = CommitRequest(job, results, edits, message);
  request.set_all_or_nothing(true);
  absl::StatusOr<ferry::v1::ApplyUpdatesResponse> committed =
      peers_.git.Call(&GitWriterStub::ApplyUpdates, request, peers_.ForStage(Stage::kCommit));
  if (!committed.ok()) return FailRevert(job, std::move(results), committed.status());
  ApplyCommitted(job, std::move(results), *committed, false, 0);
  return RevertOutcomeOf(id);
}

RevertOutcome Executor::FailRevert(const ferry::v1::Job& job, std::vector<WorkloadResult> results,
                                   const absl::Status& status) {
  // ABORTED: a compare-and-set lost (or upstream kept moving): a person is in charge.
  const bool changed = status.code() == absl::StatusCode::kAborted;
  const std::string workload = results.empty() ? "" : results[0].workload();
  const std::string why = changed
                              ? absl::StrCat("nothing reverted: ", workload,
                                             " changed in git since job ", job.reverts_job(), " (",
                                             status.message(), "); not locked, no tag rejected")
                              : absl::StrCat("nothing reverted: ", status.message());
  FailReleased(results, why);
  store_.SetResults(job.id(), results);
  store_.Finish(job.id(), why);
  return changed ? RevertOutcome::kConflict : RevertOutcome::kFailed;
}

RevertOutcome Executor::RevertOutcomeOf(const std::string& id) {
  std::optional<ferry::v1::Job> done = store_.Get(id);
  // Committed is reverted, also when applying the commit failed (the job says so).
  if (!done.has_value() || done->revision().empty()) return RevertOutcome::kFailed;
  for (const WorkloadResult& r : done->results()) {
    if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) return RevertOutcome::kFailed;
  }
  return RevertOutcome::kReverted;
}

void Executor::CommitAndApply(const ferry::v1::Job& job, std::vector<WorkloadResult> results,
                              const std::vector<ferry::v1::Edit>& edits, const std::string& message,
                              bool wait_rollout, int rollout_timeout_seconds) {
  const std::string& id = job.id();
  const absl::Time start = absl::Now();
  absl::StatusOr<ferry::v1::ApplyUpdatesResponse> committed =
      peers_.git.Call(&GitWriterStub::ApplyUpdates, CommitRequest(job, results, edits, message),
                      peers_.ForStage(Stage::kCommit));
  log::Info("edits sent to git-writer", {{"job", id},
                                         {"edits", static_cast<int>(edits.size())},
                                         {"ok", committed.ok()},
                                         {"revision", committed.ok() ? committed->revision() : ""},
                                         {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
  if (!committed.ok()) {
    FailReleased(results, std::string(committed.status().message()));
    store_.SetResults(id, results);
    return store_.Finish(id, std::string(committed.status().message()));
  }
  ApplyCommitted(job, std::move(results), *committed, wait_rollout, rollout_timeout_seconds);
}

void Executor::ApplyCommitted(const ferry::v1::Job& job, std::vector<WorkloadResult> results,
                              const ferry::v1::ApplyUpdatesResponse& applied, bool wait_rollout,
                              int rollout_timeout_seconds) {
  const std::string& id = job.id();
  MarkFailedEdits(applied, results);
  store_.SetResults(id, results);
  if (job.dry_run()) return store_.Finish(id, "", "dry run: nothing committed");
  if (applied.no_changes() || applied.revision().empty()) {
    return store_.Finish(id, "", "no change: git already has it");
  }
  const std::string revision = applied.revision();
  // Set before the stage, so a watcher sees the commit and where it went together.
  if (!applied.pushed_branch().empty()) store_.SetPushedBranch(id, applied.pushed_branch());
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED,
                  applied.retries() > 0
                      ? absl::StrCat("after ", applied.retries(), " retry(ies): upstream moved")
                      : "",
                  revision);
  // Release branches (git-writer's --git_push_branch): the commit is on a branch the syncer
  // does not follow, so waiting for it to be applied would wait forever. The job ends at
  // COMMIT_PUSHED; the change is applied once a review merges that branch.
  if (!applied.pushed_branch().empty()) {
    std::string done =
        absl::StrCat("pushed ", Short(revision), " to branch ", applied.pushed_branch(),
                     "; applied once merged into the branch Ferry syncs");
    // Ferry's earlier commits that the rebuilt branch lost (at most kNamed named).
    constexpr int kNamed = 5;
    const auto& dropped = applied.dropped_commits();
    if (!dropped.empty()) {
      const int named = std::min(kNamed, dropped.size());
      absl::StrAppend(&done, "; no longer on ", applied.pushed_branch(), ": ",
                      absl::StrJoin(dropped.begin(), dropped.begin() + named, "; "));
      if (dropped.size() > named) {
        absl::StrAppend(&done, " and ", dropped.size() - named, " more");
      }
    }
    return store_.Finish(id, "", done);
  }

  // The commit's own sync (WatchHead starts it as soon as the push lands) is the answer.
  absl::StatusOr<ferry::v1::SyncResult> synced = Apply(revision, /*skip_if_applied=*/true);
  if (!synced.ok()) {
    // Pushed is released: the background sync applies it later, and the follow waits for it.
    std::set<std::string> committed;
    for (const WorkloadResult& r : results) {
      if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) committed.insert(r.workload());
    }
    CallReleaseHook(job, revision, results, committed, /*applied=*/false);
    return store_.Finish(id, absl::StrCat("committed ", Short(revision),
                                          ", but applying it failed: ", synced.status().message()));
  }
  const std::set<std::string> released = MarkRefusedByCluster(*synced, results);
  store_.SetResults(id, results);
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_APPLIED,
                  absl::StrCat(synced->applied(), " applied, ", synced->unchanged(), " unchanged, ",
                               synced->failed(), " failed"),
                  synced->revision());
  CallReleaseHook(job, revision, results, released, /*applied=*/true);
  if (!wait_rollout || released.empty()) {
    return store_.Finish(id, "", absl::StrCat("committed and applied ", Short(revision)));
  }
  FollowRollout(id, revision, released, rollout_timeout_seconds, results);
}

void Executor::CallReleaseHook(const ferry::v1::Job& job, const std::string& revision,
                               const std::vector<WorkloadResult>& results,
                               const std::set<std::string>& released, bool applied) {
  if (!release_applied_ || released.empty() ||
      (job.kind() != ferry::v1::JOB_KIND_RELEASE &&
       job.kind() != ferry::v1::JOB_KIND_AUTOMATED_RELEASE)) {
    return;
  }
  std::vector<WorkloadResult> took;
  for (const WorkloadResult& r : results) {
    if (released.count(r.workload()) > 0) took.push_back(r);
  }
  release_applied_(job, revision, took, applied);
}

ferry::v1::ApplyUpdatesRequest Executor::CommitRequest(const ferry::v1::Job& job,
                                                       const std::vector<WorkloadResult>& results,
                                                       const std::vector<ferry::v1::Edit>& edits,
                                                       const std::string& message) {
  ferry::v1::ApplyUpdatesRequest request;
  for (const auto& e : edits) *request.add_edits() = e;
  request.set_message(message);
  *request.mutable_cause() = job.cause();
  request.set_dry_run(job.dry_run());
  request.set_omit_diff(true);  // not shown anywhere
  if (!job.dry_run()) {
    // The record kept in the git note: the job as it will have finished, so a restarted api
    // can still answer for it. Workloads the job did not concern (IGNORED: not named, another
    // image) are left out, and the SKIPPED ones after the first kNoteSkippedResults, so that
    // the record stays within the note's limit (limits::kJobNoteBytes) at any repo size:
    // what changed (at most limits::kEditsPerRequest) is always recorded.
    ferry::v1::Job note = *store_.Get(job.id());
    note.clear_results();
    int skipped = 0;
    for (const auto& r : results) {
      if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED) continue;
      if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED &&
          skipped++ >= kNoteSkippedResults) {
        continue;
      }
      *note.add_results() = r;
    }
    note.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
    *note.mutable_finished() = runtime::ToProtoTimestamp(absl::Now());
    *request.mutable_job() = note;
  }
  return request;
}

void Executor::FollowRollout(const std::string& id, const std::string& revision,
                             const std::set<std::string>& released, int rollout_timeout_seconds,
                             std::vector<WorkloadResult>& results) {
  // The release's own rollout timeout, else --job_rollout_timeout; the call itself may take
  // a little longer (the syncer reports the timeout).
  const int timeout = rollout_timeout_seconds > 0
                          ? rollout_timeout_seconds
                          : static_cast<int>(absl::ToInt64Seconds(peers_.timeouts().rollout));
  ferry::v1::WaitRolloutRequest wait;
  for (const std::string& w : released) wait.add_workloads(w);
  wait.set_revision(revision);
  wait.set_timeout_seconds(timeout);
  const CallBudget budget =
      peers_.Until(absl::Now() + absl::Seconds(timeout + 30), /*await_peer=*/true);
  PeerCall call;
  absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::WaitRolloutProgress>>>
      stream = peers_.cluster.Open(&ClusterSyncerStub::WaitRollout, wait, budget, call);
  if (!stream.ok()) {
    return store_.Finish(
        id, absl::StrCat("committed and applied ", Short(revision),
                         ", but following the rollout failed: ", stream.status().message()));
  }
  const ferry::v1::WaitRolloutProgress last = RecordRollout(id, **stream);
  grpc::Status s = (*stream)->Finish();
  if (!s.ok()) {
    std::string why = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                          ? absl::StrCat("the rollout did not finish within ", timeout,
                                         "s (the release is committed "
                                         "and applied; follow it with list-workloads)")
                          : std::string(peers_.cluster.Failed(s, budget).message());
    return store_.Finish(id, why);
  }
  MarkFailedRollouts(last, results);
  store_.SetResults(id, results);
  store_.Finish(id, "", absl::StrCat("committed and applied ", Short(revision), ", rolled out"));
}

ferry::v1::WaitRolloutProgress Executor::RecordRollout(
    const std::string& id, grpc::ClientReaderInterface<ferry::v1::WaitRolloutProgress>& stream) {
  ferry::v1::WaitRolloutProgress progress;
  ferry::v1::WaitRolloutProgress last;
  std::string last_seen;
  while (stream.Read(&progress)) {
    std::string seen = progress.SerializeAsString();
    if (seen == last_seen) continue;
    last_seen = seen;
    last = progress;
    std::vector<ferry::v1::WorkloadRollout> rollouts(progress.rollouts().begin(),
                                                     progress.rollouts().end());
    int ready = 0;
    for (const auto& r : rollouts) ready += r.status().state() == ferry::v1::ROLLOUT_STATE_READY;
    store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_ROLLOUT,
                    absl::StrCat(ready, " of ", rollouts.size(), " workload(s) ready"), "",
                    rollouts);
  }
  return last;
}

}  // namespace ferry::api
