// Policies between the contracts (ferry.v1.PolicyChange, ferry.v1.Policy) and the domain
// (manifest::PolicyUpdate, manifest::Policies): one mapping for every service and ferryctl.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "ferry/v1/types.pb.h"
#include "lib/manifest/policy.h"

namespace ferry::convert {

// The domain update one PolicyChange asks for. InvalidArgument for a change with nothing
// set, or a set_tag_filter without a container; patterns are checked later, where they are
// written (manifest::PolicyAnnotationChanges).
absl::StatusOr<manifest::PolicyUpdate> ToPolicyUpdate(const ferry::v1::PolicyChange& change);

// The PolicyChanges that make up `update`, in a fixed order: automation, lock, container
// filters by container name, tag_all. A lock without a user or message leaves them empty
// (the api fills them from the cause).
std::vector<ferry::v1::PolicyChange> ToPolicyChanges(const manifest::PolicyUpdate& update);

// A workload's policies as the contract reports them.
void FillPolicy(const manifest::Policies& policies, ferry::v1::Policy* out);

}  // namespace ferry::convert
