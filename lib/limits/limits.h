// Ferry's limits on input that may be hostile or merely too big, kept in one place.
//
// Every limit is a named default here plus the flag that changes it; the binary that owns the
// flag (its config.cc) reads it, and the code that enforces it names both in its error through
// OverLimit(). docs/limits.md lists them all with their reasons. Over a limit, the one item
// (a file, a document, a request, a body) fails alone; the service goes on.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ferry::limits {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;

// A named limit: its default and the flag that raises it ("" when no flag: fixed by design).
struct Limit {
  absl::string_view what;  // "manifest file size"
  absl::string_view unit;  // "bytes", "levels", ...
  uint64_t default_value;
  absl::string_view flag;  // "--max_manifest_file_bytes"
};

// ---- Manifests read from the repo (lib/manifest; git-writer, cluster-syncer) ----

// ---- Names and messages (git-writer commits) ----

// ---- Webhooks (registry-scanner) ----

// ---- Messages between services and from clients (lib/runtime) ----

// ---- Jobs and peers (api) ----

// The message for an item over `limit`: "<item>: <what> is <actual> <unit>, over the limit of
// <max> <unit> (raise it with <flag>)". `actual` 0 means unknown ("over the limit of ...").
std::string OverLimit(absl::string_view item, const Limit& limit, uint64_t max,
                      uint64_t actual = 0);

}  // namespace ferry::limits
