#include "services/api/config.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/manifest/workload_id.h"

namespace ferry::api {

void AddFlags(CLI::App& app, Flags& flags) {
  // --grpc_address, --metrics_address, --drain_timeout, --log_format, --log_level:
  // documented in lib/runtime/flags.h.
  runtime::AddServerFlags(app, kComponent, flags.server);
  // The three services behind the api.
  app.add_option("--git_writer_address", flags.git_writer_address, "git-writer HOST:PORT")
      ->envname("FERRY_GIT_WRITER_ADDRESS")
      ->capture_default_str();
  app.add_option("--registry_scanner_address", flags.registry_scanner_address,
                 "registry-scanner HOST:PORT")
      ->envname("FERRY_REGISTRY_SCANNER_ADDRESS")
      ->capture_default_str();
  app.add_option("--cluster_syncer_address", flags.cluster_syncer_address,
                 "cluster-syncer HOST:PORT")
      ->envname("FERRY_CLUSTER_SYNCER_ADDRESS")
      ->capture_default_str();
  // Several repos and clusters (ParseSource): each --source names a git-writer and the
  // cluster-syncer that syncs its repo; then --git_writer_address and
  // --cluster_syncer_address must stay unset. Repeatable, at most kMaxSources.
  app.add_option("--source", flags.sources,
                 "NAME=GIT_WRITER_ADDRESS,CLUSTER_SYNCER_ADDRESS (repeatable): several repos "
                 "and clusters, each named")
      ->envname("FERRY_SOURCES")
      ->delimiter(';');
  // Bearer tokens with their roles (see access.h). Without it the api serves only on a
  // loopback address, to everyone there (local mode).
  app.add_option("--tokens_path", flags.tokens_path, "File of '<read|write> <token> [name]' lines")
      ->envname("FERRY_TOKENS_PATH");
  // TLS for callers (--tls_cert_path, --tls_key_path, --tls_client_ca_path) and for peers
  // (--peer_*): shared flags, lib/runtime/flags.h.
  // Automation: besides reacting to the scanner's new-tag events at once, look for newer
  // tags of automated workloads this often (a safety net for missed events).
  app.add_option("--automation_interval", flags.automation_interval,
                 "Safety-net automation pass interval, e.g. 5m")
      ->envname("FERRY_AUTOMATION_INTERVAL")
      ->capture_default_str();
  // Turns the automation loop off (automated workloads are then only released by hand).
  app.add_flag("!--no_automation", flags.automation, "Do not run the automation loop")
      ->envname("FERRY_NO_AUTOMATION");
  // How many jobs are kept in memory for GetJob/WatchJob/ListJobs; older committed jobs are
  // still answered from the git notes.
  app.add_option("--job_history", flags.job_history, "Jobs kept in memory")
      ->envname("FERRY_JOB_HISTORY")
      ->capture_default_str();
  // Jobs running at the same time (releases, policy changes, syncs), per source (each
  // source has workers of its own); git-writer serializes the commits themselves.
  app.add_option("--job_workers", flags.job_workers, "Jobs run concurrently")
      ->envname("FERRY_JOB_WORKERS")
      ->capture_default_str();
  // A peer that is not connected (restarting, or down) is waited for this long, by jobs and
  // by a request's own calls (UpdatePolicy's check against git, Release's image lookup);
  // then the job fails, or the request answers UNAVAILABLE, naming the peer and its address.
  // 0: no waiting.
  app.add_option("--peer_wait", flags.peer_wait, "Seconds to wait for a peer that is not connected")
      ->envname("FERRY_PEER_WAIT")
      ->capture_default_str();
  // Deadlines of a job's stages, so a peer that accepts calls but never answers holds a
  // worker for a bounded time.
  const struct {
    const limits::Limit& limit;
    int* value;
    const char* env;
    const char* help;
  } stages[] = {
      {limits::kJobPlanningTimeout, &flags.job_planning_timeout, "FERRY_JOB_PLANNING_TIMEOUT",
       "Seconds a job may spend planning (reading git, the cluster, the registry)"},
      {limits::kJobCommitTimeout, &flags.job_commit_timeout, "FERRY_JOB_COMMIT_TIMEOUT",
       "Seconds a job's commit and push through git-writer may take"},
      {limits::kJobApplyTimeout, &flags.job_apply_timeout, "FERRY_JOB_APPLY_TIMEOUT",
       "Seconds cluster-syncer may take to apply a job's revision"},
      {limits::kJobRolloutTimeout, &flags.job_rollout_timeout, "FERRY_JOB_ROLLOUT_TIMEOUT",
       "Seconds a release waits for its rollout when it gives no timeout"},
  };
  for (const auto& stage : stages) {
    app.add_option(std::string(stage.limit.flag), *stage.value, stage.help)
        ->envname(stage.env)
        ->capture_default_str();
  }
  // Notifications (notifier.h): a JSON POST with a Slack-compatible "text" to each URL for
  // releases, automated releases, reverts, locks, failed syncs and failed jobs. Repeatable.
  // "url_file=PATH" instead of the URL reads it from a file (one line, checked as an inline
  // URL is): a URL with a secret in it (Slack's webhooks) then comes from a file mounted from
  // a Secret, not from the command line (/proc/PID/cmdline) or the Deployment spec.
  // ",token_file=PATH" after either sends the file's content (one line) as a bearer token to
  // that URL alone. The URL's path and query and the token are never logged: the logs and
  // metrics name a URL by its position and host ("notify_url #1 (host hooks.example)").
  app.add_option("--notify_url", flags.notify_urls,
                 "POST notifications to URL (http:// or https://), repeatable: "
                 "--notify_url=URL or --notify_url=url_file=PATH (the URL read from a file, "
                 "for a URL holding a secret), each optionally followed by ,token_file=PATH "
                 "(a bearer token)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->expected(1);
  // Replicas. The Kubernetes API, for the automation's Lease and the shared job records
  // (used only with --leader_elect): a kubeconfig file, empty inside a pod (its service
  // account is used), and a context of it other than its current-context.
  app.add_option("--kubeconfig", flags.kubeconfig, "kubeconfig file; empty for in-cluster")
      ->envname("FERRY_KUBECONFIG");
  app.add_option("--context", flags.context, "kubeconfig context")->envname("FERRY_CONTEXT");
  // --leader_elect and its Lease: lib/kube/election.h. Every replica serves the API and runs
  // the jobs people submit (git-writer serializes the commits); only the leader automates.
  kube::AddLeaderElectionFlags(app, flags.leader, "runs the automation loop");
}

std::string LeaseNameFor(const std::vector<SourceConfig>& sources) {
  // One unnamed source keeps the name it always had.
  std::string key;
  for (const SourceConfig& source : sources) {
    if (!key.empty()) key += "\n";
    absl::StrAppend(&key, source.name.empty() ? "" : absl::StrCat(source.name, "/"),
                    "git-writer=", source.git_writer_address);
  }
  return kube::DefaultLeaseName(kComponent.name, key);
}

absl::StatusOr<SourceConfig> ParseSource(const std::string& value) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--source: '", value.substr(0, 200), "': ", why,
                     " (expected NAME=GIT_WRITER_ADDRESS,CLUSTER_SYNCER_ADDRESS, e.g. "
                     "prod=git-writer-prod:3031,cluster-syncer-prod:3033)"));
  };
  const size_t eq = value.find('=');
  if (eq == std::string::npos) return invalid("no '='");
  SourceConfig source;
  source.name = value.substr(0, eq);
  if (!manifest::IsDnsLabel(source.name)) {
    return invalid(
        "NAME must be a DNS label: lower-case letters, digits and '-', at most 63 characters");
  }
  const std::string addresses = value.substr(eq + 1);
  if (addresses.find_first_of(" \t\r\n=") != std::string::npos) {
    return invalid("an address has a blank or '='");
  }
  std::vector<std::string> parts = absl::StrSplit(addresses, ',');
  // Each address may be a replica list (lib/runtime/channel.h): "ipv4:A,B" or a dns: name.
  // Two parts are the two addresses; with more, the cluster-syncer's address is the one
  // part after the first that starts a target of its own (ipv4:, ipv6:, dns:, unix:).
  auto has_scheme = [](const std::string& part) {
    for (const char* scheme : {"ipv4:", "ipv6:", "dns:", "unix:"}) {
      if (absl::StartsWith(part, scheme)) return true;
    }
    return false;
  };
  // Two parts, unless they are one ipv4:/ipv6: list (the cluster-syncer forgotten).
  const bool one_list =
      parts.size() == 2 &&
      (absl::StartsWith(parts[0], "ipv4:") || absl::StartsWith(parts[0], "ipv6:")) &&
      !has_scheme(parts[1]);
  size_t split = parts.size() == 2 && !one_list ? 1 : 0;
  if (parts.size() > 2) {
    for (size_t i = 1; i < parts.size(); ++i) {
      if (!has_scheme(parts[i])) continue;
      if (split != 0) return invalid("more than one cluster-syncer address");
      split = i;
    }
  }
  if (split == 0) {
    return invalid(
        "two addresses, separated by ',', must follow the name (a replica list of the "
        "cluster-syncer starts with its own ipv4: / ipv6:, or use dns: names)");
  }
  source.git_writer_address =
      absl::StrJoin(std::vector<std::string>(parts.begin(), parts.begin() + split), ",");
  source.cluster_syncer_address =
      absl::StrJoin(std::vector<std::string>(parts.begin() + split, parts.end()), ",");
  for (const std::string* address : {&source.git_writer_address, &source.cluster_syncer_address}) {
    if (address->empty() || absl::StrContains(*address, ",,") || absl::EndsWith(*address, ",")) {
      return invalid("an address is empty");
    }
  }
  return source;
}

