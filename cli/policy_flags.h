// The policy flags of `ferryctl policy` (and automate, lock, ...: through the api) and of
// `ferryctl manifests set-policy` (a local checkout), parsed by one rule.
#pragma once

#include <CLI/CLI.hpp>
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

  // Safe automation (issue 19).
  std::vector<std::string> min_ages;         // "DURATION" (every container) or "CONTAINER=DURATION"
  std::vector<std::string> remove_min_ages;  // "" (every container's) or a container
  std::optional<std::string> rollback;       // "auto" or "off"
  bool remove_rollback = false;
  std::optional<std::string> rollback_timeout;  // a duration
  bool remove_rollback_timeout = false;
  std::vector<std::string> rejects;         // "CONTAINER=TAG"
  std::vector<std::string> clear_rejected;  // "" (every container's) or a container
};

// Registers the safe-automation flags of PolicyFlags on `cmd` (both `policy` commands):
// --min-age [CONTAINER=]DURATION, --remove-min-age [CONTAINER], --rollback auto|off,
// --remove-rollback, --rollback-timeout DURATION, --remove-rollback-timeout,
// --reject CONTAINER=TAG, --clear-rejected [CONTAINER]. `flags` must outlive `cmd`.
void AddSafeAutomationFlags(CLI::App& cmd, PolicyFlags& flags);

// The update the flags ask for. A pattern "*" or "glob:*" (the default filter) removes the
// container's filter (or tag_all). InvalidArgument, before anything is sent or written, for
// contradictions (--automate with --deautomate, --lock with --unlock, setting and removing
// the same soak time, rollback or rollback timeout), a --tag that is not CONTAINER=PATTERN,
// a container named twice, an empty --tag-all, a duration or rollback mode lib/policy does
// not accept (the message names the flag), a --reject that is not CONTAINER=TAG, or nothing
// to change.
absl::StatusOr<manifest::PolicyUpdate> ParsePolicyFlags(const PolicyFlags& flags);

}  // namespace ferry::cli
