// ferryctl: the command line for Ferry.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/exit_codes.h"
#include "cli/manifests.h"

int main(int argc, char** argv) {
  CLI::App app{"ferryctl: drive Ferry, the GitOps deployment tool for Kubernetes", "ferryctl"};
  app.require_subcommand(1);
  app.set_version_flag("--version", FERRY_VERSION);
  int exit_code = ferry::cli::kExitOk;
  ferry::cli::AddManifestsCommands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ferryctl: %s\nRun with --help for usage.\n", e.what());
    return ferry::cli::kExitUsage;
  }
  return exit_code;
}
