// ferryctl: the command line for Ferry.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"

int main(int argc, char** argv) {
  CLI::App app{"ferryctl: drive Ferry, the GitOps deployment tool for Kubernetes", "ferryctl"};
  app.set_version_flag("--version", FERRY_VERSION);
  int exit_code = ferry::cli::kExitOk;
  ferry::cli::ClientOptions client;
  auto connect = [&client] { return ferry::cli::Connect(client); };
  // Run as a Drone plugin step (the image's entrypoint without arguments): the step's
  // settings describe a release.
  const auto environment = ferry::cli::Environment();
  if (argc == 1 && ferry::cli::IsDronePlugin(environment)) {
    return ferry::cli::RunDrone(environment, client, connect, std::cout, std::cerr);
  }
  app.require_subcommand(1);
  ferry::cli::AddApiCommands(app, client, connect, exit_code, FERRY_VERSION);
  ferry::cli::AddWhyCommand(app, client, connect, exit_code);
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
