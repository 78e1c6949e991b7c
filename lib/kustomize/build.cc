#include "lib/kustomize/build.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/names/names.h"
#include "lib/process/process.h"

namespace ferry::kustomize {
namespace {

// kustomize's message, short enough for a sync result: its first lines, without the
// export folder, which means nothing to the reader.
std::string Trimmed(const std::string& err, const std::string& tree) {
  std::string text = absl::StrReplaceAll(err, {{tree + "/", ""}, {tree, "."}});
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    if (lines.size() == 6) {
      lines.push_back("...");
      break;
    }
    lines.emplace_back(absl::StripAsciiWhitespace(line));
  }
  text = absl::StrJoin(lines, "; ");
  if (text.size() > 1024) text = absl::StrCat(text.substr(0, 1024), "...");
  return names::Escape(text);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveCommand(absl::string_view flag,
                                                        absl::string_view path_env) {
  std::vector<std::string> command = absl::StrSplit(flag, ' ', absl::SkipWhitespace());
  if (command.empty()) {
    if (!process::FindOnPath("kustomize", path_env).empty()) return {{"kustomize", "build"}};
    if (!process::FindOnPath("kubectl", path_env).empty()) return {{"kubectl", "kustomize"}};
    return absl::NotFoundError(
        "neither kustomize nor kubectl is on PATH: install one, or name the command with "
        "--kustomize_command");
  }
  if (command[0].find('/') == std::string::npos &&
      process::FindOnPath(command[0], path_env).empty()) {
    return absl::NotFoundError(
        absl::StrCat("--kustomize_command: \"", names::Escape(command[0]), "\" is not on PATH"));
  }
  return command;
}

absl::StatusOr<std::string> Build(const BuildOptions& options, const std::string& tree,
                                  const std::string& folder) {
  process::RunOptions run;
  run.argv = options.command;
  run.argv.push_back(folder.empty() ? "." : folder);
  run.working_dir = tree;
  // Nothing of the service's own environment: no kubeconfig, no user plugins, no proxies.
  const std::string home = absl::StrCat(tree, "/.ferry-home");
  std::error_code ignored;
  std::filesystem::create_directories(home, ignored);
  run.env = {absl::StrCat("PATH=", options.path_env), absl::StrCat("HOME=", home),
             absl::StrCat("XDG_CONFIG_HOME=", home), absl::StrCat("KUSTOMIZE_PLUGIN_HOME=", home),
             "LANG=C"};
  run.timeout = options.timeout;
  run.max_stdout_bytes = options.max_output_bytes;
  absl::StatusOr<process::RunResult> result = process::Run(run);
  const std::string what = absl::StrCat("kustomize build of \"", names::Escape(folder), "\"");
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat(what, ": ", result.status().message()));
  }
  if (result->exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " failed: ", Trimmed(result->err, tree)));
  }
  return std::move(result->out);
}

}  // namespace ferry::kustomize
