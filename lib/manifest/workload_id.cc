#include "lib/manifest/workload_id.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/names/names.h"

namespace ferry::manifest {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

}  // namespace

bool IsDnsLabelText(absl::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDnsLabel(absl::string_view s) {
  return s.size() <= WorkloadId::kMaxNamespaceBytes && IsDnsLabelText(s);
}

namespace {

bool IsNamespace(absl::string_view s) { return s == WorkloadId::kClusterScope || IsDnsLabel(s); }

bool IsKind(absl::string_view s) {
  if (s.empty() || s.size() > WorkloadId::kMaxKindBytes) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// A DNS subdomain, as Kubernetes checks the names of most objects (workloads among them).
bool IsObjectName(absl::string_view s) {
  if (s.empty() || s.size() > WorkloadId::kMaxNameBytes) return false;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (!IsDnsLabelText(label)) return false;
  }
  return true;
}

// The one message (see workload_id.h).
absl::Status NotAnId(absl::string_view text, absl::string_view problem) {
  const std::string shown = text.size() > WorkloadId::kMaxBytes
                                ? absl::StrCat(names::Escape(text.substr(0, 64)), "...")
                                : names::Escape(text);
  return absl::InvalidArgumentError(
      absl::StrCat("\"", shown, "\" is not a workload id: ", problem,
                   "; use namespace:kind/name, e.g. default:deployment/helloworld"));
}

// Checks that apply to the text as a whole, before it is split.
absl::Status CheckText(absl::string_view text) {
  if (text.empty()) return NotAnId(text, "it is empty");
  if (text.size() > WorkloadId::kMaxBytes) {
    return NotAnId(text, absl::StrCat("it is ", text.size(), " bytes, over the ",
                                      WorkloadId::kMaxBytes, " an id can have"));
  }
  return absl::OkStatus();
}

absl::Status NoSlash(absl::string_view text) {
  return NotAnId(text, "no '/' between the kind and the name");
}

// Compares the concatenations of `a` and `b` byte by byte (as std::string compares).
template <size_t N>
std::strong_ordering CompareJoined(const std::array<absl::string_view, N>& a,
                                   const std::array<absl::string_view, N>& b) {
  size_t part_a = 0, at_a = 0, part_b = 0, at_b = 0;
  while (true) {
    while (part_a < N && at_a == a[part_a].size()) ++part_a, at_a = 0;
    while (part_b < N && at_b == b[part_b].size()) ++part_b, at_b = 0;
    if (part_a == N || part_b == N) return (part_a == N ? 0 : 1) <=> (part_b == N ? 0 : 1);
    const auto ca = static_cast<unsigned char>(a[part_a][at_a++]);
    const auto cb = static_cast<unsigned char>(b[part_b][at_b++]);
    if (ca != cb) return ca <=> cb;
  }
}

}  // namespace

absl::StatusOr<WorkloadId> WorkloadId::FromParts(absl::string_view text, absl::string_view ns,
                                                 absl::string_view kind, absl::string_view name) {
  if (ns.empty()) return NotAnId(text, "the namespace is empty");
  if (!IsNamespace(ns)) {
    return NotAnId(text, absl::StrCat("the namespace \"", names::Escape(ns),
                                      "\" is neither <cluster> nor a DNS label (lower-case "
                                      "letters, digits and '-', starting and ending with a "
                                      "letter or digit, at most 63)"));
  }
  if (kind.empty()) return NotAnId(text, "the kind is empty");
  if (!IsKind(kind)) {
    return NotAnId(text, absl::StrCat("the kind \"", names::Escape(kind),
                                      "\" is not lower-case letters, digits, '.' and '-' (at "
                                      "most 63)"));
  }
  if (name.empty()) return NotAnId(text, "the name is empty");
  if (!IsObjectName(name)) {
    return NotAnId(text, absl::StrCat("the name \"", names::Escape(name),
                                      "\" is not a Kubernetes object name (lower-case letters, "
                                      "digits, '-' and '.', each part between dots starting and "
                                      "ending with a letter or digit, at most 253)"));
  }
  return WorkloadId(std::string(ns), std::string(kind), std::string(name));
}

absl::StatusOr<WorkloadId> WorkloadId::Parse(absl::string_view text) {
  if (absl::Status s = CheckText(text); !s.ok()) return s;
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) return NotAnId(text, "no ':' after the namespace");
  const absl::string_view rest = text.substr(colon + 1);
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return NoSlash(text);
  return FromParts(text, text.substr(0, colon), rest.substr(0, slash), rest.substr(slash + 1));
}

absl::StatusOr<WorkloadId> WorkloadId::ParseLoose(absl::string_view text,
                                                  absl::string_view default_namespace) {
  if (absl::Status s = CheckText(text); !s.ok()) return s;
  absl::string_view ns = default_namespace;
  absl::string_view rest = text;
  if (const size_t colon = text.find(':'); colon != absl::string_view::npos) {
    ns = text.substr(0, colon);
    rest = text.substr(colon + 1);
  }
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return NoSlash(text);
  return FromParts(text, ns, absl::AsciiStrToLower(rest.substr(0, slash)), rest.substr(slash + 1));
}

std::string WorkloadId::Format(absl::string_view namespace_, absl::string_view kind,
                               absl::string_view name) {
  return absl::StrCat(namespace_.empty() ? kClusterScope : namespace_, ":",
                      absl::AsciiStrToLower(kind), "/", name);
}

std::string WorkloadId::ToString() const {
  return absl::StrCat(namespace_value_, ":", kind_, "/", name_);
}

std::strong_ordering operator<=>(const WorkloadId& a, const WorkloadId& b) {
  return CompareJoined<5>({a.namespace_value_, ":", a.kind_, "/", a.name_},
                          {b.namespace_value_, ":", b.kind_, "/", b.name_});
}

std::ostream& operator<<(std::ostream& os, const WorkloadId& id) { return os << id.ToString(); }

}  // namespace ferry::manifest
