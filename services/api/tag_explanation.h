// ExplainTags' answer: for each container of one workload in git, every tag of its image
// repository with what automation makes of it (chosen, running, a candidate, filtered out and
// by which part of the filter, soaking, rejected by a revert, incomplete metadata, older than
// the running tag), and what automation will do next and when.
//
// Pure: the RPC method reads the workload from git-writer and passes the scanner's listings
// as a TagLookup. The decision is release planning's (ChooseEligibleTag, HoldOfTag,
// AutomationApplies in release_planner.h; TagPattern in lib/policy): this file only says in
// words what those rules decide, so the answer always agrees with what automation does.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ferry/v1/api.pb.h"
#include "ferry/v1/git_writer.pb.h"
#include "lib/policy/tag_pattern.h"
#include "services/api/release_planner.h"

namespace ferry::api {

// Tags per container in an answer when the request says 0, and the most it may ask for.
inline constexpr int kExplainDefaultLimit = 100;
inline constexpr int kExplainMaxLimit = 1000;
// How many future soak ends the "what next" search looks at before it gives up saying when.
inline constexpr int kExplainMaxSoakEnds = 100;

// Checks an ExplainTags request: a well-formed workload id (manifest::WorkloadId::Parse's
// message after "workload: "), a container name that lib/names accepts or none, a limit
// from 0 to kExplainMaxLimit. InvalidArgument saying what to fix.
absl::Status ValidateExplainTagsRequest(const ferry::v1::ExplainTagsRequest& request);

// Why automation does not move a workload with `policy` at all, in words, every reason that
// applies joined by "; ": "policy error: ..." (Policy.errors), "ignored (ignore: true)",
// "locked by alice: reason", "not automated". Empty when automation moves it
// (AutomationApplies and no policy error).
std::string AutomationBlocker(const ferry::v1::Policy& policy);

// Why `tag` does not pass `filter`, naming the failing part: "latest is excluded unless the
// filter names it", "does not match glob:1.*", "not a version (semver:~1.2)", "outside
// semver:~1.2", "no number to rank by (numerical:^b-(\d+)$)". Empty when it passes
// (TagPattern::Matches decides; this only says which part failed).
std::string FilterFailure(const policy::TagPattern& filter, absl::string_view tag);

// The explanation for `container` of `workload` (which holds it), from the scanner's answer
// for its repository (`tags`; a failed lookup becomes `error`), at `now`, with at most
// `limit` tags (0: kExplainDefaultLimit; clamped to kExplainMaxLimit):
//
//   FILTERED            fails the filter (FilterFailure says which part);
//   REJECTED/TOO_YOUNG  held back by HoldOfTag (the running tag is never held: it stays);
//   INCOMPLETE          passes, not held, but the ranking needs a creation time it lacks;
//   CHOSEN              ChooseEligibleTag's first tag when it is not the running one;
//   CURRENT             the running tag (also when the registry no longer lists it);
//   CANDIDATE           eligible, passes, ranks above the running tag but below the chosen;
//   OLDER_THAN_CURRENT  eligible, passes, ranks below the running tag.
//
// `rank` is the place in ChooseEligibleTag's ranking (1 = best; 0: not ranked). Tags come
// chosen first, then candidates, the running tag, held and incomplete ones, then the rest,
// each group in the filter's order. `next` says "release TAG at automation's next pass",
// "wait for TAG: soaking until RFC3339" (with `next_at`: the earliest soak end at which
// ChooseEligibleTag moves the container), "nothing: CONTAINER runs the best eligible tag",
// or "nothing: WHY" when the workload is blocked (AutomationBlocker) or nothing could be
// explained (`error`: an image that is not a reference, a filter or soak policy that does
// not parse, the scanner's error). When the scanner's last scan of the repository failed,
// `next` ends saying so: the tags may be out of date.
ferry::v1::ContainerExplanation ExplainContainer(const ferry::v1::ManifestWorkload& workload,
                                                 const ferry::v1::Container& container,
                                                 const RepositoryTags& tags, absl::Time now,
                                                 int limit);

// The answer to `request` (validated) from `in_git`, git-writer's answer for the request's
// workload: each container asked for (all when the request names none) explained by
// ExplainContainer, its repository's tags from `tags`, plus the workload's
// AutomationBlocker. NotFound naming the workload when `in_git` does not hold it, naming the
// container and listing the workload's containers when it has no such container.
absl::StatusOr<ferry::v1::ExplainTagsResponse> ExplainTagsOf(
    const ferry::v1::ExplainTagsRequest& request,
    const ferry::v1::ListManifestWorkloadsResponse& in_git, const TagLookup& tags, absl::Time now);

}  // namespace ferry::api
