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

}  // namespace ferry::cli
