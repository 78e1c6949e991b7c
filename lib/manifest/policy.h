// Workload policies as annotations in git: reading them, and turning policy changes into
// annotation edits that reuse the prefix the manifest already uses.
//
// Prefixes read, in precedence order: ferry.dev/, fluxcd.io/, flux.weave.works/ (and
// filter.fluxcd.io/<container> as a tag filter). Keys after the prefix: automated, locked,
// locked_user, locked_msg, ignore (true | sync_only), tag.<container>, tag_all (read only:
// --tag-all is written as one tag.<container> per container, as Flux v1 did).
//
// Ferry's own keys (issue 19; read under every prefix, written under ferry.dev/ only):
// min-age and min-age.<container> (soak time, lib/policy's ParsePolicyDuration), rollback
// (auto | off), rollback-timeout (a duration), rejected.<container> (tags an automatic
// revert took back: "TAG=JOB,...", lib/policy's ParseRejected).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/manifest/editor.h"
#include "lib/policy/soak.h"

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

  // Soak time per container and for every container, as written ("2h").
  std::map<std::string, std::string> min_ages;
  std::string min_age_all;
  // "auto", "off" or "" (off), as written; and the rollout deadline, as written.
  std::string rollback;
  std::string rollback_timeout;
  // Rejected tags per container, as written ("1.2.3=JOB,...").
  std::map<std::string, std::string> rejected;
  // One line per policy annotation that does not parse, naming the annotation
  // ("ferry.dev/min-age: \"2x\" is not a duration: ..."). Automation skips a workload with
  // any, and ListWorkloads shows them.
  std::vector<std::string> errors;

  // The filter in force for `container` ("" when none): lib/policy's FilterTextFor.
  std::string TagFilterFor(const std::string& container) const;
  // The soak time in force for `container`: its own min-age, else min-age; "" for none.
  std::string MinAgeFor(const std::string& container) const;
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
  // Soak time per container ("" = min-age for every container): a duration to set, or
  // nullopt to remove.
  std::map<std::string, std::optional<std::string>> min_ages;
  // "auto" / "off" to set, or an empty optional inside to remove.
  std::optional<std::optional<std::string>> rollback;
  // A duration to set, or an empty optional inside to remove.
  std::optional<std::optional<std::string>> rollback_timeout;
  // Tags to add to a container's rejected list (the newest policy::kMaxRejectedTags kept).
  std::map<std::string, std::vector<policy::RejectedTag>> reject;
  // Containers whose rejected list is removed ("" = every container's).
  std::set<std::string> clear_rejected;
};

// The annotation edits that make `update` true of a workload with `annotations` and the
// containers named `containers` (FindContainers' names). Patterns, durations and rollback
// modes are validated first (InvalidArgument naming the annotation or container and what
// is wrong). Writes use the key the
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
