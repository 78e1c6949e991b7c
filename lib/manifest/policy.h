// Workload policies as annotations in git: reading them, and turning policy changes into
// annotation edits that reuse the prefix the manifest already uses.
//
// Prefixes read, in precedence order: ferry.dev/, fluxcd.io/, flux.weave.works/ (and
// filter.fluxcd.io/<container> as a tag filter). Keys after the prefix: automated, locked,
// locked_user, locked_msg, ignore (true | sync_only), tag.<container>, tag_all (read only:
// --tag-all is written as one tag.<container> per container, as Flux v1 did).
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

  // The filter in force for `container` ("" when none): lib/policy's FilterTextFor.
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

// The annotation edits that make `update` true of a workload with `annotations` and the
// containers named `containers` (FindContainers' names). Patterns are validated first
// (InvalidArgument naming the container and what is wrong). Writes use the key the
// manifest already has for that policy, else the prefix it already uses for other
// policies, else ferry.dev/; copies of the policy under other prefixes are removed so that
// only one value is in force.
//
// `update.tag_all` is written as Flux v1 wrote it, so that a repository shared with Flux v1
// means the same to both: one tag.<container> filter per container of `containers` (removal
// removes each container's filter), under the Flux prefix the workload already uses for tag
// filters or other policies (filter.fluxcd.io/<container>, fluxcd.io/tag.<container>,
// flux.weave.works/tag.<container>), else fluxcd.io/; a tag_all annotation the workload has
// (ferry.dev/tag_all, read by ReadPolicies) is removed. A container's own entry in
// `update.tag_filters` wins over the expansion. FailedPrecondition when a pattern is to be
// set and `containers` is empty.
absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(
    const std::map<std::string, std::string>& annotations,
    const std::vector<std::string>& containers, const PolicyUpdate& update);

// The same for a loaded workload: its annotations and the names of its containers.
absl::StatusOr<std::vector<AnnotationChange>> PolicyAnnotationChanges(const Resource& workload,
                                                                      const PolicyUpdate& update);

}  // namespace ferry::manifest
