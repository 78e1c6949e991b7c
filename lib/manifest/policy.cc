#include "lib/manifest/policy.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/manifest/workload.h"
#include "lib/policy/tag_pattern.h"

namespace ferry::manifest {
namespace {

constexpr const char* kPrefixes[] = {"ferry.dev/", "fluxcd.io/", "flux.weave.works/"};
constexpr char kFilterPrefix[] = "filter.fluxcd.io/";
constexpr char kFerryPrefix[] = "ferry.dev/";

// Every key that can hold policy `name` ("automated", "tag.web"), in precedence order.
std::vector<std::string> KeysOf(const std::string& name) {
  std::vector<std::string> keys;
  for (const char* prefix : kPrefixes) {
    keys.push_back(absl::StrCat(prefix, name));
    if (std::string(prefix) == "fluxcd.io/" && absl::StartsWith(name, "tag.") &&
        name != "tag_all") {
      keys.push_back(absl::StrCat(kFilterPrefix, name.substr(4)));
    }
  }
  return keys;
}

std::optional<std::string> Lookup(const std::map<std::string, std::string>& annotations,
                                  const std::string& name) {
  for (const std::string& key : KeysOf(name)) {
    auto it = annotations.find(key);
    if (it != annotations.end()) return it->second;
  }
  return std::nullopt;
}

// Like Lookup, with the key that holds the value.
std::optional<std::pair<std::string, std::string>> LookupKey(
    const std::map<std::string, std::string>& annotations, const std::string& name) {
  for (const std::string& key : KeysOf(name)) {
    auto it = annotations.find(key);
    if (it != annotations.end()) return *it;
  }
  return std::nullopt;
}

// Per-container values of Ferry's keys "NAME.<container>" (min-age., rejected.): container
// -> {key, value}, the first prefix in precedence order winning.
std::map<std::string, std::pair<std::string, std::string>> PerContainer(
    const std::map<std::string, std::string>& annotations, const std::string& name) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const char* prefix : kPrefixes) {
    const std::string head = absl::StrCat(prefix, name, ".");
    for (auto it = annotations.lower_bound(head);
         it != annotations.end() && absl::StartsWith(it->first, head); ++it) {
      std::string container = it->first.substr(head.size());
      if (!container.empty()) out.emplace(container, *it);
    }
  }
  return out;
}

// Checks the values of Ferry's own policy keys, one error line per bad annotation.
void CheckSafeAutomation(const std::map<std::string, std::string>& annotations,
                         std::vector<std::string>& errors) {
  auto check = [&](const std::string& key, const absl::Status& status) {
    if (!status.ok()) errors.push_back(absl::StrCat(key, ": ", status.message()));
  };
  if (auto v = LookupKey(annotations, "min-age")) {
    check(v->first, policy::ParsePolicyDuration(v->second).status());
  }
  for (const auto& [container, kv] : PerContainer(annotations, "min-age")) {
    check(kv.first, policy::ParsePolicyDuration(kv.second).status());
  }
  if (auto v = LookupKey(annotations, "rollback")) {
    check(v->first, policy::ParseRollback(v->second).status());
  }
  if (auto v = LookupKey(annotations, "rollback-timeout")) {
    check(v->first, policy::ParsePolicyDuration(v->second).status());
  }
  for (const auto& [container, kv] : PerContainer(annotations, "rejected")) {
    check(kv.first, policy::ParseRejected(kv.second).status());
  }
}

bool IsTrue(const std::string& v) { return absl::AsciiStrToLower(v) == "true"; }

// The prefix the manifest already uses for any policy, else ferry.dev/.
std::string PreferredPrefix(const std::map<std::string, std::string>& annotations) {
  static const char* kPolicyNames[] = {"automated",  "locked", "locked_user",
                                       "locked_msg", "ignore", "tag_all"};
  for (const char* prefix : kPrefixes) {
    for (const auto& [key, value] : annotations) {
      if (!absl::StartsWith(key, prefix)) continue;
      std::string rest = key.substr(std::string(prefix).size());
      bool policy = absl::StartsWith(rest, "tag.");
      for (const char* n : kPolicyNames) policy |= rest == n;
      if (policy) return prefix;
    }
  }
  return kPrefixes[0];
}

