// Configuration of ferry-api: flags (and FERRY_* environment variables) -> a validated
// Config. Every option is documented next to the flag that sets it, in config.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/kube/election.h"
#include "lib/limits/limits.h"
#include "lib/runtime/flags.h"
#include "lib/runtime/server.h"

namespace ferry::api {

// Identity and default ports of this component.
inline const runtime::ComponentDefaults kComponent{"api", 3030, 9791};

// How long jobs wait for peers and how long each stage of a job may take (the limits and
// their flags: lib/limits/limits.h, "Jobs and peers"). A stage's calls share its deadline;
// a peer that is not connected is waited for at most `peer_wait` of it, then the call fails
// UNAVAILABLE naming the peer and its address.
struct JobTimeouts {
  absl::Duration peer_wait = absl::Seconds(limits::kPeerWait.default_value);
  absl::Duration planning = absl::Seconds(limits::kJobPlanningTimeout.default_value);
  absl::Duration commit = absl::Seconds(limits::kJobCommitTimeout.default_value);
  absl::Duration apply = absl::Seconds(limits::kJobApplyTimeout.default_value);
  absl::Duration rollout = absl::Seconds(limits::kJobRolloutTimeout.default_value);
};

// One --notify_url: where notifications are POSTed (notifier.h) and the bearer token sent
// with them. `url` may carry a secret in its path or query (Slack's webhooks do): only
// Describe() is ever logged, never `url` or `token`.
struct NotifyTarget {
  std::string url;    // http:// or https://, without user:password@
  std::string host;   // "host[:port]" of `url`
  std::string token;  // from the token file; empty: no Authorization header
  size_t index = 0;   // 1-based position among the --notify_url flags

  // "notify_url #1 (host hooks.example)": how logs and errors name this target.
  std::string Describe() const;
};

// At most this many --notify_url flags, and this many bytes for one URL and one token file.
inline constexpr size_t kMaxNotifyUrls = 16;
inline constexpr size_t kMaxNotifyUrlBytes = 2048;
inline constexpr size_t kMaxNotifyTokenBytes = 4096;

// Parses the `index`-th (1-based) --notify_url value "URL" or "url_file=PATH" (the URL read
// from that file: one line, checked as an inline URL is), either optionally followed by
// ",token_file=PATH", and reads the files. `host` is the URL's authority, ending at '/', '?'
// or '#' as lib/http's HostOfUrl has it. InvalidArgument starting with "--notify_url" and
// naming the target by its index (a file by its path), never by the URL's path or query, a
// file's content or the token.
absl::StatusOr<NotifyTarget> ParseNotifyTarget(const std::string& value, size_t index);

// One source: a repo (its git-writer) and the cluster synced from it (its cluster-syncer).
// Without --source flags the api serves one unnamed source (--git_writer_address,
// --cluster_syncer_address); with them, each is named and every answer names its workloads'
// source.
struct SourceConfig {
  std::string name;  // "" for the one unnamed source
  std::string git_writer_address;
  std::string cluster_syncer_address;
};

// At most this many --source flags.
inline constexpr size_t kMaxSources = 32;

// Parses one --source value "NAME=GIT_WRITER_ADDRESS,CLUSTER_SYNCER_ADDRESS". NAME is a DNS
// label (lower-case letters, digits and '-', at most 63 characters, starting and ending
// with a letter or digit). InvalidArgument starting with "--source".
absl::StatusOr<SourceConfig> ParseSource(const std::string& value);

// Flags as given on the command line, before validation.
struct Flags {
  runtime::ServerFlags server;
  std::string git_writer_address = "127.0.0.1:3031";
  std::string registry_scanner_address = "127.0.0.1:3032";
  std::string cluster_syncer_address = "127.0.0.1:3033";
  std::vector<std::string> sources;  // repeatable --source
  std::string tokens_path;
  std::string automation_interval = "5m";
  bool automation = true;
  int job_history = 1000;
  int job_workers = 4;
  // Seconds; see JobTimeouts.
  int peer_wait = static_cast<int>(limits::kPeerWait.default_value);
  int job_planning_timeout = static_cast<int>(limits::kJobPlanningTimeout.default_value);
  int job_commit_timeout = static_cast<int>(limits::kJobCommitTimeout.default_value);
  int job_apply_timeout = static_cast<int>(limits::kJobApplyTimeout.default_value);
  int job_rollout_timeout = static_cast<int>(limits::kJobRolloutTimeout.default_value);
  std::vector<std::string> notify_urls;  // repeatable --notify_url
  // Replicas (--leader_elect): see Config.
  std::string kubeconfig;
  std::string context;
  kube::LeaderElectionFlags leader;
};

// The validated configuration.
struct Config {
  runtime::ServerOptions server;  // with TLS credentials when configured
  // One unnamed source, or the --source flags' in name order (names unique).
  std::vector<SourceConfig> sources;
  std::string registry_scanner_address;  // one scanner serves every source
  std::string tokens_path;               // empty: local mode (loopback only)
  absl::Duration automation_interval = absl::Minutes(5);
  bool automation = true;
  size_t job_history = 1000;
  int job_workers = 4;
  JobTimeouts timeouts;
  std::vector<NotifyTarget> notify;  // empty: no notifications
  // Several replicas behind one Service (--leader_elect): the automation runs only on the
  // replica holding the Lease (lease name LeaseNameFor(sources) unless given),
  // and the jobs are shared through the Kubernetes API (replication.h). The API server is
  // reached with `kubeconfig` / `context`, or the pod's service account when `kubeconfig`
  // is empty; both are unused without --leader_elect.
  std::string kubeconfig;
  std::string context;
  kube::LeaderElectionConfig leader;
};

// The default Lease of the api's automation: one per set of git-writers, i.e. of repos and
// branches (each git-writer serves one). Replicas of one installation name their sources'
// git-writers by the same addresses (their Services) and so share the Lease; two
// installations writing to different repos never do.
std::string LeaseNameFor(const std::vector<SourceConfig>& sources);

// Registers every flag of ferry-api on `app`.
void AddFlags(CLI::App& app, Flags& flags);

// Validates `flags` (and reads the TLS files). InvalidArgument naming the offending flag.
absl::StatusOr<Config> ToConfig(const Flags& flags);

// True for 127.0.0.0/8, ::1 and localhost.
bool IsLoopbackHost(const std::string& host);

}  // namespace ferry::api
