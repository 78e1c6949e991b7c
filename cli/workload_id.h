// Workload ids as people type them: "namespace:kind/name", or "kind/name" in a namespace
// given separately (as fluxctl accepted with -n).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::cli {

// Normalizes `text` to "namespace:kind/name" with a lower-case kind; a missing namespace is
// `default_namespace`. InvalidArgument with an example when it is not an id.
absl::StatusOr<std::string> ParseWorkloadId(absl::string_view text,
                                            absl::string_view default_namespace);

}  // namespace ferry::cli
