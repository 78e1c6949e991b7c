#include "lib/kustomize/build.h"

#include <stdlib.h>

#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/limits/limits.h"
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
  if (command[0].find('/') != std::string::npos) {
    // Run from the export folder: a relative path must not change meaning there.
    std::error_code ec;
    command[0] = std::filesystem::absolute(command[0], ec).string();
  } else if (process::FindOnPath(command[0], path_env).empty()) {
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
  // Nothing of the service's own environment (no kubeconfig, user plugins, proxies or git
  // configuration), and a HOME of its own outside the tree: the repository must not provide
  // the build's configuration (a committed .gitconfig could make git run commands).
  const char* tmp = getenv("TMPDIR");
  std::string home =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/ferry-kustomize-home-XXXXXX");
  if (mkdtemp(home.data()) == nullptr) {
    return absl::InternalError("no temporary folder for kustomize's HOME");
  }
  absl::Cleanup remove_home = [&home] {
    std::error_code ignored;
    std::filesystem::remove_all(home, ignored);
  };
  run.env = {absl::StrCat("PATH=", options.path_env),
             absl::StrCat("HOME=", home),
             absl::StrCat("XDG_CONFIG_HOME=", home),
             absl::StrCat("KUSTOMIZE_PLUGIN_HOME=", home),
             "KUBECTL_KUBERC=false",
             "GIT_CONFIG_NOSYSTEM=1",
             "GIT_CONFIG_GLOBAL=/dev/null",
             "GIT_TERMINAL_PROMPT=0",
             "LANG=C"};
  if (!options.allow_remote) {
    // Whatever still tries to fetch (a URL in a field Ferry does not check) reaches a
    // loopback port where nothing listens.
    for (const char* proxy :
         {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"}) {
      run.env.push_back(absl::StrCat(proxy, "=http://127.0.0.1:9"));
    }
    run.env.push_back("NO_PROXY=");
    run.env.push_back("no_proxy=");
  }
  run.timeout = options.timeout;
  run.max_stdout_bytes = options.max_output_bytes;
  absl::StatusOr<process::RunResult> result = process::Run(run);
  const std::string what = absl::StrCat("kustomize build of \"", names::Escape(folder), "\"");
  if (!result.ok() && result.status().code() == absl::StatusCode::kResourceExhausted) {
    // Served as one manifest file: the file limit is the one to raise.
    return absl::ResourceExhaustedError(limits::OverLimit(
        absl::StrCat(what, ": its output"), limits::kManifestFileBytes, options.max_output_bytes));
  }
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
