#include "services/api/executor.h"

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/limits/limits.h"
#include "lib/log/log.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/grpc_status.h"

namespace ferry::api {
namespace {

using ferry::v1::WorkloadResult;

std::string Short(const std::string& revision) { return revision.substr(0, 12); }

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
      moves.push_back(absl::StrCat(" - ", r.workload(), " ", u.container(), ": ", u.from_image(),
                                   " -> ", u.to_image()));
    }
  }
  std::string what = spec.image().empty() ? "latest images" : spec.image();
  std::string to = ids.size() == 1 ? ids[0] : absl::StrCat(ids.size(), " workloads");
  std::string message = absl::StrCat("Release ", what, " to ", to, "\n\n", absl::StrJoin(moves, "\n"));
  if (!cause.message().empty()) absl::StrAppend(&message, "\n\n", cause.message());
  return message;
}

std::string ChangeName(const ferry::v1::PolicyChange& c) {
  switch (c.change_case()) {
    case ferry::v1::PolicyChange::kAutomate: return "automate";
    case ferry::v1::PolicyChange::kDeautomate: return "deautomate";
    case ferry::v1::PolicyChange::kLock: return "lock";
    case ferry::v1::PolicyChange::kUnlock: return "unlock";
    case ferry::v1::PolicyChange::kSetTagFilter:
      return absl::StrCat("tag ", c.set_tag_filter().container(), "=", c.set_tag_filter().pattern());
    case ferry::v1::PolicyChange::kRemoveTagFilter:
      return absl::StrCat("remove tag filter of ", c.remove_tag_filter());
    case ferry::v1::PolicyChange::kSetTagAll: return absl::StrCat("tag all=", c.set_tag_all());
    case ferry::v1::PolicyChange::kRemoveTagAll: return "remove tag filter of all containers";
    default: return "nothing";
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
      : absl::StrCat("Update policy of ", lines.size(), " workloads\n\n - ",
                     absl::StrJoin(lines, "\n - "));
  if (!job.cause().message().empty()) absl::StrAppend(&message, "\n\n", job.cause().message());
  return message;
}

}  // namespace

absl::Status Downstream(const char* service, const grpc::Status& status) {
  grpc::StatusCode code = status.error_code();
  if (code == grpc::StatusCode::DEADLINE_EXCEEDED) code = grpc::StatusCode::UNAVAILABLE;
  return FromGrpcStatus(grpc::Status(code, absl::StrCat(service, ": ", status.error_message())));
}

const RepositoryTags& TagCache::Get(const std::string& repository) {
  const std::string& key = repository;
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  ferry::v1::ListTagsRequest request;
  request.set_repository(repository);
  // Every tag, by creation time: the api ranks them by each container's filter (lib/policy).
  request.set_ordering(ferry::v1::TAG_ORDERING_CREATED);
  RepositoryTags out;
  grpc::ClientContext ctx;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  grpc::Status s;
  if (background_.has_value()) {
    if (unreachable_.ok()) {
      deadline = std::min(deadline, background_->deadline);
      unreachable_ = AwaitPeer("registry-scanner", background_->link,
                               std::min(background_->peer_wait, deadline - absl::Now()),
                               background_->cancel);
    }
    if (!unreachable_.ok()) {
      out.status = unreachable_;
      return cache_.emplace(key, std::move(out)).first->second;
    }
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.set_wait_for_ready(background_->link.channel == nullptr);
    ScopedCancel scoped(*background_->cancel, ctx);
    s = registry_.ListTags(&ctx, request, &out.tags);
  } else {
    ctx.set_deadline(absl::ToChronoTime(deadline));
    s = registry_.ListTags(&ctx, request, &out.tags);
  }
  if (!s.ok()) out.status = Downstream("registry-scanner", s);
  return cache_.emplace(key, std::move(out)).first->second;
}

Executor::Executor(Peers peers, JobStore& store, CancelSet& cancel, ExecutorOptions options)
    : peers_(peers), store_(store), cancel_(cancel), options_(std::move(options)) {}

std::pair<absl::Duration, const limits::Limit*> Executor::TimeoutOf(Stage stage) const {
  switch (stage) {
    case Stage::kPlanning: return {options_.timeouts.planning, &limits::kJobPlanningTimeout};
    case Stage::kCommit: return {options_.timeouts.commit, &limits::kJobCommitTimeout};
    case Stage::kApply: return {options_.timeouts.apply, &limits::kJobApplyTimeout};
  }
  return {options_.timeouts.planning, &limits::kJobPlanningTimeout};
}

