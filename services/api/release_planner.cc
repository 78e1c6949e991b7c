#include "services/api/release_planner.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "lib/image/reference.h"
#include "lib/manifest/workload_id.h"
#include "lib/names/names.h"
#include "lib/policy/soak.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_macros.h"

namespace ferry::api {
namespace {

using ferry::v1::WorkloadResult;

WorkloadResult Result(const std::string& id, ferry::v1::WorkloadResultStatus status,
                      std::string why = "") {
  WorkloadResult r;
  r.set_workload(id);
  r.set_status(status);
  r.set_reason(std::move(why));
  return r;
}

// "workload/container" -> (workload, container); the container is after the last '/'.
std::pair<std::string, std::string> SplitContainerRef(const std::string& ref) {
  const size_t slash = ref.rfind('/');
  return {ref.substr(0, slash), ref.substr(slash + 1)};
}

// "N tag(s) of REPOSITORY passed over: ..." for a choice that passed tags over.
std::string PassedOver(int incomplete, const std::string& repository) {
  return absl::StrCat(incomplete, " tag(s) of ", repository,
                      " passed over: metadata incomplete (no creation time)");
}

// One container's part in a release.
enum class Outcome { kUpdate, kUpToDate, kUnknown, kOtherImage };

struct ContainerPlan {
  Outcome outcome = Outcome::kOtherImage;
  std::string to_image;
  std::string detail;  // for kUnknown
};

ContainerPlan PlanExplicit(const ferry::v1::ReleaseSpec& spec, const image::Reference& target,
                           const ferry::v1::Policy& policy, const ferry::v1::Container& c) {
  ContainerPlan plan;
  absl::StatusOr<image::Reference> current = image::Reference::Parse(c.image());
  if (!current.ok() || !current->SameRepository(target)) return plan;
  if (current->tag() == target.tag() && current->digest().empty()) {
    plan.outcome = Outcome::kUpToDate;
    return plan;
  }
  if (!spec.force()) {
    absl::StatusOr<policy::TagPattern> filter = FilterOf(policy, c.name());
    if (!filter.ok()) {
      plan.outcome = Outcome::kUnknown;
      plan.detail = absl::StrCat("container ", c.name(), ": ", filter.status().message());
      return plan;
    }
    if (!filter->Matches(target.tag())) {
      plan.outcome = Outcome::kUnknown;
      plan.detail =
          absl::StrCat("tag ", target.tag(), " does not pass the tag filter ", filter->ToString(),
                       " of container ", c.name(), " (force releases it anyway)");
      return plan;
    }
  }
  plan.outcome = Outcome::kUpdate;
  plan.to_image = current->WithTag(target.tag());
  return plan;
}

ContainerPlan PlanLatest(const ferry::v1::Policy& policy, const ferry::v1::Container& c,
                         const TagLookup& tags, bool respect_min_age, absl::Time now) {
  ContainerPlan plan;
  plan.outcome = Outcome::kUnknown;
  absl::StatusOr<image::Reference> current = image::Reference::Parse(c.image());
  if (!current.ok()) {
    plan.detail =
        absl::StrCat("container ", c.name(), ": '", c.image(), "' is not an image reference");
    return plan;
  }
  absl::StatusOr<policy::TagPattern> filter = FilterOf(policy, c.name());
  if (!filter.ok()) {
    plan.detail = absl::StrCat("container ", c.name(), ": ", filter.status().message());
    return plan;
  }
  const RepositoryTags& listed = tags(current->Repository());
  if (!listed.status.ok()) {
    plan.detail = absl::StrCat(current->Repository(), ": ", listed.status.message());
    return plan;
  }
  // Rejected tags always hold (a tag a revert took back is nobody's latest); the soak time
  // only when asked.
  absl::StatusOr<ContainerHolds> holds =
      respect_min_age ? HoldsOf(policy, c.name()) : RejectedOnlyOf(policy, c.name());
  if (!holds.ok()) {
    plan.detail =
        absl::StrCat("container ", c.name(), ": policy error: ", holds.status().message());
    return plan;
  }
  const policy::TagChoice choice =
      ChooseEligibleTag(*filter, listed.tags, current->tag(), *holds, now);
  const std::vector<policy::TagCandidate>& ranked = choice.ranked;
  if (ranked.empty()) {
    plan.detail = absl::StrCat("no tag of ", current->Repository(), " passes the tag filter ",
                               filter->ToString(), " of container ", c.name());
    if (choice.incomplete > 0) {
      absl::StrAppend(&plan.detail, " (", PassedOver(choice.incomplete, current->Repository()),
                      ")");
    }
    return plan;
  }
  if (ranked.front().tag == current->tag() && current->digest().empty()) {
    plan.outcome = Outcome::kUpToDate;
    return plan;
  }
  plan.outcome = Outcome::kUpdate;
  plan.to_image = current->WithTag(ranked.front().tag);
  return plan;
}

}  // namespace

absl::StatusOr<policy::TagPattern> FilterOf(const ferry::v1::Policy& policy,
                                            const std::string& container) {
  return policy::FilterFor(policy.tag_filters(), policy.tag_all(), container);
}

std::vector<policy::TagCandidate> TagCandidates(const ferry::v1::ListTagsResponse& listed) {
  std::vector<policy::TagCandidate> out;
  out.reserve(listed.tags_size());
  for (const ferry::v1::TagInfo& t : listed.tags()) {
    std::optional<absl::Time> created;
    if (t.has_created()) created = runtime::FromProtoTimestamp(t.created());
    out.emplace_back(t.tag(), created, t.incomplete_reason());
  }
  return out;
}

policy::TagChoice ChooseTag(const policy::TagPattern& filter,
                            const ferry::v1::ListTagsResponse& listed,
                            const std::string& current_tag) {
  return filter.Choose(TagCandidates(listed), current_tag);
}

namespace {

// The error of the annotation `key` ("min-age.web") as Policy::errors words it, naming the
// key it was read from ("fluxcd.io/min-age.web: ..."); else `message` under ferry.dev/.
absl::Status PolicyError(const ferry::v1::Policy& policy, const std::string& key,
                         absl::string_view message) {
  const std::string named = absl::StrCat("/", key, ": ");
  for (const std::string& e : policy.errors()) {
    const size_t at = e.find(named);
    // The line opens with the annotation key: a prefix without spaces, then "/key: ".
    if (at != std::string::npos && e.substr(0, at).find(' ') == std::string::npos) {
      return absl::InvalidArgumentError(e);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("ferry.dev/", key, ": ", message));
}

}  // namespace

absl::StatusOr<ContainerHolds> RejectedOnlyOf(const ferry::v1::Policy& policy,
                                              const std::string& container) {
  ContainerHolds holds;
  if (auto it = policy.rejected().find(container); it != policy.rejected().end()) {
    absl::StatusOr<std::vector<policy::RejectedTag>> r = policy::ParseRejected(it->second);
    if (!r.ok()) return PolicyError(policy, "rejected." + container, r.status().message());
    holds.rejected = *std::move(r);
  }
  return holds;
}

absl::StatusOr<ContainerHolds> HoldsOf(const ferry::v1::Policy& policy,
                                       const std::string& container) {
  FERRY_ASSIGN_OR_RETURN(ContainerHolds holds, RejectedOnlyOf(policy, container));
  auto own = policy.min_ages().find(container);
  const bool has_own = own != policy.min_ages().end();
  const std::string& age = has_own ? own->second : policy.min_age_all();
  if (!age.empty()) {
    absl::StatusOr<absl::Duration> d = policy::ParsePolicyDuration(age);
    if (!d.ok()) {
      return PolicyError(policy, has_own ? "min-age." + container : "min-age",
                         d.status().message());
    }
    holds.min_age = *d;
  }
  return holds;
}

policy::Hold HoldOfTag(const ferry::v1::TagInfo& tag, const ContainerHolds& holds, absl::Time now) {
  std::optional<absl::Time> created, first_seen;
  if (tag.has_created()) created = runtime::FromProtoTimestamp(tag.created());
  if (tag.has_first_seen()) first_seen = runtime::FromProtoTimestamp(tag.first_seen());
  return policy::HoldOf(tag.tag(), created, first_seen, holds.min_age, holds.rejected, now);
}

policy::TagChoice ChooseEligibleTag(const policy::TagPattern& filter,
                                    const ferry::v1::ListTagsResponse& listed,
                                    const std::string& current_tag, const ContainerHolds& holds,
                                    absl::Time now) {
  if (holds.min_age <= absl::ZeroDuration() && holds.rejected.empty()) {
    return ChooseTag(filter, listed, current_tag);
  }
  // The running tag stays in, held or not: the ranking must still know where the container
  // stands so that it never moves backwards.
  ferry::v1::ListTagsResponse eligible;
  for (const ferry::v1::TagInfo& t : listed.tags()) {
    if (t.tag() == current_tag || HoldOfTag(t, holds, now).kind == policy::Hold::Kind::kNone) {
      *eligible.add_tags() = t;
    }
  }
  return ChooseTag(filter, eligible, current_tag);
}

std::string DescribeHold(const std::string& tag, const policy::Hold& hold, absl::Duration min_age) {
  switch (hold.kind) {
    case policy::Hold::Kind::kNone:
      return "";
    case policy::Hold::Kind::kTooYoung:
      if (hold.eligible_at == absl::InfiniteFuture()) {
        return absl::StrCat(tag, " is soaking: its age is unknown yet (min-age ",
                            policy::FormatPolicyDuration(min_age), ")");
      }
      return absl::StrCat(tag, " is soaking until ", runtime::FormatRfc3339Utc(hold.eligible_at),
                          " (min-age ", policy::FormatPolicyDuration(min_age), ")");
    case policy::Hold::Kind::kRejected:
      if (hold.job.empty()) return absl::StrCat(tag, " was rejected (an automatic revert)");
      return absl::StrCat(tag, " was rejected by job ", hold.job, " (an automatic revert)");
  }
  return "";
}

HeldBackChoice ChooseEligibleTagExplained(const policy::TagPattern& filter,
                                          const ferry::v1::ListTagsResponse& listed,
                                          const std::string& current_tag,
                                          const ContainerHolds& holds, absl::Time now) {
  HeldBackChoice out;
  out.choice = ChooseEligibleTag(filter, listed, current_tag, holds, now);
  if (holds.min_age <= absl::ZeroDuration() && holds.rejected.empty()) return out;
  std::map<std::string, const ferry::v1::TagInfo*> info;
  for (const ferry::v1::TagInfo& t : listed.tags()) info.emplace(t.tag(), &t);
  const std::string chosen = out.choice.ranked.empty() ? "" : out.choice.ranked.front().tag;
  // The plain ranking down to the eligible choice (or the running tag): what lies above it
  // is held back.
  for (const policy::TagCandidate& c : ChooseTag(filter, listed, current_tag).ranked) {
    if (c.tag == chosen || c.tag == current_tag) break;
    auto it = info.find(c.tag);
    if (it == info.end()) continue;
    const policy::Hold hold = HoldOfTag(*it->second, holds, now);
    if (hold.kind == policy::Hold::Kind::kNone) continue;
    if (out.held++ == 0) {
      out.held_tag = c.tag;
      out.hold = hold;
    }
    if (hold.kind == policy::Hold::Kind::kTooYoung) {
      out.wake_at = std::min(out.wake_at, hold.eligible_at);
    }
  }
  return out;
}

absl::Status ValidateReleaseSpec(const ferry::v1::ReleaseSpec& spec) {
  if (spec.all_workloads() && !spec.workloads().empty()) {
    return absl::InvalidArgumentError(
        "give either workloads or all_workloads, not both (all_workloads releases every one)");
  }
  if (!spec.all_workloads() && spec.workloads().empty()) {
    return absl::InvalidArgumentError(
        "no workloads: name them (namespace:kind/name) or set all_workloads");
  }
  if (spec.image().empty() == !spec.all_latest()) {
    return absl::InvalidArgumentError(
        spec.all_latest()
            ? "give either image or all_latest, not both"
            : "no image: give an image reference with a tag (repo:tag) or set all_latest");
  }
  auto check_id = [](const std::string& id, const char* field) -> absl::Status {
    absl::Status valid = manifest::WorkloadId::Parse(id).status();
    if (valid.ok()) return valid;
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", valid.message()));
  };
  for (const std::string& id : spec.workloads()) {
    if (absl::Status s = check_id(id, "workloads"); !s.ok()) return s;
  }
  for (const std::string& id : spec.excludes()) {
    if (absl::Status s = check_id(id, "excludes"); !s.ok()) return s;
  }
  for (const std::string& ref : spec.containers()) {
    const std::string not_ref = absl::StrCat("containers: \"", names::Escape(ref),
                                             "\" is not namespace:kind/name/container");
    if (ref.find('/') == std::string::npos || ref.back() == '/') {
      return absl::InvalidArgumentError(not_ref);
    }
    if (absl::Status valid = manifest::WorkloadId::Parse(SplitContainerRef(ref).first).status();
        !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(not_ref, ": ", valid.message()));
    }
  }
  if (!spec.image().empty()) {
    absl::StatusOr<image::Reference> ref = image::Reference::Parse(spec.image());
    if (!ref.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image '", spec.image(), "': ", ref.status().message()));
    }
    if (ref->tag().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image '", spec.image(), "' has no tag; give repo:tag (e.g. ", ref->name(), ":1.2.3)"));
    }
    if (!ref->digest().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image '", spec.image(), "' has a digest; release a tag (", ref->name(), ":",
                       ref->tag(), "), Ferry writes tags into the manifests"));
    }
  }
  if (spec.rollout_timeout_seconds() < 0) {
    return absl::InvalidArgumentError("rollout_timeout_seconds: 0 (default) or more");
  }
  return absl::OkStatus();
}

