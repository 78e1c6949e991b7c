#include "services/git-writer/config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/manifest/document_flags.h"
#include "lib/names/names.h"
#ifdef FERRY_HAVE_RNP
#include "services/git-writer/openpgp_signer.h"
#endif

namespace ferry::git_writer {

void AddFlags(CLI::App& app, Flags& flags) {
  // --grpc_address, --metrics_address, --drain_timeout, --log_format, --log_level:
  // documented in lib/runtime/flags.h.
  runtime::AddServerFlags(app, kComponent, flags.server);
  // The config repo: file:///path, /path, ssh://git@host[:port]/path, git@host:path,
  // https://host/path. Required.
  app.add_option("--git_url", flags.git_url, "URL of the config repo")->envname("FERRY_GIT_URL");
  // The branch Ferry reads, commits to and pushes.
  app.add_option("--git_branch", flags.git_branch, "Branch of the config repo")
      ->envname("FERRY_GIT_BRANCH")
      ->capture_default_str();
  // Folders (or files) inside the repo that hold manifests; repeat for several. Default:
  // the whole repo.
  app.add_option("--git_path", flags.git_paths, "Path inside the repo holding manifests")
      ->envname("FERRY_GIT_PATH");
  // How often upstream is fetched without a Notify (push webhook).
  app.add_option("--git_poll_interval", flags.git_poll_interval, "Fetch interval, e.g. 1m")
      ->envname("FERRY_GIT_POLL_INTERVAL")
      ->capture_default_str();
  // ssh deploy key (private half, mounted from a Secret). Generated (ed25519) when the file
  // does not exist; its public half is served by GetIdentity.
  app.add_option("--git_ssh_key_path", flags.git_ssh_key_path, "ssh private key file")
      ->envname("FERRY_GIT_SSH_KEY_PATH");
  // Signs every commit, notes commit and sync tag Ferry makes with this private key (mounted
  // from a Secret; the deploy key may be reused): an SSH key (ed25519, ECDSA or RSA, without
  // a passphrase, readable by its owner only) makes git's SSH signatures (namespace "git"),
  // which `git verify-commit` checks against an allowed signers file. The key must be able to
  // sign at start (the binary exits with 2 otherwise); its public half and fingerprint are
  // served by GetIdentity. Default: nothing is signed.
  app.add_option("--git_signing_key_path", flags.git_signing_key_path,
                 "Private key that signs Ferry's commits, notes and sync tag")
      ->envname("FERRY_GIT_SIGNING_KEY_PATH");
  // Kind of --git_signing_key_path: ssh (an OpenSSH private key), or openpgp (an OpenPGP
  // secret key without passphrase, as `gpg --export-secret-keys` writes it; signed with
  // librnp, checked with `git verify-commit` against a gpg keyring).
  app.add_option("--git_signing_format", flags.git_signing_format,
                 "Signature format of --git_signing_key_path: ssh or openpgp")
      ->envname("FERRY_GIT_SIGNING_FORMAT")
      ->capture_default_str();
  // Serve and build on only revisions whose commit is signed by a key of
  // --git_allowed_signers_path: an upstream head that is unsigned or signed by another key
  // is not served (the last verified revision is, so cluster-syncer keeps applying it), is
  // reported (HeadResponse/ListWorkloads verify_error, ferry_git_head_verified,
  // ferry_git_signature_checks_total) and writes wait for a verified head. Ferry's own
  // commits are checked too: put --git_signing_key_path's key in the file. Off by default.
  app.add_flag("--git_verify_signatures", flags.git_verify_signatures,
               "Serve only revisions signed by an allowed key")
      ->envname("FERRY_GIT_VERIFY_SIGNATURES");
  // The allowed signers file for --git_verify_signatures, in git's format
  // (gpg.ssh.allowedSignersFile: "principals [options] ssh-ed25519 AAAA..." per line). SSH
  // signatures only; OpenPGP-signed heads are reported as not verified.
  app.add_option("--git_allowed_signers_path", flags.git_allowed_signers_path,
                 "Allowed signers file (SSH) for --git_verify_signatures")
      ->envname("FERRY_GIT_ALLOWED_SIGNERS_PATH");
  // known_hosts for ssh URLs: unknown or changed host keys are refused.
  app.add_option("--git_known_hosts_path", flags.git_known_hosts_path, "ssh known_hosts file")
      ->envname("FERRY_GIT_KNOWN_HOSTS_PATH");
  // https credentials: a file whose first line is "user:password" or a token.
  app.add_option("--git_https_credentials_path", flags.git_https_credentials_path,
                 "File with user:password or a token for https URLs")
      ->envname("FERRY_GIT_HTTPS_CREDENTIALS_PATH");
  // CA bundle (PEM) for https git servers with a private CA.
  app.add_option("--git_ca_path", flags.git_ca_path, "CA bundle for https URLs")
      ->envname("FERRY_GIT_CA_PATH");
  // Committer of Ferry's commits (the requesting user is the author when given).
  app.add_option("--git_user", flags.git_user, "Committer name")
      ->envname("FERRY_GIT_USER")
      ->capture_default_str();
  app.add_option("--git_email", flags.git_email, "Committer email")
      ->envname("FERRY_GIT_EMAIL")
      ->capture_default_str();
  // Read the repo, never write it: writes answer FAILED_PRECONDITION.
  app.add_flag("--git_readonly", flags.git_readonly, "Never commit or push")
      ->envname("FERRY_GIT_READONLY");
  // Release branches: commits of releases, automated releases and policy changes are made on
  // top of --git_branch (still what is read, served and synced) and pushed to this branch
  // instead, for a review to merge (see WriterOptions::push_branch). A fixed branch name
  // (ferry/releases), or one with the field {{job}} for one branch per job
  // (ferry/release-{{job}}); not --git_branch itself.
  app.add_option("--git_push_branch", flags.git_push_branch,
                 "Branch that Ferry's commits are pushed to (empty: --git_branch)")
      ->envname("FERRY_GIT_PUSH_BRANCH");
  // Rebuild the push branch from --git_branch even when it holds someone else's commits
  // (dropped); without it such a branch makes writes fail with FAILED_PRECONDITION.
  app.add_flag("--git_push_branch_force", flags.git_push_branch_force,
               "Overwrite someone else's commits on --git_push_branch")
      ->envname("FERRY_GIT_PUSH_BRANCH_FORCE");
  // Append "[ci skip]" to commit messages, so CI does not build Ferry's commits.
  app.add_flag("--git_ci_skip", flags.git_ci_skip, "Append [ci skip] to commit messages")
      ->envname("FERRY_GIT_CI_SKIP");
  // The message of Ferry's commits (releases, automated releases, reverts, policy changes),
  // as a template (services/git-writer/commit_template.h): fields {{job}}, {{kind}},
  // {{user}}, {{message}}, {{default}}, {{subject}} and the sections {{#changes}},
  // {{#images}}, {{#policies}} with {{workload}}, {{container}}, {{from}}, {{to}},
  // {{policy}}. Checked at start: an error names its line and column. The trailer
  // "Ferry-Job: <id>" ends every message anyway.
  app.add_option("--git_commit_template", flags.git_commit_template,
                 "Commit message template (text)")
      ->envname("FERRY_GIT_COMMIT_TEMPLATE");
  // The same, read from a file (at most 16 KiB); not together with --git_commit_template.
  app.add_option("--git_commit_template_path", flags.git_commit_template_path,
                 "File holding the commit message template")
      ->envname("FERRY_GIT_COMMIT_TEMPLATE_PATH");
  // Name of the annotated tag marking the last revision applied to the cluster.
  app.add_option("--git_sync_tag", flags.git_sync_tag, "Sync marker tag")
      ->envname("FERRY_GIT_SYNC_TAG")
      ->capture_default_str();
  // Notes ref for job records on Ferry's commits.
  app.add_option("--git_notes_ref", flags.git_notes_ref, "Notes ref for job records")
      ->envname("FERRY_GIT_NOTES_REF")
      ->capture_default_str();
  // Retries of a push rejected because upstream moved (edits re-applied on the new head).
  app.add_option("--git_push_retries", flags.git_push_retries, "Push retries")
      ->envname("FERRY_GIT_PUSH_RETRIES")
      ->capture_default_str();
  // Where the mirror lives (a persistent volume keeps restarts fast; emptyDir works too).
  app.add_option("--state_dir", flags.state_dir, "Directory for the mirror")
      ->envname("FERRY_STATE_DIR")
      ->capture_default_str();
  // Internal: the git-writer runs itself with this flag to repack its mirror in a child
  // process (Libgit2Options::repack_program); it writes the folded pack of that bare repo,
  // prints what it replaces and exits. Hidden, as is the fold's mode.
  app.add_option("--repack_mirror", flags.repack_mirror, "Repack this mirror and exit")->group("");
  app.add_flag("--repack_keep_unreachable", flags.repack_keep_unreachable,
               "Keep every object in the repack")
      ->group("");
  // Namespace of namespaced resources without one in their manifest.
  app.add_option("--default_namespace", flags.default_namespace,
                 "Namespace of resources that have none")
      ->envname("FERRY_DEFAULT_NAMESPACE")
      ->capture_default_str();
  // Kustomize roots (folders with a kustomization no other one refers to) are built with
  // this command, the root's folder appended. Default: `kustomize build` when kustomize is
  // on PATH, else `kubectl kustomize`; with neither, each root is reported as not built.
  app.add_option("--kustomize_command", flags.kustomize_command,
                 "Command that builds a kustomize root (default: kustomize build, else kubectl "
                 "kustomize)")
      ->envname("FERRY_KUSTOMIZE_COMMAND");
  // Remote resources and bases (URLs) in kustomizations are refused unless this is set;
  // plugins and KRM functions are never run.
  app.add_flag("--kustomize_allow_remote", flags.kustomize_allow_remote,
               "Let kustomizations use remote resources and bases")
      ->envname("FERRY_KUSTOMIZE_ALLOW_REMOTE");
  // A build that runs longer is stopped and reported as that root's error.
  app.add_option("--kustomize_timeout", flags.kustomize_timeout,
                 "Longest a kustomize build may run")
      ->envname("FERRY_KUSTOMIZE_TIMEOUT")
      ->capture_default_str();
  // Roots built at a time when a revision has several to build (kustomize is CPU-bound:
  // the cores the pod may use).
  app.add_option("--kustomize_parallelism", flags.kustomize_parallelism,
                 "Kustomize builds run at a time")
      ->envname("FERRY_KUSTOMIZE_PARALLELISM")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  // Limits (docs/limits.md). A commit message given with ApplyUpdates.
  app.add_option(std::string(limits::kCommitMessageBytes.flag), flags.max_commit_message_bytes,
                 "Largest commit message accepted, in bytes")
      ->envname("FERRY_MAX_COMMIT_MESSAGE_BYTES")
      ->capture_default_str();
  // One manifest file: a bigger one is a load error of its own, never sent or parsed.
  app.add_option(std::string(limits::kManifestFileBytes.flag), flags.max_manifest_file_bytes,
                 "Largest manifest file served, in bytes")
      ->envname("FERRY_MAX_MANIFEST_FILE_BYTES")
      ->capture_default_str();
  // All manifest files of one revision together: over it reads fail (RESOURCE_EXHAUSTED).
  app.add_option(std::string(limits::kManifestTreeBytes.flag), flags.max_manifest_tree_bytes,
                 "Largest total of the manifest files at one revision, in bytes")
      ->envname("FERRY_MAX_MANIFEST_TREE_BYTES")
      ->capture_default_str();
  // Kustomize roots at one revision: roots past it (in path order) are errors of their own.
  app.add_option(std::string(limits::kKustomizeRoots.flag), flags.max_kustomize_roots,
                 "Most kustomize roots built at one revision")
      ->envname("FERRY_MAX_KUSTOMIZE_ROOTS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  // One ListWorkloads answer. Peers must accept messages this big (gRPC's default is 4 MiB).
  app.add_option(std::string(limits::kWorkloadIndexBytes.flag), flags.max_workload_index_bytes,
                 "Largest workload index answer, in bytes")
      ->envname("FERRY_MAX_WORKLOAD_INDEX_BYTES")
      ->capture_default_str();
  // --max_manifest_depth, --max_manifest_nodes, --max_manifest_expanded_bytes: documented
  // in lib/manifest/document_flags.h (shared with ferry-cluster-syncer). Every document
  // git-writer loads (indexing, edits) is held to them.
  manifest::AddDocumentLimitFlags(app, flags.manifest_limits);
  // Leader election, for several replicas of one repo/branch: --leader_elect and its Lease,
  // documented in lib/kube/election.h. A standby fetches and serves reads from its own
  // mirror; its writes answer UNAVAILABLE naming the leader, and its readiness is false.
  kube::AddLeaderElectionFlags(app, flags.leader, "commits and pushes");
  // The kubeconfig reaching the Kubernetes API that holds the Lease; empty inside a pod (its
  // service account is used). Only read with --leader_elect.
  app.add_option("--kubeconfig", flags.kubeconfig,
                 "kubeconfig file for leader election; empty for in-cluster")
      ->envname("FERRY_KUBECONFIG");
  // A context of the kubeconfig other than its current-context.
  app.add_option("--context", flags.context, "kubeconfig context")->envname("FERRY_CONTEXT");
}

std::string LeaseNameFor(const std::string& url, const std::string& branch) {
  std::string repo = url;
  if (size_t scheme = repo.find("://"); scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t at = repo.find('@', start);
    const size_t path = repo.find('/', start);
    if (at != std::string::npos && (path == std::string::npos || at < path)) {
      repo.erase(start, at + 1 - start);  // "user[:password]@"
    }
  }
  return kube::DefaultLeaseName(kComponent.name, absl::StrCat(repo, "\n", branch));
}

namespace {

// --git_commit_template(_path), parsed (null when neither is set).
absl::StatusOr<std::shared_ptr<const CommitTemplate>> CommitTemplateOf(const Flags& flags) {
  if (!flags.git_commit_template.empty() && !flags.git_commit_template_path.empty()) {
    return absl::InvalidArgumentError(
        "--git_commit_template and --git_commit_template_path: give one of them");
  }
  std::string flag = "--git_commit_template";
  std::string text = flags.git_commit_template;
  if (!flags.git_commit_template_path.empty()) {
    flag = "--git_commit_template_path";
    std::ifstream in(flags.git_commit_template_path, std::ios::binary);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": cannot read ", flags.git_commit_template_path));
    }
    text.resize(kMaxCommitTemplateBytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
  }
  if (text.empty()) return std::shared_ptr<const CommitTemplate>();
  absl::StatusOr<CommitTemplate> parsed = CommitTemplate::Parse(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", parsed.status().message()));
  }
  return std::make_shared<const CommitTemplate>(*std::move(parsed));
}

}  // namespace

