#include "services/api/config.h"

namespace ferry::api {

void AddFlags(CLI::App& app, Flags& flags) {
  // --grpc_address, --metrics_address, --drain_timeout, --log_format, --log_level:
  // documented in lib/runtime/flags.h.
  runtime::AddServerFlags(app, kComponent, flags.server);
}

absl::StatusOr<Config> ToConfig(const Flags& flags) {
  Config config;
  absl::StatusOr<runtime::ServerOptions> server = runtime::ToServerOptions(kComponent, flags.server);
  if (!server.ok()) return server.status();
  config.server = *std::move(server);
  return config;
}

}  // namespace ferry::api
