// Release planning: which containers of which workloads move to which image, and why every
// other workload is left alone. Pure functions over the git workload index, the set of
// workloads running in the cluster and the scanner's tag lists; nothing here talks to a
// service, so every rule is table-tested.
//
// The statuses and reasons are Flux v1's, so scripts that read fluxctl's output carry over:
//
//   ignored  "not included"       not named in the spec (and not --all)
//   ignored  "excluded"           named in the spec's excludes
//   skipped  "not accessible in cluster"  defined in git, not running in the cluster
//   ignored  "a different image"  explicit image: no container uses its repository
//   skipped  "locked"             locked and not forced
//   skipped  "ignore"             `ignore: true` (sync_only workloads are released)
//   ignored  "does not use image" explicit image: the containers using it are not selected
//   skipped  "cannot find one or more images"  no tag data, or no tag passes the filter
//                                 (the reason goes on to say which)
//   skipped  "image up to date"   every candidate container already runs its target
//   skipped  "not found in repository"  named in the spec, not defined in git
//   success                       the container updates to make
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/v1/git_writer.pb.h"
#include "ferry/v1/registry_scanner.pb.h"
#include "ferry/v1/types.pb.h"
#include "lib/policy/soak.h"
#include "lib/policy/tag_pattern.h"

namespace ferry::api {

// The reasons, spelled once.
namespace reason {
inline constexpr char kNotIncluded[] = "not included";
inline constexpr char kExcluded[] = "excluded";
inline constexpr char kNotInCluster[] = "not accessible in cluster";
inline constexpr char kDifferentImage[] = "a different image";
inline constexpr char kLocked[] = "locked";
inline constexpr char kIgnore[] = "ignore";
inline constexpr char kDoesNotUseImage[] = "does not use image";
inline constexpr char kImageNotFound[] = "cannot find one or more images";
inline constexpr char kUpToDate[] = "image up to date";
inline constexpr char kNotInRepo[] = "not found in repository";
}  // namespace reason

// A repository's tags as the scanner answered (status not OK: the scanner's error).
struct RepositoryTags {
  absl::Status status;
  ferry::v1::ListTagsResponse tags;
};

// Looks up a repository's tags as the scanner lists them (newest first by creation time;
// ranking by a container's filter is lib/policy's, see ChooseTag). The reference stays valid
// for the duration of the planning call.
using TagLookup = std::function<const RepositoryTags&(const std::string& repository)>;

// The tag filter of a container: its own, else the workload's tag_all, else any tag
// (lib/policy's FilterFor over the proto policy). InvalidArgument when the annotation does
// not parse.
absl::StatusOr<policy::TagPattern> FilterOf(const ferry::v1::Policy& policy,
                                            const std::string& container);

// The scanner's tags as lib/policy's ranking candidates (name, creation time, why the
// metadata is incomplete).
std::vector<policy::TagCandidate> TagCandidates(const ferry::v1::ListTagsResponse& listed);

// The tag a container running `current_tag` should run under `filter`, with the tags passed
// over: lib/policy's TagPattern::Choose over the listing. One rule for release planning,
// automation and ListImages' latest_filtered.
policy::TagChoice ChooseTag(const policy::TagPattern& filter,
                            const ferry::v1::ListTagsResponse& listed,
                            const std::string& current_tag);

// What holds tags of one container back from automation (issue 19), parsed from its
// policy: the soak time in force (zero for none) and the tags automatic reverts rejected.
struct ContainerHolds {
  absl::Duration min_age = absl::ZeroDuration();
  std::vector<policy::RejectedTag> rejected;
};

// The holds of `container` under `policy` (Policy::min_ages / min_age_all / rejected).
// InvalidArgument naming the annotation when one does not parse: Policy::errors' line for it
// when there is one (it names the key as written, e.g. fluxcd.io/min-age), else the
// ferry.dev/ key.
absl::StatusOr<ContainerHolds> HoldsOf(const ferry::v1::Policy& policy,
                                       const std::string& container);

// HoldsOf without the soak time (min_age zero): what an all_latest release that does not
// respect soak times still honours. Errors as HoldsOf's for the rejected annotation.
absl::StatusOr<ContainerHolds> RejectedOnlyOf(const ferry::v1::Policy& policy,
                                              const std::string& container);

// Whether automation holds the listed tag back at `now`: policy::HoldOf with the tag's
// creation time and the scanner's first sighting.
policy::Hold HoldOfTag(const ferry::v1::TagInfo& tag, const ContainerHolds& holds, absl::Time now);

// ChooseTag over the tags automation may consider at `now`: the held ones (HoldOfTag) are
// removed before ranking. With empty holds it is ChooseTag. One rule for automation,
// all_latest releases that respect soak times, ListImages and ExplainTags.
policy::TagChoice ChooseEligibleTag(const policy::TagPattern& filter,
                                    const ferry::v1::ListTagsResponse& listed,
                                    const std::string& current_tag, const ContainerHolds& holds,
                                    absl::Time now);

// Why `tag` is held back, in words, as automation notes and ExplainTags show it (times by
// runtime::FormatRfc3339Utc):
//   "1.5.0 is soaking until 2026-12-01T16:00:00Z (min-age 2h)"
//   "1.5.0 is soaking: its age is unknown yet (min-age 2h)"
//   "1.5.0 was rejected by job J (an automatic revert)"
// Empty for Hold::Kind::kNone.
std::string DescribeHold(const std::string& tag, const policy::Hold& hold, absl::Duration min_age);

// ChooseEligibleTag, with what the holds keep back from it: the tags the plain ChooseTag
// ranks above the eligible choice are the held ones that would otherwise be chosen.
struct HeldBackChoice {
  policy::TagChoice choice;  // ChooseEligibleTag's
  // The best held tag ranking above the choice ("" when none) and its hold.
  std::string held_tag;
  policy::Hold hold;
  // Held tags ranking above the choice (held_tag among them).
  int held = 0;
  // The earliest time one of them stops being too young: when the choice may change
  // (InfiniteFuture when none will by itself).
  absl::Time wake_at = absl::InfiniteFuture();
};
HeldBackChoice ChooseEligibleTagExplained(const policy::TagPattern& filter,
                                          const ferry::v1::ListTagsResponse& listed,
                                          const std::string& current_tag,
                                          const ContainerHolds& holds, absl::Time now);

// Checks a release spec before anything runs: workloads or all (not both, not neither),
// image or all_latest (exactly one), ids (manifest::WorkloadId::Parse, its message after the
// field: "workloads: ...", "excludes: ...") and "workload/container" entries well-formed, the
// image a reference with a tag. InvalidArgument saying what to fix.
absl::Status ValidateReleaseSpec(const ferry::v1::ReleaseSpec& spec);

// Checks policy changes before anything is written: each workload listed once with at least
// one change, well-formed ids (manifest::WorkloadId::Parse's message), no contradictions
// (automate and deautomate, lock and unlock, setting and removing the same filter), tag
// patterns that parse. InvalidArgument saying what to fix.
absl::Status ValidatePolicyChanges(
    const google::protobuf::RepeatedPtrField<ferry::v1::WorkloadPolicyChanges>& changes);

// The outcome of planning: one result per workload concerned, sorted by workload id.
struct ReleasePlan {
  std::vector<ferry::v1::WorkloadResult> results;

