// ferryctl completion bash|zsh|fish: scripts generated from the command tree itself, so
// they never miss a command or flag.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"

namespace ferry::cli {
namespace {

struct Command {
  std::vector<std::string> names;  // name and aliases
  std::string description;
  std::vector<std::pair<std::string, std::string>> flags;  // "--name" / "-n", description
};

void Collect(const CLI::App& app, const std::string& prefix, std::vector<Command>& out) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    Command c;
    c.names.push_back(prefix + sub->get_name());
    for (const std::string& alias : sub->get_aliases()) c.names.push_back(prefix + alias);
    c.description = sub->get_description();
    for (const CLI::Option* opt : sub->get_options()) {
      for (const std::string& l : opt->get_lnames())
        c.flags.emplace_back("--" + l, opt->get_description());
      for (const std::string& s : opt->get_snames())
        c.flags.emplace_back("-" + s, opt->get_description());
    }
    out.push_back(c);
  }
}

std::string Quote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'')
      out += "'\\''";
    else
      out += ch;
  }
  return out + "'";
}

std::string Bash(const std::vector<Command>& commands, const CLI::App& app) {
  std::vector<std::string> names;
  for (const Command& c : commands) names.insert(names.end(), c.names.begin(), c.names.end());
  std::vector<std::string> global;
  for (const CLI::Option* opt : app.get_options()) {
    for (const std::string& l : opt->get_lnames()) global.push_back("--" + l);
  }
  std::string script = absl::StrCat(
      "# bash completion for ferryctl: source <(ferryctl completion bash)\n"
      "_ferryctl() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"\" i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    [[ \"${COMP_WORDS[i]}\" != -* ]] && { cmd=\"${COMP_WORDS[i]}\"; break; }\n"
      "  done\n"
      "  local global=",
      Quote(absl::StrJoin(global, " ")),
      "\n"
      "  case \"$cmd\" in\n"
      "    \"\") COMPREPLY=($(compgen -W ",
      Quote(absl::StrJoin(names, " ") + " $global"), " -- \"$cur\")) ;;\n");
  for (const Command& c : commands) {
    std::vector<std::string> flags;
    for (const auto& [flag, description] : c.flags) flags.push_back(flag);
    absl::StrAppend(&script, "    ", absl::StrJoin(c.names, "|"), ") COMPREPLY=($(compgen -W ",
                    Quote(absl::StrJoin(flags, " ")), "\" $global\" -- \"$cur\")) ;;\n");
  }
  absl::StrAppend(&script, "  esac\n}\ncomplete -F _ferryctl ferryctl\n");
  return script;
}

std::string Fish(const std::vector<Command>& commands) {
  std::string script = "# fish completion for ferryctl: ferryctl completion fish | source\n";
  for (const Command& c : commands) {
    for (const std::string& name : c.names) {
      absl::StrAppend(&script, "complete -c ferryctl -f -n __fish_use_subcommand -a ", name, " -d ",
                      Quote(c.description), "\n");
    }
    for (const auto& [flag, description] : c.flags) {
      const bool long_flag = flag.rfind("--", 0) == 0;
      absl::StrAppend(&script, "complete -c ferryctl -n '__fish_seen_subcommand_from ",
                      absl::StrJoin(c.names, " "), "' ", long_flag ? "-l " : "-s ",
                      flag.substr(long_flag ? 2 : 1), " -d ", Quote(description), "\n");
    }
  }
  return script;
}

}  // namespace

absl::StatusOr<std::string> CompletionScript(const CLI::App& app, const std::string& shell) {
  std::vector<Command> commands;
  Collect(app, "", commands);
  if (shell == "bash") return Bash(commands, app);
  if (shell == "zsh") {
    return absl::StrCat(
        "# zsh completion for ferryctl: source <(ferryctl completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n",
        Bash(commands, app));
  }
  if (shell == "fish") return Fish(commands);
  return absl::InvalidArgumentError(absl::StrCat(
      "completion: '", shell, "' is not a shell ferryctl knows; use bash, zsh or fish"));
}

}  // namespace ferry::cli
