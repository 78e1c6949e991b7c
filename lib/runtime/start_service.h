// The start-up every Ferry server binary shares, in one order: block the shutdown signals,
// guard the stop, parse the command line, turn the flags into the service's validated
// Config, make sure internal callers are authenticated, read how to reach peers, then set up
// logging. A main() states only what is its own (its flags, its Config, whether it is
// internal or calls peers) and goes on with what it gets back:
//
//   int main(int argc, char** argv) {
//     ferry::runtime::ServiceStart<Flags, Config> start(
//         argc, argv, kComponent, "ferry-cluster-syncer: keeps the cluster in sync ...",
//         AddFlags, ToConfig, {.internal = true, .calls_peers = true});
//     if (!start.ok()) return start.exit_code();
//     Config& config = start.config();
//     ...
//     if (!access.ok()) return start.ConfigError(access.status());
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/runtime/flags.h"
#include "lib/runtime/server.h"
#include "lib/runtime/signals.h"

namespace ferry::runtime {

// The shared steps once a service's Config is valid: AuthenticateInternalCallers on
// `options` when `internal`, ToPeerOptions when `calls_peers` (else nullopt), then
// InitLogging. Errors (InvalidArgument naming the flag) are those of the first two; logging
// is not set up then. ServiceStart's second half, not templated.
absl::StatusOr<std::optional<PeerOptions>> SecureAndInitLogging(const ComponentDefaults& component,
                                                                const ServerFlags& flags,
                                                                ServerOptions& options,
                                                                bool internal, bool calls_peers);

// A service's start-up, done by the constructor; declare it first thing in main(). `Flags`
// has a `runtime::ServerFlags server` member, `Config` a `runtime::ServerOptions server`
// member. Not thread-safe (main()'s own).
template <typename Flags, typename Config>
class ServiceStart {
 public:
  // What differs between services besides their flags and Config.
  struct Options {
    // Only Ferry's services call it (git-writer, registry-scanner, cluster-syncer):
    // AuthenticateInternalCallers on Config::server. The api authenticates its callers itself.
    bool internal = false;
    // It calls other Ferry services (api, cluster-syncer): peer() is read from the --peer_*
    // flags. Without it they are not read.
    bool calls_peers = false;
    // Optional: runs once the command line is parsed, before to_config. An exit code ends the
    // start there and becomes exit_code() (git-writer's repack child process).
    std::function<std::optional<int>(const Flags&)> after_parse = nullptr;
  };

  // Blocks the shutdown signals (BlockShutdownSignals), holds a StopGuard until destroyed
  // (so declared first, it ends when main() returns, after the teardown), registers the
  // flags with `add_flags` (the service's AddFlags, the shared flags included), parses the
  // command line, validates the flags with `to_config` (the service's ToConfig), then does
  // SecureAndInitLogging. The program is "ferry-<component.name>"; `description` is the
  // first line of --help. Starts no thread.
  ServiceStart(int argc, char** argv, const ComponentDefaults& component,
               const std::string& description, std::function<void(CLI::App&, Flags&)> add_flags,
               std::function<absl::StatusOr<Config>(const Flags&)> to_config,
               const Options& options = {})
      : program_("ferry-" + component.name) {
    BlockShutdownSignals();
    CLI::App app{description, program_};
    Flags flags;
    add_flags(app, flags);
    if (std::optional<int> exit_code = ParseCommandLine(app, argc, argv)) {
      exit_code_ = *exit_code;
      return;
    }
    if (options.after_parse) {
      if (std::optional<int> exit_code = options.after_parse(flags)) {
        exit_code_ = *exit_code;
        return;
      }
    }
    absl::StatusOr<Config> config = to_config(flags);
    if (!config.ok()) {
      exit_code_ = ConfigError(config.status());
      return;
    }
    absl::StatusOr<std::optional<PeerOptions>> peer = SecureAndInitLogging(
        component, flags.server, config->server, options.internal, options.calls_peers);
    if (!peer.ok()) {
      exit_code_ = ConfigError(peer.status());
      return;
    }
    config_ = *std::move(config);
    peer_ = *std::move(peer);
  }
  ServiceStart(const ServiceStart&) = delete;
  ServiceStart& operator=(const ServiceStart&) = delete;

  // Whether the service started: its configuration is valid and logging is set up.
  bool ok() const { return config_.has_value(); }
  // When !ok(), the code main() returns: 0 after --help or --version; 2 after a usage error,
  // an invalid configuration, unauthenticated internal callers or unreadable --peer_* files
  // (each printed on stderr as "<program>: <message>"); after_parse's code when it gave one.
  int exit_code() const { return exit_code_; }
  // The validated configuration. Requires ok().
  Config& config() { return *config_; }
  // How to reach peers (ChannelTo). Requires ok() and Options::calls_peers.
  const PeerOptions& peer() const { return *peer_; }
  // "ferry-api", ...
  const std::string& program() const { return program_; }
  // For main()'s own configuration errors (a file named by a flag that cannot be read):
  // prints "<program>: <message>" on stderr and returns exit code 2.
  int ConfigError(const absl::Status& status) const {
    return runtime::ConfigError(program_, status);
  }

 private:
  const std::string program_;
  StopGuard stop_guard_;
  int exit_code_ = 0;
  std::optional<Config> config_;
  std::optional<PeerOptions> peer_;
};

}  // namespace ferry::runtime
