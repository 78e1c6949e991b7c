// Registration of ferryctl's api commands with CLI11: flags named as in fluxctl.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"

extern char** environ;

namespace ferry::cli {
namespace {

// A terminal menu over the planned container moves: numbers to release, "a" for all.
std::vector<std::string> ChooseOnTerminal(const std::vector<ferry::v1::WorkloadResult>& plan) {
  std::vector<std::string> choices;
  for (const auto& r : plan) {
    if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
    for (const auto& u : r.updates()) {
      choices.push_back(r.workload() + "/" + u.container());
      std::cerr << "  [" << choices.size() << "] " << r.workload() << " " << u.container() << ": "
                << u.from_image() << " -> " << u.to_image() << "\n";
    }
  }
  if (choices.empty()) {
    std::cerr << "Nothing to release.\n";
    return {};
  }
  std::cerr << "Release which? (numbers separated by spaces, a = all, empty = none): ";
  std::string line;
  std::getline(std::cin, line);
  if (line == "a" || line == "all") return choices;
  std::vector<std::string> chosen;
  for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    int n = 0;
    if (absl::SimpleAtoi(word, &n) && n >= 1 && n <= static_cast<int>(choices.size())) {
      chosen.push_back(choices[n - 1]);
    } else {
      std::cerr << "ignoring '" << word << "'\n";
    }
  }
  return chosen;
}

// fluxctl's older names of --workload, kept so copied command lines work: each value goes
// to its own list, and WorkloadsGiven notes the deprecation and refuses mixed spellings.
template <typename T>
void AddDeprecatedWorkloadFlags(CLI::App* cmd, T& controllers, T& services) {
  cmd->add_option("--controller", controllers, "Deprecated: use --workload")->group("Deprecated");
  cmd->add_option("--service", services, "Deprecated: use --workload")->group("Deprecated");
}

// Runs a command with a connected stub, storing its exit code.
using Runner = std::function<void(const std::function<int(Env&)>&)>;

// The read-only listings: list-workloads and list-images.
void AddListCommands(CLI::App& app, const Runner& run) {
  auto list = std::make_shared<ListWorkloadsOptions>();
  CLI::App* list_cmd = app.add_subcommand(
      "list-workloads", "Workloads in git with their images, rollout and policies");
  list_cmd->alias("list-controllers");
  list_cmd->alias("list-services");
  list_cmd->add_option("-n,--namespace", list->namespace_, "Namespace")->capture_default_str();
  list_cmd->add_flag("-a,--all-namespaces", list->all_namespaces, "Every namespace");
  list_cmd->add_option("-c,--container", list->container, "Only workloads with this container");
  list_cmd->add_flag("--no-headers", list->no_headers, "No header line");
  list_cmd->add_option("-o,--output", list->output, "table, json or yaml")->capture_default_str();
  list_cmd->callback(
      [run, list] { run([list](Env& env) { return RunListWorkloads(*list, env); }); });

  auto images = std::make_shared<ListImagesOptions>();
  CLI::App* images_cmd = app.add_subcommand(
      "list-images", "Each container's image tags, newest first, the running one marked");
  images_cmd->add_option("-w,--workload", images->workload, "Workload (namespace:kind/name)");
  AddDeprecatedWorkloadFlags(images_cmd, images->controller, images->service);
  images_cmd->add_option("-n,--namespace", images->namespace_, "Namespace")->capture_default_str();
  images_cmd->add_flag("-a,--all-namespaces", images->all_namespaces, "Every namespace");
  images_cmd->add_option("-l,--limit", images->limit, "Tags per container, 0 for all")
      ->capture_default_str();
  images_cmd->add_flag("--no-headers", images->no_headers, "No header line");
  images_cmd->add_option("-o,--output", images->output, "table, json or yaml")
      ->capture_default_str();
  images_cmd->callback(
      [run, images] { run([images](Env& env) { return RunListImages(*images, env); }); });
}

// release, with a terminal menu for --interactive when both stdin and stderr are terminals.
void AddReleaseCommand(CLI::App& app, const Runner& run, const std::string& user) {
  auto release = std::make_shared<ReleaseOptions>();
  release->user = user;
  CLI::App* release_cmd = app.add_subcommand("release", "Release an image to workloads, as a job");
  release_cmd->add_option("-w,--workload", release->workloads, "Workload to release (repeatable)");
  AddDeprecatedWorkloadFlags(release_cmd, release->controllers, release->services);
  release_cmd->add_flag("--all", release->all, "Release every workload");
  release_cmd
      ->add_option("-n,--namespace", release->namespace_,
                   "Namespace of workload ids given without one")
      ->capture_default_str();
  release_cmd->add_option("-i,--update-image", release->image, "Image to release, repo:tag");
  release_cmd->add_flag("--update-all-images", release->update_all_images,
                        "Each container's latest tag passing its filter");
  release_cmd->add_flag("--respect-min-age", release->respect_min_age,
                        "With --update-all-images: also skip soaking tags, as automation "
                        "does (rejected tags are always skipped)");
  release_cmd->add_option("--exclude", release->excludes, "Workload to leave out (repeatable)");
  release_cmd->add_flag("--dry-run", release->dry_run, "Plan only, commit nothing");
  release_cmd->add_flag("-f,--force", release->force,
                        "Also locked workloads, and ignore tag filters for --update-image");
  release_cmd->add_option("-m,--message", release->message, "Why (goes into the commit)");
  release_cmd->add_option("--user", release->user, "Who (default: git config user.name)")
      ->capture_default_str();
  release_cmd->add_flag("--watch", release->watch, "Follow the rollout until it is done");
  release_cmd->add_flag("-v,--verbose", release->verbosity,
                        "-v: also skipped workloads; -vv: also ignored ones");
  release_cmd->add_flag("--interactive", release->interactive,
                        "Choose containers from the plan in a terminal menu");
  release_cmd->add_option("-o,--output", release->output, "table, json or yaml")
      ->capture_default_str();
  release_cmd->callback([run, release] {
    run([release](Env& env) {
      ContainerChooser chooser;
      if (isatty(STDIN_FILENO) == 1 && isatty(STDERR_FILENO) == 1) chooser = ChooseOnTerminal;
      return RunRelease(*release, env, chooser);
    });
  });
}

// automate / deautomate / lock / unlock (one flag of `policy` each), and policy itself.
void AddPolicyCommands(CLI::App& app, const Runner& run, const std::string& user) {
  // automate / deautomate / lock / unlock: one flag of `policy` each.
  struct Shortcut {
    const char* name;
    const char* description;
    bool PolicyOptions::*field;
  };
  for (const Shortcut& sc :
       {Shortcut{"automate", "Release new images automatically", &PolicyOptions::automate},
        Shortcut{"deautomate", "Stop automatic releases", &PolicyOptions::deautomate},
        Shortcut{"lock", "Lock: no release touches the workload", &PolicyOptions::lock},
        Shortcut{"unlock", "Unlock", &PolicyOptions::unlock}}) {
    auto options = std::make_shared<PolicyOptions>();
    (*options).*(sc.field) = true;
    options->user = user;
    CLI::App* cmd = app.add_subcommand(sc.name, sc.description);
    cmd->add_option("-w,--workload", options->workloads, "Workload (repeatable)");
    AddDeprecatedWorkloadFlags(cmd, options->controllers, options->services);
    cmd->add_option("-n,--namespace", options->namespace_,
                    "Namespace of workload ids given without one")
        ->capture_default_str();
    cmd->add_option("-m,--message", options->message, "Why");
    cmd->add_option("--user", options->user, "Who (default: git config user.name)")
        ->capture_default_str();
    cmd->callback(
        [run, options] { run([options](Env& env) { return RunPolicy(*options, env); }); });
  }

  auto policy = std::make_shared<PolicyOptions>();
  policy->user = user;
  CLI::App* policy_cmd = app.add_subcommand("policy", "Change workloads' policies in one commit");
  policy_cmd->add_option("-w,--workload", policy->workloads, "Workload (repeatable)");
  AddDeprecatedWorkloadFlags(policy_cmd, policy->controllers, policy->services);
  policy_cmd
      ->add_option("-n,--namespace", policy->namespace_,
                   "Namespace of workload ids given without one")
      ->capture_default_str();
  policy_cmd->add_flag("--automate", policy->automate, "Release new images automatically");
  policy_cmd->add_flag("--deautomate", policy->deautomate, "Stop automatic releases");
  policy_cmd->add_flag("--lock", policy->lock, "Lock");
  policy_cmd->add_flag("--unlock", policy->unlock, "Unlock");
  policy_cmd->add_option(
      "--tag", policy->tags,
      "CONTAINER=PATTERN (glob:, semver:, regexp:); '*' removes it (repeatable)");
  policy_cmd->add_option("--tag-all", policy->tag_all,
                         "The filter of each container (one tag.<container> each, as Flux v1 "
                         "wrote it); '*' removes them");
  AddSafeAutomationFlags(*policy_cmd, *policy);
  policy_cmd->add_option("-m,--message", policy->message, "Why");
  policy_cmd->add_option("--user", policy->user, "Who (default: git config user.name)")
      ->capture_default_str();
  policy_cmd->callback(
      [run, policy] { run([policy](Env& env) { return RunPolicy(*policy, env); }); });
}

// sync, identity, save, version and jobs: one call (or one job followed) each.
void AddOperationCommands(CLI::App& app, const Runner& run, const std::string& user,
                          const std::string& version) {
  auto sync = std::make_shared<SyncOptions>();
  sync->user = user;
  CLI::App* sync_cmd = app.add_subcommand("sync", "Fetch git now and wait until it is applied");
  sync_cmd->add_option("-m,--message", sync->message, "Why");
  sync_cmd->add_option("--user", sync->user, "Who")->capture_default_str();
  sync_cmd->callback([run, sync] { run([sync](Env& env) { return RunSync(*sync, env); }); });

  auto identity = std::make_shared<IdentityOptions>();
  CLI::App* identity_cmd = app.add_subcommand("identity", "The deploy key to add to the git host");
  identity_cmd->add_flag("-l,--fingerprint", identity->fingerprint, "Its SHA256 fingerprint");
  identity_cmd->callback(
      [run, identity] { run([identity](Env& env) { return RunIdentity(*identity, env); }); });

  auto save = std::make_shared<SaveOptions>();
  CLI::App* save_cmd = app.add_subcommand("save", "Cluster resources as clean YAML");
  save_cmd->alias("export");
  save_cmd
      ->add_option("-o,--out", save->output,
                   "File, or folder for one file per resource ('-' for stdout)")
      ->capture_default_str();
  save_cmd->add_option("--namespace", save->namespaces, "Only this namespace (repeatable)");
  save_cmd->add_option("--kind", save->kinds, "Only this kind (repeatable)");
  save_cmd->callback([run, save] { run([save](Env& env) { return RunSave(*save, env); }); });

  CLI::App* version_cmd = app.add_subcommand("version", "Versions of ferryctl and the services");
  version_cmd->callback(
      [run, version] { run([version](Env& env) { return RunVersion(env, version); }); });

  auto jobs = std::make_shared<JobsOptions>();
  CLI::App* jobs_cmd = app.add_subcommand("jobs", "Recent jobs, or one job followed to its end");
  jobs_cmd->add_option("id", jobs->id, "Job id");
  jobs_cmd->add_option("--limit", jobs->limit, "How many")->capture_default_str();
  jobs_cmd->add_option("-o,--output", jobs->output, "table, json or yaml")->capture_default_str();
  jobs_cmd->callback([run, jobs] { run([jobs](Env& env) { return RunJobs(*jobs, env); }); });
}

// completion and drone, which need no connection (drone connects by itself).
void AddLocalCommands(CLI::App& app, ClientOptions& client, const StubFactory& connect,
                      int& exit_code) {
  auto shell = std::make_shared<std::string>();
  CLI::App* completion_cmd = app.add_subcommand("completion", "Shell completion script");
  completion_cmd->add_option("shell", *shell, "bash, zsh or fish")->required();
  completion_cmd->callback([&app, shell, &exit_code] {
    absl::StatusOr<std::string> script = CompletionScript(app, *shell);
    if (!script.ok()) {
      exit_code = ReportError(std::cerr, script.status());
      return;
    }
    std::cout << *script;
    exit_code = kExitOk;
  });

  CLI::App* drone_cmd =
      app.add_subcommand("drone", "Run as a Drone plugin step: release from the PLUGIN_* settings");
  drone_cmd->callback([&client, connect, &exit_code] {
    exit_code = RunDrone(Environment(), client, connect, std::cout, std::cerr);
  });
}

}  // namespace

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) out[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return out;
}