namespace {

absl::Status Contradiction(const std::string& id, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(id, ": ", what, " contradict each other"));
}

// Tag filter changes of one workload `id`; `filters` records each container's change
// ("set:<pattern>" / "remove") to find contradicting ones.
absl::Status ValidateTagFilterChange(const std::string& id, const ferry::v1::PolicyChange& c,
                                     std::map<std::string, std::string>& filters) {
  const bool set = c.has_set_tag_filter();
  const std::string& container = set ? c.set_tag_filter().container() : c.remove_tag_filter();
  if (container.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(id, ": a tag filter needs a container name"));
  }
  if (set) {
    absl::StatusOr<policy::TagPattern> p = policy::TagPattern::Parse(c.set_tag_filter().pattern());
    if (!p.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(id, ": tag filter of container ", container, ": ", p.status().message()));
    }
  }
  std::string value = set ? "set:" + c.set_tag_filter().pattern() : "remove";
  auto [it, inserted] = filters.emplace(container, value);
  if (!inserted && it->second != value) {
    return Contradiction(id, absl::StrCat("the tag filter changes of container ", container));
  }
  return absl::OkStatus();
}

// The safe-automation changes (issue 19) of one workload `id`: min-age, rollback,
// rollback-timeout, rejected tags, each value checked by lib/policy's parser and named by its
// ferry.dev/ annotation. `filters` records min-age changes (under "\n<key>") as
// ValidateTagFilterChange does, `kinds` the rollback ones.
absl::Status ValidateSafeAutomationChange(const std::string& id, const ferry::v1::PolicyChange& c,
                                          std::map<std::string, std::string>& filters,
                                          std::set<int>& kinds) {
  switch (c.change_case()) {
    case ferry::v1::PolicyChange::kSetMinAge:
    case ferry::v1::PolicyChange::kRemoveMinAge: {
      const bool set = c.has_set_min_age();
      const std::string& container = set ? c.set_min_age().container() : c.remove_min_age();
      const std::string key = container.empty() ? "min-age" : "min-age." + container;
      if (set) {
        absl::Status valid = policy::ParsePolicyDuration(c.set_min_age().duration()).status();
        if (!valid.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(id, ": ferry.dev/", key, ": ", valid.message()));
        }
      }
      std::string value = set ? "set:" + c.set_min_age().duration() : "remove";
      auto [it, inserted] = filters.emplace("\n" + key, value);
      if (!inserted && it->second != value) return Contradiction(id, "the " + key + " changes");
      return absl::OkStatus();
    }
    case ferry::v1::PolicyChange::kSetRollback:
    case ferry::v1::PolicyChange::kSetRollbackTimeout: {
      const bool rollback = c.has_set_rollback();
      absl::Status valid = rollback
                               ? policy::ParseRollback(c.set_rollback()).status()
                               : policy::ParsePolicyDuration(c.set_rollback_timeout()).status();
      if (!valid.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            id, ": ferry.dev/", rollback ? "rollback" : "rollback-timeout", ": ", valid.message()));
      }
      kinds.insert(c.change_case());
      return absl::OkStatus();
    }
    case ferry::v1::PolicyChange::kRejectTag: {
      const ferry::v1::RejectTag& r = c.reject_tag();
      if (r.container().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(id, ": a rejected tag needs a container"));
      }
      absl::Status valid = policy::ValidateRejectedTag({r.tag(), r.job()});
      if (r.tag().empty() || !valid.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(id, ": ferry.dev/rejected.", r.container(), ": ",
                         r.tag().empty() ? "no tag given" : valid.message()));
      }
      return absl::OkStatus();
    }
    default:
      return absl::InternalError("not a safe-automation change");
  }
}

