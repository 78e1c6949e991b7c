// `ferryctl manifests ...`: list and edit the workloads of a local checkout of the config
// repo, for CI pipelines that commit themselves and for debugging. Edits are in place,
// verified, and written atomically; on any error nothing is written.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/policy_flags.h"

namespace ferry::cli {

struct ManifestsListOptions {
  std::string path = ".";
  std::string output = "table";  // table | json
  std::string namespace_ = "default";
};

struct ManifestsSetImageOptions {
  std::string path = ".";
  std::string workload;
  std::string container;  // may be empty when the workload has one container
  std::string image;
  std::string namespace_ = "default";
};

struct ManifestsSetPolicyOptions : PolicyFlags {
  std::string path = ".";
  std::string workload;
  std::string namespace_ = "default";
};

// Each returns the process exit code (cli/exit_codes.h) after writing results to `out` and
// errors to `err`.
int RunManifestsList(const ManifestsListOptions& options, std::ostream& out, std::ostream& err);
int RunManifestsSetImage(const ManifestsSetImageOptions& options, std::ostream& out,
                         std::ostream& err);
int RunManifestsSetPolicy(const ManifestsSetPolicyOptions& options, std::ostream& out,
                          std::ostream& err);

// Registers `manifests list|set-image|set-policy` on `app`; the chosen command's exit code
// is stored in `exit_code`.
void AddManifestsCommands(CLI::App& app, int& exit_code);

}  // namespace ferry::cli
