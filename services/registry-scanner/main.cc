// ferry-registry-scanner: watches container registries for new image tags.
#include <memory>

#include "services/registry-scanner/config.h"
#include "services/registry-scanner/registry_scanner_service.h"
#include "lib/runtime/signals.h"

int main(int argc, char** argv) {
  ferry::runtime::BlockShutdownSignals();
  CLI::App app{"ferry-registry-scanner: watches container registries for new image tags", "ferry-registry-scanner"};
  ferry::registry_scanner::Flags flags;
  ferry::registry_scanner::AddFlags(app, flags);
  if (auto exit_code = ferry::runtime::ParseCommandLine(app, argc, argv)) return *exit_code;
  absl::StatusOr<ferry::registry_scanner::Config> config = ferry::registry_scanner::ToConfig(flags);
  if (!config.ok()) return ferry::runtime::ConfigError(app.get_name(), config.status());
  ferry::runtime::InitLogging(ferry::registry_scanner::kComponent, flags.server);

  ferry::registry_scanner::RegistryScannerService service;
  return ferry::runtime::ServeUntilSignal(config->server, {{&service, ferry::v1::RegistryScanner::service_full_name()}},
                                          std::make_shared<prometheus::Registry>());
}
