// ferryctl automate / deautomate / lock / unlock / policy: one policy job for every named
// workload, one commit.
#include <ostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"

namespace ferry::cli {
namespace {

// The changes the flags ask for; InvalidArgument for contradictions, before any call.
absl::StatusOr<std::vector<ferry::v1::PolicyChange>> Changes(const PolicyOptions& options) {
  if (options.automate && options.deautomate) {
    return absl::InvalidArgumentError("--automate and --deautomate contradict each other");
  }
  if (options.lock && options.unlock) {
    return absl::InvalidArgumentError("--lock and --unlock contradict each other");
  }
  std::vector<ferry::v1::PolicyChange> out;
  if (options.automate) out.emplace_back().set_automate(true);
  if (options.deautomate) out.emplace_back().set_deautomate(true);
  if (options.lock) {
    ferry::v1::LockChange* lock = out.emplace_back().mutable_lock();
    lock->set_user(options.user);
    lock->set_message(options.message);
  }
  if (options.unlock) out.emplace_back().set_unlock(true);
  std::set<std::string> containers;
  for (const std::string& tag : options.tags) {
    const size_t eq = tag.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tag.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tag '", tag, "': use CONTAINER=PATTERN, e.g. --tag app=semver:~1.2 ('*' removes it)"));
    }
    const std::string container = tag.substr(0, eq);
    const std::string pattern = tag.substr(eq + 1);
    if (!containers.insert(container).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tag names container ", container, " twice"));
    }
    if (pattern == "*") {
      out.emplace_back().set_remove_tag_filter(container);
    } else {
      ferry::v1::TagFilterChange* f = out.emplace_back().mutable_set_tag_filter();
      f->set_container(container);
      f->set_pattern(pattern);
    }
  }
  if (options.tag_all.has_value()) {
    if (options.tag_all->empty()) {
      return absl::InvalidArgumentError("--tag-all: give a pattern ('*' removes it)");
    }
    if (*options.tag_all == "*") out.emplace_back().set_remove_tag_all(true);
    else out.emplace_back().set_set_tag_all(*options.tag_all);
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "nothing to change: give --automate, --deautomate, --lock, --unlock, --tag or --tag-all");
  }
  return out;
}

}  // namespace

int RunPolicy(const PolicyOptions& options, Env& env) {
  absl::StatusOr<std::vector<std::string>> given =
      WorkloadsGiven(options.workloads, options.controllers, options.services, env.err);
  if (!given.ok()) return ReportError(env.err, given.status());
  if (given->empty()) {
    return ReportError(env.err, absl::InvalidArgumentError(
                                    "name a workload: --workload=namespace:kind/name (repeatable)"));
  }
  absl::StatusOr<std::vector<ferry::v1::PolicyChange>> changes = Changes(options);
  if (!changes.ok()) return ReportError(env.err, changes.status());
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  std::vector<std::string> ids;
  if (int code = ResolveWorkloads(*given, options.namespace_, env, ids); code != kExitOk) {
    return code;
  }
  ferry::v1::UpdatePolicyRequest request;
  std::set<std::string> seen;
  for (const std::string& id : ids) {
    if (!seen.insert(id).second) continue;
    ferry::v1::WorkloadPolicyChanges* entry = request.add_changes();
    entry->set_workload(id);
    for (const auto& c : *changes) *entry->add_changes() = c;
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
