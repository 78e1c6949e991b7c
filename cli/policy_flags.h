// The policy flags of `ferryctl policy` (and automate, lock, ...: through the api) and of
// `ferryctl manifests set-policy` (a local checkout), parsed by one rule.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/manifest/policy.h"

namespace ferry::cli {

// The flags both commands' options carry (they derive from this).
struct PolicyFlags {
  bool automate = false;
  bool deautomate = false;
  bool lock = false;
  bool unlock = false;
  std::vector<std::string> tags;  // "container=pattern"
  std::optional<std::string> tag_all;
  std::string user;     // the lock's user
  std::string message;  // the lock's message
};

// The update the flags ask for. A pattern "*" or "glob:*" (the default filter) removes the
// container's filter (or tag_all). InvalidArgument, before anything is sent or written, for
// contradictions (--automate with --deautomate, --lock with --unlock), a --tag that is not
// CONTAINER=PATTERN, a container named twice, an empty --tag-all, or nothing to change.
absl::StatusOr<manifest::PolicyUpdate> ParsePolicyFlags(const PolicyFlags& flags);

}  // namespace ferry::cli