int RunDrone(const std::map<std::string, std::string>& environment, ClientOptions& client,
             const StubFactory& connect, std::ostream& out, std::ostream& err) {
  ReleaseOptions release;
  if (absl::Status s = DroneToRelease(environment, release, client); !s.ok()) {
    return ReportError(err, s);
  }
  auto stub = connect();
  if (!stub.ok()) return ReportError(err, stub.status());
  Env env{**stub, client, out, err, false};
  return RunRelease(release, env);
}

void AddApiCommands(CLI::App& app, ClientOptions& client, const StubFactory& connect,
                    int& exit_code, const std::string& version) {
  AddClientFlags(app, client);
  app.fallthrough();                       // connection flags also after the command
  const std::string user = DefaultUser();  // asks git once, not once per command
  // Runs `command` with a connected stub.
  const Runner run = [&client, connect, &exit_code](const std::function<int(Env&)>& command) {
    auto stub = connect();
    if (!stub.ok()) {
      exit_code = ReportError(std::cerr, stub.status());
      return;
    }
    Env env{**stub, client, std::cout, std::cerr, isatty(STDERR_FILENO) == 1};
    exit_code = command(env);
  };

  AddListCommands(app, run);
  AddReleaseCommand(app, run, user);
  AddPolicyCommands(app, run, user);
  AddOperationCommands(app, run, user, version);
  AddLocalCommands(app, client, connect, exit_code);
}

}  // namespace ferry::cli