// Sets policy `name` to `value` (or removes it when nullopt), appending to `out`.
void Change(const std::map<std::string, std::string>& annotations, const std::string& name,
            const std::optional<std::string>& value, std::vector<AnnotationChange>& out) {
  std::vector<std::string> keys = KeysOf(name);
  std::string target;
  for (const std::string& key : keys) {
    if (annotations.count(key)) {
      target = key;
      break;
    }
  }
  if (target.empty()) target = PreferredPrefix(annotations) + name;
  for (const std::string& key : keys) {
    if (key == target && value.has_value()) {
      auto it = annotations.find(key);
      if (it == annotations.end() || it->second != *value) out.push_back({key, value});
    } else if (annotations.count(key)) {
      out.push_back({key, std::nullopt});
    }
  }
}

// Sets (or removes, when nullopt) policy `name` under exactly `target`, removing its copies
// under every other key.
void ChangeTo(const std::map<std::string, std::string>& annotations, const std::string& name,
              const std::string& target, const std::optional<std::string>& value,
              std::vector<AnnotationChange>& out) {
  if (value.has_value()) {
    auto it = annotations.find(target);
    if (it == annotations.end() || it->second != *value) out.push_back({target, value});
  }
  for (const std::string& key : KeysOf(name)) {
    if ((key != target || !value.has_value()) && annotations.count(key)) {
      out.push_back({key, std::nullopt});
    }
  }
}

// The key Flux v1 reads for container `container`'s tag filter on this workload: the one it
// already has, else in the form of the workload's other tag filters, else under the Flux
// prefix of its other policies, else fluxcd.io/tag.<container>.
std::string FluxTagKey(const std::map<std::string, std::string>& annotations,
                       const std::string& container) {
  const std::vector<std::string> forms = {absl::StrCat(kFilterPrefix, container),
                                          absl::StrCat("fluxcd.io/tag.", container),
                                          absl::StrCat("flux.weave.works/tag.", container)};
  for (const std::string& key : forms) {
    if (annotations.count(key)) return key;
  }
  for (const char* prefix : {kFilterPrefix, "fluxcd.io/tag.", "flux.weave.works/tag."}) {
    for (const auto& [key, value] : annotations) {
      if (absl::StartsWith(key, prefix)) return absl::StrCat(prefix, container);
    }
  }
  for (const char* prefix : {"fluxcd.io/", "flux.weave.works/"}) {
    for (const auto& [key, value] : annotations) {
      if (absl::StartsWith(key, prefix)) return absl::StrCat(prefix, "tag.", container);
    }
  }
  return forms[1];
}

// Ferry's own keys exist only under ferry.dev/: written there, copies elsewhere removed.
void SetFerryKey(const std::map<std::string, std::string>& annotations, const std::string& name,
                 const std::optional<std::string>& value, std::vector<AnnotationChange>& out) {
  ChangeTo(annotations, name, absl::StrCat(kFerryPrefix, name), value, out);
}

void SafeAutomationChanges(const std::map<std::string, std::string>& annotations,
                           const PolicyUpdate& update, std::vector<AnnotationChange>& out) {
  for (const auto& [container, value] : update.min_ages) {
    std::optional<std::string> normalized;
    if (value.has_value()) {
      normalized = policy::FormatPolicyDuration(*policy::ParsePolicyDuration(*value));
    }
    SetFerryKey(annotations, container.empty() ? "min-age" : "min-age." + container, normalized,
                out);
  }
  if (update.rollback.has_value()) {
    std::optional<std::string> value;
    if (update.rollback->has_value()) {
      value = *policy::ParseRollback(**update.rollback) ? "auto" : "off";
    }
    SetFerryKey(annotations, "rollback", value, out);
  }
  if (update.rollback_timeout.has_value()) {
    std::optional<std::string> value;
    if (update.rollback_timeout->has_value()) {
      value = policy::FormatPolicyDuration(*policy::ParsePolicyDuration(**update.rollback_timeout));
    }
    SetFerryKey(annotations, "rollback-timeout", value, out);
  }
  const auto existing = PerContainer(annotations, "rejected");
  for (const auto& [container, kv] : existing) {
    if (update.clear_rejected.count("") || update.clear_rejected.count(container)) {
      if (!update.reject.count(container))
        SetFerryKey(annotations, "rejected." + container, std::nullopt, out);
    }
  }
  for (const auto& [container, tags] : update.reject) {
    std::vector<policy::RejectedTag> all;
    auto it = existing.find(container);
    const bool cleared = update.clear_rejected.count("") || update.clear_rejected.count(container);
    if (it != existing.end() && !cleared) {
      // An unreadable list is replaced rather than kept: the revert must record its tag.
      all = policy::ParseRejected(it->second.second).value_or(std::vector<policy::RejectedTag>{});
    }
    all.insert(all.end(), tags.begin(), tags.end());
    SetFerryKey(annotations, "rejected." + container, policy::FormatRejected(all), out);
  }
}

}  // namespace