const PeerLink& Executor::LinkOf(const char* service) const {
  const std::string_view name = service;
  if (name == "git-writer") return options_.git;
  if (name == "registry-scanner") return options_.registry;
  return options_.cluster;
}

TagCache::Background Executor::Background(absl::Time deadline) {
  return TagCache::Background{&cancel_, options_.registry, options_.timeouts.peer_wait, deadline};
}

absl::Status Executor::AwaitPeer(const char* service, absl::Time deadline) {
  return api::AwaitPeer(service, LinkOf(service),
                        std::min(options_.timeouts.peer_wait, deadline - absl::Now()), &cancel_);
}

absl::Status Executor::Prepare(const char* service, grpc::ClientContext& ctx,
                               absl::Time deadline) {
  if (absl::Status s = AwaitPeer(service, deadline); !s.ok()) return s;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  // Connected now: a call that cannot be sent fails at once instead of waiting past
  // --peer_wait. (In-process fakes without a channel keep waiting for ready.)
  ctx.set_wait_for_ready(LinkOf(service).channel == nullptr);
  return absl::OkStatus();
}

absl::Status Executor::CallFailed(const char* service, Stage stage,
                                  const grpc::Status& status) const {
  const std::string& address = LinkOf(service).address;
  const std::string where = address.empty() ? service : absl::StrCat(service, " at ", address);
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED: {
      auto [timeout, limit] = TimeoutOf(stage);
      return absl::UnavailableError(limits::OverLimit(
          absl::StrCat(where, " did not answer"), *limit,
          static_cast<uint64_t>(std::max<int64_t>(1, absl::ToInt64Seconds(timeout)))));
    }
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(where, ": ", status.error_message()));
    default:
      return Downstream(service, status);
  }
}

absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> Executor::GitWorkloads(
    absl::Time deadline) {
  ferry::v1::ListManifestWorkloadsResponse out;
  grpc::ClientContext ctx;
  if (absl::Status s = Prepare("git-writer", ctx, std::min(deadline, Deadline(Stage::kPlanning)));
      !s.ok()) {
    return s;
  }
  ScopedCancel scoped(cancel_, ctx);
  grpc::Status s = peers_.git.ListWorkloads(&ctx, ferry::v1::ListManifestWorkloadsRequest(), &out);
  if (!s.ok()) return CallFailed("git-writer", Stage::kPlanning, s);
  return out;
}

absl::StatusOr<ferry::v1::SyncResult> Executor::Apply(const std::string& revision) {
  ferry::v1::SyncNowRequest request;
  request.set_revision(revision);
  ferry::v1::SyncResult out;
  grpc::ClientContext ctx;
  if (absl::Status s = Prepare("cluster-syncer", ctx, Deadline(Stage::kApply)); !s.ok()) return s;
  ScopedCancel scoped(cancel_, ctx);
  grpc::Status s = peers_.cluster.SyncNow(&ctx, request, &out);
  if (!s.ok()) return CallFailed("cluster-syncer", Stage::kApply, s);
  if (!out.error().empty()) {
    return absl::UnavailableError(absl::StrCat("cluster-syncer: ", out.error()));
  }
  return out;
}

