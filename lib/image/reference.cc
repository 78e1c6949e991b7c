#include "lib/image/reference.h"

#include <re2/re2.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

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
// Name, ':' and a 128-character tag, '@' and a sha512 digest, with room to spare: longer
// text is refused before any pattern runs on it.
constexpr size_t kMaxReferenceLength = 512;

// The longest digest taken (sha512's 128 hex digits, with room for a long algorithm name).
constexpr size_t kMaxDigestLength = 256;

// Text before the last '@' may be user info with a password: never echoed.
std::string Shown(absl::string_view text) {
  const size_t last_at = text.rfind('@');
  if (last_at == absl::string_view::npos) return absl::StrCat("\"", text, "\"");
  return absl::StrCat("\"...@", text.substr(last_at + 1), "\" (text before '@' left out)");
}

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid image reference ", Shown(text), ": ", why));
}

// A piece of the name (before any '@') quoted in a reason, or left out when the text has an
// '@' (the piece may be user info).
std::string Piece(absl::string_view text, absl::string_view piece) {
  if (text.find('@') != absl::string_view::npos) return "(left out)";
  return absl::StrCat("\"", piece, "\"");
}

}  // namespace

bool IsDigest(absl::string_view text) {
  return text.size() <= kMaxDigestLength &&
         RE2::FullMatch(re2::StringPiece(text.data(), text.size()), DigestRe());
}

absl::Status ValidateTag(absl::string_view tag) {
  if (!RE2::FullMatch(re2::StringPiece(tag.data(), tag.size()), TagRe())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid tag \"", tag,
        "\": a tag is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"));
  }
  return absl::OkStatus();
}

namespace {

// Reasons that name what a hostile or mistaken spelling got wrong, before the grammar's
// generic messages: control characters, a URL scheme, user info.
absl::Status CheckSpelling(absl::string_view text) {
  if (text.size() > kMaxReferenceLength) {
    return absl::InvalidArgumentError(absl::StrCat("invalid image reference (", text.size(),
                                                   " characters): longer than ",
                                                   kMaxReferenceLength, " characters"));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c <= 0x20 || c >= 0x7f) {
      // The text is not echoed: it may hold a line break or bytes that garble a log line.
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid image reference: character ", i + 1, " is ",
          c == ' ' ? "a space" : absl::StrCat("byte 0x", absl::Hex(c, absl::kZeroPad2)),
          "; a reference is printable ASCII without spaces"));
    }
  }
  if (absl::StrContains(text, "://")) {
    return Invalid(text, "a reference has no scheme (http://, https://): write host[:port]/path");
  }
  // User info: an '@' before the first '/' (or the end), unless what follows the last '@'
  // is a digest ("name@sha256:..."; a host, with its '.', is not one).
  const size_t at = text.find('@');
  const size_t first_slash = text.find('/');
  if (at != absl::string_view::npos &&
      (first_slash == absl::string_view::npos || at < first_slash)) {
    const size_t last_at = text.rfind(
        '@', first_slash == absl::string_view::npos ? absl::string_view::npos : first_slash);
    absl::string_view after = text.substr(last_at + 1);
    const size_t colon = after.find(':');
    const bool digest_like = first_slash == absl::string_view::npos &&
                             colon != absl::string_view::npos &&
                             after.substr(0, colon).find('.') == absl::string_view::npos;
    if (!digest_like) {
      // Echoes only what follows the user info: the rest may be a password.
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid image reference \"", text.substr(last_at + 1),
          "\" (user info left out): user info (user[:password]@) is not allowed in a registry "
          "host; registry credentials come from --docker_config_path"));
    }
  }
  return absl::OkStatus();
}

// The port of a registry host "host:port", checked to be 1-65535 (the grammar only says
// digits).
absl::Status CheckPort(absl::string_view text, absl::string_view domain) {
  const size_t colon = domain.rfind(':');
  if (colon == absl::string_view::npos) return absl::OkStatus();
  absl::string_view digits = domain.substr(colon + 1);
  uint32_t port = 0;
  if (digits.size() > 5 || !absl::SimpleAtoi(digits, &port) || port < 1 || port > 65535) {
    return Invalid(text, absl::StrCat("port \"", digits, "\" of registry host ",
                                      Piece(text, domain), " is not 1-65535"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Reference> Reference::Parse(absl::string_view text) {
  if (text.empty()) return Invalid(text, "empty");
  if (absl::Status s = CheckSpelling(text); !s.ok()) return s;
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
      return Invalid(text, absl::StrCat("tag ", Piece(text, tag),
                                        " must be 1-128 letters, digits, '_', '.' or '-', "
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
        return Invalid(text, absl::StrCat("registry host ", Piece(text, first),
                                          " is not a valid host[:port]"));
      }
      if (absl::Status s = CheckPort(text, first); !s.ok()) return s;
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
    if (!RE2::FullMatch(re2::StringPiece(component.data(), component.size()), PathComponentRe())) {
      return Invalid(text, absl::StrCat("path component ", Piece(text, component),
                                        " must be lower-case letters and digits, separated by "
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

absl::StatusOr<Reference> Reference::ParseRepository(absl::string_view text) {
  absl::StatusOr<Reference> ref = Parse(text);
  if (!ref.ok()) {
    // The same reasons, about a repository.
    absl::string_view message = ref.status().message();
    absl::ConsumePrefix(&message, "invalid image reference");
    return absl::InvalidArgumentError(absl::StrCat("invalid repository", message));
  }
  auto invalid = [text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid repository ", Shown(text), ": ", why));
  };
  if (!ref->digest().empty()) {
    // The name before the '@' may be user info: not echoed.
    return invalid("a repository has no tag or digest");
  }
  if (!ref->tag().empty()) {
    return invalid(absl::StrCat("a repository has no tag or digest; write ", ref->Repository()));
  }
  if (ref->domain().empty()) {
    return invalid(absl::StrCat("the registry host is missing; write ", ref->Repository()));
  }
  if (ref->Repository() != text) {
    return invalid(absl::StrCat("write it in normalized form, ", ref->Repository()));
  }
  return ref;
}

std::string Reference::ToString() const {
  std::string out = name_;
  if (!tag_.empty()) absl::StrAppend(&out, ":", tag_);
  if (!digest_.empty()) absl::StrAppend(&out, "@", digest_);
  return out;
}

std::string Reference::Host() const {
  const std::string registry = Registry();
  const size_t colon = registry.rfind(':');
  return colon == std::string::npos ? registry : registry.substr(0, colon);
}

int Reference::Port() const {
  const std::string registry = Registry();
  const size_t colon = registry.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(registry.substr(colon + 1), &port)) return 0;
  return port;
}

std::string Reference::WithTag(absl::string_view tag) const {
  return absl::StrCat(name_, ":", tag);
}

bool SameImage(absl::string_view a, absl::string_view b) {
  if (a == b) return true;
  absl::StatusOr<Reference> ra = Reference::Parse(a);
  absl::StatusOr<Reference> rb = Reference::Parse(b);
  return ra.ok() && rb.ok() && ra->SameRepository(*rb) &&
         ra->EffectiveTag() == rb->EffectiveTag() && ra->digest() == rb->digest();
}

}  // namespace ferry::image
