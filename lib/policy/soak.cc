#include "lib/policy/soak.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/image/reference.h"

namespace ferry::policy {
namespace {

constexpr char kDurationHelp[] =
    "use a positive duration such as 90s, 15m, 2h, 1h30m or 3d (at most 365d)";

bool IsJobChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.'; }

}  // namespace

absl::StatusOr<absl::Duration> ParsePolicyDuration(absl::string_view text) {
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  if (rest.empty())
    return absl::InvalidArgumentError(absl::StrCat("empty duration: ", kDurationHelp));
  // Days first ("3d", "1d12h"); absl::ParseDuration reads the rest (Go's units).
  absl::Duration total = absl::ZeroDuration();
  if (size_t d = rest.find('d'); d != absl::string_view::npos) {
    int64_t days = 0;
    if (d == 0 || d > 4 || !absl::SimpleAtoi(rest.substr(0, d), &days) || days < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" is not a duration: ", kDurationHelp));
    }
    total = absl::Hours(24 * days);
    rest.remove_prefix(d + 1);
  }
  if (!rest.empty()) {
    absl::Duration part;
    // ParseDuration takes "0" without a unit and signs; neither means anything here.
    if (rest == "0" || rest[0] == '-' || rest[0] == '+' || !absl::ParseDuration(rest, &part) ||
        part == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" is not a duration: ", kDurationHelp));
    }
    total += part;
  }
  if (total <= absl::ZeroDuration() || total > kMaxPolicyDuration) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is out of range: ", kDurationHelp));
  }
  return total;
}

std::string FormatPolicyDuration(absl::Duration d) {
  std::string out;
  const int64_t days = absl::IDivDuration(d, absl::Hours(24), &d);
  if (days > 0) absl::StrAppend(&out, days, "d");
  if (d > absl::ZeroDuration() || out.empty()) {
    // FormatDuration writes "2h0m0s"-free forms such as "1h30m" and "90ms".
    absl::StrAppend(&out, absl::FormatDuration(d));
  }
  return out;
}

absl::StatusOr<bool> ParseRollback(absl::string_view text) {
  std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (v == "auto") return true;
  if (v == "off") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a rollback mode: use auto or off"));
}

absl::Status ValidateRejectedTag(const RejectedTag& rejected) {
  if (absl::Status valid = image::ValidateTag(rejected.tag); !valid.ok()) return valid;
  if (rejected.job.size() > kMaxRejectedJobLength ||
      !std::all_of(rejected.job.begin(), rejected.job.end(), IsJobChar)) {
    return absl::InvalidArgumentError(absl::StrCat("a job id holds at most ", kMaxRejectedJobLength,
                                                   " letters, digits, '-', '_' and '.'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RejectedTag>> ParseRejected(absl::string_view text) {
  std::vector<RejectedTag> out;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    if (out.size() >= kMaxRejectedTags * 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than ", kMaxRejectedTags * 2, " rejected tags"));
    }
    RejectedTag r;
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    r.tag = std::string(absl::StripAsciiWhitespace(parts.first));
    r.job = std::string(absl::StripAsciiWhitespace(parts.second));
    if (absl::Status valid = ValidateRejectedTag(r); !valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rejected entry \"", entry, "\": ", valid.message()));
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string FormatRejected(const std::vector<RejectedTag>& tags) {
  // The last entry for a tag wins and takes its place at the end (newest last).
  std::vector<RejectedTag> unique;
  for (const RejectedTag& t : tags) {
    unique.erase(std::remove_if(unique.begin(), unique.end(),
                                [&](const RejectedTag& u) { return u.tag == t.tag; }),
                 unique.end());
    unique.push_back(t);
  }
  size_t first = unique.size() > kMaxRejectedTags ? unique.size() - kMaxRejectedTags : 0;
  std::string out;
  for (size_t i = first; i < unique.size(); ++i) {
    if (!out.empty()) out += ",";
    absl::StrAppend(&out, unique[i].tag);
    if (!unique[i].job.empty()) absl::StrAppend(&out, "=", unique[i].job);
  }
  return out;
}

std::optional<absl::Time> SoakStart(std::optional<absl::Time> created,
                                    std::optional<absl::Time> first_seen) {
  if (created.has_value()) return created;
  return first_seen;
}

Hold HoldOf(absl::string_view tag, std::optional<absl::Time> created,
            std::optional<absl::Time> first_seen, absl::Duration min_age,
            const std::vector<RejectedTag>& rejected, absl::Time now) {
  Hold hold;
  for (const RejectedTag& r : rejected) {
    if (r.tag == tag) {
      hold.kind = Hold::Kind::kRejected;
      hold.job = r.job;
      return hold;
    }
  }
  if (min_age <= absl::ZeroDuration()) return hold;
  std::optional<absl::Time> start = SoakStart(created, first_seen);
  absl::Time eligible = start.has_value() ? *start + min_age : absl::InfiniteFuture();
  if (eligible > now) {
    hold.kind = Hold::Kind::kTooYoung;
    hold.eligible_at = eligible;
  }
  return hold;
}

}  // namespace ferry::policy
