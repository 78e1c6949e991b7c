#include "services/registry-scanner/config.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace ferry::registry_scanner {

void AddFlags(CLI::App& app, Flags& flags) {
  // --grpc_address, --metrics_address, --drain_timeout, --log_format, --log_level:
  // documented in lib/runtime/flags.h.
  runtime::AddServerFlags(app, kComponent, flags.server);
  // Where the tag cache (SQLite, cache.db) lives; keep it on a volume to survive restarts.
  app.add_option("--state_dir", flags.state_dir, "Directory for the tag cache")
      ->envname("FERRY_STATE_DIR")
      ->capture_default_str();
  // Registries reached over plain http ("host:port"); repeatable or comma-separated.
  app.add_option("--registry_insecure_hosts", flags.insecure_hosts,
                 "Registry hosts allowed over plain http")
      ->envname("FERRY_REGISTRY_INSECURE_HOSTS")
      ->delimiter(',');
  // Docker config.json files with registry credentials (mounted Secrets); repeatable.
  app.add_option("--docker_config_path", flags.docker_config_paths,
                 "Docker config.json with registry credentials")
      ->envname("FERRY_DOCKER_CONFIG_PATH")
      ->delimiter(',');
  // CA bundle (PEM) for registries with a private CA.
  app.add_option("--registry_ca_path", flags.ca_path, "CA bundle for registries")
      ->envname("FERRY_REGISTRY_CA_PATH");
  // Platform whose image describes a multi-platform tag (creation time, labels).
  app.add_option("--platform", flags.platform, "os/arch[/variant] to describe")
      ->envname("FERRY_PLATFORM")
      ->capture_default_str();
  // How often each watched repository's tags are listed.
  app.add_option("--scan_interval", flags.scan_interval, "Tag listing interval, e.g. 5m")
      ->envname("FERRY_SCAN_INTERVAL")
      ->capture_default_str();
  // How long one registry request may take before it counts as failed.
  app.add_option("--registry_timeout", flags.registry_timeout, "Per-request timeout, e.g. 30s")
      ->envname("FERRY_REGISTRY_TIMEOUT")
      ->capture_default_str();
  // Prefer org.opencontainers.image.created / org.label-schema.build-date over the config's
  // creation time (they are used anyway when that is missing or zero).
  app.add_flag("--registry_use_labels", flags.use_labels, "Creation time from labels first")
      ->envname("FERRY_REGISTRY_USE_LABELS");
  // Requests per second per registry host, and how many may go at once after a pause.
  app.add_option("--registry_rps", flags.registry_rps, "Requests per second per registry host")
      ->envname("FERRY_REGISTRY_RPS")
      ->capture_default_str();
  app.add_option("--registry_burst", flags.registry_burst, "Burst of requests per registry host")
      ->envname("FERRY_REGISTRY_BURST")
      ->capture_default_str();
  // Requests in flight at once per registry host (a slow registry holds only its own).
  app.add_option("--registry_concurrency", flags.registry_concurrency,
                 "Concurrent requests per registry host (also the tags of one repository "
                 "fetched at once during a scan)")
      ->envname("FERRY_REGISTRY_CONCURRENCY")
      ->capture_default_str();
  // Where registries POST push notifications (HOST:PORT); off when empty.
  app.add_option("--webhook_address", flags.webhook_address, "Push webhook endpoint HOST:PORT")
      ->envname("FERRY_WEBHOOK_ADDRESS");
  // File holding the shared webhook secret (bearer token or HMAC-SHA256 key).
  app.add_option("--webhook_secret_path", flags.webhook_secret_path, "File with the webhook secret")
      ->envname("FERRY_WEBHOOK_SECRET_PATH");
  // Registry hosts the scanner may reach ("host", "host:port", "*.example.com"); empty: any
  // host except link-local and cloud metadata ones. Repeatable or comma-separated.
  app.add_option("--registry_allow_hosts", flags.registry_allow_hosts,
                 "Registry hosts the scanner may reach (empty: any)")
      ->envname("FERRY_REGISTRY_ALLOW_HOSTS")
      ->delimiter(',');
  // Lets registry names and connections reach link-local and cloud metadata addresses
  // (169.254.0.0/16, fe80::/10, metadata.google.internal, ...), refused by default.
  app.add_flag("--registry_allow_link_local", flags.registry_allow_link_local,
               "Allow link-local and cloud metadata registry addresses")
      ->envname("FERRY_REGISTRY_ALLOW_LINK_LOCAL");
  // Largest webhook body read; larger ones get 413 before parsing (docs/limits.md).
  app.add_option(std::string(limits::kWebhookBody.flag), flags.webhook_max_body_bytes,
                 "Largest push webhook body, in bytes")
      ->envname("FERRY_WEBHOOK_MAX_BODY_BYTES")
      ->capture_default_str();
  // With --leader_elect: the kubeconfig that reaches the Lease (empty inside a pod: its
  // service account), and a context of it other than its current-context.
  app.add_option("--kubeconfig", flags.kubeconfig, "kubeconfig file for the Lease")
      ->envname("FERRY_KUBECONFIG");
  app.add_option("--context", flags.context, "kubeconfig context")->envname("FERRY_CONTEXT");
  // --leader_elect and its Lease (lib/kube/election.h): only the leader scans registries and
  // takes the watch list; a standby answers Watch and scans with UNAVAILABLE naming the
  // leader, serves what its cache holds, and reports not ready.
  kube::AddLeaderElectionFlags(app, flags.leader, "scans registries");
}

