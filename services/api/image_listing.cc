#include "services/api/image_listing.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/policy/soak.h"
#include "lib/runtime/proto_time.h"
#include "services/api/release_planner.h"

namespace ferry::api {

void FillContainerTags(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
                       const std::string& current_tag, const ContainerHolds& holds, absl::Time now,
                       int limit, ferry::v1::ContainerImages* out) {
  if (holds.min_age > absl::ZeroDuration()) {
    out->set_min_age(policy::FormatPolicyDuration(holds.min_age));
  }
  std::map<std::string, const ferry::v1::TagInfo*> info;
  for (const ferry::v1::TagInfo& t : listed.tags()) info.emplace(t.tag(), &t);
  std::vector<policy::TagCandidate> candidates = TagCandidates(listed);
  out->set_total(listed.total());
  out->set_filtered(static_cast<int32_t>(
      std::count_if(candidates.begin(), candidates.end(),
                    [&](const policy::TagCandidate& c) { return filter.Matches(c.tag); })));
  const std::vector<policy::TagCandidate> ordered = filter.Order(std::move(candidates));
  int shown = 0;
  for (const policy::TagCandidate& c : ordered) {
    if (limit > 0 && shown >= limit) break;
    ++shown;
    ferry::v1::ImageTag* tag = out->add_tags();
    *tag->mutable_info() = *info.at(c.tag);
    tag->set_matches_filter(filter.Matches(c.tag));
    tag->set_current(c.tag == current_tag);
    const policy::Hold hold = HoldOfTag(tag->info(), holds, now);
    if (hold.kind == policy::Hold::Kind::kRejected) {
      tag->set_rejected(true);
      tag->set_rejected_by_job(hold.job);
    } else if (hold.kind == policy::Hold::Kind::kTooYoung && tag->matches_filter() &&
               hold.eligible_at != absl::InfiniteFuture()) {
      *tag->mutable_eligible_at() = runtime::ToProtoTimestamp(hold.eligible_at);
    }
  }
  out->set_omitted(static_cast<int32_t>(ordered.size()) - shown);
  const policy::TagChoice choice = ChooseEligibleTag(filter, listed, current_tag, holds, now);
  if (!choice.ranked.empty()) out->set_latest_filtered(choice.ranked.front().tag);
}

namespace {

// One container's images under its workload's `policy`.
ferry::v1::ContainerImages ContainerImagesOf(const ferry::v1::Container& c,
                                             const ferry::v1::Policy& policy, int limit,
                                             const TagLookup& tags, absl::Time now) {
  ferry::v1::ContainerImages ci;
  ci.set_container(c.name());
  ci.set_current_image(c.image());
  if (!c.has_image_ref()) {
    ci.set_error(absl::StrCat("'", c.image(), "' is not an image reference"));
    return ci;
  }
  ci.set_repository(c.image_ref().registry() + "/" + c.image_ref().repository());
  absl::StatusOr<policy::TagPattern> pattern = FilterOf(policy, c.name());
  if (!pattern.ok()) {
    ci.set_tag_filter(policy::FilterTextFor(policy.tag_filters(), policy.tag_all(), c.name()));
    ci.set_error(std::string(pattern.status().message()));
    return ci;
  }
  ci.set_tag_filter(pattern->ToString());
  absl::StatusOr<ContainerHolds> holds = HoldsOf(policy, c.name());
  if (!holds.ok()) {
    ci.set_error(absl::StrCat("policy error: ", holds.status().message()));
    return ci;
  }
  const RepositoryTags& known = tags(ci.repository());
  if (!known.status.ok()) {
    ci.set_error(std::string(known.status.message()));
    return ci;
  }
  if (!known.tags.fresh()) ci.set_error(known.tags.last_error());
  FillContainerTags(*pattern, known.tags, c.image_ref().tag(), *holds, now, limit, &ci);
  return ci;
}

}  // namespace

absl::StatusOr<ferry::v1::ListImagesResponse> ListImagesOf(
    const ferry::v1::ListImagesRequest& request,
    const ferry::v1::ListManifestWorkloadsResponse& in_git, const TagLookup& tags, absl::Time now) {
  ferry::v1::ListImagesResponse response;
  bool found = request.workload().empty();
  for (const ferry::v1::ManifestWorkload& w : in_git.workloads()) {
    if (!request.workload().empty() && w.id() != request.workload()) continue;
    found = true;
    ferry::v1::WorkloadImages* out = response.add_workloads();
    out->set_workload(w.id());
    for (const ferry::v1::Container& c : w.containers()) {
      *out->add_containers() = ContainerImagesOf(c, w.policy(), request.limit(), tags, now);
    }
  }
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("workload ", request.workload(), " is not in the repository"));
  }
  if (request.workload().empty() && !request.namespace_().empty() && in_git.workloads().empty()) {
    return absl::NotFoundError(
        absl::StrCat("namespace ", request.namespace_(), " has no workloads in the repository"));
  }
  return response;
}

}  // namespace ferry::api
