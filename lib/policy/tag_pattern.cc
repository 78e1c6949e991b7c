#include "lib/policy/tag_pattern.h"

#include <re2/re2.h>

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/names/names.h"

namespace ferry::policy {
namespace {

constexpr char kKindHint[] = "use glob:, semver:, regexp:, numerical: or alphabetical:";

// The value a numerical / alphabetical pattern ranks a tag by: RE's first group or the tag.
std::optional<std::string> RankKey(const re2::RE2* re, absl::string_view tag) {
  if (re == nullptr) return std::string(tag);
  re2::StringPiece input(tag.data(), tag.size());
  if (re->NumberOfCapturingGroups() == 0) {
    if (!RE2::PartialMatch(input, *re)) return std::nullopt;
    return std::string(tag);
  }
  std::string group;
  if (!RE2::PartialMatch(input, *re, &group)) return std::nullopt;
  return group;
}

std::optional<double> Number(absl::string_view text) {
  double value = 0;
  if (text.empty() || !absl::SimpleAtod(text, &value)) return std::nullopt;
  for (char c : text) {
    if (!(absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+')) {
      return std::nullopt;  // SimpleAtod also takes "inf", "nan", "1e5"
    }
  }
  return value;
}

}  // namespace

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  size_t p = 0;
  size_t t = 0;
  size_t star = absl::string_view::npos;
  size_t resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

TagPattern TagPattern::Any() {
  TagPattern p;
  p.kind_ = PatternKind::kGlob;
  p.expression_ = "*";
  return p;
}

absl::StatusOr<TagPattern> TagPattern::Parse(absl::string_view text) {
  // lib/names owns the rule: C0, DEL, C1 (e.g. U+009B CSI) and bytes that are not UTF-8.
  if (absl::Status valid =
          names::ValidateName("tag filter", text, std::numeric_limits<uint64_t>::max());
      !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(valid.message(), " (write it on one line without tabs or newlines)"));
  }
  TagPattern p;
  absl::string_view expr = text;
  size_t colon = text.find(':');
  absl::string_view prefix = colon == absl::string_view::npos ? "" : text.substr(0, colon);
  if (prefix == "glob") {
    p.kind_ = PatternKind::kGlob;
  } else if (prefix == "semver") {
    p.kind_ = PatternKind::kSemver;
  } else if (prefix == "regexp" || prefix == "regex") {
    p.kind_ = PatternKind::kRegexp;
  } else if (prefix == "numerical") {
    p.kind_ = PatternKind::kNumerical;
  } else if (prefix == "alphabetical") {
    p.kind_ = PatternKind::kAlphabetical;
  } else if (colon != absl::string_view::npos) {
    // Tags never contain ':', so a bare glob with one would never match: it is a misspelled
    // kind ("semvr:^1.0") or a kind left out.
    const bool word = !prefix.empty() && std::all_of(prefix.begin(), prefix.end(), [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (word) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown filter kind \"", prefix, "\" (", kKindHint, ")"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("tag filter \"", text,
                     "\" has a ':' but no filter kind before it, and a "
                     "tag never contains ':' (",
                     kKindHint, ")"));
  }
  if (colon != absl::string_view::npos) expr = text.substr(colon + 1);
  p.expression_ = std::string(expr);
  p.allows_latest_ = absl::StrContains(expr, "latest");

  switch (p.kind_) {
    case PatternKind::kGlob:
      if (expr.empty()) {
        return absl::InvalidArgumentError("empty glob tag filter; use \"glob:*\" for any tag");
      }
      for (char c : expr) {
        if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
            c == '-' || c == '*' || c == '?') {
          continue;
        }
        // A glob with any other character never matches a tag ([A-Za-z0-9_][A-Za-z0-9_.-]*).
        return absl::InvalidArgumentError(absl::StrCat(
            "glob tag filter \"", expr, "\" has '", absl::string_view(&c, 1),
            "', which no tag contains (tags are letters, digits, '_', '.' and '-'; a glob adds "
            "'*' and '?'; ",
            kKindHint, ")"));
      }
      break;
    case PatternKind::kSemver: {
      absl::StatusOr<Constraints> c = Constraints::Parse(expr);
      if (!c.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid tag filter \"", text, "\": ", c.status().message()));
      }
      p.constraints_ = *c;
      break;
    }
    case PatternKind::kRegexp:
    case PatternKind::kNumerical:
    case PatternKind::kAlphabetical: {
      if (expr.empty() && p.kind_ == PatternKind::kRegexp) {
        return absl::InvalidArgumentError("empty regexp tag filter");
      }
      if (expr.empty()) break;
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_shared<re2::RE2>(re2::StringPiece(expr.data(), expr.size()), options);
      if (!re->ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid tag filter \"", text, "\": ", re->error()));
      }
      p.re_ = std::move(re);
      break;
    }
  }
  return p;
}

std::string TagPattern::ToString() const {
  const char* prefix = "glob";
  switch (kind_) {
    case PatternKind::kGlob:
      prefix = "glob";
      break;
    case PatternKind::kSemver:
      prefix = "semver";
      break;
    case PatternKind::kRegexp:
      prefix = "regexp";
      break;
    case PatternKind::kNumerical:
      prefix = "numerical";
      break;
    case PatternKind::kAlphabetical:
      prefix = "alphabetical";
      break;
  }
  return absl::StrCat(prefix, ":", expression_);
}

