#include "services/api/tag_explanation.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/image/reference.h"
#include "lib/manifest/workload_id.h"
#include "lib/names/names.h"
#include "lib/policy/semver.h"
#include "lib/policy/soak.h"
#include "lib/runtime/proto_time.h"

namespace ferry::api {
namespace {

using ferry::v1::ContainerExplanation;
using ferry::v1::TagExplanation;
using ferry::v1::TagInfo;
using ferry::v1::TagVerdict;

// What the ranking decided, and where the running tag stands in it.
struct Decision {
  policy::TagChoice choice;
  std::map<std::string, int> rank;  // tag -> place in choice.ranked, 1 = best
  std::string chosen;               // empty: the container stays
  int current_rank = 0;             // 0: the running tag is not ranked
};

Decision Decide(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
                const std::string& current_tag, const ContainerHolds& holds, absl::Time now) {
  Decision d;
  d.choice = ChooseEligibleTag(filter, listed, current_tag, holds, now);
  for (size_t i = 0; i < d.choice.ranked.size(); ++i) {
    d.rank.emplace(d.choice.ranked[i].tag, static_cast<int>(i) + 1);
  }
  if (!d.choice.ranked.empty() && d.choice.ranked.front().tag != current_tag) {
    d.chosen = d.choice.ranked.front().tag;
  }
  if (auto it = d.rank.find(current_tag); it != d.rank.end()) d.current_rank = it->second;
  return d;
}

// The verdict of one tag that is not the running one.
void Judge(const TagInfo& info, const policy::TagPattern& filter, const ContainerHolds& holds,
           const Decision& d, const std::string& current_tag, absl::Time now, TagExplanation& t) {
  const std::string& tag = info.tag();
  if (std::string failure = FilterFailure(filter, tag); !failure.empty()) {
    t.set_verdict(ferry::v1::TAG_VERDICT_FILTERED);
    t.set_reason(std::move(failure));
    return;
  }
  // Held back: in automation's words (DescribeHold), plus where a soak counts from.
  const policy::Hold hold = HoldOfTag(info, holds, now);
  if (hold.kind == policy::Hold::Kind::kRejected) {
    t.set_verdict(ferry::v1::TAG_VERDICT_REJECTED);
    t.set_rejected_by_job(hold.job);
    t.set_reason(DescribeHold(tag, hold, holds.min_age));
    return;
  }
  if (hold.kind == policy::Hold::Kind::kTooYoung) {
    t.set_verdict(ferry::v1::TAG_VERDICT_TOO_YOUNG);
    std::string reason = DescribeHold(tag, hold, holds.min_age);
    if (hold.eligible_at == absl::InfiniteFuture()) {
      absl::StrAppend(&reason, "; no creation time and not yet seen by the scanner");
    } else {
      *t.mutable_eligible_at() = runtime::ToProtoTimestamp(hold.eligible_at);
      absl::StrAppend(&reason, info.has_created() ? "; counted from its creation"
                                                  : "; counted from when the scanner first saw it");
    }
    t.set_reason(std::move(reason));
    return;
  }
  auto ranked = d.rank.find(tag);
  if (ranked == d.rank.end()) {
    // Passes and is eligible, yet not ranked: the ranking needs a creation time
    // (TagPattern::Choose passes such tags over).
    t.set_verdict(ferry::v1::TAG_VERDICT_INCOMPLETE);
    t.set_reason(
        !info.incomplete_reason().empty()
            ? absl::StrCat("metadata incomplete: ", info.incomplete_reason())
            : absl::StrCat("no creation time, and ", filter.ToString(), " ranks by creation time"));
    return;
  }
  t.set_rank(ranked->second);
  if (tag == d.chosen) {
    t.set_verdict(ferry::v1::TAG_VERDICT_CHOSEN);
    t.set_reason(current_tag.empty() || d.current_rank == 0
                     ? absl::StrCat("the best eligible tag under ", filter.ToString())
                     : absl::StrCat("the best eligible tag under ", filter.ToString(),
                                    ", above the running ", current_tag));
  } else if (d.current_rank == 0 || ranked->second < d.current_rank) {
    t.set_verdict(ferry::v1::TAG_VERDICT_CANDIDATE);
    t.set_reason(absl::StrCat("eligible, ranks below ", d.chosen));
  } else {
    t.set_verdict(ferry::v1::TAG_VERDICT_OLDER_THAN_CURRENT);
    t.set_reason(absl::StrCat("ranks below the running ", current_tag,
                              ": automation never moves a container back"));
  }
}

// The running tag's entry: it stays in the ranking whatever holds the others back.
void JudgeCurrent(const TagInfo* info, const policy::TagPattern& filter,
                  const ContainerHolds& holds, const Decision& d, const std::string& current_tag,
                  absl::Time now, TagExplanation& t) {
  t.set_verdict(ferry::v1::TAG_VERDICT_CURRENT);
  t.set_rank(d.current_rank);
  std::vector<std::string> notes = {"running"};
  if (info == nullptr) notes.push_back("not listed by the registry");
  if (std::string failure = FilterFailure(filter, current_tag); !failure.empty()) {
    notes.push_back(failure);
  } else if (d.current_rank == 0) {
    notes.push_back(
        info != nullptr && !info->incomplete_reason().empty()
            ? absl::StrCat("not ranked, metadata incomplete: ", info->incomplete_reason())
            : absl::StrCat("not ranked: no creation time, and ", filter.ToString(),
                           " ranks by creation time"));
  } else if (d.chosen.empty()) {
    notes.push_back("the best eligible tag");
  }
  if (info != nullptr) {
    const policy::Hold hold = HoldOfTag(*info, holds, now);
    if (hold.kind == policy::Hold::Kind::kRejected) {
      notes.push_back(absl::StrCat(DescribeHold(current_tag, hold, holds.min_age),
                                   "; automation leaves a running tag as it is"));
      t.set_rejected_by_job(hold.job);
    }
  }
  t.set_reason(absl::StrJoin(notes, "; "));
}

// The order of the answer: chosen, candidates, the running tag, held and incomplete tags,
// then the rest.
int Group(TagVerdict v) {
  switch (v) {
    case ferry::v1::TAG_VERDICT_CHOSEN:
      return 0;
    case ferry::v1::TAG_VERDICT_CANDIDATE:
      return 1;
    case ferry::v1::TAG_VERDICT_CURRENT:
      return 2;
    case ferry::v1::TAG_VERDICT_TOO_YOUNG:
    case ferry::v1::TAG_VERDICT_REJECTED:
    case ferry::v1::TAG_VERDICT_INCOMPLETE:
      return 3;
    case ferry::v1::TAG_VERDICT_OLDER_THAN_CURRENT:
      return 4;
    default:
      return 5;
  }
}

// What automation does next for a container that moves to `d.chosen` now (or stays): the
// earliest soak end at which ChooseEligibleTag would move it from where it will be, found by
// asking the rule itself at each soak end in turn.
struct Later {
  std::string tag;
  absl::Time at = absl::InfiniteFuture();
};
Later NextAfterSoak(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
                    const std::string& from_tag, const ContainerHolds& holds, absl::Time now) {
  std::set<absl::Time> ends;
  for (const TagInfo& info : listed.tags()) {
    const policy::Hold hold = HoldOfTag(info, holds, now);
    if (hold.kind == policy::Hold::Kind::kTooYoung && hold.eligible_at != absl::InfiniteFuture()) {
      ends.insert(hold.eligible_at);
    }
  }
  int asked = 0;
  for (absl::Time end : ends) {
    if (++asked > kExplainMaxSoakEnds) break;
    policy::TagChoice then = ChooseEligibleTag(filter, listed, from_tag, holds, end);
    if (!then.ranked.empty() && then.ranked.front().tag != from_tag) {
      return {then.ranked.front().tag, end};
    }
  }
  return {};
}

// Fills `next` and `next_at` for a container whose tags were judged.
void SayNext(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
             const std::string& current_tag, const ContainerHolds& holds, const Decision& d,
             const std::string& blocker, absl::Time now, ContainerExplanation& out) {
  if (!blocker.empty()) {
    out.set_next(absl::StrCat("nothing: ", blocker));
    return;
  }
  if (!d.chosen.empty()) {
    out.set_next(absl::StrCat("release ", d.chosen, " at automation's next pass"));
    if (Later later = NextAfterSoak(filter, listed, d.chosen, holds, now); !later.tag.empty()) {
      absl::StrAppend(out.mutable_next(), "; then ", later.tag, " once it has soaked, at ",
                      runtime::FormatRfc3339Utc(later.at));
    }
    return;
  }
  if (Later later = NextAfterSoak(filter, listed, current_tag, holds, now); !later.tag.empty()) {
    out.set_next(absl::StrCat("wait for ", later.tag, ": soaking until ",
                              runtime::FormatRfc3339Utc(later.at)));
    *out.mutable_next_at() = runtime::ToProtoTimestamp(later.at);
    return;
  }
  if (d.current_rank == 1) {
    out.set_next(absl::StrCat("nothing: ", out.container(), " runs the best eligible tag"));
  } else {
    out.set_next(absl::StrCat(
        "nothing: no eligible tag of ", out.repository(), " passes the tag filter ",
        filter.ToString(),
        d.choice.incomplete > 0
            ? absl::StrCat(" (", d.choice.incomplete, " passed over: metadata incomplete)")
            : ""));
  }
}

// Every listed tag judged (and the running tag, also when the registry no longer lists it),
// in the answer's order: by group, then rank, then the filter's order, then the scanner's.
std::vector<TagExplanation> JudgeAll(const policy::TagPattern& filter,
                                     const ferry::v1::ListTagsResponse& listed,
                                     const std::string& current_tag, const ContainerHolds& holds,
                                     const Decision& d, absl::Time now) {
  // Each tag judged, with the keys it is sorted by: its group, the filter's order, the
  // scanner's order.
  struct Entry {
    TagExplanation t;
    int order;
    int listed;
  };
  std::map<std::string, int> order;
  {
    std::vector<policy::TagCandidate> ordered = filter.Order(TagCandidates(listed));
    for (size_t i = 0; i < ordered.size(); ++i) {
      order.emplace(ordered[i].tag, static_cast<int>(i));
    }
  }
  auto order_of = [&order](const std::string& tag) {
    auto it = order.find(tag);
    return it == order.end() ? std::numeric_limits<int>::max() : it->second;
  };
  std::vector<Entry> entries;
  entries.reserve(listed.tags_size() + 1);
  const TagInfo* current_info = nullptr;
  for (int i = 0; i < listed.tags_size(); ++i) {
    const TagInfo& info = listed.tags(i);
    Entry e{{}, order_of(info.tag()), i};
    e.t.set_tag(info.tag());
    if (info.has_created()) *e.t.mutable_created() = info.created();
    if (!current_tag.empty() && info.tag() == current_tag) {
      current_info = &info;
      JudgeCurrent(&info, filter, holds, d, current_tag, now, e.t);
    } else {
      Judge(info, filter, holds, d, current_tag, now, e.t);
    }
    entries.push_back(std::move(e));
  }
  if (!current_tag.empty() && current_info == nullptr) {
    Entry e{{}, order_of(current_tag), listed.tags_size()};
    e.t.set_tag(current_tag);
    JudgeCurrent(nullptr, filter, holds, d, current_tag, now, e.t);
    entries.push_back(std::move(e));
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const int ga = Group(a.t.verdict()), gb = Group(b.t.verdict());
    if (ga != gb) return ga < gb;
    if (a.t.rank() != b.t.rank()) return a.t.rank() < b.t.rank();
    if (a.order != b.order) return a.order < b.order;
    return a.listed < b.listed;
  });
  std::vector<TagExplanation> out;
  out.reserve(entries.size());
  for (Entry& e : entries) out.push_back(std::move(e.t));
  return out;
}

// Keeps the first `limit` of `tags`, counting the rest in `omitted`.
void Limit(int limit, ContainerExplanation& out) {
  if (limit <= 0) limit = kExplainDefaultLimit;
  limit = std::min(limit, kExplainMaxLimit);
  const int n = out.tags_size();
  if (n <= limit) return;
  out.mutable_tags()->DeleteSubrange(limit, n - limit);
  out.set_omitted(n - limit);
}

}  // namespace

