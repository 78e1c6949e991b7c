#include "services/api/reverter.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/image/reference.h"
#include "lib/limits/limits.h"
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

// "app 2.0" of the containers of `w` whose released image has no tag ("app (sha256:...)"),
// or empty.
std::string PinnedByDigest(const FollowedWorkload& w) {
  std::vector<std::string> parts;
  for (const auto& u : w.updates) {
    if (ExplicitTagOf(u.to_image()).empty()) parts.push_back(u.container());
  }
  return absl::StrJoin(parts, ", ");
}

// "automatic revert of job J: app 1.1.0 (rollout failed: ...)", one line within
// git-writer's name limit.
std::string RevertLine(const FollowedWorkload& w, const std::string& reason) {
  const std::string pinned = PinnedByDigest(w);
  return OneLine(
      absl::StrCat(
          "automatic revert of job ", w.release_job, ": ", TagsOf(w),
          pinned.empty() ? "" : absl::StrCat(" (pinned by digest, no tag rejected: ", pinned, ")"),
          " (", Truncated(reason, kMaxRevertReasonBytes), ")"),
      limits::kRequestNameBytes.default_value);
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

std::string ExplicitTagOf(const std::string& image) {
  absl::StatusOr<image::Reference> ref = image::Reference::Parse(image);
  if (!ref.ok()) return "";
  return ref->tag();
}

std::string OneLine(const std::string& text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    for (size_t k = 1; n > 0 && k < n; ++k) {
      if (i + k >= text.size() || (static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) n = 0;
    }
    if (n == 0) {
      out.push_back('?');  // not UTF-8
      ++i;
      continue;
    }
    const bool c0 = n == 1 && (c < 0x20 || c == 0x7F);
    const bool c1 = n == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if (c0 || c1) {
      out.push_back(' ');
    } else {
      out.append(text, i, n);
    }
    i += n;
  }
  if (out.size() <= max_bytes) return out;
  constexpr absl::string_view kEllipsis = "...";
  size_t cut = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  if (max_bytes >= kEllipsis.size()) absl::StrAppend(&out, kEllipsis);
  return out;
}

ferry::v1::Job RevertJob(const FollowedWorkload& w, const std::string& reason) {
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_REVERT);
  job.set_reverts_job(w.release_job);
  job.set_source(w.source);
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
  std::vector<std::string> rejected;
  for (const ferry::v1::ContainerUpdate& u : w.updates) {
    // A release pinned by digest has no tag to reject (RejectTag takes tags only).
    const std::string released_tag = ExplicitTagOf(u.to_image());
    if (released_tag.empty()) continue;
    ferry::v1::Edit reject;
    reject.set_workload(w.workload);
    ferry::v1::RejectTag* tag = reject.mutable_policy()->mutable_reject_tag();
    tag->set_container(u.container());
    tag->set_tag(released_tag);
    tag->set_job(revert_job.id());
    plan.edits.push_back(std::move(reject));
    rejected.push_back(absl::StrCat(u.container(), " ", released_tag));
  }
  const std::string pinned = PinnedByDigest(w);
  plan.results.push_back(std::move(result));
  plan.message = absl::StrCat(
      "Revert ", w.workload, " (rollout of job ", w.release_job, " failed)\n\n",
      absl::StrJoin(moves, "\n"), "\n\n", OneLine(reason, kMaxRevertReasonBytes),
      "\n\nLocked by ferry; rejected: ", rejected.empty() ? "none" : absl::StrJoin(rejected, ", "),
      pinned.empty() ? "" : absl::StrCat(" (pinned by digest, no tag to reject: ", pinned, ")"),
      ". Unlock and release to take over.");
  return plan;
}

Reverter::Reverter(const PeerClients& peers, JobStore& store, JobRunner& runner, Executor& executor,
                   RevertMetrics& metrics, int max_followed)
    : peers_(peers),
      store_(store),
      runner_(runner),
      executor_(executor),
      metrics_(metrics),
      max_followed_(max_followed) {}

Reverter::~Reverter() { Join(); }

Executor::ReleaseApplied Reverter::Hook() {
  return [this](const ferry::v1::Job& job, const std::string& revision,
                const std::vector<ferry::v1::WorkloadResult>& released,
                bool applied) { Released(job, revision, released, applied); };
}

