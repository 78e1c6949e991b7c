// Workload ids as people type them: "namespace:kind/name", "kind/name" in a namespace
// given separately (as fluxctl accepted with -n), or the legacy "namespace/name" of fluxctl
// before workload ids had kinds, resolved against the ids Ferry knows.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::cli {

// Normalizes `text` to "namespace:kind/name" with a lower-case kind; a missing namespace is
// `default_namespace` (manifest::WorkloadId::ParseLoose). InvalidArgument with WorkloadId's
// message, which the services give too, when it is not an id.
absl::StatusOr<std::string> ParseWorkloadId(absl::string_view text,
                                            absl::string_view default_namespace);

// True for the legacy form "namespace/name": no ':' and one '/', and the part before the
// slash is not a workload kind ("deployment/web" stays a kind and a name).
bool IsLegacyWorkloadId(absl::string_view text);

// The one id among `ids` ("namespace:kind/name"; those that are not workload ids are passed
// over) with the namespace and name of legacy id `text`. When none has them: NotFound naming
// the closest ids, or InvalidArgument when no id is in that namespace (naming the namespaces
// there are). When several have them (kinds differ): InvalidArgument listing them to choose
// from.
absl::StatusOr<std::string> ResolveLegacyWorkloadId(absl::string_view text,
                                                    const std::vector<std::string>& ids);

}  // namespace ferry::cli