// The changes of one workload that contradict each other by kind.
absl::Status CheckContradictingKinds(const std::string& id, const std::set<int>& kinds) {
  using PC = ferry::v1::PolicyChange;
  if (kinds.count(PC::kAutomate) && kinds.count(PC::kDeautomate)) {
    return Contradiction(id, "automate and deautomate");
  }
  if (kinds.count(PC::kLock) && kinds.count(PC::kUnlock)) {
    return Contradiction(id, "lock and unlock");
  }
  if (kinds.count(PC::kSetTagAll) && kinds.count(PC::kRemoveTagAll)) {
    return Contradiction(id, "setting and removing the tag filter of all containers");
  }
  if (kinds.count(PC::kSetRollback) && kinds.count(PC::kRemoveRollback)) {
    return Contradiction(id, "setting and removing rollback");
  }
  if (kinds.count(PC::kSetRollbackTimeout) && kinds.count(PC::kRemoveRollbackTimeout)) {
    return Contradiction(id, "setting and removing rollback-timeout");
  }
  return absl::OkStatus();
}

// The changes of one workload `id`.
absl::Status ValidateWorkloadPolicyChanges(const std::string& id,
                                           const ferry::v1::WorkloadPolicyChanges& w) {
  if (w.changes().empty()) return absl::InvalidArgumentError(absl::StrCat(id, ": no changes"));
  std::set<int> kinds;
  std::map<std::string, std::string> filters;  // container -> "set:<pattern>" / "remove"
  for (const ferry::v1::PolicyChange& c : w.changes()) {
    switch (c.change_case()) {
      case ferry::v1::PolicyChange::kSetTagFilter:
      case ferry::v1::PolicyChange::kRemoveTagFilter:
        FERRY_RETURN_IF_ERROR(ValidateTagFilterChange(id, c, filters));
        break;
      case ferry::v1::PolicyChange::kSetTagAll: {
        absl::StatusOr<policy::TagPattern> p = policy::TagPattern::Parse(c.set_tag_all());
        if (!p.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(id, ": tag filter for all containers: ", p.status().message()));
        }
        kinds.insert(c.change_case());
        break;
      }
      case ferry::v1::PolicyChange::kSetMinAge:
      case ferry::v1::PolicyChange::kRemoveMinAge:
      case ferry::v1::PolicyChange::kSetRollback:
      case ferry::v1::PolicyChange::kSetRollbackTimeout:
      case ferry::v1::PolicyChange::kRejectTag:
        FERRY_RETURN_IF_ERROR(ValidateSafeAutomationChange(id, c, filters, kinds));
        break;
      case ferry::v1::PolicyChange::CHANGE_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat(id, ": an empty policy change"));
      default:
        kinds.insert(c.change_case());
    }
  }
  return CheckContradictingKinds(id, kinds);
}

}  // namespace

