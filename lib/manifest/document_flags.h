// The three per-document limits (lib/limits kManifestDepth, kManifestNodes,
// kManifestExpandedBytes) as command-line flags: one registration shared by every service
// that loads manifests (ferry-cluster-syncer, ferry-git-writer), so each has the flags its
// error messages name. Header-only: CLI11 is header-only and services already use it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/status.h"
#include "lib/limits/limits.h"
#include "lib/manifest/document.h"

namespace ferry::manifest {

// Registers --max_manifest_depth, --max_manifest_nodes and --max_manifest_expanded_bytes
// (and their FERRY_* environment variables) on `app`, writing into `limits` (whose values
// are the defaults shown). Check the result with ValidateDocumentLimitFlags.
inline void AddDocumentLimitFlags(CLI::App& app, DocumentLimits& limits) {
  // Limits on each YAML document of the repo, checked before anything is expanded (see
  // docs/limits.md): nesting levels, and nodes and scalar bytes with every alias counted as
  // what it repeats. A document over one fails alone, reported with its file.
  app.add_option(std::string(limits::kManifestDepth.flag), limits.max_depth,
                 "Nesting levels of a manifest document (at most 400)")
      ->envname("FERRY_MAX_MANIFEST_DEPTH")
      ->capture_default_str();
  app.add_option(std::string(limits::kManifestNodes.flag), limits.max_nodes,
                 "Nodes of a manifest document, aliases expanded")
      ->envname("FERRY_MAX_MANIFEST_NODES")
      ->capture_default_str();
  app.add_option(std::string(limits::kManifestExpandedBytes.flag), limits.max_expanded_bytes,
                 "Scalar bytes of a manifest document, aliases expanded")
      ->envname("FERRY_MAX_MANIFEST_EXPANDED_BYTES")
      ->capture_default_str();
}

// Checks limits set by AddDocumentLimitFlags: InvalidArgument naming the flag.
inline absl::Status ValidateDocumentLimitFlags(const DocumentLimits& limits) {
  return ValidateDocumentLimits(limits);
}

}  // namespace ferry::manifest
