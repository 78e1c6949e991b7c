#include "lib/policy/semver.h"

#include <re2/re2.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ferry::policy {
namespace {

constexpr char kIdentifiers[] = R"([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)";

const RE2& VersionRe() {
  static const RE2* re =
      new RE2(absl::StrCat(R"(v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?)", "(?:-(", kIdentifiers,
                           "))?(?:\\+(", kIdentifiers, "))?"));
  return *re;
}

// A constraint's version: parts may be wildcards.
const RE2& ConstraintVersionRe() {
  static const RE2* re =
      new RE2(absl::StrCat(R"(v?([0-9]+|[xX*])(?:\.([0-9]+|[xX*]))?)", R"((?:\.([0-9]+|[xX*]))?)",
                           "(?:-(", kIdentifiers, "))?(?:\\+(", kIdentifiers, "))?"));
  return *re;
}

// "A - B" inside a group means ">=A, <=B".
const RE2& HyphenRangeRe() {
  static const RE2* re =
      new RE2(absl::StrCat(R"((v?[0-9xX*]+(?:\.[0-9xX*]+){0,2}(?:-)", kIdentifiers, R"()?(?:\+)",
                           kIdentifiers, R"()?)\s+-\s+(v?[0-9xX*]+(?:\.[0-9xX*]+){0,2}(?:-)",
                           kIdentifiers, R"()?(?:\+)", kIdentifiers, R"()?))"));
  return *re;
}

bool IsWildcard(absl::string_view part) {
  return part.empty() || part == "x" || part == "X" || part == "*";
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

int ComparePrerelease(absl::string_view a, absl::string_view b) {
  if (a == b) return 0;
  // A release sorts after any of its pre-releases.
  if (a.empty()) return 1;
  if (b.empty()) return -1;
  std::vector<absl::string_view> pa = absl::StrSplit(a, '.');
  std::vector<absl::string_view> pb = absl::StrSplit(b, '.');
  for (size_t i = 0; i < pa.size() && i < pb.size(); ++i) {
    bool na = AllDigits(pa[i]);
    bool nb = AllDigits(pb[i]);
    if (na && nb) {
      uint64_t x = 0;
      uint64_t y = 0;
      (void)absl::SimpleAtoi(pa[i], &x);
      (void)absl::SimpleAtoi(pb[i], &y);
      if (x != y) return x < y ? -1 : 1;
    } else if (na != nb) {
      return na ? -1 : 1;  // numeric identifiers sort before alphanumeric ones
    } else if (pa[i] != pb[i]) {
      return pa[i] < pb[i] ? -1 : 1;
    }
  }
  if (pa.size() == pb.size()) return 0;
  return pa.size() < pb.size() ? -1 : 1;
}

absl::Status CheckPrereleaseIdentifiers(absl::string_view text, absl::string_view prerelease) {
  for (absl::string_view id : absl::StrSplit(prerelease, '.')) {
    if (id.size() > 1 && id[0] == '0' && AllDigits(id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", text, "\" is not a semantic version: numeric pre-release identifier \"", id,
          "\" has a leading zero"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Version> Version::Parse(absl::string_view text) {
  std::string major;
  std::string minor;
  std::string patch;
  std::string pre;
  std::string meta;
  if (!RE2::FullMatch(re2::StringPiece(text.data(), text.size()), VersionRe(), &major, &minor,
                      &patch, &pre, &meta)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a semantic version (expected e.g. 1.2.3 or v1.2.3-rc.1)"));
  }
  Version v;
  if (!absl::SimpleAtoi(major, &v.major_) ||
      (!minor.empty() && !absl::SimpleAtoi(minor, &v.minor_)) ||
      (!patch.empty() && !absl::SimpleAtoi(patch, &v.patch_))) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": version number too large"));
  }
  if (absl::Status s = CheckPrereleaseIdentifiers(text, pre); !s.ok()) return s;
  v.prerelease_ = pre;
  v.metadata_ = meta;
  return v;
}

int Version::Compare(const Version& other) const {
  if (major_ != other.major_) return major_ < other.major_ ? -1 : 1;
  if (minor_ != other.minor_) return minor_ < other.minor_ ? -1 : 1;
  if (patch_ != other.patch_) return patch_ < other.patch_ ? -1 : 1;
  return ComparePrerelease(prerelease_, other.prerelease_);
}

std::string Version::ToString() const {
  std::string s = absl::StrCat(major_, ".", minor_, ".", patch_);
  if (!prerelease_.empty()) absl::StrAppend(&s, "-", prerelease_);
  if (!metadata_.empty()) absl::StrAppend(&s, "+", metadata_);
  return s;
}

absl::StatusOr<Constraints::Constraint> Constraints::ParseOne(absl::string_view op,
                                                              absl::string_view version) {
  Constraint c;
  if (op.empty() || op == "=")
    c.op = Op::kEqual;
  else if (op == "!=")
    c.op = Op::kNotEqual;
  else if (op == ">")
    c.op = Op::kGreater;
  else if (op == "<")
    c.op = Op::kLess;
  else if (op == ">=" || op == "=>")
    c.op = Op::kGreaterEqual;
  else if (op == "<=" || op == "=<")
    c.op = Op::kLessEqual;
  else if (op == "~" || op == "~>")
    c.op = Op::kTilde;
  else if (op == "^")
    c.op = Op::kCaret;
  else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown operator \"", op, "\" (use =, !=, >, <, >=, <=, ~, ~> or ^)"));
  }
  std::string major;
  std::string minor;
  std::string patch;
  std::string pre;
  std::string meta;
  if (!RE2::FullMatch(re2::StringPiece(version.data(), version.size()), ConstraintVersionRe(),
                      &major, &minor, &patch, &pre, &meta)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", version, "\" is not a version or range"));
  }
  if (absl::Status s = CheckPrereleaseIdentifiers(version, pre); !s.ok()) return s;
  std::string base;
  if (IsWildcard(major)) {
    c.dirty = true;
    base = "0.0.0";
  } else if (IsWildcard(minor)) {
    c.dirty = c.minor_dirty = true;
    base = absl::StrCat(major, ".0.0");
  } else if (IsWildcard(patch)) {
    c.dirty = c.patch_dirty = true;
    base = absl::StrCat(major, ".", minor, ".0");
  } else {
    base = absl::StrCat(major, ".", minor, ".", patch);
  }
  if (!pre.empty()) absl::StrAppend(&base, "-", pre);
  absl::StatusOr<Version> v = Version::Parse(base);
  if (!v.ok()) return v.status();
  c.version = *v;
  return c;
}

