// ferry-git-writer: the config repo's one reader and writer.
#include <memory>

#include "services/git-writer/config.h"
#include "services/git-writer/git_writer_service.h"
#include "lib/runtime/signals.h"

int main(int argc, char** argv) {
  ferry::runtime::BlockShutdownSignals();
  CLI::App app{"ferry-git-writer: the config repo's one reader and writer", "ferry-git-writer"};
  ferry::git_writer::Flags flags;
  ferry::git_writer::AddFlags(app, flags);
  if (auto exit_code = ferry::runtime::ParseCommandLine(app, argc, argv)) return *exit_code;
  absl::StatusOr<ferry::git_writer::Config> config = ferry::git_writer::ToConfig(flags);
  if (!config.ok()) return ferry::runtime::ConfigError(app.get_name(), config.status());
  ferry::runtime::InitLogging(ferry::git_writer::kComponent, flags.server);

  ferry::git_writer::GitWriterService service;
  return ferry::runtime::ServeUntilSignal(config->server, {{&service, ferry::v1::GitWriter::service_full_name()}},
                                          std::make_shared<prometheus::Registry>());
}