absl::Status ValidatePolicyChanges(
    const google::protobuf::RepeatedPtrField<ferry::v1::WorkloadPolicyChanges>& changes) {
  if (changes.empty()) return absl::InvalidArgumentError("no policy changes given");
  std::set<std::string> seen;
  for (const ferry::v1::WorkloadPolicyChanges& w : changes) {
    const std::string& id = w.workload();
    if (absl::Status valid = manifest::WorkloadId::Parse(id).status(); !valid.ok()) return valid;
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(id, " is listed twice; put all of its changes in one entry"));
    }
    FERRY_RETURN_IF_ERROR(ValidateWorkloadPolicyChanges(id, w));
  }
  return absl::OkStatus();
}

std::vector<ferry::v1::Edit> ReleasePlan::Edits() const {
  std::vector<ferry::v1::Edit> edits;
  for (const WorkloadResult& r : results) {
    if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
    for (const ferry::v1::ContainerUpdate& u : r.updates()) {
      ferry::v1::Edit e;
      e.set_workload(r.workload());
      e.mutable_image()->set_container(u.container());
      e.mutable_image()->set_from_image(u.from_image());
      e.mutable_image()->set_to_image(u.to_image());
      edits.push_back(std::move(e));
    }
  }
  return edits;
}

int ReleasePlan::Count(ferry::v1::WorkloadResultStatus status) const {
  return static_cast<int>(
      std::count_if(results.begin(), results.end(),
                    [&](const WorkloadResult& r) { return r.status() == status; }));
}

