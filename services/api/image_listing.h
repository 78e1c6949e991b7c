// ListImages' answer: for each workload in git, each container's repository tags in the
// order of the container's tag filter, which of them pass it, and the tag a release or the
// automation would pick. Pure: the RPC method asks git-writer and passes the scanner's
// listings as a TagLookup; the ranking rules are lib/policy's (TagPattern::Order, ChooseTag),
// this only fills the answer.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ferry/v1/api.pb.h"
#include "ferry/v1/git_writer.pb.h"
#include "ferry/v1/registry_scanner.pb.h"
#include "lib/policy/tag_pattern.h"
#include "services/api/release_planner.h"

namespace ferry::api {

// Fills `out`'s tags, total, filtered, omitted, latest_filtered and min_age from the
// scanner's listing of the container's repository (every tag, any order) under `filter`,
// for a container running `current_tag` with `holds` at `now`:
//   tags             the tags `filter`'s kind can rank, best first (every version for
//                    semver, every tag for glob/regexp), at most `limit` (0: all), each
//                    marked when it passes the filter and when it is the running one, with
//                    eligible_at when it passes the filter but is still soaking (its age
//                    known), rejected when a revert rejected it, with rejected_by_job
//                    naming the job ("" for an entry that names none);
//   latest_filtered  ChooseEligibleTag's choice: the tag automation would move to (or stay
//                    on) now;
//   min_age          the soak time in force ("" for none);
//   total            the scanner's count of the repository's tags; filtered: the listed
//                    tags passing the filter;
//   omitted          tags left out by `limit`.
void FillContainerTags(const policy::TagPattern& filter, const ferry::v1::ListTagsResponse& listed,
                       const std::string& current_tag, const ContainerHolds& holds, absl::Time now,
                       int limit, ferry::v1::ContainerImages* out);

// The answer to `request` (validated: a well-formed workload id or none, limit >= 0) from
// `in_git`, git-writer's index of the request's namespace (the workload's, when one is
// named), each container's tags from `tags` (looked up once per repository by the caller's
// lookup). A container whose image is not a reference, whose filter, soak time or rejected
// tags do not parse (HoldsOf) or whose repository could not be listed carries the error,
// the others are filled as FillContainerTags says, with their holds (HoldsOf) at `now`.
// NotFound when the named workload is not in git, or a namespace asked for has no workload
// there.
absl::StatusOr<ferry::v1::ListImagesResponse> ListImagesOf(
    const ferry::v1::ListImagesRequest& request,
    const ferry::v1::ListManifestWorkloadsResponse& in_git, const TagLookup& tags, absl::Time now);

}  // namespace ferry::api
