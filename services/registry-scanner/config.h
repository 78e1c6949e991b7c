// Configuration of ferry-registry-scanner: flags (and FERRY_* environment variables) -> a
// validated Config. Every option is documented next to the flag that sets it, in config.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/kube/election.h"
#include "lib/limits/limits.h"
#include "lib/runtime/flags.h"
#include "lib/runtime/server.h"
#include "services/registry-scanner/registry_policy.h"
#include "services/registry-scanner/scanner.h"

namespace ferry::registry_scanner {

// Identity and default ports of this component.
inline const runtime::ComponentDefaults kComponent{"registry-scanner", 3032, 9793};

// Flags as given on the command line, before validation.
struct Flags {
  runtime::ServerFlags server;
  std::string state_dir = "/var/lib/ferry/registry-scanner";
  std::vector<std::string> insecure_hosts;
  std::vector<std::string> docker_config_paths;
  std::string ca_path;
  std::string platform = "linux/amd64";
  std::string scan_interval = "5m";
  std::string registry_timeout = "30s";
  bool use_labels = false;
  std::string webhook_address;
  std::string webhook_secret_path;
  uint64_t webhook_max_body_bytes = limits::kWebhookBody.default_value;
  double registry_rps = 10;
  double registry_burst = 20;
  int registry_concurrency = 8;
  std::vector<std::string> registry_allow_hosts;
  bool registry_allow_link_local = false;
  std::string kubeconfig;
  std::string context;
  kube::LeaderElectionFlags leader;
};

// The validated configuration.
struct Config {
  runtime::ServerOptions server;
  std::string cache_path;
  std::vector<std::string> insecure_hosts;
  std::vector<std::string> docker_config_paths;
  std::string ca_path;
  ScannerOptions scanner;
  std::optional<runtime::ListenAddress> webhook_address;  // unset: no webhook endpoint
  double registry_rps = 10;
  double registry_burst = 20;
  int registry_concurrency = 8;
  absl::Duration registry_timeout = absl::Seconds(30);
  std::string webhook_secret;
  uint64_t webhook_max_body_bytes = limits::kWebhookBody.default_value;
  RegistryPolicy registry_policy;  // --registry_allow_hosts, --registry_allow_link_local
  std::string kubeconfig;          // with --leader_elect; empty: the pod's service account
  std::string context;
  kube::LeaderElectionConfig leader;  // lease "ferry-registry-scanner-" + a hash of --state_dir
};

// Registers every flag of ferry-registry-scanner on `app`.
void AddFlags(CLI::App& app, Flags& flags);

// Validates `flags`. InvalidArgument naming the offending flag.
absl::StatusOr<Config> ToConfig(const Flags& flags);

}  // namespace ferry::registry_scanner