std::string NotifyTarget::Describe() const {
  return absl::StrCat("notify_url #", index, " (host ", host, ")");
}

namespace {

constexpr char kUrlFile[] = "url_file=";
constexpr char kTokenFile[] = ",token_file=";

// A file holding one secret (a URL, a token): its content without surrounding whitespace, at
// most `max_bytes`, one line of printable characters without spaces. Errors name the file by
// its path (`what`: "token_file /run/x"), never quote its content: it is a secret even when
// malformed.
absl::StatusOr<std::string> ReadSecretFile(const std::string& flag, const std::string& what,
                                           const std::string& path, size_t max_bytes,
                                           const char* holds) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", what));
  std::string content(max_bytes + 2, '\0');  // a trailing newline is allowed
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<size_t>(in.gcount()));
  if (content.size() > max_bytes + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", what, " is larger than ", max_bytes, " bytes"));
  }
  content = std::string(absl::StripAsciiWhitespace(content));
  const bool printable = std::all_of(content.begin(), content.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
  });
  if (content.empty() || !printable || content.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": ", what, " must hold ", holds, ": one line of printable characters, no spaces"));
  }
  return content;
}

// "host", "host:port" or "[v6]:port" of a URL: sets target.host. InvalidArgument naming `flag`.
absl::Status ParseAuthority(const std::string& flag, const std::string& authority,
                            NotifyTarget& target) {
  if (authority.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": credentials in the URL are not accepted; use ,token_file=PATH"));
  }
  std::string host = authority;
  std::string port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == std::string::npos || close == 1) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": the URL has no host"));
    }
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": the URL's host is malformed"));
      }
      port = authority.substr(close + 2);
    }
  } else if (size_t colon = authority.find(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": the URL has no host"));
  int port_number = 0;
  if (authority.back() == ':' ||
      (!port.empty() && (!absl::SimpleAtoi(port, &port_number) || port_number < 1 ||
                         port_number > 65535 || !absl::ascii_isdigit(port[0])))) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": the URL's port is not a number between 1 and 65535"));
  }
  target.host = authority;
  return absl::OkStatus();
}