bool TagPattern::Matches(absl::string_view tag) const {
  if (tag == "latest" && !allows_latest_) return false;
  switch (kind_) {
    case PatternKind::kGlob:
      return GlobMatch(expression_, tag);
    case PatternKind::kSemver: {
      absl::StatusOr<Version> v = Version::Parse(tag);
      return v.ok() && constraints_->Check(*v);
    }
    case PatternKind::kRegexp:
      return RE2::PartialMatch(re2::StringPiece(tag.data(), tag.size()), *re_);
    case PatternKind::kNumerical: {
      std::optional<std::string> key = RankKey(re_.get(), tag);
      return key.has_value() && Number(*key).has_value();
    }
    case PatternKind::kAlphabetical:
      return RankKey(re_.get(), tag).has_value();
  }
  return false;
}

// A candidate with the key its kind ranks it by, computed once before sorting.
struct TagPattern::Keyed {
  TagCandidate candidate;
  std::optional<Version> version;  // semver
  double number = 0;               // numerical
  std::string text;                // alphabetical
};

template <typename Keep>
std::vector<TagCandidate> TagPattern::Sorted(std::vector<TagCandidate> candidates,
                                             Keep keep) const {
  std::vector<Keyed> keyed;
  keyed.reserve(candidates.size());
  for (TagCandidate& c : candidates) {
    if (!keep(c)) continue;
    Keyed k;
    switch (kind_) {
      case PatternKind::kSemver: {
        absl::StatusOr<Version> v = Version::Parse(c.tag);
        if (!v.ok()) continue;
        k.version = *std::move(v);
        break;
      }
      case PatternKind::kNumerical: {
        std::optional<std::string> key = RankKey(re_.get(), c.tag);
        std::optional<double> number = key ? Number(*key) : std::nullopt;
        if (!number) continue;
        k.number = *number;
        break;
      }
      case PatternKind::kAlphabetical: {
        std::optional<std::string> key = RankKey(re_.get(), c.tag);
        if (!key) continue;
        k.text = *std::move(key);
        break;
      }
      case PatternKind::kGlob:
      case PatternKind::kRegexp:
        break;
    }
    k.candidate = std::move(c);
    keyed.push_back(std::move(k));
  }
  // Best first; ties broken by tag name descending so the order never depends on input order.
  auto better = [this](const Keyed& a, const Keyed& b) {
    switch (kind_) {
      case PatternKind::kSemver:
        if (int c = a.version->Compare(*b.version); c != 0) return c > 0;
        break;
      case PatternKind::kNumerical:
        if (a.number != b.number) return a.number > b.number;
        break;
      case PatternKind::kAlphabetical:
        if (a.text != b.text) return a.text > b.text;
        break;
      case PatternKind::kGlob:
      case PatternKind::kRegexp: {
        const std::optional<absl::Time>& x = a.candidate.created;
        const std::optional<absl::Time>& y = b.candidate.created;
        if (x != y) {
          if (!x) return false;  // unknown times rank last
          if (!y) return true;
          return *x > *y;
        }
        break;
      }
    }
    return a.candidate.tag > b.candidate.tag;
  };
  std::sort(keyed.begin(), keyed.end(), better);
  std::vector<TagCandidate> out;
  out.reserve(keyed.size());
  for (Keyed& k : keyed) out.push_back(std::move(k.candidate));
  return out;
}

std::vector<TagCandidate> TagPattern::Rank(std::vector<TagCandidate> candidates) const {
  return Sorted(std::move(candidates), [this](const TagCandidate& c) { return Matches(c.tag); });
}

std::vector<TagCandidate> TagPattern::Order(std::vector<TagCandidate> candidates) const {
  return Sorted(std::move(candidates), [](const TagCandidate&) { return true; });
}

bool TagPattern::NeedsCreationTime() const {
  return kind_ == PatternKind::kGlob || kind_ == PatternKind::kRegexp;
}

TagChoice TagPattern::Choose(std::vector<TagCandidate> listed,
                             absl::string_view current_tag) const {
  TagChoice choice;
  const bool need_time = NeedsCreationTime();
  bool current_listed = false;
  std::vector<TagCandidate> usable;
  for (TagCandidate& c : listed) {
    if (!Matches(c.tag)) continue;
    if (c.tag == current_tag) current_listed = true;
    if (need_time && (!c.created.has_value() || !c.incomplete_reason.empty())) {
      ++choice.incomplete;
      continue;
    }
    usable.push_back(std::move(c));
  }
  // A running tag the registry no longer lists still ranks by its name, so the choice never
  // goes below it. By creation time it cannot rank: its time is unknown.
  if (!current_listed && !need_time && !current_tag.empty() && Matches(current_tag)) {
    usable.push_back(TagCandidate{std::string(current_tag), std::nullopt, ""});
  }
  choice.ranked = Rank(std::move(usable));
  return choice;
}

absl::StatusOr<TagPattern> ParseFilter(absl::string_view text) {
  if (text.empty()) return TagPattern::Any();
  absl::StatusOr<TagPattern> parsed = TagPattern::Parse(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid tag filter '", text, "': ", parsed.status().message()));
  }
  return parsed;
}

}  // namespace ferry::policy
