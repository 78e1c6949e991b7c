// Safe-automation policy values (issue 19): soak time ("min-age"), automatic rollback
// ("rollback", "rollback-timeout") and the tags an automatic revert rejected ("rejected.<c>").
// Parsing of the annotation texts, and the one rule that holds a tag back from automation
// before ranking, shared by release planning, ListImages and ExplainTags.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::policy {

// The longest soak time or rollback timeout accepted.
inline constexpr absl::Duration kMaxPolicyDuration = absl::Hours(24 * 365);
// How long a release's rollout may take when `rollback-timeout` is not set.
inline constexpr absl::Duration kDefaultRollbackTimeout = absl::Minutes(10);
// Rejected tags kept per container; the oldest entries are dropped beyond it.
inline constexpr size_t kMaxRejectedTags = 20;

// Parses a positive duration: Go's units ("90s", "15m", "2h", "1h30m") plus days ("3d",
// "1d12h"). InvalidArgument, saying what a valid value looks like, for anything else:
// zero, negative, over kMaxPolicyDuration, no unit.
absl::StatusOr<absl::Duration> ParsePolicyDuration(absl::string_view text);

// "2h", "1d12h", "90s": the shortest text ParsePolicyDuration reads back as `d`.
std::string FormatPolicyDuration(absl::Duration d);

// `rollback`: "auto" or "off" (case-insensitive). InvalidArgument otherwise.
absl::StatusOr<bool> ParseRollback(absl::string_view text);

// One tag an automatic revert took back, and the job that did it.
struct RejectedTag {
  std::string tag;
  std::string job;
  bool operator==(const RejectedTag& o) const { return tag == o.tag && job == o.job; }
};

// The longest job id a rejected entry names.
inline constexpr size_t kMaxRejectedJobLength = 128;

// Checks one rejected entry as it stands (not as it would read back from its annotation
// text): `tag` a valid image tag (image::ValidateTag), `job` empty or at most
// kMaxRejectedJobLength of [A-Za-z0-9_.-]. InvalidArgument saying which part is wrong. THE
// check of a rejected tag given by a user or a revert (policy changes, flags) and of each
// entry ParseRejected reads.
absl::Status ValidateRejectedTag(const RejectedTag& rejected);

// Parses "TAG=JOB,TAG=JOB" (spaces around entries allowed; an entry without "=JOB" has no
// job). InvalidArgument naming the entry when it fails ValidateRejectedTag, or there are
// more than kMaxRejectedTags * 2 entries.
absl::StatusOr<std::vector<RejectedTag>> ParseRejected(absl::string_view text);

// The annotation text for `tags` ("TAG=JOB,..."): one entry per tag (a later entry for the
// same tag replaces the earlier), the newest kMaxRejectedTags kept.
std::string FormatRejected(const std::vector<RejectedTag>& tags);

// Why automation does not consider a tag at all, before any ranking.
struct Hold {
  enum class Kind { kNone, kTooYoung, kRejected };
  Kind kind = Kind::kNone;
  // kTooYoung: when the tag becomes eligible.
  absl::Time eligible_at = absl::InfinitePast();
  // kRejected: the job whose revert rejected it ("" when unknown).
  std::string job;
};

// The age a tag's soak counts from: its image's creation time when known, else when the
// scanner first saw the tag; nullopt when neither is known.
std::optional<absl::Time> SoakStart(std::optional<absl::Time> created,
                                    std::optional<absl::Time> first_seen);

// Whether automation holds `tag` back at `now`: rejected (listed in `rejected`) first, then
// too young (its SoakStart + `min_age` is after `now`; a tag with no known SoakStart is held
// until it has one, with eligible_at InfiniteFuture). `min_age` zero holds nothing back.
Hold HoldOf(absl::string_view tag, std::optional<absl::Time> created,
            std::optional<absl::Time> first_seen, absl::Duration min_age,
            const std::vector<RejectedTag>& rejected, absl::Time now);

}  // namespace ferry::policy