// Checks target.url (bounded, http(s), no spaces, a valid authority) and sets target.host to
// what lib/http's HostOfUrl finds (the authority ends at '/', '?' or '#').
absl::Status ParseUrl(const std::string& flag, NotifyTarget& target) {
  const std::string& url = target.url;
  if (url.size() > kMaxNotifyUrlBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": the URL is longer than ", kMaxNotifyUrlBytes, " bytes"));
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": the URL has a space or control character"));
    }
  }
  size_t rest = 0;
  if (absl::StartsWithIgnoreCase(url, "https://")) {
    rest = 8;
  } else if (absl::StartsWithIgnoreCase(url, "http://")) {
    rest = 7;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": the URL must start with http:// or https://"));
  }
  const size_t end = url.find_first_of("/?#", rest);
  return ParseAuthority(
      flag, url.substr(rest, end == std::string::npos ? std::string::npos : end - rest), target);
}

}  // namespace

absl::StatusOr<NotifyTarget> ParseNotifyTarget(const std::string& value, size_t index) {
  NotifyTarget target;
  target.index = index;
  const std::string flag = absl::StrCat("--notify_url #", index);
  // "URL" or "url_file=PATH", then ",token_file=PATH".
  std::string url = value;
  std::string token_file;
  if (size_t at = value.rfind(kTokenFile); at != std::string::npos) {
    url = value.substr(0, at);
    token_file = value.substr(at + sizeof(kTokenFile) - 1);
    if (token_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": token_file= needs a path"));
    }
  }
  if (absl::StartsWith(url, kUrlFile)) {
    const std::string url_file = url.substr(sizeof(kUrlFile) - 1);
    if (url_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": url_file= needs a path"));
    }
    absl::StatusOr<std::string> read =
        ReadSecretFile(flag, "url_file " + url_file, url_file, kMaxNotifyUrlBytes, "one URL");
    if (!read.ok()) return read.status();
    url = *std::move(read);
  }
  target.url = std::move(url);
  if (absl::Status parsed = ParseUrl(flag, target); !parsed.ok()) return parsed;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> token = ReadSecretFile(flag, "token_file " + token_file, token_file,
                                                       kMaxNotifyTokenBytes, "one token");
    if (!token.ok()) return token.status();
    target.token = *std::move(token);
  }
  return target;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

