// Parsing one YAML document read from a repository, which may be hostile: its depth and its
// size with every alias expanded are checked while yaml-cpp reports parse events, before any
// tree is built, so an alias bomb or a deep nest fails alone, cheaply, with a message naming
// the limit and the flag that raises it. Duplicate mapping keys and aliases inside the node
// they name (cycles) are refused as well.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/limits/limits.h"

namespace ferry::manifest {

// Limits on one document; defaults from lib/limits (kManifest*). Each must be at least 1;
// max_depth at most kMaxDocumentDepth.
struct DocumentLimits {
  // Nesting levels of mappings and sequences (a flat mapping is 1), aliases expanded.
  uint64_t max_depth = limits::kManifestDepth.default_value;
  // Nodes, each alias counted as the nodes it repeats.
  uint64_t max_nodes = limits::kManifestNodes.default_value;
  // Bytes of scalars (keys and values), each alias counted as the bytes it repeats.
  uint64_t max_expanded_bytes = limits::kManifestExpandedBytes.default_value;
};

// The deepest max_depth allowed: yaml-cpp refuses documents nested about 500 deep on its
// own, and walks over a tree recurse once per level.
inline constexpr uint64_t kMaxDocumentDepth = 400;

// Parses `text`, one YAML document (the first, if it holds more). Errors:
//   InvalidArgument: over one of `limits` (the message comes from limits::OverLimit; a
//     property of the input, not retryable), a scalar (key or value) that is not UTF-8, a
//     YAML syntax error, a duplicate key in a mapping (kubectl refuses
//     them too: which value wins differs between tools), an alias used inside the node it
//     names (a cycle no walk could finish).
// Messages say what to fix, without the file name or the problem's position: `where` (when
// given) receives its 0-based line and column in `text` (-1 when unknown). Lines a message
// names count from `first_line`, the 0-based line of `text` in its file. Thread-safe.
absl::StatusOr<YAML::Node> ParseDocument(absl::string_view text, const DocumentLimits& limits,
                                         int first_line = 0, YAML::Mark* where = nullptr);

// The tree of `text` without ParseDocument's checks, for text that passed them before: the
// same bytes, or bytes changed only in ways that add no node, anchor, alias, key or level
// (the editor's image scalars). InvalidArgument on a syntax error. Half of ParseDocument's
// cost: the checks are a parse of their own. Thread-safe.
absl::StatusOr<YAML::Node> LoadCheckedDocument(absl::string_view text);

// Checks `limits` for use (each at least 1, max_depth at most kMaxDocumentDepth);
// InvalidArgument naming the flag otherwise.
absl::Status ValidateDocumentLimits(const DocumentLimits& limits);

}  // namespace ferry::manifest
