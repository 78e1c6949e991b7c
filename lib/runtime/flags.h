// Command-line flags every Ferry server binary shares, and the parsing helpers its main()
// uses. Each flag can also come from the environment (FERRY_<FLAG NAME UPPER-CASED>); a flag
// on the command line wins.
//
//   --grpc_address     FERRY_GRPC_ADDRESS     where gRPC listens, HOST:PORT (port 0 = any)
//   --metrics_address  FERRY_METRICS_ADDRESS  where /metrics is served, HOST:PORT
//   --drain_timeout    FERRY_DRAIN_TIMEOUT    how long in-flight RPCs may finish on SIGTERM
//                                             (default 15s; Kubernetes waits 30s by default)
//   --log_format       FERRY_LOG_FORMAT       text | json (default text)
//   --log_level        FERRY_LOG_LEVEL        debug | info | warn | error (default info)
#pragma once

#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "lib/log/log.h"
#include "lib/runtime/server.h"

namespace ferry::runtime {

// A component's identity and default ports.
struct ComponentDefaults {
  // "api", "git-writer", "registry-scanner" or "cluster-syncer".
  std::string name;
  // Default gRPC port (api 3030, git-writer 3031, registry-scanner 3032, cluster-syncer 3033).
  int grpc_port = 0;
  // Default metrics port (9791-9794 in the same order).
  int metrics_port = 0;
};

// The shared flags as given, before validation.
struct ServerFlags {
  std::string grpc_address;
  std::string metrics_address;
  std::string drain_timeout = "15s";
  std::string log_format = "text";
  std::string log_level = "info";
};

// Registers the shared flags on `app`, with defaults from `defaults` (listening on every
// interface, as a pod must).
void AddServerFlags(CLI::App& app, const ComponentDefaults& defaults, ServerFlags& flags);

// Validates the shared flags. InvalidArgument naming the flag ("--grpc_address: ...").
absl::StatusOr<ServerOptions> ToServerOptions(const ComponentDefaults& defaults,
                                              const ServerFlags& flags);

// Logging settings from the shared flags (already validated by ToServerOptions).
void InitLogging(const ComponentDefaults& defaults, const ServerFlags& flags);

// Parses the command line. Returns the exit code when main() should stop now: 0 after
// --help or --version, 2 after a usage error (printed with the program name). Returns
// nullopt to go on.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

// Prints "<program>: <message>" for an invalid configuration and returns exit code 2.
int ConfigError(absl::string_view program, const absl::Status& status);

}  // namespace ferry::runtime