ReleasePlan PlanRelease(const ferry::v1::ReleaseSpec& spec,
                        const std::vector<ferry::v1::ManifestWorkload>& in_git,
                        const std::map<std::string, bool>& running, const TagLookup& tags,
                        absl::Time now) {
  using ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED;
  using ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED;
  const std::set<std::string> included(spec.workloads().begin(), spec.workloads().end());
  const std::set<std::string> excluded(spec.excludes().begin(), spec.excludes().end());
  std::map<std::string, std::set<std::string>> only_containers;
  for (const std::string& ref : spec.containers()) {
    auto [workload, container] = SplitContainerRef(ref);
    only_containers[workload].insert(container);
  }
  std::optional<image::Reference> target;
  if (!spec.image().empty()) target = *image::Reference::Parse(spec.image());

  ReleasePlan plan;
  std::set<std::string> seen;
  for (const ferry::v1::ManifestWorkload& w : in_git) {
    seen.insert(w.id());
    const std::string& id = w.id();
    if (!spec.all_workloads() && !included.count(id)) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_IGNORED, reason::kNotIncluded));
      continue;
    }
    if (excluded.count(id)) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_IGNORED, reason::kExcluded));
      continue;
    }
    if (!spec.containers().empty() && !only_containers.count(id)) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_IGNORED, reason::kNotIncluded));
      continue;
    }
    if (!running.count(id)) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_SKIPPED, reason::kNotInCluster));
      continue;
    }
    if (target.has_value()) {
      const bool uses = std::any_of(w.containers().begin(), w.containers().end(),
                                    [&](const ferry::v1::Container& c) {
                                      auto ref = image::Reference::Parse(c.image());
                                      return ref.ok() && ref->SameRepository(*target);
                                    });
      if (!uses) {
        plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_IGNORED, reason::kDifferentImage));
        continue;
      }
    }
    if (w.policy().locked() && !spec.force()) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_SKIPPED, reason::kLocked));
      continue;
    }
    if (w.policy().ignore() == ferry::v1::IGNORE_MODE_ALL) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_SKIPPED, reason::kIgnore));
      continue;
    }
    WorkloadResult r = Result(id, ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
    bool up_to_date = false;
    std::vector<std::string> unknown;
    for (const ferry::v1::Container& c : w.containers()) {
      auto only = only_containers.find(id);
      if (only != only_containers.end() && !only->second.count(c.name())) continue;
      ContainerPlan cp = target.has_value()
                             ? PlanExplicit(spec, *target, w.policy(), c)
                             : PlanLatest(w.policy(), c, tags, spec.respect_min_age(), now);
      switch (cp.outcome) {
        case Outcome::kUpdate: {
          ferry::v1::ContainerUpdate* u = r.add_updates();
          u->set_container(c.name());
          u->set_from_image(c.image());
          u->set_to_image(cp.to_image);
          break;
        }
        case Outcome::kUpToDate:
          up_to_date = true;
          break;
        case Outcome::kUnknown:
          unknown.push_back(cp.detail);
          break;
        case Outcome::kOtherImage:
          break;
      }
    }
    if (r.updates_size() == 0) {
      if (!unknown.empty()) {
        r = Result(id, WORKLOAD_RESULT_STATUS_SKIPPED,
                   absl::StrCat(reason::kImageNotFound, ": ", absl::StrJoin(unknown, "; ")));
      } else if (up_to_date) {
        r = Result(id, WORKLOAD_RESULT_STATUS_SKIPPED, reason::kUpToDate);
      } else {
        r = Result(id, WORKLOAD_RESULT_STATUS_IGNORED, reason::kDoesNotUseImage);
      }
    }
    plan.results.push_back(std::move(r));
  }
  for (const std::string& id : included) {
    if (!seen.count(id)) {
      plan.results.push_back(Result(id, WORKLOAD_RESULT_STATUS_SKIPPED, reason::kNotInRepo));
    }
  }
  std::sort(
      plan.results.begin(), plan.results.end(),
      [](const WorkloadResult& a, const WorkloadResult& b) { return a.workload() < b.workload(); });
  return plan;
}