absl::Status ValidateExplainTagsRequest(const ferry::v1::ExplainTagsRequest& request) {
  if (request.workload().empty()) {
    return absl::InvalidArgumentError("workload: name it (namespace:kind/name)");
  }
  absl::StatusOr<manifest::WorkloadId> id = manifest::WorkloadId::Parse(request.workload());
  if (!id.ok())
    return absl::InvalidArgumentError(absl::StrCat("workload: ", id.status().message()));
  if (absl::Status s = names::ValidateName("container", request.container()); !s.ok()) return s;
  if (request.limit() < 0 || request.limit() > kExplainMaxLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit: 0 (", kExplainDefaultLimit, ") to ", kExplainMaxLimit, " tags"));
  }
  return absl::OkStatus();
}

std::string AutomationBlocker(const ferry::v1::Policy& policy) {
  std::vector<std::string> why;
  if (!policy.errors().empty()) {
    why.push_back(absl::StrCat("policy error: ", absl::StrJoin(policy.errors(), "; ")));
  }
  if (policy.ignore() == ferry::v1::IGNORE_MODE_ALL) why.push_back("ignored (ignore: true)");
  if (policy.locked()) {
    std::string locked = "locked";
    if (!policy.locked_user().empty()) absl::StrAppend(&locked, " by ", policy.locked_user());
    if (!policy.locked_msg().empty()) absl::StrAppend(&locked, ": ", policy.locked_msg());
    why.push_back(std::move(locked));
  }
  if (!policy.automated()) why.push_back("not automated");
  return absl::StrJoin(why, "; ");
}

