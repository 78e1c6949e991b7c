#include "services/api/reverter.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/image/reference.h"
#include "lib/log/log.h"
#include "lib/policy/soak.h"

namespace ferry::api {
namespace {

// The automatic revert's author and lock user.
constexpr char kRevertUser[] = "ferry";

std::string Truncated(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return text.substr(0, cut) + "...";
}

// "app 1.1.0, side 2.0" for the containers of `w`.
std::string TagsOf(const FollowedWorkload& w) {
  std::vector<std::string> parts;
  for (const auto& u : w.updates)
    parts.push_back(absl::StrCat(u.container(), " ", TagOf(u.to_image())));
  return absl::StrJoin(parts, ", ");
}

// "automatic revert of job J: app 1.1.0 (rollout failed: ...)".
std::string RevertLine(const FollowedWorkload& w, const std::string& reason) {
  return absl::StrCat("automatic revert of job ", w.release_job, ": ", TagsOf(w), " (",
                      Truncated(reason, kMaxRevertReasonBytes), ")");
}

const char* OutcomeName(RevertOutcome outcome) {
  switch (outcome) {
    case RevertOutcome::kReverted:
      return "reverted";
    case RevertOutcome::kConflict:
      return "conflict";
    case RevertOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

}  // namespace

RevertMetrics::RevertMetrics(prometheus::Registry& registry)
    : reverts_(prometheus::BuildCounter()
                   .Name("ferry_automatic_reverts_total")
                   .Help("Failed rollouts of rollback: auto workloads by what the automatic "
                         "revert did (reverted, conflict: a container changed since and "
                         "nothing was committed, failed, not_followed: too many rollouts "
                         "followed at once).")
                   .Register(registry)) {
  for (const char* outcome : {"reverted", "conflict", "failed", "not_followed"}) {
    reverts_.Add({{"outcome", outcome}});
  }
}

void RevertMetrics::Count(RevertOutcome outcome) {
  reverts_.Add({{"outcome", OutcomeName(outcome)}}).Increment();
}

void RevertMetrics::NotFollowed() { reverts_.Add({{"outcome", "not_followed"}}).Increment(); }

std::vector<FollowedWorkload> WorkloadsToFollow(
    const std::string& release_job, const std::vector<ferry::v1::WorkloadResult>& released,
    const std::map<std::string, ferry::v1::Policy>& policies) {
  std::vector<FollowedWorkload> out;
  for (const ferry::v1::WorkloadResult& r : released) {
    if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS || r.updates_size() == 0) continue;
    auto policy = policies.find(r.workload());
    if (policy == policies.end()) continue;
    absl::StatusOr<bool> automatic = policy::ParseRollback(policy->second.rollback());
    if (policy->second.rollback().empty() || !automatic.ok() || !*automatic) continue;
    FollowedWorkload w;
    w.release_job = release_job;
    w.workload = r.workload();
    w.updates.assign(r.updates().begin(), r.updates().end());
    w.timeout = policy::kDefaultRollbackTimeout;
    if (!policy->second.rollback_timeout().empty()) {
      absl::StatusOr<absl::Duration> timeout =
          policy::ParsePolicyDuration(policy->second.rollback_timeout());
      if (timeout.ok()) {
        w.timeout = *timeout;
      } else {
        log::Warn("rollback: rollback-timeout does not parse; following with the default",
                  {{"workload", r.workload()},
                   {"error", std::string(timeout.status().message())},
                   {"default", policy::FormatPolicyDuration(w.timeout)}});
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

std::optional<std::string> RolloutFailure(const ferry::v1::RolloutStatus& status) {
  if (status.state() != ferry::v1::ROLLOUT_STATE_ERROR) return std::nullopt;
  std::vector<std::string> messages(status.messages().begin(), status.messages().end());
  return messages.empty() ? std::string("rollout failed")
                          : absl::StrCat("rollout failed: ", absl::StrJoin(messages, "; "));
}

std::string TagOf(const std::string& image) {
  absl::StatusOr<image::Reference> ref = image::Reference::Parse(image);
  if (!ref.ok()) return image;
  if (!ref->tag().empty()) return ref->tag();
  if (!ref->digest().empty()) return ref->digest();
  return ref->EffectiveTag();
}

ferry::v1::Job RevertJob(const FollowedWorkload& w, const std::string& reason) {
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_REVERT);
  job.set_reverts_job(w.release_job);
  job.mutable_cause()->set_user(kRevertUser);
  job.mutable_cause()->set_message(absl::StrCat(w.workload, ": ", RevertLine(w, reason)));
  return job;
}

RevertPlan PlanRevert(const FollowedWorkload& w, const std::string& reason,
                      const ferry::v1::Job& revert_job) {
  RevertPlan plan;
  plan.job = revert_job;
  ferry::v1::WorkloadResult result;
  result.set_workload(w.workload);
  result.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  std::vector<std::string> moves;
  for (const ferry::v1::ContainerUpdate& u : w.updates) {
    ferry::v1::ContainerUpdate* back = result.add_updates();
    back->set_container(u.container());
    back->set_from_image(u.to_image());
    back->set_to_image(u.from_image());
    ferry::v1::Edit e;
    e.set_workload(w.workload);
    e.mutable_image()->set_container(u.container());
    e.mutable_image()->set_from_image(u.to_image());
    e.mutable_image()->set_to_image(u.from_image());
    plan.edits.push_back(std::move(e));
    moves.push_back(absl::StrCat(u.container(), ": ", u.to_image(), " -> ", u.from_image()));
  }
  ferry::v1::Edit lock;
  lock.set_workload(w.workload);
  lock.mutable_policy()->mutable_lock()->set_user(kRevertUser);
  lock.mutable_policy()->mutable_lock()->set_message(RevertLine(w, reason));
  plan.edits.push_back(std::move(lock));
  for (const ferry::v1::ContainerUpdate& u : w.updates) {
    ferry::v1::Edit reject;
    reject.set_workload(w.workload);
    ferry::v1::RejectTag* tag = reject.mutable_policy()->mutable_reject_tag();
    tag->set_container(u.container());
    tag->set_tag(TagOf(u.to_image()));
    tag->set_job(revert_job.id());
    plan.edits.push_back(std::move(reject));
  }
  plan.results.push_back(std::move(result));
  plan.message = absl::StrCat(
      "Revert ", w.workload, " (rollout of job ", w.release_job, " failed)\n\n",
      absl::StrJoin(moves, "\n"), "\n\n", Truncated(reason, kMaxRevertReasonBytes),
      "\n\nLocked by ferry; rejected: ", TagsOf(w), ". Unlock and release to take over.");
  return plan;
}

Reverter::Reverter(const PeerClients& peers, JobStore& store, JobRunner& runner, Executor& executor,
                   RevertMetrics& metrics)
    : peers_(peers), store_(store), runner_(runner), executor_(executor), metrics_(metrics) {}

Reverter::~Reverter() { Join(); }

Executor::ReleaseApplied Reverter::Hook() {
  return [this](const ferry::v1::Job& job, const std::string& revision,
                const std::vector<ferry::v1::WorkloadResult>& released) {
    Released(job, revision, released);
  };
}

void Reverter::Released(const ferry::v1::Job& job, const std::string& revision,
                        const std::vector<ferry::v1::WorkloadResult>& released) {
  if (released.empty() || peers_.shutting_down()) return;
  absl::MutexLock lock(&mu_);
  Reap();
  auto done = std::make_shared<std::atomic<bool>>(false);
  followers_.push_back(Follower{std::thread([this, job, revision, released, done] {
                                  FollowRelease(job, revision, released);
                                  *done = true;
                                }),
                                done});
}

void Reverter::Reap() {
  for (auto it = followers_.begin(); it != followers_.end();) {
    if (*it->done) {
      it->thread.join();
      it = followers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Reverter::Join() {
  std::list<Follower> followers;
  {
    absl::MutexLock lock(&mu_);
    followers.swap(followers_);
  }
  for (Follower& f : followers) f.thread.join();
}

void Reverter::FollowRelease(const ferry::v1::Job& job, const std::string& revision,
                             const std::vector<ferry::v1::WorkloadResult>& released) {
  // The policies the release was made under: the workloads at its commit.
  ferry::v1::ListManifestWorkloadsRequest request;
  request.set_revision(revision);
  for (const auto& r : released) request.add_ids(r.workload());
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git = peers_.ListAllInGit(
      request, peers_.Until(absl::Now() + kPeerCallTimeout, /*await_peer=*/true));
  if (!in_git.ok()) {
    log::Warn("rollback: cannot read the released workloads' policies; rollouts not followed",
              {{"job", job.id()}, {"error", std::string(in_git.status().message())}});
    return;
  }
  std::map<std::string, ferry::v1::Policy> policies;
  for (const auto& w : in_git->workloads()) policies[w.id()] = w.policy();
  std::vector<FollowedWorkload> followed = WorkloadsToFollow(job.id(), released, policies);
  // Each workload on a thread of its own: its rollback-timeout is its own.
  std::vector<std::thread> others;
  for (size_t i = 1; i < followed.size(); ++i) {
    others.emplace_back([this, &followed, i] { Follow(followed[i]); });
  }
  if (!followed.empty()) Follow(followed[0]);
  for (std::thread& t : others) t.join();
}

void Reverter::Follow(const FollowedWorkload& w) {
  if (following_.fetch_add(1) >= kMaxFollowedRollouts) {
    following_.fetch_sub(1);
    metrics_.NotFollowed();
    log::Warn("rollback: too many rollouts followed at once; this one is not",
              {{"job", w.release_job}, {"workload", w.workload}});
    return;
  }
  log::Info("rollback: following the rollout",
            {{"job", w.release_job},
             {"workload", w.workload},
             {"timeout", policy::FormatPolicyDuration(w.timeout)}});
  std::optional<std::string> failure = Watch(w);
  following_.fetch_sub(1);
  if (failure.has_value()) Revert(w, *failure);
}

std::optional<std::string> Reverter::Watch(const FollowedWorkload& w) {
  const int64_t timeout = std::max<int64_t>(1, absl::ToInt64Seconds(w.timeout));
  ferry::v1::WaitRolloutRequest wait;
  wait.add_workloads(w.workload);
  // The release job saw its commit applied; a later commit may be applied by now, so the
  // wait is for whatever runs (a later release of these containers makes the revert's
  // compare-and-set fail: nothing is reverted then).
  wait.set_timeout_seconds(
      static_cast<int32_t>(std::min<int64_t>(timeout, std::numeric_limits<int32_t>::max())));
  const CallBudget budget =
      peers_.Until(absl::Now() + absl::Seconds(timeout + 30), /*await_peer=*/true);
  PeerCall call;
  absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::WaitRolloutProgress>>>
      stream = peers_.cluster.Open(&ClusterSyncerStub::WaitRollout, wait, budget, call);
  if (!stream.ok()) {
    log::Warn("rollback: cannot follow the rollout; nothing reverted",
              {{"job", w.release_job},
               {"workload", w.workload},
               {"error", std::string(stream.status().message())}});
    return std::nullopt;
  }
  ferry::v1::WaitRolloutProgress progress;
  ferry::v1::RolloutStatus last;
  while ((*stream)->Read(&progress)) {
    for (const auto& r : progress.rollouts()) {
      if (r.workload() != w.workload) continue;
      last = r.status();
      if (std::optional<std::string> failed = RolloutFailure(last)) {
        call.context().TryCancel();  // the verdict is in
        (void)(*stream)->Finish();
        return failed;
      }
      if (last.state() == ferry::v1::ROLLOUT_STATE_READY) {
        (void)(*stream)->Finish();
        log::Info("rollback: rollout healthy", {{"job", w.release_job}, {"workload", w.workload}});
        return std::nullopt;
      }
    }
  }
  grpc::Status s = (*stream)->Finish();
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !peers_.shutting_down()) {
    std::vector<std::string> messages(last.messages().begin(), last.messages().end());
    std::string why =
        absl::StrCat("not ready within rollback-timeout ", policy::FormatPolicyDuration(w.timeout));
    if (!messages.empty()) absl::StrAppend(&why, ": ", absl::StrJoin(messages, "; "));
    return why;
  }
  if (s.ok() && last.state() == ferry::v1::ROLLOUT_STATE_READY) return std::nullopt;
  log::Warn("rollback: the rollout's follow ended without a verdict; nothing reverted",
            {{"job", w.release_job},
             {"workload", w.workload},
             {"error", std::string(peers_.cluster.Failed(s, budget).message())}});
  return std::nullopt;
}

void Reverter::Revert(const FollowedWorkload& w, const std::string& reason) {
  ferry::v1::Job job = store_.Submit(RevertJob(w, reason));
  RevertPlan plan = PlanRevert(w, reason, job);
  log::Warn("rollback: rollout failed; reverting",
            {{"job", w.release_job},
             {"workload", w.workload},
             {"revert_job", job.id()},
             {"reason", Truncated(reason, kMaxRevertReasonBytes)}});
  runner_.Run(job.id(), [this, plan = std::move(plan), release = w.release_job] {
    RevertOutcome outcome = executor_.RunRevert(plan.job, plan.results, plan.edits, plan.message);
    if (outcome == RevertOutcome::kReverted) store_.MarkReverted(release, plan.job.id());
    metrics_.Count(outcome);
  });
}

}  // namespace ferry::api
