// ferryctl automate / deautomate / lock / unlock / policy: one policy job for every named
// workload, one commit.
#include "lib/convert/policy.h"

#include <ostream>
#include <set>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/policy_flags.h"

namespace ferry::cli {

int RunPolicy(const PolicyOptions& options, Env& env) {
  absl::StatusOr<std::vector<std::string>> given =
      WorkloadsGiven(options.workloads, options.controllers, options.services, env.err);
  if (!given.ok()) return ReportError(env.err, given.status());
  if (given->empty()) {
    return ReportError(
        env.err,
        absl::InvalidArgumentError("name a workload: --workload=namespace:kind/name (repeatable)"));
  }
  absl::StatusOr<manifest::PolicyUpdate> update = ParsePolicyFlags(options);
  if (!update.ok()) return ReportError(env.err, update.status());
  const std::vector<ferry::v1::PolicyChange> changes = convert::ToPolicyChanges(*update);
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  std::vector<std::string> ids;
  if (int code = ResolveWorkloads(*given, options.namespace_, env, ids); code != kExitOk) {
    return code;
  }
  ferry::v1::UpdatePolicyRequest request;
  request.set_source(env.client.source);
  std::set<std::string> seen;
  for (const std::string& id : ids) {
    if (!seen.insert(id).second) continue;
    ferry::v1::WorkloadPolicyChanges* entry = request.add_changes();
    entry->set_workload(id);
    for (const auto& c : changes) *entry->add_changes() = c;
  }
  request.mutable_cause()->set_user(options.user);
  request.mutable_cause()->set_message(options.message);
  ferry::v1::Job job;
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  grpc::Status s = env.stub.UpdatePolicy(&ctx, request, &job);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "submitting the policy change");
  if (!options.wait) {
    env.out << job.id() << "\n";
    return kExitOk;
  }
  return FollowAndReport(job.id(), 0, "table", /*fluxctl_lines=*/false, env);
}

}  // namespace ferry::cli
