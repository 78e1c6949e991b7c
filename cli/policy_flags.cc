#include "cli/policy_flags.h"

#include "absl/strings/str_cat.h"

namespace ferry::cli {
namespace {

// The default filter: setting it is removing the annotation.
std::optional<std::string> PatternOrRemove(const std::string& pattern) {
  if (pattern == "*" || pattern == "glob:*") return std::nullopt;
  return pattern;
}

}  // namespace

absl::StatusOr<manifest::PolicyUpdate> ParsePolicyFlags(const PolicyFlags& flags) {
  if (flags.automate && flags.deautomate) {
    return absl::InvalidArgumentError("--automate and --deautomate contradict each other");
  }
  if (flags.lock && flags.unlock) {
    return absl::InvalidArgumentError("--lock and --unlock contradict each other");
  }
  manifest::PolicyUpdate update;
  if (flags.automate) update.automated = true;
  if (flags.deautomate) update.automated = false;
  if (flags.lock) {
    update.locked = true;
    update.locked_user = flags.user;
    update.locked_msg = flags.message;
  }
  if (flags.unlock) update.locked = false;
  for (const std::string& tag : flags.tags) {
    const size_t eq = tag.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tag.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tag '", tag, "': use CONTAINER=PATTERN, e.g. --tag app=semver:~1.2 ('*' removes it)"));
    }
    const std::string container = tag.substr(0, eq);
    if (update.tag_filters.count(container) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tag names container ", container, " twice"));
    }
    update.tag_filters[container] = PatternOrRemove(tag.substr(eq + 1));
  }
  if (flags.tag_all.has_value()) {
    if (flags.tag_all->empty()) {
      return absl::InvalidArgumentError("--tag-all: give a pattern ('*' removes it)");
    }
    update.tag_all = PatternOrRemove(*flags.tag_all);
  }
  if (!update.automated && !update.locked && update.tag_filters.empty() && !update.tag_all) {
    return absl::InvalidArgumentError(
        "nothing to change: give --automate, --deautomate, --lock, --unlock, --tag or --tag-all");
  }
  return update;
}

}  // namespace ferry::cli
