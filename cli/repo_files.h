// Reading and atomically rewriting files of a local config repo checkout.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "lib/manifest/resource.h"

namespace ferry::cli {

// The whole file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Replaces `path` with `content` atomically (temporary file in the same folder, then
// rename), keeping the file's permissions.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content);

// Loads the tree at `root` (resources without namespace in `default_namespace`) and returns
// the workload `workload` ("namespace:kind/name" or "kind/name"). InvalidArgument for a
// malformed id, NotFound naming the id.
absl::StatusOr<manifest::Resource> FindWorkload(const std::string& root,
                                                const std::string& workload,
                                                const std::string& default_namespace);

}  // namespace ferry::cli
