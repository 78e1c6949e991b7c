// Building a kustomize root with an external kustomize, on files exported from the
// repository (never a working copy), with what a hostile repository could abuse switched
// off: no plugins or KRM functions (kustomize runs none without flags Ferry never passes),
// the load restrictor at its default (a kustomization reads files only from its own folder
// and below), an empty HOME and plugin folder of its own (outside the tree), no git or
// kubectl configuration, no network unless remote resources are allowed, a deadline and a
// bound on the output.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/limits/limits.h"

namespace ferry::kustomize {

struct BuildOptions {
  // The command and its leading arguments; the root's folder is appended
  // ("kustomize build", "kubectl kustomize").
  std::vector<std::string> command;
  // PATH the command is looked up in and run with.
  std::string path_env;
  // Remote resources allowed (--kustomize_allow_remote): else the build runs behind a proxy
  // that does not exist, so nothing it would fetch is reached.
  bool allow_remote = false;
  absl::Duration timeout = absl::Seconds(60);
  // The output is served as one manifest file: limits::kManifestFileBytes.
  size_t max_output_bytes = limits::kManifestFileBytes.default_value;
};

// The command for `--kustomize_command` = `flag` (split at spaces): when empty, `kustomize
// build` if kustomize is on `path_env`, else `kubectl kustomize` if kubectl is. NotFound
// naming the flag when neither (or the named program) is on PATH.
absl::StatusOr<std::vector<std::string>> ResolveCommand(absl::string_view flag,
                                                        absl::string_view path_env);

// Builds the root in `folder` (relative to `tree`, where the files it reads were exported)
// and returns kustomize's output. FailedPrecondition with kustomize's own message (its
// first lines, with `tree` taken out of paths) when the build fails; DeadlineExceeded or
// ResourceExhausted (naming limits::kManifestFileBytes and its flag) when it runs too long
// or says too much; NotFound
// when the command is missing. Thread-safe.
absl::StatusOr<std::string> Build(const BuildOptions& options, const std::string& tree,
                                  const std::string& folder);

}  // namespace ferry::kustomize
