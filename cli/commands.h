// The ferryctl commands that talk to the api, with the names and flags of fluxctl. Each
// command is a Run* function over a ferry.v1.Ferry stub (a generated mock in tests), writing
// results to `out`, progress and errors to `err`, and returning the exit code
// (cli/exit_codes.h). One source file per command; AddApiCommands wires them to CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/policy_flags.h"
#include "ferry/v1/api.grpc.pb.h"

namespace ferry::cli {

// What every command gets.
struct Env {
  ferry::v1::Ferry::StubInterface& stub;
  const ClientOptions& client;
  std::ostream& out;
  std::ostream& err;
  // True when `err` is a terminal: progress is redrawn in place instead of printed as lines.
  bool terminal = false;
};

// Workloads as the commands take them: -w/--workload, or the deprecated aliases
// --controller and --service (fluxctl's older names), one spelling per command line.
// Checks the spellings without a call: InvalidArgument when two are mixed; notes a
// deprecated one on `err` (never on stdout, which scripts parse). Returns the values given.
absl::StatusOr<std::vector<std::string>> WorkloadsGiven(const std::vector<std::string>& workloads,
                                                        const std::vector<std::string>& controllers,
                                                        const std::vector<std::string>& services,
                                                        std::ostream& err);

// The ids "namespace:kind/name" of `given` (ParseWorkloadId with `namespace_`); legacy ids
// "namespace/name" are resolved with one ListWorkloads call (ResolveLegacyWorkloadId).
// Reports a failure on env.err and returns its exit code; kExitOk with `ids` filled.
int ResolveWorkloads(const std::vector<std::string>& given, const std::string& namespace_, Env& env,
                     std::vector<std::string>& ids);

struct ListWorkloadsOptions {
  std::string namespace_ = "default";
  bool all_namespaces = false;
  std::string container;
  bool no_headers = false;
  std::string output = "table";
};
int RunListWorkloads(const ListWorkloadsOptions& options, Env& env);

struct ListImagesOptions {
  std::string workload;
  std::string controller;  // deprecated alias of `workload`
  std::string service;     // deprecated alias of `workload`
  std::string namespace_ = "default";
  bool all_namespaces = false;
  int limit = 10;
  bool no_headers = false;
  std::string output = "table";
};
int RunListImages(const ListImagesOptions& options, Env& env);

struct ReleaseOptions {
  std::vector<std::string> workloads;
  std::vector<std::string> controllers;  // deprecated alias of `workloads`
  std::vector<std::string> services;     // deprecated alias of `workloads`
  bool all = false;
  std::string namespace_ = "default";
  std::string image;
  bool update_all_images = false;
  bool respect_min_age = false;  // with update_all_images: soak times and rejections count
  std::vector<std::string> excludes;
  bool dry_run = false;
  bool force = false;
  std::string message;
  std::string user;
  bool watch = false;
  // -v: skipped rows too, and fluxctl's lines for scripts on stdout ("Release job
  // submitted, ID <id>", the numbered stages, "Commit pushed: <sha>", "Took <duration>");
  // -vv: ignored rows too.
  int verbosity = 0;
  bool interactive = false;
  std::string output = "table";
};
// Chooses containers from a plan in a terminal menu; returns the chosen
// "workload/container" entries (empty: release nothing). Injected so tests need no terminal.
using ContainerChooser =
    std::function<std::vector<std::string>(const std::vector<ferry::v1::WorkloadResult>&)>;
int RunRelease(const ReleaseOptions& options, Env& env, const ContainerChooser& choose = nullptr);

struct PolicyOptions : PolicyFlags {
  std::vector<std::string> workloads;
  std::vector<std::string> controllers;  // deprecated alias of `workloads`
  std::vector<std::string> services;     // deprecated alias of `workloads`
  std::string namespace_ = "default";
  bool wait = true;
};
int RunPolicy(const PolicyOptions& options, Env& env);

struct SyncOptions {
  std::string user;
  std::string message;
};
int RunSync(const SyncOptions& options, Env& env);

struct IdentityOptions {
  bool fingerprint = false;  // -l
};
int RunIdentity(const IdentityOptions& options, Env& env);

struct SaveOptions {
  std::string output = "-";  // file, folder (one file per resource) or "-" for stdout
  std::vector<std::string> namespaces;
  std::vector<std::string> kinds;
};
int RunSave(const SaveOptions& options, Env& env);

int RunVersion(Env& env, const std::string& client_version);

struct JobsOptions {
  std::string id;  // empty: list recent jobs
  int limit = 20;
  std::string output = "table";
};
int RunJobs(const JobsOptions& options, Env& env);

// ferryctl why -w WORKLOAD [-c CONTAINER]: ExplainTags' answer, per container the filter,
// the soak time, what automation does next and a table TAG VERDICT RANK CREATED DETAIL.
struct WhyOptions {
  std::string workload;
  std::string container;  // empty: every container
  std::string namespace_ = "default";
  int limit = 0;  // the server's default (100)
  bool no_headers = false;
  std::string output = "table";
};
int RunWhy(const WhyOptions& options, Env& env);

// Follows job `id` with WatchJob until it ends, printing each new stage (and rollout
// progress) to env.err; returns the final job, or the failed call's status.
grpc::Status FollowJob(const std::string& id, Env& env, ferry::v1::Job* job);

// The result table of a release or policy job: WORKLOAD STATUS UPDATES. Rows with status
// skipped are shown from verbosity 1, ignored ones from 2.
void PrintResults(const ferry::v1::Job& job, int verbosity, std::ostream& out);

// Follows job `id` (FollowJob), then prints the result table (or the job as json/yaml), the
// commits ("Commit pushed:  <sha>", "Commit applied: <sha>"), the job's error and the total
// time. With `fluxctl_lines` (release -v) and table output, the table is framed on `out` by
// fluxctl's lines instead, which scripts written for fluxctl grep for ("Status:", "Here's
// what happened:" with the numbered stages, "Commit pushed: <sha7>", "Applied <sha>",
// "Took <duration>"). Returns the exit code.
int FollowAndReport(const std::string& id, int verbosity, const std::string& output,
                    bool fluxctl_lines, Env& env);

// The exit code of a finished job: 0, or kExitJobFailed when the job or any workload failed.
int JobExitCode(const ferry::v1::Job& job);

// Maps Drone's plugin environment (PLUGIN_* settings, DRONE_* build facts) onto release
// and client options. InvalidArgument naming the setting that is wrong.
absl::Status DroneToRelease(const std::map<std::string, std::string>& environment,
                            ReleaseOptions& release, ClientOptions& client);
// True when the process runs as a Drone plugin step (DRONE=true or PLUGIN_* settings).
bool IsDronePlugin(const std::map<std::string, std::string>& environment);

// Registers every api command on `app`. `connect` makes the stub when a command runs;
// the chosen command's exit code is stored in `exit_code`.
using StubFactory =
    std::function<absl::StatusOr<std::unique_ptr<ferry::v1::Ferry::StubInterface>>()>;
void AddApiCommands(CLI::App& app, ClientOptions& client, const StubFactory& connect,
                    int& exit_code, const std::string& version);

// Registers `why` on `app` (cli/why.cc); like AddApiCommands' commands, it connects with
// `connect` when it runs and stores its exit code in `exit_code`.
void AddWhyCommand(CLI::App& app, ClientOptions& client, const StubFactory& connect,
                   int& exit_code);

// Runs the release a Drone plugin step's environment describes (see DroneToRelease).
int RunDrone(const std::map<std::string, std::string>& environment, ClientOptions& client,
             const StubFactory& connect, std::ostream& out, std::ostream& err);

// The process environment as a map.
std::map<std::string, std::string> Environment();

// A completion script for `shell` (bash, zsh or fish) covering every command and flag of
// `app`. InvalidArgument for another shell.
absl::StatusOr<std::string> CompletionScript(const CLI::App& app, const std::string& shell);

// The user to record: $FERRY_USER, `git config user.name` (with user.email), $USER.
std::string DefaultUser();

}  // namespace ferry::cli
