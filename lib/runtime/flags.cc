#include "lib/runtime/flags.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "lib/limits/limits.h"

namespace ferry::runtime {
namespace {

absl::Status FlagError(absl::string_view flag, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", status.message()));
}

// Reads a whole file named by --`flag` (never logs or returns its content in an error).
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// InvalidArgument unless every non-empty path of `files` ({flag, path}) can be read.
absl::Status CheckReadable(
    std::initializer_list<std::pair<const char*, const std::string*>> files) {
  for (const auto& [flag, path] : files) {
    if (path->empty()) continue;
    if (absl::StatusOr<std::string> read = ReadFlagFile(flag, *path); !read.ok()) {
      return read.status();
    }
  }
  return absl::OkStatus();
}

// How often TLS certificate files are checked for changes (cert-manager renews a Secret and
// the kubelet updates the mounted files; new connections use the new pair).
constexpr unsigned kCertificateRefreshSeconds = 5;

}  // namespace

void AddServerFlags(CLI::App& app, const ComponentDefaults& defaults, ServerFlags& flags) {
  flags.grpc_address = absl::StrCat("0.0.0.0:", defaults.grpc_port);
  flags.metrics_address = absl::StrCat("0.0.0.0:", defaults.metrics_port);
  app.add_option("--grpc_address", flags.grpc_address, "Where gRPC listens, HOST:PORT (0 = any)")
      ->envname("FERRY_GRPC_ADDRESS")
      ->capture_default_str();
  app.add_option("--metrics_address", flags.metrics_address,
                 "Where Prometheus /metrics is served, HOST:PORT (0 = any)")
      ->envname("FERRY_METRICS_ADDRESS")
      ->capture_default_str();
  app.add_option("--drain_timeout", flags.drain_timeout,
                 "How long in-flight RPCs may run after SIGTERM, e.g. 15s")
      ->envname("FERRY_DRAIN_TIMEOUT")
      ->capture_default_str();
  app.add_option("--log_format", flags.log_format, "Log format: text or json")
      ->envname("FERRY_LOG_FORMAT")
      ->capture_default_str();
  app.add_option("--log_level", flags.log_level, "Log level: debug, info, warn or error")
      ->envname("FERRY_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--grpc_max_message_bytes", flags.grpc_max_message_bytes,
                 "Largest gRPC message received or sent, here and to peers")
      ->envname("FERRY_GRPC_MAX_MESSAGE_BYTES")
      ->capture_default_str();
  app.add_option("--tls_cert_path", flags.tls_cert_path,
                 "Serve TLS with this certificate chain (PEM; reloaded when it changes)")
      ->envname("FERRY_TLS_CERT_PATH");
  app.add_option("--tls_key_path", flags.tls_key_path, "TLS private key (PEM)")
      ->envname("FERRY_TLS_KEY_PATH");
  app.add_option("--tls_client_ca_path", flags.tls_client_ca_path,
                 "Require callers' certificates signed by this CA (PEM): mutual TLS")
      ->envname("FERRY_TLS_CLIENT_CA_PATH");
  app.add_option("--peer_token_path", flags.peer_token_path,
                 "File with the token Ferry's services share (required from callers of "
                 "internal services, sent to peers)")
      ->envname("FERRY_PEER_TOKEN_PATH");
  app.add_flag("--insecure_allow_unauthenticated", flags.insecure_allow_unauthenticated,
               "Serve unauthenticated callers on a non-loopback address (internal services)")
      ->envname("FERRY_INSECURE_ALLOW_UNAUTHENTICATED");
  app.add_option("--health_address", flags.health_address,
                 "Also serve only gRPC health, plaintext, on HOST:PORT (for probes)")
      ->envname("FERRY_HEALTH_ADDRESS");
  app.add_option("--peer_tls_ca_path", flags.peer_tls_ca_path,
                 "Reach peers over TLS, verifying them against this CA (PEM)")
      ->envname("FERRY_PEER_TLS_CA_PATH");
  app.add_option("--peer_tls_cert_path", flags.peer_tls_cert_path,
                 "Certificate chain presented to peers (PEM; reloaded when it changes)")
      ->envname("FERRY_PEER_TLS_CERT_PATH");
  app.add_option("--peer_tls_key_path", flags.peer_tls_key_path,
                 "Private key of --peer_tls_cert_path (PEM)")
      ->envname("FERRY_PEER_TLS_KEY_PATH");
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::StatusOr<ServerOptions> ToServerOptions(const ComponentDefaults& defaults,
                                              const ServerFlags& flags) {
  ServerOptions options;
  options.component = defaults.name;
  absl::StatusOr<ListenAddress> grpc = ParseListenAddress(flags.grpc_address);
  if (!grpc.ok()) return FlagError("grpc_address", grpc.status());
  options.grpc_address = *grpc;
  absl::StatusOr<ListenAddress> metrics = ParseListenAddress(flags.metrics_address);
  if (!metrics.ok()) return FlagError("metrics_address", metrics.status());
  options.metrics_address = *metrics;
  if (options.grpc_address.port != 0 && options.grpc_address.port == options.metrics_address.port &&
      options.grpc_address.host == options.metrics_address.host) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_address: ", flags.metrics_address,
                     " is also the --grpc_address; use another port"));
  }
  if (!absl::ParseDuration(flags.drain_timeout, &options.drain_timeout) ||
      options.drain_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--drain_timeout: '", flags.drain_timeout,
                                                   "' is not a duration (use e.g. 15s or 500ms)"));
  }
  absl::StatusOr<log::Format> format = log::ParseFormat(flags.log_format);
  if (!format.ok()) return FlagError("log_format", format.status());
  absl::StatusOr<log::Level> level = log::ParseLevel(flags.log_level);
  if (!level.ok()) return FlagError("log_level", level.status());
  if (flags.grpc_max_message_bytes < 1024 || flags.grpc_max_message_bytes > (1 << 30)) {
    return absl::InvalidArgumentError(
        "--grpc_max_message_bytes: between 1024 and 1073741824 (1 GiB)");
  }
  options.max_message_bytes = static_cast<int>(flags.grpc_max_message_bytes);
  if (!flags.health_address.empty()) {
    absl::StatusOr<ListenAddress> health = ParseListenAddress(flags.health_address);
    if (!health.ok()) return FlagError("health_address", health.status());
    options.health_address = *health;
  }

  if (flags.tls_cert_path.empty() != flags.tls_key_path.empty()) {
    return absl::InvalidArgumentError("--tls_cert_path and --tls_key_path go together");
  }
  if (!flags.tls_client_ca_path.empty() && flags.tls_cert_path.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_path needs --tls_cert_path and --tls_key_path (mutual TLS is TLS)");
  }
  if (absl::Status s = CheckReadable({{"tls_cert_path", &flags.tls_cert_path},
                                      {"tls_key_path", &flags.tls_key_path},
                                      {"tls_client_ca_path", &flags.tls_client_ca_path}});
      !s.ok()) {
    return s;
  }
  if (!flags.tls_cert_path.empty()) {
    auto certificates = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        flags.tls_key_path, flags.tls_cert_path, flags.tls_client_ca_path,
        kCertificateRefreshSeconds);
    grpc::experimental::TlsServerCredentialsOptions tls(certificates);
    tls.watch_identity_key_cert_pairs();
    if (flags.tls_client_ca_path.empty()) {
      tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    } else {
      tls.watch_root_certs();
      tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    }
    options.credentials = grpc::experimental::TlsServerCredentials(tls);
  }
  return options;
}

