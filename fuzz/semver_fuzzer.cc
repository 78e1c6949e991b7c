// Any bytes as "constraint\nversion\nversion\nversion" (missing versions are 1.0.0): parsing
// and checking never crash, and the versions that parse obey the laws of an order:
//   - Compare is reflexive and antisymmetric, and agrees with < and ==;
//   - it is transitive on every ordering of the three versions (for < and for ==);
//   - a version prints (ToString) to text that parses back to an equal version with the same
//     metadata and prints the same again;
//   - equal versions print the same apart from build metadata, and satisfy the same
//     constraints; a constraint's answer is deterministic.
// A violated law aborts.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "lib/policy/semver.h"
#include "lib/policy/tag_pattern.h"

namespace {

using ferry::policy::Constraints;
using ferry::policy::Version;

void Check(bool ok) {
  if (!ok) std::abort();
}

int Sign(int compare) { return compare < 0 ? -1 : compare > 0 ? 1 : 0; }

std::string WithoutMetadata(const Version& v) {
  const std::string s = v.ToString();
  return s.substr(0, s.find('+'));
}

void CheckOne(const Version& a) {
  Check(a.Compare(a) == 0 && a == a && !(a < a));
  absl::StatusOr<Version> printed = Version::Parse(a.ToString());
  Check(printed.ok());
  Check(printed->Compare(a) == 0 && printed->metadata() == a.metadata());
  Check(printed->ToString() == a.ToString());
}

void CheckPair(const Version& a, const Version& b, const std::optional<Constraints>& c) {
  const int ab = Sign(a.Compare(b));
  Check(ab == -Sign(b.Compare(a)));
  Check((a < b) == (ab < 0) && (a == b) == (ab == 0));
  if (ab == 0) {
    Check(WithoutMetadata(a) == WithoutMetadata(b));
    if (c.has_value()) Check(c->Check(a) == c->Check(b));
  }
}

void CheckTriple(const Version& a, const Version& b, const Version& c) {
  if (a.Compare(b) <= 0 && b.Compare(c) <= 0) Check(a.Compare(c) <= 0);
  if (a.Compare(b) < 0 && b.Compare(c) <= 0) Check(a.Compare(c) < 0);
  if (a.Compare(b) == 0 && b.Compare(c) == 0) Check(a.Compare(c) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines = absl::StrSplit(text, absl::MaxSplits('\n', 3));
  const std::string constraint = lines[0];
  lines.resize(4, "1.0.0");
  absl::StatusOr<Constraints> parsed = Constraints::Parse(constraint);
  std::optional<Constraints> c;
  if (parsed.ok()) c = *parsed;

  std::vector<Version> versions;
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::StatusOr<Version> v = Version::Parse(lines[i]);
    if (!v.ok()) continue;
    if (c.has_value()) Check(c->Check(*v) == c->Check(*v));
    CheckOne(*v);
    versions.push_back(*v);
  }
  for (const Version& a : versions) {
    for (const Version& b : versions) CheckPair(a, b, c);
  }
  if (versions.size() == 3) {
    constexpr std::array<std::array<int, 3>, 6> kOrders = {
        {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}};
    for (const auto& o : kOrders) CheckTriple(versions[o[0]], versions[o[1]], versions[o[2]]);
  }

  absl::StatusOr<ferry::policy::TagPattern> p = ferry::policy::TagPattern::Parse(constraint);
  if (p.ok()) (void)p->Rank({{lines[1], std::nullopt}, {"1.0.0", std::nullopt}});
  return 0;
}