void Reverter::Released(const ferry::v1::Job& job, const std::string& revision,
                        const std::vector<ferry::v1::WorkloadResult>& released, bool applied) {
  if (released.empty() || peers_.shutting_down()) return;
  absl::MutexLock lock(&mu_);
  Reap();
  const uint64_t sequence = ++sequence_;
  // This release's follows supersede the older ones of the same workloads.
  for (const ferry::v1::WorkloadResult& r : released) {
    latest_[r.workload()] = sequence;
    for (auto it = watching_.lower_bound({r.workload(), 0});
         it != watching_.end() && it->first.first == r.workload() && it->first.second < sequence;
         ++it) {
      it->second->TryCancel();
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  try {
    followers_.push_back(
        Follower{std::thread([this, job, revision, released, applied, sequence, done] {
                   FollowRelease(job, revision, released, applied, sequence);
                   *done = true;
                 }),
                 done});
  } catch (const std::system_error& e) {
    for (const ferry::v1::WorkloadResult& r : released) {
      if (latest_[r.workload()] == sequence) latest_.erase(r.workload());
    }
    metrics_.NotFollowed();
    log::Warn("rollback: cannot start a thread; the release's rollouts are not followed",
              {{"job", job.id()}, {"error", e.what()}});
  }
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

bool Reverter::ReserveSlot() {
  if (following_.fetch_add(1) < max_followed_) return true;
  following_.fetch_sub(1);
  return false;
}

bool Reverter::Superseded(const FollowedWorkload& w) {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(w.workload);
  return it == latest_.end() || it->second != w.sequence;
}

void Reverter::Forget(const std::string& workload, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(workload);
  if (it != latest_.end() && it->second == sequence) latest_.erase(it);
}

void Reverter::FollowRelease(const ferry::v1::Job& job, const std::string& revision,
                             const std::vector<ferry::v1::WorkloadResult>& released, bool applied,
                             uint64_t sequence) {
  // The policies the release was made under: the workloads at its commit.
  ferry::v1::ListManifestWorkloadsRequest request;
  request.set_revision(revision);
  for (const auto& r : released) request.add_ids(r.workload());
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git = peers_.ListAllInGit(
      request, peers_.Until(absl::Now() + kPeerCallTimeout, /*await_peer=*/true));
  std::map<std::string, ferry::v1::Policy> policies;
  if (in_git.ok()) {
    for (const auto& w : in_git->workloads()) policies[w.id()] = w.policy();
  } else {
    log::Warn("rollback: cannot read the released workloads' policies; rollouts not followed",
              {{"job", job.id()}, {"error", std::string(in_git.status().message())}});
  }
  std::vector<FollowedWorkload> followed = WorkloadsToFollow(job.id(), released, policies);
  std::set<std::string> kept;
  for (FollowedWorkload& w : followed) {
    w.source = job.source();  // its revert changes the same repo
    w.revision = applied ? "" : revision;
    w.sequence = sequence;
    kept.insert(w.workload);
  }
  for (const auto& r : released) {
    if (kept.count(r.workload()) == 0) Forget(r.workload(), sequence);
  }
  // Slots first, so that no thread starts for a follow beyond max_followed_.
  std::vector<const FollowedWorkload*> slotted;
  for (const FollowedWorkload& w : followed) {
    if (ReserveSlot()) {
      slotted.push_back(&w);
      continue;
    }
    Forget(w.workload, sequence);
    metrics_.NotFollowed();
    log::Warn("rollback: too many rollouts followed at once; this one is not",
              {{"job", w.release_job}, {"workload", w.workload}});
  }
  // Each workload on a thread of its own: its rollback-timeout is its own.
  std::vector<std::thread> others;
  for (size_t i = 1; i < slotted.size(); ++i) {
    const FollowedWorkload* w = slotted[i];
    try {
      others.emplace_back([this, w] { Follow(*w); });
    } catch (const std::system_error& e) {
      following_.fetch_sub(1);
      Forget(w->workload, sequence);
      metrics_.NotFollowed();
      log::Warn("rollback: cannot start a thread; this rollout is not followed",
                {{"job", w->release_job}, {"workload", w->workload}, {"error", e.what()}});
    }
  }
  if (!slotted.empty()) Follow(*slotted[0]);
  for (std::thread& t : others) t.join();
}

void Reverter::Follow(const FollowedWorkload& w) {
  log::Info("rollback: following the rollout",
            {{"job", w.release_job},
             {"workload", w.workload},
             {"timeout", policy::FormatPolicyDuration(w.timeout)}});
  std::optional<std::string> failure = Watch(w);
  following_.fetch_sub(1);
  // A newer release of the workload owns the verdict now.
  const bool superseded = Superseded(w);
  Forget(w.workload, w.sequence);
  if (!failure.has_value()) return;
  if (superseded) {
    log::Info("rollback: a newer release of the workload supersedes this follow; not reverted",
              {{"job", w.release_job}, {"workload", w.workload}});
    return;
  }
  Revert(w, *failure);
}

std::optional<std::string> Reverter::Watch(const FollowedWorkload& w) {
  const int64_t timeout = std::max<int64_t>(1, absl::ToInt64Seconds(w.timeout));
  ferry::v1::WaitRolloutRequest wait;
  wait.add_workloads(w.workload);
  // When the release job saw its commit applied, a later commit may be applied by now, so
  // the wait is for whatever runs (a later release of these containers supersedes this
  // follow, or makes the revert's compare-and-set fail: nothing is reverted then). When it
  // could not apply it, the wait is for that revision first.
  wait.set_revision(w.revision);
  wait.set_timeout_seconds(
      static_cast<int32_t>(std::min<int64_t>(timeout, std::numeric_limits<int32_t>::max())));
  const CallBudget budget =
      peers_.Until(absl::Now() + absl::Seconds(timeout + 30), /*await_peer=*/true);
  if (Superseded(w)) return std::nullopt;
  PeerCall call;
  absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::WaitRolloutProgress>>>
      stream = peers_.cluster.Open(&ClusterSyncerStub::WaitRollout, wait, budget, call);
  // While it runs, a newer release of the workload cancels it (Released).
  const std::pair<std::string, uint64_t> key{w.workload, w.sequence};
  if (call.started()) {
    absl::MutexLock lock(&mu_);
    watching_[key] = &call.context();
  }
  struct Unwatch {
    Reverter* self;
    const std::pair<std::string, uint64_t>& key;
    ~Unwatch() {
      absl::MutexLock lock(&self->mu_);
      self->watching_.erase(key);
    }
  } unwatch{this, key};
  if (call.started() && Superseded(w)) call.context().TryCancel();  // before registered
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
  if (Superseded(w)) return std::nullopt;  // the newer release's follow has the verdict
  // Not ready within rollback-timeout is a failure only when the rollout was seen going on
  // (UPDATING) or failing: an unknown state (GETs failing, the workload not found, no
  // conditions yet, the revision never applied) cannot tell.
  const bool seen_rolling = last.state() == ferry::v1::ROLLOUT_STATE_UPDATING ||
                            last.state() == ferry::v1::ROLLOUT_STATE_ERROR;
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !peers_.shutting_down() &&
      seen_rolling) {
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