absl::StatusOr<Constraints> Constraints::Parse(absl::string_view text) {
  Constraints out;
  out.text_ = std::string(text);
  for (absl::string_view group_text : absl::StrSplit(text, "||")) {
    std::string group(absl::StripAsciiWhitespace(group_text));
    if (group.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("semver constraint \"", text, "\" has an empty alternative (around '||')"));
    }
    RE2::GlobalReplace(&group, HyphenRangeRe(), ">=\\1, <=\\2");
    std::vector<Constraint> constraints;
    size_t i = 0;
    while (i < group.size()) {
      while (i < group.size() && (group[i] == ' ' || group[i] == '\t' || group[i] == ',')) ++i;
      if (i >= group.size()) break;
      size_t op_start = i;
      while (i < group.size() &&
             absl::string_view("=!<>~^").find(group[i]) != absl::string_view::npos)
        ++i;
      absl::string_view op = absl::string_view(group).substr(op_start, i - op_start);
      while (i < group.size() && (group[i] == ' ' || group[i] == '\t')) ++i;
      size_t v_start = i;
      while (i < group.size() && group[i] != ' ' && group[i] != '\t' && group[i] != ',') ++i;
      absl::string_view version = absl::string_view(group).substr(v_start, i - v_start);
      if (version.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("semver constraint \"", text, "\": operator \"", op, "\" has no version"));
      }
      absl::StatusOr<Constraint> c = ParseOne(op, version);
      if (!c.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("semver constraint \"", text, "\": ", c.status().message()));
      }
      constraints.push_back(*c);
    }
    out.groups_.push_back(std::move(constraints));
  }
  return out;
}

bool Constraints::CheckOne(const Constraint& c, const Version& v) {
  const Version& con = c.version;
  // A pre-release only satisfies constraints that ask for pre-releases.
  if (!v.prerelease().empty() && con.prerelease().empty()) return false;
  switch (c.op) {
    case Op::kEqual:
      if (c.dirty) {
        Constraint tilde = c;
        tilde.op = Op::kTilde;
        return CheckOne(tilde, v);
      }
      return v == con;
    case Op::kNotEqual:
      if (c.dirty) {
        if (con.major() != v.major()) return true;
        if (c.minor_dirty) return false;
        if (con.minor() != v.minor()) return true;
        if (c.patch_dirty) return ComparePrerelease(v.prerelease(), con.prerelease()) != 0;
      }
      return !(v == con);
    case Op::kGreater:
      if (!c.dirty) return v.Compare(con) > 0;
      if (v.major() != con.major()) return v.major() > con.major();
      if (c.minor_dirty) return false;  // ">1" means 2.0.0 or later
      if (c.patch_dirty) return v.minor() > con.minor();
      return v.Compare(con) > 0;
    case Op::kLess:
      return v.Compare(con) < 0;
    case Op::kGreaterEqual:
      return v.Compare(con) >= 0;
    case Op::kLessEqual:
      if (!c.dirty) return v.Compare(con) <= 0;
      if (v.major() > con.major()) return false;
      if (v.major() == con.major() && v.minor() > con.minor() && !c.minor_dirty) return false;
      return true;
    case Op::kTilde:
      if (v < con) return false;
      if (con.major() == 0 && con.minor() == 0 && con.patch() == 0 && !c.minor_dirty &&
          !c.patch_dirty) {
        return true;  // "~0.0.0" and "~*" accept everything
      }
      if (v.major() != con.major()) return false;
      return c.minor_dirty || v.minor() == con.minor();
    case Op::kCaret:
      if (c.dirty && !c.minor_dirty && !c.patch_dirty) return true;  // "^*" accepts everything
      if (v < con) return false;
      if (con.major() > 0 || c.minor_dirty) return v.major() == con.major();
      if (v.major() > 0) return false;
      if (con.minor() > 0 || c.patch_dirty) return v.minor() == con.minor();
      return v.minor() == 0 && v.patch() == con.patch();
  }
  return false;
}

bool Constraints::Check(const Version& version) const {
  for (const std::vector<Constraint>& group : groups_) {
    bool all = true;
    for (const Constraint& c : group) {
      if (!CheckOne(c, version)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

}  // namespace ferry::policy