namespace {

// The sources of `flags`: one unnamed, or the --source flags' sorted by name.
absl::StatusOr<std::vector<SourceConfig>> SourcesOf(const Flags& flags) {
  if (flags.sources.empty()) {
    return std::vector<SourceConfig>{{"", flags.git_writer_address, flags.cluster_syncer_address}};
  }
  const Flags defaults;
  if (flags.git_writer_address != defaults.git_writer_address ||
      flags.cluster_syncer_address != defaults.cluster_syncer_address) {
    return absl::InvalidArgumentError(
        "--source: with --source, leave --git_writer_address and --cluster_syncer_address "
        "unset (each source names its own)");
  }
  if (flags.sources.size() > kMaxSources) {
    return absl::InvalidArgumentError(absl::StrCat("--source: at most ", kMaxSources));
  }
  std::map<std::string, SourceConfig> by_name;
  std::set<std::string> addresses;
  for (const std::string& value : flags.sources) {
    absl::StatusOr<SourceConfig> source = ParseSource(value);
    if (!source.ok()) return source.status();
    const std::string name = source->name;
    if (by_name.count(name) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--source: two sources are named '", name, "'; names must be unique"));
    }
    // Two sources of one repo (or one cluster-syncer) would make every workload ambiguous
    // and run two automations on one branch.
    for (const std::string& address : {"git-writer " + source->git_writer_address,
                                       "cluster-syncer " + source->cluster_syncer_address}) {
      if (!addresses.insert(address).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("--source: two sources name ", address, "; each source has its own"));
      }
    }
    by_name.emplace(name, *std::move(source));
  }
  std::vector<SourceConfig> sources;
  for (auto& [name, source] : by_name) sources.push_back(std::move(source));
  return sources;
}

}  // namespace