std::string Policies::TagFilterFor(const std::string& container) const {
  return policy::FilterTextFor(tag_filters, tag_all, container);
}

std::string Policies::MinAgeFor(const std::string& container) const {
  auto it = min_ages.find(container);
  return it != min_ages.end() ? it->second : min_age_all;
}

Policies ReadPolicies(const std::map<std::string, std::string>& annotations) {
  Policies p;
  p.automated = IsTrue(Lookup(annotations, "automated").value_or(""));
  p.locked = IsTrue(Lookup(annotations, "locked").value_or(""));
  p.locked_user = Lookup(annotations, "locked_user").value_or("");
  p.locked_msg = Lookup(annotations, "locked_msg").value_or("");
  std::string ignore = absl::AsciiStrToLower(Lookup(annotations, "ignore").value_or(""));
  p.ignore = ignore == "true"        ? IgnoreMode::kAll
             : ignore == "sync_only" ? IgnoreMode::kSyncOnly
                                     : IgnoreMode::kNone;
  p.tag_all = Lookup(annotations, "tag_all").value_or("");
  for (const auto& [key, value] : annotations) {
    std::string container;
    if (absl::StartsWith(key, kFilterPrefix)) {
      container = key.substr(sizeof(kFilterPrefix) - 1);
    } else {
      for (const char* prefix : kPrefixes) {
        std::string tag_prefix = absl::StrCat(prefix, "tag.");
        if (absl::StartsWith(key, tag_prefix)) container = key.substr(tag_prefix.size());
      }
    }
    if (!container.empty() && !p.tag_filters.count(container)) {
      p.tag_filters[container] = *Lookup(annotations, "tag." + container);
    }
  }
  p.min_age_all = Lookup(annotations, "min-age").value_or("");
  for (const auto& [container, kv] : PerContainer(annotations, "min-age")) {
    p.min_ages[container] = kv.second;
  }
  p.rollback = Lookup(annotations, "rollback").value_or("");
  p.rollback_timeout = Lookup(annotations, "rollback-timeout").value_or("");
  for (const auto& [container, kv] : PerContainer(annotations, "rejected")) {
    p.rejected[container] = kv.second;
  }
  CheckSafeAutomation(annotations, p.errors);
  return p;
}

