// Workload policies as annotations in git: reading them, and turning policy changes into
// annotation edits that reuse the prefix the manifest already uses.
//
// Prefixes read, in precedence order: ferry.dev/, fluxcd.io/, flux.weave.works/ (and
// filter.fluxcd.io/<container> as a tag filter). Keys after the prefix: automated, locked,
// locked_user, locked_msg, ignore (true | sync_only), tag.<container>, tag_all.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/manifest/editor.h"

namespace ferry::manifest {

enum class IgnoreMode { kNone, kAll, kSyncOnly };

// A workload's policies.
struct Policies {
  bool automated = false;
  bool locked = false;
  std::string locked_user;
  std::string locked_msg;
  IgnoreMode ignore = IgnoreMode::kNone;
  // Tag filter per container, as written ("glob:1.*", "semver:~1.2", "master-*").
  std::map<std::string, std::string> tag_filters;
  // Tag filter for containers without their own; empty for none.
  std::string tag_all;

  // The filter in force for `container` ("" when none).
  std::string TagFilterFor(const std::string& container) const;
};

// Reads the policies from a resource's annotations.
Policies ReadPolicies(const std::map<std::string, std::string>& annotations);

// Policy changes to make to one workload. Unset fields are left alone.
struct PolicyUpdate {
  std::optional<bool> automated;
  // true = lock (with user and message), false = unlock (clears user and message too).
  std::optional<bool> locked;
  std::string locked_user;
  std::string locked_msg;
  std::optional<IgnoreMode> ignore;
  // Per container: a pattern to set, or nullopt to remove the container's filter.
  std::map<std::string, std::optional<std::string>> tag_filters;
  // A pattern to set, or an empty optional inside to remove tag_all.
  std::optional<std::optional<std::string>> tag_all;
};

// The annotation edits that make `update` true of a manifest with `annotations`. Patterns
// are validated first (InvalidArgument naming the container and what is wrong). Writes
// use the key the manifest already has for that policy, else the prefix it already uses
// for other policies, else ferry.dev/; copies of the policy under other prefixes are
// removed so that only one value is in force.
absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(
    const std::map<std::string, std::string>& annotations, const PolicyUpdate& update);

}  // namespace ferry::manifest