absl::StatusOr<Config> ToConfig(const Flags& flags) {
  Config config;
  absl::StatusOr<runtime::ServerOptions> server =
      runtime::ToServerOptions(kComponent, flags.server);
  if (!server.ok()) return server.status();
  config.server = *std::move(server);
  if (flags.state_dir.empty()) return absl::InvalidArgumentError("--state_dir: required");
  config.cache_path = flags.state_dir + "/cache.db";
  absl::StatusOr<PlatformSpec> platform = PlatformSpec::Parse(flags.platform);
  if (!platform.ok())
    return absl::InvalidArgumentError(absl::StrCat("--platform: ", platform.status().message()));
  config.scanner.metadata.platform = *platform;
  config.scanner.metadata.prefer_labels = flags.use_labels;
  if (!absl::ParseDuration(flags.registry_timeout, &config.registry_timeout) ||
      config.registry_timeout < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(absl::StrCat("--registry_timeout: '", flags.registry_timeout,
                                                   "' is not a duration of 100ms or more"));
  }
  if (!absl::ParseDuration(flags.scan_interval, &config.scanner.scan_interval) ||
      config.scanner.scan_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat("--scan_interval: '", flags.scan_interval,
                                                   "' is not a duration of 1s or more"));
  }
  if (!flags.webhook_address.empty()) {
    absl::StatusOr<runtime::ListenAddress> address =
        runtime::ParseListenAddress(flags.webhook_address);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--webhook_address: ", address.status().message()));
    }
    config.webhook_address = *address;
    std::ifstream in(flags.webhook_secret_path);
    std::getline(in, config.webhook_secret);
    while (!config.webhook_secret.empty() &&
           isspace(static_cast<unsigned char>(config.webhook_secret.back()))) {
      config.webhook_secret.pop_back();
    }
    if (flags.webhook_secret_path.empty() || config.webhook_secret.empty()) {
      return absl::InvalidArgumentError(
          "--webhook_secret_path: a file with a non-empty secret is required with "
          "--webhook_address (unauthenticated webhooks are refused)");
    }
  }
  if (flags.webhook_max_body_bytes == 0) {
    return absl::InvalidArgumentError("--webhook_max_body_bytes must be at least 1");
  }
  config.webhook_max_body_bytes = flags.webhook_max_body_bytes;
  if (!(flags.registry_rps > 0) || !(flags.registry_burst >= 1)) {
    return absl::InvalidArgumentError(
        "--registry_rps must be above 0 and --registry_burst at least 1");
  }
  config.registry_rps = flags.registry_rps;
  config.registry_burst = flags.registry_burst;
  if (flags.registry_concurrency < 1) {
    return absl::InvalidArgumentError("--registry_concurrency must be at least 1");
  }
  config.registry_concurrency = flags.registry_concurrency;
  // A scan fetches as many tags of its repository at once as the host allows requests.
  config.scanner.concurrency = std::min(flags.registry_concurrency, kMaxScanConcurrency);
  absl::StatusOr<RegistryPolicy> policy =
      RegistryPolicy::Create(flags.registry_allow_hosts, flags.registry_allow_link_local);
  if (!policy.ok()) return policy.status();
  config.registry_policy = *std::move(policy);
  config.insecure_hosts = flags.insecure_hosts;
  config.docker_config_paths = flags.docker_config_paths;
  config.ca_path = flags.ca_path;
  config.kubeconfig = flags.kubeconfig;
  config.context = flags.context;
  // Replicas of one installation share the Lease: they are configured alike (the state dir
  // is the same path in every pod of a Deployment).
  absl::StatusOr<kube::LeaderElectionConfig> leader = kube::ParseLeaderElection(
      flags.leader, kube::DefaultLeaseName(kComponent.name, flags.state_dir));
  if (!leader.ok()) return leader.status();
  config.leader = *std::move(leader);
  return config;
}

}  // namespace ferry::registry_scanner