namespace {

// --git_push_branch: a branch name git accepts (git check-ref-format's rules) once its one
// field, {{job}}, is filled; not the source branch.
absl::Status ValidatePushBranch(const Flags& flags) {
  const std::string& branch = flags.git_push_branch;
  if (branch.empty()) {
    if (flags.git_push_branch_force) {
      return absl::InvalidArgumentError("--git_push_branch_force: needs --git_push_branch");
    }
    return absl::OkStatus();
  }
  // What a job id (a UUID) makes of it.
  const std::string sample =
      absl::StrReplaceAll(branch, {{kJobField, "0123abcd-0000-4000-8000-000000000000"}});
  if (absl::StrContains(sample, "{{") || absl::StrContains(sample, "}}")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--git_push_branch: \"", names::Escape(branch),
                     "\": the only field is {{job}} (one branch per job); give a fixed name "
                     "(e.g. ferry/releases) or one with {{job}} (e.g. ferry/release-{{job}})"));
  }
  if (!Libgit2Repository::ValidateBranchName(sample).ok() ||
      branch.size() > Libgit2Repository::kMaxBranchNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("--git_push_branch: \"", names::Escape(branch),
                                                   "\" is not a valid branch name"));
  }
  if (branch == flags.git_branch) {
    return absl::InvalidArgumentError(
        absl::StrCat("--git_push_branch: \"", branch,
                     "\" is --git_branch itself; leave it empty to push there"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ToConfig(const Flags& flags) {
  Config config;
  absl::StatusOr<runtime::ServerOptions> server =
      runtime::ToServerOptions(kComponent, flags.server);
  if (!server.ok()) return server.status();
  config.server = *std::move(server);
  if (flags.git_url.empty()) {
    return absl::InvalidArgumentError(
        "--git_url: required (e.g. ssh://git@github.com/org/config.git or file:///srv/config.git)");
  }
  if (flags.git_branch.empty() || absl::StrContains(flags.git_branch, "..") ||
      absl::StartsWith(flags.git_branch, "-") || absl::StrContains(flags.git_branch, " ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--git_branch: \"", flags.git_branch, "\" is not a branch name"));
  }
  if (absl::Status s = ValidatePushBranch(flags); !s.ok()) return s;
  for (const std::string& path : flags.git_paths) {
    if (absl::Status s = Libgit2Repository::ValidatePath(path); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--git_path: ", s.message()));
    }
  }
  if (!absl::ParseDuration(flags.git_poll_interval, &config.poll_interval) ||
      config.poll_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--git_poll_interval: '", flags.git_poll_interval, "' is not a duration of 1s or more"));
  }
  if (flags.git_push_retries < 0 || flags.git_push_retries > 100) {
    return absl::InvalidArgumentError("--git_push_retries: use 0 to 100");
  }
  if (!absl::StartsWith(flags.git_notes_ref, "refs/notes/")) {
    return absl::InvalidArgumentError("--git_notes_ref: must start with refs/notes/");
  }
  if (flags.state_dir.empty()) return absl::InvalidArgumentError("--state_dir: required");
  for (const auto& [limit, value] :
       {std::pair{&limits::kCommitMessageBytes, flags.max_commit_message_bytes},
        std::pair{&limits::kManifestFileBytes, flags.max_manifest_file_bytes},
        std::pair{&limits::kManifestTreeBytes, flags.max_manifest_tree_bytes},
        std::pair{&limits::kWorkloadIndexBytes, flags.max_workload_index_bytes}}) {
    if (value == 0) {
      return absl::InvalidArgumentError(absl::StrCat(limit->flag, ": must be at least 1"));
    }
  }
  if (absl::Status limits = manifest::ValidateDocumentLimitFlags(flags.manifest_limits);
      !limits.ok()) {
    return limits;
  }
  if (flags.max_manifest_file_bytes > flags.max_manifest_tree_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        limits::kManifestFileBytes.flag, ": must not be over ", limits::kManifestTreeBytes.flag));
  }
  bool ssh = absl::StartsWith(flags.git_url, "ssh://") ||
             (flags.git_url.find("://") == std::string::npos &&
              flags.git_url.find(':') != std::string::npos && flags.git_url[0] != '/');
  if (ssh && flags.git_ssh_key_path.empty()) {
    return absl::InvalidArgumentError("--git_ssh_key_path: required for ssh URLs");
  }
  if (ssh && flags.git_known_hosts_path.empty()) {
    return absl::InvalidArgumentError(
        "--git_known_hosts_path: required for ssh URLs (unknown hosts are refused)");
  }
#ifndef FERRY_HAVE_RNP
  if (flags.git_signing_format == "openpgp") {
    return absl::InvalidArgumentError(
        "--git_signing_format=openpgp is not supported by this build (built without librnp): "
        "use an SSH key (ssh)");
  }
#endif
  if (flags.git_signing_format != "ssh" && flags.git_signing_format != "openpgp") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--git_signing_format: \"", flags.git_signing_format, "\" is not ssh or openpgp"));
  }
  if (flags.git_verify_signatures) {
    if (flags.git_signing_format == "openpgp" && !flags.git_signing_key_path.empty()) {
      // Verification is SSH only: Ferry's own OpenPGP-signed commits would never be served.
      return absl::InvalidArgumentError(
          "--git_signing_format=openpgp cannot be used with --git_verify_signatures: "
          "signatures are verified for SSH keys only (sign with an SSH key, or do not verify)");
    }
    if (flags.git_allowed_signers_path.empty()) {
      return absl::InvalidArgumentError(
          "--git_allowed_signers_path: required with --git_verify_signatures");
    }
    absl::StatusOr<std::unique_ptr<SshVerifier>> verifier =
        SshVerifier::Create(flags.git_allowed_signers_path);
    if (!verifier.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--git_allowed_signers_path: ", verifier.status().message()));
    }
    config.writer.verifier = *std::move(verifier);
  } else if (!flags.git_allowed_signers_path.empty()) {
    return absl::InvalidArgumentError(
        "--git_allowed_signers_path: only used with --git_verify_signatures");
  }
  config.signing_key_path = flags.git_signing_key_path;
  config.signing_format = flags.git_signing_format;
  config.repository.url = flags.git_url;
  config.repository.branch = flags.git_branch;
  config.repository.mirror_dir = (std::filesystem::path(flags.state_dir) / "mirror.git").string();
  config.repository.notes_ref = flags.git_notes_ref;
  config.repository.tags = {flags.git_sync_tag};
  config.repository.ssh_key_path = flags.git_ssh_key_path;
  config.repository.known_hosts_path = flags.git_known_hosts_path;
  config.repository.https_credentials_path = flags.git_https_credentials_path;
  config.repository.ca_path = flags.git_ca_path;
  config.repository.max_file_bytes = flags.max_manifest_file_bytes;
  config.repository.max_tree_bytes = flags.max_manifest_tree_bytes;
  config.writer.paths = flags.git_paths;
  config.writer.committer = {flags.git_user, flags.git_email};
  config.writer.message_suffix = flags.git_ci_skip ? "[ci skip]" : "";
  config.writer.readonly = flags.git_readonly;
  config.writer.push_branch = flags.git_push_branch;
  config.writer.push_branch_force = flags.git_push_branch_force;
  absl::StatusOr<std::shared_ptr<const CommitTemplate>> commit_template = CommitTemplateOf(flags);
  if (!commit_template.ok()) return commit_template.status();
  config.writer.commit_template = *std::move(commit_template);
  config.writer.max_commit_message_bytes = flags.max_commit_message_bytes;
  config.writer.max_file_bytes = flags.max_manifest_file_bytes;
  config.writer.push_retries = flags.git_push_retries;
  config.writer.load.default_namespace = flags.default_namespace;
  config.writer.load.limits = flags.manifest_limits;
  const char* path_env = std::getenv("PATH");
  KustomizeOptions& kustomize = config.writer.kustomize;
  kustomize.build.path_env = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  kustomize.allow_remote = flags.kustomize_allow_remote;
  kustomize.build.allow_remote = flags.kustomize_allow_remote;
  kustomize.parallelism = flags.kustomize_parallelism;
  if (!absl::ParseDuration(flags.kustomize_timeout, &kustomize.build.timeout) ||
      kustomize.build.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kustomize_timeout: \"", flags.kustomize_timeout, "\" is not a duration (e.g. 60s)"));
  }
  kustomize.build.max_output_bytes = flags.max_manifest_file_bytes;
  kustomize.max_roots = flags.max_kustomize_roots;
  absl::StatusOr<std::vector<std::string>> command =
      kustomize::ResolveCommand(flags.kustomize_command, kustomize.build.path_env);
  if (command.ok()) {
    kustomize.build.command = *std::move(command);
  } else if (!flags.kustomize_command.empty()) {
    return absl::InvalidArgumentError(command.status().message());  // named: must exist
  } else {
    kustomize.missing_command = std::string(command.status().message());
  }
  config.sync_tag = flags.git_sync_tag;
  config.ssh_key_path = flags.git_ssh_key_path;
  config.max_commit_message_bytes = flags.max_commit_message_bytes;
  config.max_workload_index_bytes = flags.max_workload_index_bytes;
  absl::StatusOr<kube::LeaderElectionConfig> leader =
      kube::ParseLeaderElection(flags.leader, LeaseNameFor(flags.git_url, flags.git_branch));
  if (!leader.ok()) return leader.status();
  config.leader = *std::move(leader);
  config.kubeconfig = flags.kubeconfig;
  config.context = flags.context;
  return config;
}