absl::Status AuthenticateInternalCallers(const ServerFlags& flags, ServerOptions& options) {
  if (!flags.peer_token_path.empty()) {
    absl::StatusOr<PeerOptions> peers = ToPeerOptions(flags);
    if (!peers.ok()) return peers.status();
    options.caller_token = peers->token;
  }
  const bool authenticated = !flags.tls_client_ca_path.empty() || !options.caller_token.empty();
  if (authenticated || flags.insecure_allow_unauthenticated ||
      IsLoopbackHost(options.grpc_address.host)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--grpc_address ", options.grpc_address.ToString(),
      " is not a loopback address and callers are not authenticated: set --tls_client_ca_path "
      "(mutual TLS) or --peer_token_path (a token shared by Ferry's services), or "
      "--insecure_allow_unauthenticated when something else guards the port"));
}

absl::StatusOr<PeerOptions> ToPeerOptions(const ServerFlags& flags) {
  PeerOptions peers;
  peers.max_message_bytes = static_cast<int>(flags.grpc_max_message_bytes);
  if (flags.peer_tls_cert_path.empty() != flags.peer_tls_key_path.empty()) {
    return absl::InvalidArgumentError("--peer_tls_cert_path and --peer_tls_key_path go together");
  }
  if (!flags.peer_tls_cert_path.empty() && flags.peer_tls_ca_path.empty()) {
    return absl::InvalidArgumentError(
        "--peer_tls_cert_path needs --peer_tls_ca_path (the CA that signed the peers' "
        "certificates)");
  }
  if (absl::Status s = CheckReadable({{"peer_tls_ca_path", &flags.peer_tls_ca_path},
                                      {"peer_tls_cert_path", &flags.peer_tls_cert_path},
                                      {"peer_tls_key_path", &flags.peer_tls_key_path}});
      !s.ok()) {
    return s;
  }
  peers.tls_ca_path = flags.peer_tls_ca_path;
  peers.tls_cert_path = flags.peer_tls_cert_path;
  peers.tls_key_path = flags.peer_tls_key_path;
  if (!flags.peer_token_path.empty()) {
    absl::StatusOr<std::string> token = ReadFlagFile("peer_token_path", flags.peer_token_path);
    if (!token.ok()) return token.status();
    // A Secret created with kubectl --from-literal has no newline; one written by an editor
    // has one.
    peers.token = std::string(absl::StripAsciiWhitespace(*token));
    if (peers.token.size() < 16 || absl::StrContains(peers.token, "\n") ||
        absl::StrContains(peers.token, " ")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--peer_token_path: ", flags.peer_token_path,
                       " must hold one token of 16 or more characters without spaces"));
    }
  }
  return peers;
}

void InitLogging(const ComponentDefaults& defaults, const ServerFlags& flags) {
  log::Init(defaults.name, log::ParseFormat(flags.log_format).value_or(log::Format::kText),
            log::ParseLevel(flags.log_level).value_or(log::Level::kInfo));
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  app.set_version_flag("--version", Version());
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\nRun with --help for usage.\n", app.get_name().c_str(), e.what());
    return 2;
  }
  return std::nullopt;
}

int ConfigError(absl::string_view program, const absl::Status& status) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(status.message().size()), status.message().data());
  return 2;
}

}  // namespace ferry::runtime
