// Configuration of ferry-git-writer: flags (and FERRY_* environment variables) -> a
// validated Config. Every option is documented next to the flag that sets it, in config.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/kube/election.h"
#include "lib/limits/limits.h"
#include "lib/manifest/document.h"
#include "lib/runtime/flags.h"
#include "lib/runtime/server.h"
#include "services/git-writer/libgit2_repository.h"
#include "services/git-writer/signer.h"
#include "services/git-writer/writer.h"

namespace ferry::git_writer {

// Identity and default ports of this component.
inline const runtime::ComponentDefaults kComponent{"git-writer", 3031, 9792};

// Flags as given on the command line, before validation.
struct Flags {
  runtime::ServerFlags server;
  std::string git_url;
  std::string git_branch = "main";
  std::vector<std::string> git_paths;
  std::string git_poll_interval = "1m";
  std::string git_ssh_key_path;
  std::string git_signing_key_path;
  std::string git_signing_format = "ssh";
  bool git_verify_signatures = false;
  std::string git_allowed_signers_path;
  std::string git_known_hosts_path;
  std::string git_https_credentials_path;
  std::string git_ca_path;
  std::string git_user = "Ferry";
  std::string git_email = "ferry@localhost";
  bool git_readonly = false;
  std::string git_push_branch;
  bool git_push_branch_force = false;
  bool git_ci_skip = false;
  std::string git_commit_template;
  std::string git_commit_template_path;
  std::string git_sync_tag = "ferry-sync";
  std::string git_notes_ref = "refs/notes/ferry";
  int git_push_retries = 5;
  std::string state_dir = "/var/lib/ferry/git-writer";
  std::string repack_mirror;             // internal: repack this mirror and exit
  bool repack_keep_unreachable = false;  // internal: that repack keeps every object
  std::string default_namespace = "default";
  uint64_t max_commit_message_bytes = limits::kCommitMessageBytes.default_value;
  uint64_t max_manifest_file_bytes = limits::kManifestFileBytes.default_value;
  uint64_t max_manifest_tree_bytes = limits::kManifestTreeBytes.default_value;
  uint64_t max_workload_index_bytes = limits::kWorkloadIndexBytes.default_value;
  uint64_t max_kustomize_roots = limits::kKustomizeRoots.default_value;
  std::string kustomize_command;
  bool kustomize_allow_remote = false;
  std::string kustomize_timeout = "60s";
  int kustomize_parallelism = 2;
  // Limits on each manifest document (lib/manifest/document_flags.h).
  manifest::DocumentLimits manifest_limits;
  // Leader election (lib/kube/election.h) and how the Kubernetes API is reached for it.
  std::string kubeconfig;
  std::string context;
  kube::LeaderElectionFlags leader;
};

// The validated configuration.
struct Config {
  runtime::ServerOptions server;
  Libgit2Options repository;
  WriterOptions writer;
  absl::Duration poll_interval;
  std::string sync_tag;
  std::string ssh_key_path;
  // --git_signing_key_path ("" = Ferry's objects are not signed) and its format ("ssh").
  std::string signing_key_path;
  std::string signing_format;
  uint64_t max_commit_message_bytes = 0;
  uint64_t max_workload_index_bytes = 0;
  // --leader_elect: only the Lease's holder commits and pushes (lease name LeaseNameFor(url,
  // branch) unless given). The Kubernetes API is reached with `kubeconfig` (and `context`),
  // or with the pod's service account when it is empty; neither is used without election.
  kube::LeaderElectionConfig leader;
  std::string kubeconfig;
  std::string context;
};

// The default Lease name of a repo and branch: "ferry-git-writer-" and 10 hex digits of a
// hash of `url` and `branch`, so that the replicas of one repo/branch share a Lease and
// writers of other repos or branches never do. Only the hash is in it: an https URL may
// carry credentials, which are left out of the hash too (a rotated token must not split the
// replicas of a rolling update across two Leases).
std::string LeaseNameFor(const std::string& url, const std::string& branch);

// Registers every flag of ferry-git-writer on `app`.
void AddFlags(CLI::App& app, Flags& flags);

// Validates `flags`. InvalidArgument naming the offending flag.
absl::StatusOr<Config> ToConfig(const Flags& flags);

// The signer of --git_signing_key_path (null when it is not set), checked by signing once:
// called after the deploy key exists, since it may be the same file. InvalidArgument naming
// the flag when the key cannot sign; Unavailable when ssh-keygen cannot run. With
// --git_verify_signatures the probe signature is verified against the allowed signers too:
// InvalidArgument naming --git_allowed_signers_path when they do not hold the key (Ferry's
// own commits would not be served). `metrics` may be null, else it must outlive the signer.
absl::StatusOr<std::shared_ptr<Signer>> MakeSigner(const Config& config, SignerMetrics* metrics);

}  // namespace ferry::git_writer
