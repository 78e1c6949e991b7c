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
#pragma once

#include <memory>
#include <optional>
#include <string>
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
  std::string tag;
  // Creation time; nullopt when unknown (ranked after every known time).
  std::optional<absl::Time> created;
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

 private:
  TagPattern() = default;

  PatternKind kind_ = PatternKind::kGlob;
  std::string expression_;
  std::optional<Constraints> constraints_;
  std::shared_ptr<re2::RE2> re_;
  bool allows_latest_ = false;
};

// Glob match with '*' (any run, also empty) and '?' (one byte). Linear in practice; worst
// case O(pattern x text).
bool GlobMatch(absl::string_view pattern, absl::string_view text);

}  // namespace ferry::policy