bool AutomationApplies(const ferry::v1::Policy& policy) {
  return policy.automated() && !policy.locked() && policy.ignore() != ferry::v1::IGNORE_MODE_ALL;
}

namespace {

// One container's automation candidate (PlanAutomation).
AutomationCandidate PlanAutomatedContainer(const ferry::v1::ManifestWorkload& w,
                                           const ferry::v1::Container& c, const TagLookup& tags,
                                           absl::Time now) {
  const ferry::v1::Policy& p = w.policy();
  AutomationCandidate a;
  a.workload = w.id();
  a.container = c.name();
  a.from_image = c.image();
  absl::StatusOr<image::Reference> current = image::Reference::Parse(c.image());
  absl::StatusOr<policy::TagPattern> filter = FilterOf(p, c.name());
  absl::StatusOr<ContainerHolds> holds = HoldsOf(p, c.name());
  if (!current.ok()) {
    a.note = absl::StrCat("'", c.image(), "' is not an image reference");
    return a;
  }
  if (!filter.ok()) {
    a.note = std::string(filter.status().message());
    return a;
  }
  if (!holds.ok()) {
    a.note = absl::StrCat("policy error: ", holds.status().message());
    return a;
  }
  const RepositoryTags& listed = tags(current->Repository());
  if (!listed.status.ok()) {
    a.note = absl::StrCat(current->Repository(), ": ", listed.status.message());
    return a;
  }
  // The running tag takes part in the ranking (when it passes the filter), so a release
  // never goes to a tag that ranks below it: two tags cannot alternate.
  const HeldBackChoice explained =
      ChooseEligibleTagExplained(*filter, listed.tags, current->tag(), *holds, now);
  const std::vector<policy::TagCandidate>& ranked = explained.choice.ranked;
  std::vector<std::string> notes;
  a.incomplete = explained.choice.incomplete;
  if (a.incomplete > 0) notes.push_back(PassedOver(a.incomplete, current->Repository()));
  if (explained.held > 0) {
    a.held = true;
    a.wake_at = explained.wake_at;
    std::string held = DescribeHold(explained.held_tag, explained.hold, holds->min_age);
    if (explained.held > 1) absl::StrAppend(&held, " (", explained.held - 1, " more held back)");
    notes.push_back(std::move(held));
  }
  if (!ranked.empty() && ranked.front().tag != current->tag()) {
    a.to_image = current->WithTag(ranked.front().tag);
  } else if (ranked.empty() && notes.empty()) {
    notes.push_back(absl::StrCat("no tag of ", current->Repository(), " passes the tag filter ",
                                 filter->ToString()));
  }
  a.note = absl::StrJoin(notes, "; ");
  return a;
}

}  // namespace

