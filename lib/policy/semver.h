// Semantic versions and version constraints, with the constraint grammar of the Masterminds
// semver v3 library (which Flux v1 users' `semver:` tag filters are written in):
//
//   constraints := and-group ("||" and-group)*
//   and-group   := constraint ((","|" ") constraint)*   or   version " - " version
//   constraint  := op? version       op := = != > < >= => <= =< ~ ~> ^
//   version     := "v"? part ("." part ("." part)?)? ("-" prerelease)? ("+" metadata)?
//   part        := digits | "x" | "X" | "*"
//
// Partial versions and wildcards make ranges ("1.2" = "1.2.x" = ">=1.2.0 <1.3.0" for "=",
// "~" and "^"). A pre-release version matches only constraints that name a pre-release
// themselves, so "^1.2" never picks "1.3.0-rc.1".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::policy {

// A semantic version. Value type.
class Version {
 public:
  // Parses a version, leniently as tags are written: optional "v", missing minor/patch taken
  // as 0 ("1.2" = 1.2.0). InvalidArgument when `text` is not a version.
  static absl::StatusOr<Version> Parse(absl::string_view text);

  uint64_t major() const { return major_; }
  uint64_t minor() const { return minor_; }
  uint64_t patch() const { return patch_; }
  const std::string& prerelease() const { return prerelease_; }
  const std::string& metadata() const { return metadata_; }

  // <0, 0, >0 per semver precedence; build metadata is ignored.
  int Compare(const Version& other) const;
  bool operator<(const Version& other) const { return Compare(other) < 0; }
  bool operator==(const Version& other) const { return Compare(other) == 0; }

  // "1.2.3-rc.1+build".
  std::string ToString() const;

 private:
  friend class Constraints;
  uint64_t major_ = 0;
  uint64_t minor_ = 0;
  uint64_t patch_ = 0;
  std::string prerelease_;
  std::string metadata_;
};

// Parsed version constraints. Value type; Check() is thread-safe.
class Constraints {
 public:
  // Parses `text`. InvalidArgument naming the part that does not parse.
  static absl::StatusOr<Constraints> Parse(absl::string_view text);

  // True when `version` satisfies any of the OR groups (all of its constraints).
  bool Check(const Version& version) const;

  // The text as given.
  const std::string& text() const { return text_; }

 private:
  enum class Op { kEqual, kNotEqual, kGreater, kLess, kGreaterEqual, kLessEqual, kTilde, kCaret };
  struct Constraint {
    Op op;
    Version version;     // wildcards replaced by 0
    bool dirty = false;  // some part was a wildcard or missing
    bool minor_dirty = false;
    bool patch_dirty = false;
  };
  static absl::StatusOr<Constraint> ParseOne(absl::string_view op, absl::string_view version);
  static bool CheckOne(const Constraint& c, const Version& v);

  std::string text_;
  std::vector<std::vector<Constraint>> groups_;
};

}  // namespace ferry::policy
