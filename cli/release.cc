// ferryctl release: fluxctl's release, as a job followed stage by stage.
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"

namespace ferry::cli {
namespace {

// `workloads`: as given with --workload or an alias (WorkloadsGiven).
absl::Status Validate(const ReleaseOptions& options, const std::vector<std::string>& workloads) {
  if (options.all && !workloads.empty()) {
    return absl::InvalidArgumentError("give --workload or --all, not both");
  }
  if (!options.all && workloads.empty()) {
    return absl::InvalidArgumentError(
        "say what to release: --workload=namespace:kind/name (repeatable) or --all");
  }
  if (options.update_all_images == !options.image.empty()) {
    return absl::InvalidArgumentError(
        options.update_all_images
            ? "give --update-image or --update-all-images, not both"
            : "say which image: --update-image=repo:tag or --update-all-images");
  }
  if (options.respect_min_age && !options.update_all_images) {
    return absl::InvalidArgumentError(
        "--respect-min-age goes with --update-all-images (an explicit image is released "
        "whatever its age)");
  }
  if (options.interactive && options.dry_run) {
    return absl::InvalidArgumentError("--interactive already shows the plan; drop --dry-run");
  }
  return absl::OkStatus();
}

grpc::Status Submit(const ferry::v1::ReleaseSpec& spec, const ReleaseOptions& options, Env& env,
                    absl::Duration timeout, ferry::v1::Job* job) {
  ferry::v1::ReleaseRequest request;
  request.set_source(env.client.source);
  *request.mutable_spec() = spec;
  request.mutable_cause()->set_user(options.user);
  request.mutable_cause()->set_message(options.message);
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, timeout);
  return env.stub.Release(&ctx, request, job);
}

}  // namespace

int RunRelease(const ReleaseOptions& options, Env& env, const ContainerChooser& choose) {
  absl::StatusOr<std::vector<std::string>> given =
      WorkloadsGiven(options.workloads, options.controllers, options.services, env.err);
  if (!given.ok()) return ReportError(env.err, given.status());
  if (absl::Status s = Validate(options, *given); !s.ok()) return ReportError(env.err, s);
  if (absl::Status s = ValidateOutput(options.output); !s.ok()) return ReportError(env.err, s);
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  ferry::v1::ReleaseSpec spec;
  std::vector<std::string> ids;
  if (int code = ResolveWorkloads(*given, options.namespace_, env, ids); code != kExitOk) {
    return code;
  }
  for (const std::string& id : ids) spec.add_workloads(id);
  std::vector<std::string> excludes;
  if (int code = ResolveWorkloads(options.excludes, options.namespace_, env, excludes);
      code != kExitOk) {
    return code;
  }
  for (const std::string& id : excludes) spec.add_excludes(id);
  spec.set_all_workloads(options.all);
  spec.set_image(options.image);
  spec.set_all_latest(options.update_all_images);
  spec.set_respect_min_age(options.respect_min_age);
  spec.set_force(options.force);
  spec.set_dry_run(options.dry_run);
  spec.set_wait_rollout(options.watch);
  spec.set_rollout_timeout_seconds(static_cast<int>(absl::ToInt64Seconds(*timeout)));

  if (options.interactive) {
    if (!choose) {
      return ReportError(env.err, absl::InvalidArgumentError("--interactive needs a terminal"));
    }
    // Plan first (a dry run), let the user pick containers, then release exactly those.
    ferry::v1::ReleaseSpec plan_spec = spec;
    plan_spec.set_dry_run(true);
    ferry::v1::Job plan;
    grpc::Status s = Submit(plan_spec, options, env, *timeout, &plan);
    if (!s.ok()) return ReportCallError(env.err, s, env.client, "planning the release");
    ferry::v1::Job planned;
    s = FollowJob(plan.id(), env, &planned);
    if (!s.ok()) return ReportCallError(env.err, s, env.client, "planning the release");
    if (planned.state() != ferry::v1::JOB_STATE_SUCCEEDED) {
      env.err << "ferryctl: planning failed: " << planned.error() << "\n";
      return kExitJobFailed;
    }
    std::vector<std::string> chosen = choose({planned.results().begin(), planned.results().end()});
    if (chosen.empty()) {
      env.err << "Nothing chosen; nothing released.\n";
      return kExitOk;
    }
    for (const std::string& c : chosen) spec.add_containers(c);
  }

  env.err << (options.dry_run ? "Submitting dry run ...\n" : "Submitting release ...\n");
  ferry::v1::Job job;
  grpc::Status s = Submit(spec, options, env, *timeout, &job);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "submitting the release");
  // fluxctl's line with the job id, which scripts grep for.
  if (options.verbosity >= 1 && options.output == "table") {
    env.out << "Release job submitted, ID " << job.id() << "\n";
  }
  // A dry run shows the rows it would skip, so the plan can be read; -v adds fluxctl's lines.
  return FollowAndReport(job.id(),
                         options.dry_run ? std::max(options.verbosity, 1) : options.verbosity,
                         options.output, /*fluxctl_lines=*/options.verbosity >= 1, env);
}

}  // namespace ferry::cli
