// ListImages' view of one container: the repository's tags in the order of the container's
// tag filter, which of them pass it, and the tag a release or the automation would pick.
// Pure: the ranking rules are lib/policy's (TagPattern::Order, ChooseTag), this only fills
// the answer.
#pragma once

#include <string>

#include "ferry/v1/api.pb.h"
#include "ferry/v1/registry_scanner.pb.h"
#include "lib/policy/tag_pattern.h"

namespace ferry::api {

// Fills `out`'s tags, total, filtered, omitted and latest_filtered from the scanner's
// listing of the container's repository (every tag, any order) under `filter`, for a
// container running `current_tag`:
//   tags             the tags `filter`'s kind can rank, best first (every version for
//                    semver, every tag for glob/regexp), at most `limit` (0: all), each
//                    marked when it passes the filter and when it is the running one;
//   latest_filtered  ChooseTag's choice: the tag automation would move to (or stay on);
//   total            the scanner's count of the repository's tags; filtered: the listed
//                    tags passing the filter;
//   omitted          tags left out by `limit`.
void FillContainerTags(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
                       const std::string& current_tag, int limit, ferry::v1::ContainerImages* out);

}  // namespace ferry::api