  // The compare-and-set image edits for every SUCCESS result.
  std::vector<ferry::v1::Edit> Edits() const;
  // Number of results with `status`.
  int Count(ferry::v1::WorkloadResultStatus status) const;
};

// Plans `spec` (already validated) over the workloads in git. `running` holds the ids of the
// workloads in the cluster. `tags` is consulted for all_latest releases only, where each
// container moves to its ChooseEligibleTag choice at `now`: rejected tags (RejectedOnlyOf)
// are always passed over (a tag an automatic revert took back is nobody's latest), the soak
// time only with spec.respect_min_age() (HoldsOf: the same tag automation would pick); a
// container whose holds do not parse is skipped with that error. Explicit images ignore
// soak times and rejections.
ReleasePlan PlanRelease(const ferry::v1::ReleaseSpec& spec,
                        const std::vector<ferry::v1::ManifestWorkload>& in_git,
                        const std::map<std::string, bool>& running, const TagLookup& tags,
                        absl::Time now);

// One container the automation would move, or why it does not.
struct AutomationCandidate {
  std::string workload;
  std::string container;
  std::string from_image;
  std::string to_image;  // empty when nothing is released; see `note`
  // Why nothing is released, or what was passed over on the way (incomplete metadata);
  // empty when there is nothing to say.
  std::string note;
  // Tags passed over because their metadata is incomplete.
  int incomplete = 0;
  // True when the note says why a better tag is held back (soaking, rejected) rather than
  // why the container cannot be planned.
  bool held = false;
  // When a tag held back by its soak time, ranking above what is chosen, becomes eligible:
  // when a pass should look again (InfiniteFuture: nothing to wait for).
  absl::Time wake_at = absl::InfiniteFuture();
};

// Whether the automation moves a workload with `policy`: automated, not locked, not ignored.
bool AutomationApplies(const ferry::v1::Policy& policy);

// For every workload the automation applies to: each container's choice at `now`
// (ChooseEligibleTag: soaking and rejected tags held back) when it is not the running tag.
// A tag never moves to one that ranks lower than the current tag, so two tags never
// alternate. Tags with incomplete metadata are passed over (and counted) when the ordering
// needs the creation time. A workload with policy errors (Policy::errors) is not planned:
// one candidate with an empty container and the note "policy error: <errors>". A held-back
// better tag is noted ("1.5.0 is soaking until ...", DescribeHold) with `held` and
// `wake_at` set, whether or not another tag moves.
std::vector<AutomationCandidate> PlanAutomation(
    const std::vector<ferry::v1::ManifestWorkload>& in_git, const TagLookup& tags, absl::Time now);

// "Auto-release <image>" or "Auto-release multiple (N) images" with the list.
std::string AutomationCommitMessage(const std::vector<AutomationCandidate>& releases);

// How much of a commit message the list of its changes may take: the message must stay
// under git-writer's limit (limits::kCommitMessageBytes) with a cause's message added, and
// the job's note records every change anyway.
inline constexpr size_t kCommitListBytes = 16 * 1024;

// `lines`, each after `prefix`, one per line (no newline after the last), as many as fit in
// `budget` bytes; the rest summed up in a last line ("<prefix>and 812 more, listed in the
// job's record").
std::string ListWithin(const std::vector<std::string>& lines, absl::string_view prefix,
                       size_t budget = kCommitListBytes);

}  // namespace ferry::api
