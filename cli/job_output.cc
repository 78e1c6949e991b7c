// Following a job (its stages as they happen) and printing its result table; shared by
// release, the policy commands, sync and jobs.
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/table.h"
#include "lib/runtime/proto_time.h"

namespace ferry::cli {
namespace {

const char* StageLabel(ferry::v1::JobStageKind kind) {
  switch (kind) {
    case ferry::v1::JOB_STAGE_KIND_SUBMITTED:
      return "submitted";
    case ferry::v1::JOB_STAGE_KIND_PLANNING:
      return "planning";
    case ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED:
      return "commit pushed";
    case ferry::v1::JOB_STAGE_KIND_APPLIED:
      return "applied";
    case ferry::v1::JOB_STAGE_KIND_ROLLOUT:
      return "rollout";
    case ferry::v1::JOB_STAGE_KIND_DONE:
      return "done";
    case ferry::v1::JOB_STAGE_KIND_FAILED:
      return "failed";
    default:
      return "?";
  }
}

std::string Elapsed(const ferry::v1::Job& job, const google::protobuf::Timestamp& at) {
  const absl::Duration d =
      runtime::FromProtoTimestamp(at) - runtime::FromProtoTimestamp(job.submitted());
  return absl::StrFormat("[%6.2fs]", absl::ToDoubleSeconds(d));
}

// "web 1/3 updated, 1 ready; api ready"
std::string RolloutSummary(const ferry::v1::JobStage& stage) {
  std::vector<std::string> parts;
  for (const ferry::v1::WorkloadRollout& r : stage.rollouts()) {
    const ferry::v1::RolloutStatus& s = r.status();
    std::string state;
    switch (s.state()) {
      case ferry::v1::ROLLOUT_STATE_READY:
        state = "ready";
        break;
      case ferry::v1::ROLLOUT_STATE_ERROR:
        state = s.messages().empty() ? "error" : absl::StrCat("error: ", s.messages(0));
        break;
      default:
        state = absl::StrCat(s.updated(), "/", s.desired(), " updated, ", s.ready(), " ready");
    }
    parts.push_back(absl::StrCat(r.workload(), " ", state));
  }
  return absl::StrJoin(parts, "; ");
}

std::string StageLine(const ferry::v1::Job& job, const ferry::v1::JobStage& stage) {
  std::string line =
      absl::StrFormat("%s %-13s", Elapsed(job, stage.time()), StageLabel(stage.kind()));
  if (!stage.revision().empty()) absl::StrAppend(&line, " ", stage.revision().substr(0, 12));
  if (stage.kind() == ferry::v1::JOB_STAGE_KIND_ROLLOUT) {
    absl::StrAppend(&line, " ", RolloutSummary(stage));
  } else if (!stage.message().empty()) {
    absl::StrAppend(&line, " ", stage.message());
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

// A stage as one of fluxctl's numbered lines ("Pushed commit: 33ce4e3 (...)").
std::string FluxStageLine(const ferry::v1::JobStage& stage) {
  const std::string revision = stage.revision().substr(0, 7);
  std::string detail = stage.message();
  std::string line;
  switch (stage.kind()) {
    case ferry::v1::JOB_STAGE_KIND_SUBMITTED:
      line = "Submitted job";
      break;
    case ferry::v1::JOB_STAGE_KIND_PLANNING:
      line = "Calculating release actions";
      break;
    case ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED:
      line = "Pushed commit: " + revision;
      break;
    case ferry::v1::JOB_STAGE_KIND_APPLIED:
      line = "Applied " + revision;
      break;
    case ferry::v1::JOB_STAGE_KIND_ROLLOUT:
      line = "Rollout";
      detail = RolloutSummary(stage);
      break;
    case ferry::v1::JOB_STAGE_KIND_DONE:
      line = "Done";
      break;
    case ferry::v1::JOB_STAGE_KIND_FAILED:
      line = "Failed";
      break;
    default:
      line = "?";
      break;
  }
  if (!detail.empty()) absl::StrAppend(&line, " (", detail, ")");
  return line + ".";
}

bool Finished(const ferry::v1::Job& job) {
  return job.state() == ferry::v1::JOB_STATE_SUCCEEDED ||
         job.state() == ferry::v1::JOB_STATE_FAILED;
}

}  // namespace

grpc::Status FollowJob(const std::string& id, Env& env, ferry::v1::Job* job) {
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  grpc::ClientContext ctx;
  // --timeout bounds the job's own waits (a release's rollout); following it gets a margin
  // for the commit and the apply around them.
  PrepareCall(ctx, env.client, (timeout.ok() ? *timeout : absl::Seconds(60)) + absl::Seconds(30));
  ferry::v1::GetJobRequest request;
  request.set_id(id);
  auto stream = env.stub.WatchJob(&ctx, request);
  int printed = 0;
  bool redraw = false;  // the last line on the terminal is a rollout line to redraw
  ferry::v1::Job current;
  while (stream->Read(&current)) {
    for (; printed < current.stages_size(); ++printed) {
      const ferry::v1::JobStage& stage = current.stages(printed);
      const bool rollout = stage.kind() == ferry::v1::JOB_STAGE_KIND_ROLLOUT;
      const std::string line = StageLine(current, stage);
      if (env.terminal && redraw) env.err << "\r\033[2K";
      env.err << line;
      redraw = env.terminal && rollout;
      if (!redraw) env.err << "\n";
    }
    env.err.flush();
    *job = current;
    if (Finished(current)) break;
  }
  if (redraw) env.err << "\n";
  grpc::Status s = stream->Finish();
  if (!s.ok() && Finished(*job)) return grpc::Status::OK;
  return s;
}

void PrintResults(const ferry::v1::Job& job, int verbosity, std::ostream& out) {
  Table table({"WORKLOAD", "STATUS", "UPDATES"});
  bool any = false;
  for (const ferry::v1::WorkloadResult& r : job.results()) {
    std::string status;
    switch (r.status()) {
      case ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS:
        status = "success";
        break;
      case ferry::v1::WORKLOAD_RESULT_STATUS_FAILED:
        status = "failed";
        break;
      case ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED:
        if (verbosity < 1) continue;
        status = "skipped";
        break;
      case ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED:
        if (verbosity < 2) continue;
        status = "ignored";
        break;
      default:
        continue;
    }
    any = true;
    if (r.updates().empty()) {
      table.AddRow({r.workload(), status, r.reason()});
      continue;
    }
    bool first = true;
    for (const ferry::v1::ContainerUpdate& u : r.updates()) {
      const size_t colon = u.to_image().rfind(':');
      const std::string to_tag =
          colon == std::string::npos ? u.to_image() : u.to_image().substr(colon + 1);
      table.AddRow({first ? r.workload() : "", first ? status : "",
                    absl::StrCat(u.container(), ": ", u.from_image(), " -> ", to_tag)});
      first = false;
    }
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED && !r.reason().empty()) {
      table.AddRow({"", "", r.reason()});
    }
    // A shared kustomize base or images: entry: the change reaches other roots too.
    if (r.kustomize_roots_size() > 1) {
      table.AddRow(
          {"", "",
           absl::StrCat("changes kustomize roots: ", absl::StrJoin(r.kustomize_roots(), ", "))});
    }
  }
  if (any) table.Print(out);
}

int JobExitCode(const ferry::v1::Job& job) {
  if (job.state() == ferry::v1::JOB_STATE_FAILED) return kExitJobFailed;
  for (const ferry::v1::WorkloadResult& r : job.results()) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED) return kExitJobFailed;
  }
  return job.state() == ferry::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitError;
}

