#include "lib/manifest/workload_selection.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/manifest/workload_id.h"

namespace ferry::manifest {

absl::StatusOr<WorkloadSelection> WorkloadSelection::Make(std::string start_after, int64_t limit,
                                                          const std::vector<std::string>& ids) {
  if (limit < 0) return absl::InvalidArgumentError("limit: 0 (no limit) or more");
  if (start_after.size() > WorkloadId::kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("start_after: at most ", WorkloadId::kMaxBytes,
                     " bytes (the last workload id of the previous page)"));
  }
  if (ids.size() > kMaxIds) {
    return absl::InvalidArgumentError(absl::StrCat("ids: ", ids.size(), " ids, at most ", kMaxIds,
                                                   " in one request; ask in pages"));
  }
  WorkloadSelection s;
  s.start_after_ = std::move(start_after);
  s.limit_ = static_cast<size_t>(limit);
  for (const std::string& id : ids) {
    absl::StatusOr<WorkloadId> parsed = WorkloadId::Parse(id);
    if (!parsed.ok())
      return absl::InvalidArgumentError(absl::StrCat("ids: ", parsed.status().message()));
    s.ids_.insert(id);
  }
  return s;
}

}  // namespace ferry::manifest
