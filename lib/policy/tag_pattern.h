// Tag filters: which tags of an image repository a workload's container may move to, and
// in which order candidates rank. Written in policy annotations as "KIND:EXPRESSION":
//
//   glob:PATTERN        '*' any run of characters, '?' one character; the default when no
//                       kind is given ("master-*" = "glob:master-*"). Ranks by creation time.
//                       Only characters a tag can hold: letters, digits, '_', '.', '-'.
//   semver:CONSTRAINTS  Masterminds v3 constraints ("~1.2", ">=1.0 <2 || 3.x"). Ranks by
//                       version, highest first; tags that are not versions never match.
//   regexp:RE / regex:RE  RE2 syntax, unanchored unless the RE anchors itself (as Flux v1
//                       did). Ranks by creation time.
//   numerical:RE        tags matching RE (anchor it yourself; empty = any tag), ranked by
//                       the number in RE's first capture group, or the whole tag without one;
//                       tags without a number never match.
//   alphabetical:RE     like numerical, ranked by the captured text in byte order.
//
// "latest" is never a candidate unless the expression names it literally.
//
// This file is the one home of tag ranking: which tag filter is in force for a container
// (FilterFor), how candidates rank (TagPattern::Rank, TagPattern::Order) and which tag a
// container should run (TagPattern::Choose: the "needs a creation time" and "never move to a
// lower-ranked tag" rules). The registry-scanner's ordered ListTags, the api's ListImages,
// release planning and automation all call it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/policy/semver.h"

namespace re2 {
class RE2;
}

namespace ferry::policy {

enum class PatternKind { kGlob, kSemver, kRegexp, kNumerical, kAlphabetical };

// A tag with what ranking needs to know about it.
struct TagCandidate {
  TagCandidate() = default;
  TagCandidate(std::string tag, std::optional<absl::Time> created,
               std::string incomplete_reason = "")
      : tag(std::move(tag)), created(created), incomplete_reason(std::move(incomplete_reason)) {}

  std::string tag;
  // Creation time; nullopt when unknown (ranked after every known time).
  std::optional<absl::Time> created;
  // Why the tag's metadata is incomplete; empty when it is complete. A ranking by creation
  // time cannot rely on such a tag's time (see TagPattern::Choose).
  std::string incomplete_reason;
};

// What a tag filter picks from a repository's tags for one container.
struct TagChoice {
  // The tags passing the filter that the ranking can place, best first (TagPattern::Rank).
  // The first one is the tag the container should run; it never ranks below the running tag
  // (see TagPattern::Choose). Empty when no tag qualifies.
  std::vector<TagCandidate> ranked;
  // Tags passing the filter that were passed over because the ranking needs a creation time
  // and theirs is unknown or their metadata is incomplete.
  int incomplete = 0;
};

// A parsed tag filter. Thread-compatible value type (copies share the compiled RE).
class TagPattern {
 public:
  // Parses "KIND:EXPRESSION" (or a bare glob). InvalidArgument with what to fix: a control
  // character anywhere; an unknown kind ("semvr:^1.0": unknown filter kind "semvr" (use
  // glob:, ...)); a ':' without a known kind before it or any other character no tag can
  // hold in a glob (tags are [A-Za-z0-9_][A-Za-z0-9_.-]*, so such a glob would never match);
  // a bad semver constraint; an RE2 error.
  static absl::StatusOr<TagPattern> Parse(absl::string_view text);

  // The pattern that accepts every tag but "latest" ("glob:*").
  static TagPattern Any();

  PatternKind kind() const { return kind_; }
  // The expression without its kind prefix.
  const std::string& expression() const { return expression_; }
  // "KIND:EXPRESSION", normalized ("glob:*").
  std::string ToString() const;

  // True when `tag` passes the filter.
  bool Matches(absl::string_view tag) const;

  // The candidates that pass the filter, best first: by version (semver), number
  // (numerical), text (alphabetical) or creation time (glob, regexp), ties broken by tag
  // name descending so the order never depends on input order.
  std::vector<TagCandidate> Rank(std::vector<TagCandidate> candidates) const;

  // Every candidate this kind of ranking can place, whether or not it passes the filter,
  // in Rank's order: every version (semver), every tag whose rank key is a number
  // (numerical) or that has a rank key (alphabetical), every tag (glob, regexp). For
  // listings that show the tags around the candidates; "latest" is kept when its kind can
  // rank it.
  std::vector<TagCandidate> Order(std::vector<TagCandidate> candidates) const;

  // True when the ranking is by creation time (glob, regexp): a tag without a known
  // creation time, or with incomplete metadata, cannot take part in it.
  bool NeedsCreationTime() const;

  // The tag a container running `current_tag` should run, from a repository's `listed`
  // tags: those passing the filter, ranked; when NeedsCreationTime(), tags without a time
  // or with incomplete metadata are passed over and counted. The running tag takes part in
  // the ranking when it passes the filter (also when the registry no longer lists it, if the
  // ranking does not need a creation time), so the choice never ranks below it and two tags
  // never alternate. `current_tag` may be empty (a digest-only or unknown image).
  TagChoice Choose(std::vector<TagCandidate> listed, absl::string_view current_tag) const;

 private:
  TagPattern() = default;

  struct Keyed;
  // Sorts `candidates` best first, keeping those `keep` accepts and this kind can rank.
  template <typename Keep>
  std::vector<TagCandidate> Sorted(std::vector<TagCandidate> candidates, Keep keep) const;

  PatternKind kind_ = PatternKind::kGlob;
  std::string expression_;
  std::optional<Constraints> constraints_;
  std::shared_ptr<re2::RE2> re_;
  bool allows_latest_ = false;
};

// The text of the tag filter in force for `container`: its own entry in `filters` (a map of
// container name to filter text, std::map or protobuf Map), else `tag_all`. Empty when
// neither is set.
template <typename Map>
std::string FilterTextFor(const Map& filters, const std::string& tag_all,
                          const std::string& container) {
  auto own = filters.find(container);
  return own != filters.end() ? std::string(own->second) : tag_all;
}

// A container's filter text parsed: empty is TagPattern::Any(). InvalidArgument
// "invalid tag filter 'TEXT': why" when it does not parse.
absl::StatusOr<TagPattern> ParseFilter(absl::string_view text);

// The tag filter in force for `container` (FilterTextFor), parsed (ParseFilter).
template <typename Map>
absl::StatusOr<TagPattern> FilterFor(const Map& filters, const std::string& tag_all,
                                     const std::string& container) {
  return ParseFilter(FilterTextFor(filters, tag_all, container));
}

// Glob match with '*' (any run, also empty) and '?' (one byte). Linear in practice; worst
// case O(pattern x text).
bool GlobMatch(absl::string_view pattern, absl::string_view text);

}  // namespace ferry::policy
