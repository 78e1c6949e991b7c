#include "cli/policy_flags.h"

#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/policy/soak.h"

namespace ferry::cli {
namespace {

// The default filter: setting it is removing the annotation.
std::optional<std::string> PatternOrRemove(const std::string& pattern) {
  if (pattern == "*" || pattern == "glob:*") return std::nullopt;
  return pattern;
}

// "CONTAINER=VALUE" -> (CONTAINER, VALUE); nullopt unless both are non-empty.
std::optional<std::pair<std::string, std::string>> SplitAssignment(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) return std::nullopt;
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

// A flag's value checked by lib/policy's parser: InvalidArgument naming the flag.
absl::Status Checked(const std::string& flag, const std::string& value, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", value, "': ", s.message()));
}

// The issue-19 flags into `update`.
absl::Status ParseSafeAutomationFlags(const PolicyFlags& flags, manifest::PolicyUpdate& update) {
  for (const std::string& given : flags.min_ages) {
    std::string container, duration = given;
    if (given.find('=') != std::string::npos) {
      auto split = SplitAssignment(given);
      if (!split) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--min-age '", given, "': use DURATION or CONTAINER=DURATION, e.g. --min-age 2h"));
      }
      std::tie(container, duration) = *split;
    }
    if (absl::Status s =
            Checked("--min-age", given, policy::ParsePolicyDuration(duration).status());
        !s.ok()) {
      return s;
    }
    if (!update.min_ages.emplace(container, duration).second) {
      return absl::InvalidArgumentError(
          container.empty() ? "--min-age for every container is given twice"
                            : absl::StrCat("--min-age names container ", container, " twice"));
    }
  }
  for (const std::string& container : flags.remove_min_ages) {
    auto [it, inserted] = update.min_ages.emplace(container, std::nullopt);
    if (!inserted && it->second.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--min-age and --remove-min-age contradict each other for ",
                       container.empty() ? "every container" : "container " + container));
    }
  }
  if (flags.rollback.has_value()) {
    if (flags.remove_rollback) {
      return absl::InvalidArgumentError("--rollback and --remove-rollback contradict each other");
    }
    if (absl::Status s =
            Checked("--rollback", *flags.rollback, policy::ParseRollback(*flags.rollback).status());
        !s.ok()) {
      return s;
    }
    update.rollback = std::optional<std::string>(*flags.rollback);
  } else if (flags.remove_rollback) {
    update.rollback = std::optional<std::string>();
  }
  if (flags.rollback_timeout.has_value()) {
    if (flags.remove_rollback_timeout) {
      return absl::InvalidArgumentError(
          "--rollback-timeout and --remove-rollback-timeout contradict each other");
    }
    if (absl::Status s = Checked("--rollback-timeout", *flags.rollback_timeout,
                                 policy::ParsePolicyDuration(*flags.rollback_timeout).status());
        !s.ok()) {
      return s;
    }
    update.rollback_timeout = std::optional<std::string>(*flags.rollback_timeout);
  } else if (flags.remove_rollback_timeout) {
    update.rollback_timeout = std::optional<std::string>();
  }
  for (const std::string& given : flags.rejects) {
    auto split = SplitAssignment(given);
    if (!split) {
      return absl::InvalidArgumentError(
          absl::StrCat("--reject '", given, "': use CONTAINER=TAG, e.g. --reject app=1.4.2"));
    }
    const policy::RejectedTag tag{split->second, ""};
    if (absl::Status s = Checked("--reject", given, policy::ValidateRejectedTag(tag)); !s.ok()) {
      return s;
    }
    update.reject[split->first].push_back(tag);
  }
  for (const std::string& container : flags.clear_rejected) update.clear_rejected.insert(container);
  return absl::OkStatus();
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
  if (absl::Status s = ParseSafeAutomationFlags(flags, update); !s.ok()) return s;
  if (!update.automated && !update.locked && update.tag_filters.empty() && !update.tag_all &&
      update.min_ages.empty() && !update.rollback && !update.rollback_timeout &&
      update.reject.empty() && update.clear_rejected.empty()) {
    return absl::InvalidArgumentError(
        "nothing to change: give --automate, --deautomate, --lock, --unlock, --tag, --tag-all, "
        "--min-age, --rollback, --rollback-timeout, --reject or one of their --remove-/--clear- "
        "forms");
  }
  return update;
}

void AddSafeAutomationFlags(CLI::App& cmd, PolicyFlags& flags) {
  cmd.add_option("--min-age", flags.min_ages,
                 "Soak time before automation takes a tag: DURATION (every container) or "
                 "CONTAINER=DURATION, e.g. 2h, 1d12h (repeatable)");
  cmd.add_option("--remove-min-age", flags.remove_min_ages,
                 "Remove the soak time of CONTAINER, or without a value the one of every "
                 "container (repeatable)")
      ->expected(0, 1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd.add_option("--rollback", flags.rollback,
                 "auto: revert a release whose rollout fails, lock and reject the tag; off");
  cmd.add_flag("--remove-rollback", flags.remove_rollback, "Remove the rollback policy");
  cmd.add_option("--rollback-timeout", flags.rollback_timeout,
                 "How long a rollout may take before it counts as failed, e.g. 5m");
  cmd.add_flag("--remove-rollback-timeout", flags.remove_rollback_timeout,
               "Back to the default rollout timeout (10m)");
  cmd.add_option("--reject", flags.rejects,
                 "CONTAINER=TAG: automation never takes TAG for CONTAINER (repeatable)");
  cmd.add_option("--clear-rejected", flags.clear_rejected,
                 "Forget the rejected tags of CONTAINER, or without a value of every container "
                 "(repeatable)")
      ->expected(0, 1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

}  // namespace ferry::cli
