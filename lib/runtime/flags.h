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
//   --grpc_max_message_bytes                  largest gRPC message received or sent, on the
//                                             server and on channels to peers (16 MiB)
//
// Who may call (deploy/README.md describes the modes; loopback-only local mode needs none):
//   --tls_cert_path, --tls_key_path           serve TLS with this certificate chain and key
//                                             (PEM), reloaded when the files change
//   --tls_client_ca_path                      require callers to present a certificate signed
//                                             by this CA (mutual TLS)
//   --peer_token_path                         a file holding the token Ferry's services share:
//                                             internal services refuse calls without
//                                             "authorization: Bearer <token>"; clients send it
//   --insecure_allow_unauthenticated          let an internal service serve callers it cannot
//                                             authenticate on a non-loopback address
//   --health_address                          also serve only the health service, plaintext,
//                                             here (for Kubernetes gRPC probes, which cannot
//                                             speak TLS); empty: no such port
// Calling peers (the api -> git-writer, scanner, syncer; syncer -> git-writer):
//   --peer_tls_ca_path                        use TLS, verifying peers against this CA
//   --peer_tls_cert_path, --peer_tls_key_path present this certificate to peers (reloaded)
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/limits/limits.h"
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
  int64_t grpc_max_message_bytes = static_cast<int64_t>(limits::kGrpcMessageBytes.default_value);
  std::string tls_cert_path;
  std::string tls_key_path;
  std::string tls_client_ca_path;
  std::string peer_token_path;
  bool insecure_allow_unauthenticated = false;
  std::string health_address;
  std::string peer_tls_ca_path;
  std::string peer_tls_cert_path;
  std::string peer_tls_key_path;
};

// How to reach Ferry's other services (ChannelTo in lib/runtime/channel.h).
struct PeerOptions {
  std::string tls_ca_path;    // empty: plaintext
  std::string tls_cert_path;  // with tls_key_path: presented to the peer (mutual TLS)
  std::string tls_key_path;
  std::string token;  // sent as "authorization: Bearer <token>" when set
  int max_message_bytes = 0;
};

// Registers the shared flags on `app`, with defaults from `defaults` (listening on every
// interface, as a pod must).
void AddServerFlags(CLI::App& app, const ComponentDefaults& defaults, ServerFlags& flags);

// Validates the shared flags and builds the server's TLS credentials (certificate files
// watched for changes). InvalidArgument naming the flag ("--grpc_address: ...", a TLS file
// that cannot be read). Does not require callers to authenticate: see
// AuthenticateInternalCallers.
absl::StatusOr<ServerOptions> ToServerOptions(const ComponentDefaults& defaults,
                                              const ServerFlags& flags);

// For the services only Ferry itself calls (git-writer, registry-scanner, cluster-syncer):
// sets the token callers must send (--peer_token_path), and refuses to serve callers that
// cannot be authenticated — neither a client CA (--tls_client_ca_path) nor a peer token —
// on an address other than loopback, unless --insecure_allow_unauthenticated.
// InvalidArgument saying which flags to set. The api authenticates its callers itself
// (--tokens_path) and does not call this.
absl::Status AuthenticateInternalCallers(const ServerFlags& flags, ServerOptions& options);

// The settings for channels to peers. InvalidArgument naming the flag for a file that cannot
// be read, a certificate without its key, or an empty token file.
absl::StatusOr<PeerOptions> ToPeerOptions(const ServerFlags& flags);

// True for 127.0.0.0/8, ::1 and localhost.
bool IsLoopbackHost(absl::string_view host);

// Logging settings from the shared flags (already validated by ToServerOptions).
void InitLogging(const ComponentDefaults& defaults, const ServerFlags& flags);

// Parses the command line. Returns the exit code when main() should stop now: 0 after
// --help or --version, 2 after a usage error (printed with the program name). Returns
// nullopt to go on.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

// Prints "<program>: <message>" for an invalid configuration and returns exit code 2.
int ConfigError(absl::string_view program, const absl::Status& status);

}  // namespace ferry::runtime
