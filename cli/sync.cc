// ferryctl sync: fetch git now and wait until the head is applied.
#include <ostream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/table.h"

namespace ferry::cli {

int RunSync(const SyncOptions& options, Env& env) {
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  ferry::v1::SyncRequest request;
  request.set_source(env.client.source);
  request.mutable_cause()->set_user(options.user);
  request.mutable_cause()->set_message(options.message);
  ferry::v1::Job job;
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  grpc::Status s = env.stub.Sync(&ctx, request, &job);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "asking for a sync");
  env.err << "Fetching git and applying its head ...\n";
  ferry::v1::Job done;
  s = FollowJob(job.id(), env, &done);
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    env.err << "ferryctl: the sync is still running after --timeout " << env.client.timeout
            << "; follow it with `ferryctl jobs " << job.id() << "`\n";
    return kExitUnavailable;
  }
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "following the sync");
  if (done.state() == ferry::v1::JOB_STATE_FAILED) {
    env.err << "ferryctl: sync failed: " << done.error() << "\n";
    return kExitJobFailed;
  }
  env.out << "Revision applied: " << done.revision() << "\n";
  if (!done.results().empty()) {
    Table table({"RESOURCE", "ERROR"});
    for (const auto& r : done.results()) table.AddRow({r.workload(), r.reason()});
    table.Print(env.out);
  }
  return JobExitCode(done);
}

}  // namespace ferry::cli
