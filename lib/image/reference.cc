#include "lib/image/reference.h"

#include <re2/re2.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ferry::image {
namespace {

// Grammar pieces, from the distribution reference specification.
const RE2& DomainRe() {
  static const RE2* re = new RE2(
      R"((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?)");
  return *re;
}
const RE2& PathComponentRe() {
  static const RE2* re = new RE2(R"([a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)");
  return *re;
}
const RE2& TagRe() {
  static const RE2* re = new RE2(R"([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})");
  return *re;
}
const RE2& DigestRe() {
  static const RE2* re =
      new RE2(R"([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})");
  return *re;
}

constexpr size_t kMaxNameLength = 255;

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid image reference \"", text, "\": ", why));
}

}  // namespace

absl::Status ValidateTag(absl::string_view tag) {
  if (!RE2::FullMatch(re2::StringPiece(tag.data(), tag.size()), TagRe())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid tag \"", tag,
        "\": a tag is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Reference> Reference::Parse(absl::string_view text) {
  if (text.empty()) return Invalid(text, "empty");
  Reference ref;
  ref.original_ = std::string(text);
  absl::string_view rest = text;

  size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    absl::string_view digest = rest.substr(at + 1);
    if (!RE2::FullMatch(re2::StringPiece(digest.data(), digest.size()), DigestRe())) {
      return Invalid(text, "digest must be algorithm:hex, e.g. sha256: and 64 hex digits");
    }
    ref.digest_ = std::string(digest);
    rest = rest.substr(0, at);
  }
  // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    absl::string_view tag = rest.substr(colon + 1);
    if (!RE2::FullMatch(re2::StringPiece(tag.data(), tag.size()), TagRe())) {
      return Invalid(text, absl::StrCat("tag \"", tag,
                                        "\" must be 1-128 letters, digits, '_', '.' or '-', "
                                        "not starting with '.' or '-'"));
    }
    ref.tag_ = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(text, "no repository name");
  if (rest.size() > kMaxNameLength) {
    return Invalid(text, absl::StrCat("name longer than ", kMaxNameLength, " characters"));
  }
  ref.name_ = std::string(rest);

  // The first component is a registry host when it looks like one: has '.' or ':', is
  // "localhost", or has upper-case letters (never valid in a path).
  size_t first_slash = rest.find('/');
  if (first_slash != absl::string_view::npos) {
    absl::string_view first = rest.substr(0, first_slash);
    bool has_upper = false;
    for (char c : first) has_upper |= (c >= 'A' && c <= 'Z');
    if (absl::StrContains(first, ".") || absl::StrContains(first, ":") || first == "localhost" ||
        has_upper) {
      if (!RE2::FullMatch(re2::StringPiece(first.data(), first.size()), DomainRe())) {
        return Invalid(text, absl::StrCat("registry host \"", first, "\" is not a valid host[:port]"));
      }
      ref.domain_ = std::string(first);
      rest = rest.substr(first_slash + 1);
    }
  }
  ref.path_ = std::string(rest);
  size_t start = 0;
  while (start <= rest.size()) {
    size_t end = rest.find('/', start);
    if (end == absl::string_view::npos) end = rest.size();
    absl::string_view component = rest.substr(start, end - start);
    if (!RE2::FullMatch(re2::StringPiece(component.data(), component.size()),
                        PathComponentRe())) {
      return Invalid(text, absl::StrCat("path component \"", component,
                                        "\" must be lower-case letters and digits, separated by "
                                        "'.', '_', '__' or '-'"));
    }
    start = end + 1;
  }
  return ref;
}

std::string Reference::Registry() const {
  if (domain_.empty() || domain_ == "index.docker.io" || domain_ == "registry-1.docker.io") {
    return "docker.io";
  }
  return domain_;
}

std::string Reference::Path() const {
  if (Registry() == "docker.io" && path_.find('/') == std::string::npos) {
    return absl::StrCat("library/", path_);
  }
  return path_;
}

std::string Reference::Repository() const { return absl::StrCat(Registry(), "/", Path()); }

std::string Reference::WithTag(absl::string_view tag) const {
  return absl::StrCat(name_, ":", tag);
}

}  // namespace ferry::image