void Executor::RunRelease(const ferry::v1::Job& job) {
  const std::string& id = job.id();
  const ferry::v1::ReleaseSpec& spec = job.release_spec();
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_PLANNING, "reading git, the cluster and the registry");
  const absl::Time planning = Deadline(Stage::kPlanning);
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git = GitWorkloads(planning);
  if (!in_git.ok()) return store_.Finish(id, std::string(in_git.status().message()));
  if (in_git->readonly() && !spec.dry_run()) {
    return store_.Finish(id, "git-writer runs read-only (--git_readonly): nothing can be released; "
                             "a dry run still plans");
  }
  std::map<std::string, bool> running;
  {
    ferry::v1::ListClusterWorkloadsResponse in_cluster;
    grpc::ClientContext ctx;
    if (absl::Status s = Prepare("cluster-syncer", ctx, planning); !s.ok()) {
      return store_.Finish(id, std::string(s.message()));
    }
    ScopedCancel scoped(cancel_, ctx);
    grpc::Status s = peers_.cluster.ListWorkloads(&ctx, ferry::v1::ListClusterWorkloadsRequest(),
                                                  &in_cluster);
    if (!s.ok()) {
      return store_.Finish(id,
                           std::string(CallFailed("cluster-syncer", Stage::kPlanning, s).message()));
    }
    for (const auto& w : in_cluster.workloads()) running[w.id()] = true;
  }
  TagCache tags(peers_.registry, Background(planning));
  std::vector<ferry::v1::ManifestWorkload> workloads(in_git->workloads().begin(),
                                                     in_git->workloads().end());
  ReleasePlan plan = PlanRelease(spec, workloads, running, tags.Lookup());
  store_.SetResults(id, plan.results);
  std::vector<ferry::v1::Edit> edits = plan.Edits();
  if (edits.empty()) {
    return store_.Finish(id, "", "nothing to release: no workload needs a change");
  }
  if (in_git->readonly()) {
    return store_.Finish(id, "", "dry run, planned only: git-writer runs read-only");
  }
  CommitAndApply(job, plan.results, edits, ReleaseMessage(spec, plan.results, job.cause()),
                 spec.wait_rollout(), spec.rollout_timeout_seconds());
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
  std::sort(results.begin(), results.end(),
            [](const WorkloadResult& a, const WorkloadResult& b) { return a.workload() < b.workload(); });
  store_.SetResults(job.id(), results);
  CommitAndApply(job, results, edits, PolicyMessage(job), false, 0);
}

void Executor::RunSync(const ferry::v1::Job& job) {
  const std::string& id = job.id();
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_PLANNING, "fetching git");
  ferry::v1::HeadResponse head;
  {
    grpc::ClientContext ctx;
    if (absl::Status s = Prepare("git-writer", ctx, Deadline(Stage::kPlanning)); !s.ok()) {
      return store_.Finish(id, std::string(s.message()));
    }
    ScopedCancel scoped(cancel_, ctx);
    grpc::Status s = peers_.git.Notify(&ctx, ferry::v1::NotifyRequest(), &head);
    if (!s.ok()) {
      return store_.Finish(id, std::string(CallFailed("git-writer", Stage::kPlanning, s).message()));
    }
  }
  absl::StatusOr<ferry::v1::SyncResult> applied = Apply(head.revision());
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
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_APPLIED,
                  absl::StrCat(applied->applied(), " applied, ", applied->unchanged(),
                               " unchanged, ", applied->failed(), " failed, ", applied->pruned(),
                               " pruned"),
                  applied->revision());
  store_.Finish(id, "", absl::StrCat("synced ", Short(applied->revision())));
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

