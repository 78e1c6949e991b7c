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

}  // namespace

std::string Policies::TagFilterFor(const std::string& container) const {
  return policy::FilterTextFor(tag_filters, tag_all, container);
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
  return p;
}

absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(
    const std::map<std::string, std::string>& annotations,
    const std::vector<std::string>& containers, const PolicyUpdate& update) {
  // Validate everything before producing any change.
  std::map<std::string, std::string> normalized;
  for (const auto& [container, pattern] : update.tag_filters) {
    if (container.empty()) return absl::InvalidArgumentError("tag filter without container name");
    if (!pattern.has_value()) continue;
    absl::StatusOr<policy::TagPattern> p = policy::TagPattern::Parse(*pattern);
    if (!p.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("container ", container, ": ", p.status().message()));
    }
    normalized[container] = p->ToString();
  }
  std::optional<std::string> tag_all;
  if (update.tag_all.has_value() && update.tag_all->has_value()) {
    absl::StatusOr<policy::TagPattern> p = policy::TagPattern::Parse(**update.tag_all);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat("tag_all: ", p.status().message()));
    tag_all = p->ToString();
    if (containers.empty()) {
      return absl::FailedPreconditionError(
          "tag_all: the workload has no containers to set a tag filter on");
    }
  }

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
    if (pattern.has_value()) value = normalized[container];
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
  return out;
}

absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(const Resource& workload,
                                                                      const PolicyUpdate& update) {
  std::vector<std::string> containers;
  for (const Container& c : FindContainers(workload)) containers.push_back(c.name);
  return PolicyAnnotationChanges(workload.annotations, containers, update);
}

}  // namespace ferry::manifest
