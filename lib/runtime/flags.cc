#include "lib/runtime/flags.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ferry::runtime {
namespace {

absl::Status FlagError(absl::string_view flag, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", status.message()));
}

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
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_address: ", flags.metrics_address, " is also the --grpc_address; use another port"));
  }
  if (!absl::ParseDuration(flags.drain_timeout, &options.drain_timeout) ||
      options.drain_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--drain_timeout: '", flags.drain_timeout, "' is not a duration (use e.g. 15s or 500ms)"));
  }
  absl::StatusOr<log::Format> format = log::ParseFormat(flags.log_format);
  if (!format.ok()) return FlagError("log_format", format.status());
  absl::StatusOr<log::Level> level = log::ParseLevel(flags.log_level);
  if (!level.ok()) return FlagError("log_level", level.status());
  return options;
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
    std::fprintf(stderr, "%s: %s\nRun with --help for usage.\n", app.get_name().c_str(),
                 e.what());
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