absl::StatusOr<Config> ToConfig(const Flags& flags) {
  Config config;
  absl::StatusOr<runtime::ServerOptions> server =
      runtime::ToServerOptions(kComponent, flags.server);
  if (!server.ok()) return server.status();
  config.server = *std::move(server);
  for (const auto& [flag, value] : {std::pair<const char*, const std::string*>{
                                        "--git_writer_address", &flags.git_writer_address},
                                    {"--registry_scanner_address", &flags.registry_scanner_address},
                                    {"--cluster_syncer_address", &flags.cluster_syncer_address}}) {
    if (value->empty())
      return absl::InvalidArgumentError(absl::StrCat(flag, ": HOST:PORT is required"));
  }
  config.registry_scanner_address = flags.registry_scanner_address;
  absl::StatusOr<std::vector<SourceConfig>> sources = SourcesOf(flags);
  if (!sources.ok()) return sources.status();
  config.sources = *std::move(sources);
  config.tokens_path = flags.tokens_path;
  if (!absl::ParseDuration(flags.automation_interval, &config.automation_interval) ||
      config.automation_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat("--automation_interval: '",
                                                   flags.automation_interval,
                                                   "' is not a duration of 1s or more"));
  }
  config.automation = flags.automation;
  if (flags.job_history < 10) return absl::InvalidArgumentError("--job_history: 10 or more");
  if (flags.job_workers < 1 || flags.job_workers > 64) {
    return absl::InvalidArgumentError("--job_workers: between 1 and 64");
  }
  config.job_history = static_cast<size_t>(flags.job_history);
  config.job_workers = flags.job_workers;
  if (flags.peer_wait < 0 || flags.peer_wait > 3600) {
    return absl::InvalidArgumentError("--peer_wait: seconds between 0 and 3600");
  }
  config.timeouts.peer_wait = absl::Seconds(flags.peer_wait);
  for (const auto& [flag, value, out] :
       {std::tuple<const char*, int, absl::Duration*>{
            "--job_planning_timeout", flags.job_planning_timeout, &config.timeouts.planning},
        {"--job_commit_timeout", flags.job_commit_timeout, &config.timeouts.commit},
        {"--job_apply_timeout", flags.job_apply_timeout, &config.timeouts.apply},
        {"--job_rollout_timeout", flags.job_rollout_timeout, &config.timeouts.rollout}}) {
    if (value < 1 || value > 24 * 3600) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": seconds between 1 and 86400"));
    }
    *out = absl::Seconds(value);
  }
  if (flags.notify_urls.size() > kMaxNotifyUrls) {
    return absl::InvalidArgumentError(
        absl::StrCat("--notify_url: at most ", kMaxNotifyUrls, " URLs"));
  }
  for (size_t i = 0; i < flags.notify_urls.size(); ++i) {
    absl::StatusOr<NotifyTarget> target = ParseNotifyTarget(flags.notify_urls[i], i + 1);
    if (!target.ok()) return target.status();
    config.notify.push_back(*std::move(target));
  }
  config.kubeconfig = flags.kubeconfig;
  config.context = flags.context;
  absl::StatusOr<kube::LeaderElectionConfig> leader =
      kube::ParseLeaderElection(flags.leader, LeaseNameFor(config.sources));
  if (!leader.ok()) return leader.status();
  config.leader = *std::move(leader);
  if (config.tokens_path.empty() && !IsLoopbackHost(config.server.grpc_address.host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tokens_path is required when --grpc_address is not a loopback address (",
                     config.server.grpc_address.ToString(),
                     "); without tokens the api serves only on 127.0.0.1 / ::1"));
  }
  return config;
}

}  // namespace ferry::api