std::string FilterFailure(const policy::TagPattern& filter, absl::string_view tag) {
  if (filter.Matches(tag)) return "";
  const std::string named = filter.ToString();
  // Matches() never takes "latest" unless the expression names it; whether it does is only
  // used here to pick the words.
  if (tag == "latest" && !absl::StrContains(filter.expression(), "latest")) {
    return "latest is excluded unless the filter names it";
  }
  switch (filter.kind()) {
    case policy::PatternKind::kSemver:
      if (!policy::Version::Parse(tag).ok()) return absl::StrCat("not a version (", named, ")");
      return absl::StrCat("outside ", named);
    case policy::PatternKind::kNumerical: {
      // Matched by the expression as a regexp, but what it captures is no number?
      absl::StatusOr<policy::TagPattern> re =
          policy::TagPattern::Parse(absl::StrCat("regexp:", filter.expression()));
      if (filter.expression().empty() || (re.ok() && re->Matches(tag))) {
        return absl::StrCat("no number to rank by (", named, ")");
      }
      return absl::StrCat("does not match ", named);
    }
    case policy::PatternKind::kGlob:
    case policy::PatternKind::kRegexp:
    case policy::PatternKind::kAlphabetical:
      break;
  }
  return absl::StrCat("does not match ", named);
}