std::vector<AutomationCandidate> PlanAutomation(
    const std::vector<ferry::v1::ManifestWorkload>& in_git, const TagLookup& tags, absl::Time now) {
  std::vector<AutomationCandidate> out;
  for (const ferry::v1::ManifestWorkload& w : in_git) {
    if (!AutomationApplies(w.policy())) continue;
    if (!w.policy().errors().empty()) {
      // Never a silent default: a policy that does not parse stops the whole workload.
      AutomationCandidate a;
      a.workload = w.id();
      a.note = absl::StrCat("policy error: ", absl::StrJoin(w.policy().errors(), "; "));
      out.push_back(std::move(a));
      continue;
    }
    for (const ferry::v1::Container& c : w.containers()) {
      AutomationCandidate a = PlanAutomatedContainer(w, c, tags, now);
      if (!a.to_image.empty() || !a.note.empty()) out.push_back(std::move(a));
    }
  }
  return out;
}

std::string AutomationCommitMessage(const std::vector<AutomationCandidate>& releases) {
  std::set<std::string> images;
  for (const AutomationCandidate& a : releases) {
    if (!a.to_image.empty()) images.insert(a.to_image);
  }
  if (images.size() == 1) return absl::StrCat("Auto-release ", *images.begin());
  return absl::StrCat("Auto-release multiple (", images.size(), ") images\n\n",
                      ListWithin({images.begin(), images.end()}, " - "));
}

std::string ListWithin(const std::vector<std::string>& lines, absl::string_view prefix,
                       size_t budget) {
  std::string out;
  size_t listed = 0;
  for (const std::string& line : lines) {
    if (out.size() + prefix.size() + line.size() + 1 > budget) break;
    absl::StrAppend(&out, listed == 0 ? "" : "\n", prefix, line);
    ++listed;
  }
  if (listed < lines.size()) {
    absl::StrAppend(&out, listed == 0 ? "" : "\n", prefix, "and ", lines.size() - listed,
                    " more, listed in the job's record");
  }
  return out;
}

}  // namespace ferry::api
