// Configuration of ferry-git-writer: flags (and FERRY_* environment variables) -> a validated
// Config. Every option is documented next to the flag that sets it, in config.cc.
#pragma once

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "lib/runtime/flags.h"
#include "lib/runtime/server.h"

namespace ferry::git_writer {

// Identity and default ports of this component.
inline const runtime::ComponentDefaults kComponent{"git-writer", 3031, 9792};

// Flags as given on the command line, before validation.
struct Flags {
  runtime::ServerFlags server;
};

// The validated configuration.
struct Config {
  runtime::ServerOptions server;
};

// Registers every flag of ferry-git-writer on `app`.
void AddFlags(CLI::App& app, Flags& flags);

// Validates `flags`. InvalidArgument naming the offending flag.
absl::StatusOr<Config> ToConfig(const Flags& flags);

}  // namespace ferry::git_writer