absl::StatusOr<std::shared_ptr<Signer>> MakeSigner(const Config& config, SignerMetrics* metrics) {
  if (config.signing_key_path.empty()) return std::shared_ptr<Signer>();
  absl::StatusOr<std::unique_ptr<Signer>> signer;
#ifdef FERRY_HAVE_RNP
  if (config.signing_format == "openpgp") {
    signer = OpenPgpSigner::Create(config.signing_key_path, metrics);
  } else {
    signer = SshSigner::Create(config.signing_key_path, metrics);
  }
#else
  signer = SshSigner::Create(config.signing_key_path, metrics);
#endif
  if (!signer.ok()) {
    return absl::Status(absl::IsUnavailable(signer.status()) ? absl::StatusCode::kUnavailable
                                                             : absl::StatusCode::kInvalidArgument,
                        absl::StrCat("--git_signing_key_path: ", signer.status().message()));
  }
  if (config.writer.verifier != nullptr) {
    // Ferry's own commits are verified too: a key the allowed signers do not hold would be
    // found only after the first push (then every write waits for a verified head).
    constexpr char kProbe[] = "ferry: is the signing key an allowed signer?\n";
    absl::StatusOr<std::string> probe = (*signer)->Sign(kProbe);
    if (!probe.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--git_signing_key_path: ", probe.status().message()));
    }
    if (absl::Status checked = config.writer.verifier->Verify(kProbe, *probe); !checked.ok()) {
      return absl::Status(
          absl::IsPermissionDenied(checked) ? absl::StatusCode::kInvalidArgument : checked.code(),
          absl::StrCat("--git_allowed_signers_path does not allow --git_signing_key_path's key (",
                       (*signer)->key().fingerprint,
                       "), so Ferry's own commits would not be served: ", checked.message()));
    }
  }
  return std::shared_ptr<Signer>(*std::move(signer));
}

}  // namespace ferry::git_writer