void Executor::CommitAndApply(const ferry::v1::Job& job, std::vector<WorkloadResult> results,
                              const std::vector<ferry::v1::Edit>& edits,
                              const std::string& message, bool wait_rollout,
                              int rollout_timeout_seconds) {
  const std::string& id = job.id();
  auto result_of = [&](const std::string& workload) -> WorkloadResult* {
    for (WorkloadResult& r : results) {
      if (r.workload() == workload) return &r;
    }
    return nullptr;
  };
  auto fail_all = [&](const std::string& why) {
    for (WorkloadResult& r : results) {
      if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
      r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
      r.set_reason(why);
    }
    store_.SetResults(id, results);
  };

  ferry::v1::ApplyUpdatesRequest request;
  for (const auto& e : edits) *request.add_edits() = e;
  request.set_message(message);
  *request.mutable_cause() = job.cause();
  request.set_dry_run(job.dry_run());
  if (!job.dry_run()) {
    // The record kept in the git note: the job as it will have finished, so a restarted api
    // can still answer for it.
    ferry::v1::Job note = *store_.Get(id);
    note.clear_results();
    for (const auto& r : results) *note.add_results() = r;
    note.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
    *note.mutable_finished() = runtime::ToProtoTimestamp(absl::Now());
    *request.mutable_job() = note;
  }
  ferry::v1::ApplyUpdatesResponse applied;
  {
    grpc::ClientContext ctx;
    absl::Status why = Prepare("git-writer", ctx, Deadline(Stage::kCommit));
    if (why.ok()) {
      ScopedCancel scoped(cancel_, ctx);
      grpc::Status s = peers_.git.ApplyUpdates(&ctx, request, &applied);
      if (!s.ok()) why = CallFailed("git-writer", Stage::kCommit, s);
    }
    if (!why.ok()) {
      fail_all(std::string(why.message()));
      return store_.Finish(id, std::string(why.message()));
    }
  }
  for (const ferry::v1::EditResult& r : applied.results()) {
    if (r.code() == 0) continue;
    WorkloadResult* wr = result_of(r.edit().workload());
    if (wr == nullptr) continue;
    wr->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
    wr->set_reason(r.error());
  }
  store_.SetResults(id, results);
  if (job.dry_run()) return store_.Finish(id, "", "dry run: nothing committed");
  if (applied.no_changes() || applied.revision().empty()) {
    return store_.Finish(id, "", "no change: git already has it");
  }
  const std::string revision = applied.revision();
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED,
                  applied.retries() > 0
                      ? absl::StrCat("after ", applied.retries(), " retry(ies): upstream moved")
                      : "",
                  revision);

  absl::StatusOr<ferry::v1::SyncResult> synced = Apply(revision);
  if (!synced.ok()) {
    return store_.Finish(id, absl::StrCat("committed ", Short(revision),
                                          ", but applying it failed: ", synced.status().message()));
  }
  std::set<std::string> released;
  for (const WorkloadResult& r : results) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) released.insert(r.workload());
  }
  for (const ferry::v1::ResourceError& e : synced->errors()) {
    WorkloadResult* wr = result_of(e.resource());
    if (wr == nullptr || wr->status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
    wr->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
    wr->set_reason(absl::StrCat("committed, but the cluster refused it: ", e.error()));
    released.erase(e.resource());
  }
  store_.SetResults(id, results);
  store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_APPLIED,
                  absl::StrCat(synced->applied(), " applied, ", synced->unchanged(), " unchanged, ",
                               synced->failed(), " failed"),
                  synced->revision());
  if (!wait_rollout || released.empty()) {
    return store_.Finish(id, "", absl::StrCat("committed and applied ", Short(revision)));
  }

  // The release's own rollout timeout, else --job_rollout_timeout; the call itself may take
  // a little longer (the syncer reports the timeout).
  const int timeout = rollout_timeout_seconds > 0
      ? rollout_timeout_seconds
      : static_cast<int>(absl::ToInt64Seconds(options_.timeouts.rollout));
  ferry::v1::WaitRolloutRequest wait;
  for (const std::string& w : released) wait.add_workloads(w);
  wait.set_revision(revision);
  wait.set_timeout_seconds(timeout);
  grpc::ClientContext ctx;
  if (absl::Status s = Prepare("cluster-syncer", ctx, absl::Now() + absl::Seconds(timeout + 30));
      !s.ok()) {
    return store_.Finish(id, absl::StrCat("committed and applied ", Short(revision),
                                          ", but following the rollout failed: ", s.message()));
  }
  ScopedCancel scoped(cancel_, ctx);
  auto stream = peers_.cluster.WaitRollout(&ctx, wait);
  ferry::v1::WaitRolloutProgress progress;
  ferry::v1::WaitRolloutProgress last;
  std::string last_seen;
  while (stream->Read(&progress)) {
    std::string seen = progress.SerializeAsString();
    if (seen == last_seen) continue;
    last_seen = seen;
    last = progress;
    std::vector<ferry::v1::WorkloadRollout> rollouts(progress.rollouts().begin(),
                                                     progress.rollouts().end());
    int ready = 0;
    for (const auto& r : rollouts) ready += r.status().state() == ferry::v1::ROLLOUT_STATE_READY;
    store_.AddStage(id, ferry::v1::JOB_STAGE_KIND_ROLLOUT,
                    absl::StrCat(ready, " of ", rollouts.size(), " workload(s) ready"), "", rollouts);
  }
  grpc::Status s = stream->Finish();
  if (!s.ok()) {
    std::string why = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
        ? absl::StrCat("the rollout did not finish within ", timeout, "s (the release is committed "
                       "and applied; follow it with list-workloads)")
        : std::string(Downstream("cluster-syncer", s).message());
    return store_.Finish(id, why);
  }
  for (const auto& r : last.rollouts()) {
    if (r.status().state() != ferry::v1::ROLLOUT_STATE_ERROR) continue;
    if (WorkloadResult* wr = result_of(r.workload())) {
      wr->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
      wr->set_reason(absl::StrCat("rollout failed: ", absl::StrJoin(r.status().messages(), "; ")));
    }
  }
  store_.SetResults(id, results);
  store_.Finish(id, "", absl::StrCat("committed and applied ", Short(revision), ", rolled out"));
}

}  // namespace ferry::api