ContainerExplanation ExplainContainer(const ferry::v1::ManifestWorkload& workload,
                                      const ferry::v1::Container& container,
                                      const RepositoryTags& tags, absl::Time now, int limit) {
  ContainerExplanation out;
  out.set_container(container.name());
  out.set_current_image(container.image());
  const ferry::v1::Policy& p = workload.policy();
  const std::string blocker = AutomationBlocker(p);
  auto fail = [&out, &blocker](std::string error) {
    out.set_next(absl::StrCat("nothing: ", blocker.empty() ? error : blocker));
    out.set_error(std::move(error));
    return out;
  };
  absl::StatusOr<image::Reference> current = image::Reference::Parse(container.image());
  if (!current.ok()) {
    return fail(absl::StrCat("'", container.image(), "' is not an image reference"));
  }
  out.set_repository(current->Repository());
  absl::StatusOr<policy::TagPattern> filter = FilterOf(p, container.name());
  if (!filter.ok()) {
    out.set_tag_filter(policy::FilterTextFor(p.tag_filters(), p.tag_all(), container.name()));
    return fail(std::string(filter.status().message()));
  }
  out.set_tag_filter(filter->ToString());
  absl::StatusOr<ContainerHolds> holds = HoldsOf(p, container.name());
  if (!holds.ok()) return fail(std::string(holds.status().message()));
  if (holds->min_age > absl::ZeroDuration()) {
    out.set_min_age(policy::FormatPolicyDuration(holds->min_age));
  }
  if (!tags.status.ok()) {
    return fail(absl::StrCat(out.repository(), ": ", tags.status.message()));
  }
  const ferry::v1::ListTagsResponse& listed = tags.tags;
  const std::string& current_tag = current->tag();
  const Decision d = Decide(*filter, listed, current_tag, *holds, now);

  for (TagExplanation& t : JudgeAll(*filter, listed, current_tag, *holds, d, now)) {
    *out.add_tags() = std::move(t);
  }
  Limit(limit, out);
  SayNext(*filter, listed, current_tag, *holds, d, blocker, now, out);
  if (!listed.fresh() && !listed.last_error().empty()) {
    absl::StrAppend(out.mutable_next(), " (the tags may be out of date: the last scan of ",
                    out.repository(), " failed: ", listed.last_error(), ")");
  }
  return out;
}