namespace {

// The normalized values of an update, once it is valid.
struct ValidUpdate {
  std::map<std::string, std::string> tag_filters;  // container -> normalized pattern
  std::optional<std::string> tag_all;              // normalized, when set
};

// The safe-automation values of `update` (issue 19): min-age, rollback, rollback-timeout,
// rejected tags, by lib/policy's parsers. InvalidArgument naming the ferry.dev/ annotation.
absl::Status ValidateSafeAutomationUpdate(const PolicyUpdate& update) {
  for (const auto& [container, value] : update.min_ages) {
    if (!value.has_value()) continue;
    absl::StatusOr<absl::Duration> d = policy::ParsePolicyDuration(*value);
    if (!d.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kFerryPrefix, container.empty() ? "min-age" : "min-age." + container, ": ",
                       d.status().message()));
    }
  }
  if (update.rollback.has_value() && update.rollback->has_value()) {
    if (absl::Status s = policy::ParseRollback(**update.rollback).status(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(kFerryPrefix, "rollback: ", s.message()));
    }
  }
  if (update.rollback_timeout.has_value() && update.rollback_timeout->has_value()) {
    if (absl::Status s = policy::ParsePolicyDuration(**update.rollback_timeout).status(); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kFerryPrefix, "rollback-timeout: ", s.message()));
    }
  }
  for (const auto& [container, tags] : update.reject) {
    if (container.empty()) return absl::InvalidArgumentError("a rejected tag needs a container");
    for (const policy::RejectedTag& t : tags) {
      if (absl::Status s = policy::ValidateRejectedTag(t); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kFerryPrefix, "rejected.", container, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

// Everything in `update` checked before any change is produced: tag filters parse (their
// normalized text returned), tag_all has containers to go to, the safe-automation values.
absl::StatusOr<ValidUpdate> ValidatePolicyUpdate(const std::vector<std::string>& containers,
                                                 const PolicyUpdate& update) {
  ValidUpdate valid;
  for (const auto& [container, pattern] : update.tag_filters) {
    if (container.empty()) return absl::InvalidArgumentError("tag filter without container name");
    if (!pattern.has_value()) continue;
    absl::StatusOr<policy::TagPattern> p = policy::TagPattern::Parse(*pattern);
    if (!p.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("container ", container, ": ", p.status().message()));
    }
    valid.tag_filters[container] = p->ToString();
  }
  if (update.tag_all.has_value() && update.tag_all->has_value()) {
    absl::StatusOr<policy::TagPattern> p = policy::TagPattern::Parse(**update.tag_all);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat("tag_all: ", p.status().message()));
    valid.tag_all = p->ToString();
    if (containers.empty()) {
      return absl::FailedPreconditionError(
          "tag_all: the workload has no containers to set a tag filter on");
    }
  }
  if (absl::Status s = ValidateSafeAutomationUpdate(update); !s.ok()) return s;
  return valid;
}

}  // namespace

absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(
    const std::map<std::string, std::string>& annotations,
    const std::vector<std::string>& containers, const PolicyUpdate& update) {
  // Validate everything before producing any change.
  absl::StatusOr<ValidUpdate> valid = ValidatePolicyUpdate(containers, update);
  if (!valid.ok()) return valid.status();
  const std::map<std::string, std::string>& normalized = valid->tag_filters;
  const std::optional<std::string>& tag_all = valid->tag_all;

  std::vector<AnnotationChange> out;
  if (update.automated.has_value()) {
    Change(annotations, "automated",
           *update.automated ? std::optional<std::string>("true") : std::nullopt, out);
  }
  if (update.locked.has_value()) {
    if (*update.locked) {
      Change(annotations, "locked", "true", out);
      Change(annotations, "locked_user",
             update.locked_user.empty() ? std::nullopt : std::optional(update.locked_user), out);
      Change(annotations, "locked_msg",
             update.locked_msg.empty() ? std::nullopt : std::optional(update.locked_msg), out);
    } else {
      for (const char* name : {"locked", "locked_user", "locked_msg"}) {
        Change(annotations, name, std::nullopt, out);
      }
    }
  }
  if (update.ignore.has_value()) {
    std::optional<std::string> value;
    if (*update.ignore == IgnoreMode::kAll) value = "true";
    if (*update.ignore == IgnoreMode::kSyncOnly) value = "sync_only";
    Change(annotations, "ignore", value, out);
  }
  for (const auto& [container, pattern] : update.tag_filters) {
    std::optional<std::string> value;
    if (pattern.has_value()) value = normalized.at(container);
    Change(annotations, "tag." + container, value, out);
  }
  if (update.tag_all.has_value()) {
    std::set<std::string> done;
    for (const std::string& container : containers) {
      if (container.empty() || update.tag_filters.count(container) ||
          !done.insert(container).second) {
        continue;
      }
      ChangeTo(annotations, "tag." + container, FluxTagKey(annotations, container), tag_all, out);
    }
    Change(annotations, "tag_all", std::nullopt, out);
  }
  SafeAutomationChanges(annotations, update, out);
  return out;
}

absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(const Resource& workload,
                                                                      const PolicyUpdate& update) {
  std::vector<std::string> containers;
  for (const Container& c : FindContainers(workload)) containers.push_back(c.name);
  return PolicyAnnotationChanges(workload.annotations, containers, update);
}

}  // namespace ferry::manifest