int FollowAndReport(const std::string& id, int verbosity, const std::string& output,
                    bool fluxctl_lines, Env& env) {
  ferry::v1::Job job;
  grpc::Status s = FollowJob(id, env, &job);
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    env.err << "ferryctl: job " << id << " is still running after --timeout " << env.client.timeout
            << "; it may still complete: follow it with `ferryctl jobs " << id << "`\n";
    return kExitUnavailable;
  }
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "following the job");
  const bool flux_lines = fluxctl_lines && output == "table";
  const absl::Duration took =
      runtime::FromProtoTimestamp(job.finished()) - runtime::FromProtoTimestamp(job.submitted());
  absl::StatusOr<bool> printed = PrintStructured(output, job, env.out);
  if (!printed.ok()) {
    // The job's own failure, when it failed, decides the exit code: a CI step keys on it.
    const int printing = ReportError(env.err, printed.status());
    return JobExitCode(job) == kExitJobFailed ? kExitJobFailed : printing;
  }
  if (!*printed) {
    if (flux_lines) {
      env.out << "Status: " << (JobExitCode(job) == kExitOk ? "Complete." : "Failed.") << "\n"
              << "Here's what happened:\n";
      for (int i = 0; i < job.stages_size(); ++i) {
        env.out << i + 1 << ". " << FluxStageLine(job.stages(i)) << "\n";
      }
    }
    if (job.kind() == ferry::v1::JOB_KIND_REVERT) {
      // An automatic revert (rollback: auto): which release it undid, and why.
      env.out << "Reverts job:    " << job.reverts_job() << "\n";
      if (!job.cause().message().empty())
        env.out << "Why:            " << job.cause().message() << "\n";
    }
    if (!job.reverted_by_job().empty()) {
      env.out << "Reverted by job: " << job.reverted_by_job() << " (its rollout failed)\n";
    }
    PrintResults(job, verbosity, env.out);
    std::string pushed, applied;
    for (const ferry::v1::JobStage& stage : job.stages()) {
      if (stage.kind() == ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED) pushed = stage.revision();
      if (stage.kind() == ferry::v1::JOB_STAGE_KIND_APPLIED) applied = stage.revision();
    }
    if (flux_lines) {
      if (!pushed.empty()) env.out << "Commit pushed: " << pushed.substr(0, 7) << "\n";
      if (!applied.empty()) env.out << "Applied " << applied << "\n";
    } else {
      if (!pushed.empty()) env.out << "Commit pushed:  " << pushed << "\n";
      if (!applied.empty()) env.out << "Commit applied: " << applied << "\n";
    }
    // An api of several sources: whose repo and cluster.
    if (!job.source().empty()) env.out << "Source: " << job.source() << "\n";
    // git-writer's --git_push_branch: the change waits on a release branch for a review.
    if (!job.pushed_branch().empty()) {
      env.out << "Pushed to branch " << job.pushed_branch() << " (not applied until merged)\n";
    }
    if (job.dry_run()) env.out << "Dry run: nothing was committed\n";
    if (flux_lines && job.has_finished()) env.out << "Took " << absl::FormatDuration(took) << "\n";
  }
  if (!job.error().empty()) env.err << "ferryctl: job failed: " << job.error() << "\n";
  if (job.has_finished() && !flux_lines) {
    env.err << absl::StrFormat("Took %.2fs (job %s)\n", absl::ToDoubleSeconds(took), id);
  }
  return JobExitCode(job);
}

}  // namespace ferry::cli