absl::StatusOr<ferry::v1::ExplainTagsResponse> ExplainTagsOf(
    const ferry::v1::ExplainTagsRequest& request,
    const ferry::v1::ListManifestWorkloadsResponse& in_git, const TagLookup& tags, absl::Time now) {
  const ferry::v1::ManifestWorkload* workload = nullptr;
  for (const ferry::v1::ManifestWorkload& w : in_git.workloads()) {
    if (w.id() == request.workload()) workload = &w;
  }
  if (workload == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "workload ", request.workload(), " is not in the repository",
        in_git.revision().empty() ? ""
                                  : absl::StrCat(" (at ", in_git.revision().substr(0, 12), ")"),
        in_git.load_errors().empty()
            ? ""
            : absl::StrCat(" (", in_git.load_errors_size(),
                           " file(s) failed to load, the first: ", in_git.load_errors(0), ")"),
        "; list the workloads with ferryctl list-workloads"));
  }
  ferry::v1::ExplainTagsResponse response;
  response.set_workload(workload->id());
  response.set_automation_blocked(AutomationBlocker(workload->policy()));
  std::vector<std::string> names;
  const RepositoryTags unlisted;  // for an image that is no reference (ExplainContainer says so)
  for (const ferry::v1::Container& c : workload->containers()) {
    names.push_back(c.name());
    if (!request.container().empty() && c.name() != request.container()) continue;
    absl::StatusOr<image::Reference> ref = image::Reference::Parse(c.image());
    const RepositoryTags& listed = ref.ok() ? tags(ref->Repository()) : unlisted;
    *response.add_containers() = ExplainContainer(*workload, c, listed, now, request.limit());
  }
  if (response.containers().empty()) {
    return absl::NotFoundError(absl::StrCat("workload ", workload->id(), " has no container ",
                                            request.container(),
                                            " (its containers: ", absl::StrJoin(names, ", "), ")"));
  }
  return response;
}

}  // namespace ferry::api
