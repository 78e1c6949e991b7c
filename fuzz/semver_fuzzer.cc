// Any bytes as "constraint\nversion": parsing and checking never crash, and checking is
// deterministic.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lib/policy/semver.h"
#include "lib/policy/tag_pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  size_t nl = text.find('\n');
  std::string constraint = text.substr(0, nl);
  std::string version = nl == std::string::npos ? "1.0.0" : text.substr(nl + 1);
  absl::StatusOr<ferry::policy::Constraints> c = ferry::policy::Constraints::Parse(constraint);
  absl::StatusOr<ferry::policy::Version> v = ferry::policy::Version::Parse(version);
  if (c.ok() && v.ok() && c->Check(*v) != c->Check(*v)) std::abort();
  absl::StatusOr<ferry::policy::TagPattern> p = ferry::policy::TagPattern::Parse(constraint);
  if (p.ok()) (void)p->Rank({{version, std::nullopt}, {"1.0.0", std::nullopt}});
  return 0;
}
