#include "services/api/image_listing.h"

#include <algorithm>
#include <map>
#include <vector>

#include "services/api/release_planner.h"

namespace ferry::api {

void FillContainerTags(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
                       const std::string& current_tag, int limit, ferry::v1::ContainerImages* out) {
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
  }
  out->set_omitted(static_cast<int32_t>(ordered.size()) - shown);
  const policy::TagChoice choice = ChooseTag(filter, listed, current_tag);
  if (!choice.ranked.empty()) out->set_latest_filtered(choice.ranked.front().tag);
}

}  // namespace ferry::api
