// ferry-api: the public ferry.v1.Ferry API: jobs, release planning, automation.
#include <memory>

#include "services/api/config.h"
#include "services/api/api_service.h"
#include "lib/runtime/signals.h"

int main(int argc, char** argv) {
  ferry::runtime::BlockShutdownSignals();
  CLI::App app{"ferry-api: the public ferry.v1.Ferry API: jobs, release planning, automation", "ferry-api"};
  ferry::api::Flags flags;
  ferry::api::AddFlags(app, flags);
  if (auto exit_code = ferry::runtime::ParseCommandLine(app, argc, argv)) return *exit_code;
  absl::StatusOr<ferry::api::Config> config = ferry::api::ToConfig(flags);
  if (!config.ok()) return ferry::runtime::ConfigError(app.get_name(), config.status());
  ferry::runtime::InitLogging(ferry::api::kComponent, flags.server);

  ferry::api::ApiService service;
  return ferry::runtime::ServeUntilSignal(config->server, {{&service, ferry::v1::Ferry::service_full_name()}},
                                          std::make_shared<prometheus::Registry>());
}
