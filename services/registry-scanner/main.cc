// ferry-registry-scanner: watches container registries for new image tags.
#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>

#include "lib/http/curl_http_client.h"
#include "lib/kube/election.h"
#include "lib/log/log.h"
#include "lib/runtime/poller.h"
#include "lib/runtime/start_service.h"
#include "services/registry-scanner/cache.h"
#include "services/registry-scanner/config.h"
#include "services/registry-scanner/metered_http_client.h"
#include "services/registry-scanner/rate_limited_http_client.h"
#include "services/registry-scanner/registry_scanner_service.h"
#include "services/registry-scanner/scanner.h"
#include "services/registry-scanner/webhook.h"

int main(int argc, char** argv) {
  using namespace ferry::registry_scanner;
  ferry::runtime::ServiceStart<Flags, Config> start(
      argc, argv, kComponent,
      "ferry-registry-scanner: watches container registries for new image tags", AddFlags, ToConfig,
      {.internal = true});
  if (!start.ok()) return start.exit_code();
  Config& config = start.config();

  absl::StatusOr<CredentialStore> credentials = CredentialStore::Load(config.docker_config_paths);
  if (!credentials.ok()) return start.ConfigError(credentials.status());
  absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Open(config.cache_path);
  if (!cache.ok()) return start.ConfigError(cache.status());

  auto registry = std::make_shared<prometheus::Registry>();
  // --leader_elect: only the leader scans and takes the watch list (ScannerOptions::permit);
  // a standby serves its cache and is not ready.
  absl::StatusOr<ferry::kube::Election> election = ferry::kube::MakeElection(
      config.leader, config.kubeconfig, config.context, std::string(kComponent.name), *registry);
  if (!election.ok()) return start.ConfigError(election.status());
  ferry::kube::LeaderElector* elector = election->elector.get();
  if (elector != nullptr) config.scanner.permit = [elector] { return elector->WritePermit(); };
  ferry::http::CurlOptions curl_options;
  // Set once the drain timeout has passed (or the server has stopped): registry requests in
  // flight end then instead of waiting out --registry_timeout.
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  curl_options.cancelled = stopping;
  curl_options.ca_path = config.ca_path;
  curl_options.insecure_hosts = config.insecure_hosts;
  const RegistryPolicy& policy = config.registry_policy;
  curl_options.connect_guard = [&policy](const std::string& ip) { return policy.CheckAddress(ip); };
  ferry::http::CurlHttpClient curl(curl_options);
  MeteredHttpClient metered(curl, *registry);
  RateLimitedHttpClient::Options limits;
  limits.requests_per_second = config.registry_rps;
  limits.burst = config.registry_burst;
  limits.max_in_flight = config.registry_concurrency;
  RateLimitedHttpClient http(metered, limits, *registry);
  RegistryClient::Options client_options;
  client_options.request_timeout = config.registry_timeout;
  client_options.insecure_hosts =
      std::set<std::string>(config.insecure_hosts.begin(), config.insecure_hosts.end());
  client_options.check_registry = [&policy](const std::string& r) {
    return policy.CheckRegistry(r);
  };
  client_options.registry_listed = [&policy](const std::string& h) { return policy.Lists(h); };
  RegistryClient client(http, *std::move(credentials), client_options);
  ScannerMetrics metrics(*registry);
  Scanner scanner(client, **cache, config.scanner, metrics);
  // kScanWorkers repositories at once (and one more, a push webhook's, ahead of them), each
  // fetching up to --registry_concurrency tags at once; the rate-limited client keeps every
  // host at --registry_concurrency requests in flight.
  ScanQueue scan_queue(scanner, kScanWorkers);
  // Due scans are checked every second; each repository is listed every --scan_interval.
  ferry::runtime::Poller poller(absl::Seconds(1), [&scanner, &scan_queue, elector] {
    if (elector != nullptr && !elector->IsLeader()) return;
    for (const std::string& repository : scanner.DueRepositories()) scan_queue.Request(repository);
  });
  std::unique_ptr<WebhookServer> webhooks;
  if (config.webhook_address) {
    absl::StatusOr<std::unique_ptr<WebhookServer>> started = WebhookServer::Start(
        *config.webhook_address, config.webhook_secret, config.webhook_max_body_bytes,
        [&scan_queue](const PushHint& hint) {
          // A push someone waits to see deployed: its scan goes ahead of the due ones.
          bool queued =
              scan_queue.Request(hint.repository, hint.tag, ferry::http::Priority::kInteractive);
          ferry::log::Info(
              "webhook", {{"repository", hint.repository}, {"tag", hint.tag}, {"queued", queued}});
        },
        *registry,
        // A standby answers 503: the registry retries, and reaches the leader.
        config.scanner.permit);
    if (!started.ok()) {
      std::fprintf(stderr, "ferry-registry-scanner: %s\n",
                   std::string(started.status().message()).c_str());
      return 2;
    }
    webhooks = *std::move(started);
    ferry::log::Info(
        "webhooks listening",
        {{"webhook_address",
          ferry::runtime::ListenAddress{config.webhook_address->host, webhooks->port()}.ToString()},
         {"webhook_port", webhooks->port()}});
  }
  RegistryScannerService service(scanner, client, config.scanner.metadata, policy,
                                 config.scanner.permit);
  // At the drain deadline the registry requests in flight are cancelled (libcurl's progress
  // callback checks the flag about once a second).
  config.server.at_drain_deadline = [stopping] { stopping->store(true); };
  // Readiness ("readiness" health check) follows leadership with --leader_elect.
  if (elector != nullptr) elector->Start();
  const int exit_code = ferry::runtime::ServeUntilSignal(
      config.server, {{&service, ferry::v1::RegistryScanner::service_full_name()}}, registry,
      ferry::kube::ReadinessFollowsLeadership(elector));
  stopping->store(true);  // the scans still running end before the queue is destroyed
  if (elector != nullptr) elector->Stop();  // releases the Lease: a standby takes over at once
  return exit_code;
}
