// ferryctl list-workloads (aliases list-controllers, list-services)
#include <algorithm>
#include <map>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/table.h"

namespace ferry::cli {
namespace {

// The RELEASE column: the rollout as fluxctl summarized it.
std::string ReleaseColumn(const ferry::v1::Workload& w) {
  const ferry::v1::RolloutStatus& r = w.rollout();
  std::string status;
  switch (r.state()) {
    case ferry::v1::ROLLOUT_STATE_READY:
      status = "ready";
      break;
    case ferry::v1::ROLLOUT_STATE_UPDATING:
      status = absl::StrCat("updating (", r.updated(), " of ", r.desired(), " updated, ", r.ready(),
                            " ready)");
      break;
    case ferry::v1::ROLLOUT_STATE_ERROR:
      status = r.messages().empty() ? "error" : absl::StrCat("error: ", r.messages(0));
      break;
    default:
      status = "unknown";
      break;
  }
  if (!w.sync_error().empty()) absl::StrAppend(&status, " (sync error)");
  return status;
}

const char* ReadOnlyName(ferry::v1::ReadOnlyReason reason) {
  switch (reason) {
    case ferry::v1::READ_ONLY_REASON_NOT_IN_REPO:
      return "not in repo";
    case ferry::v1::READ_ONLY_REASON_SYSTEM:
      return "system";
    case ferry::v1::READ_ONLY_REASON_READ_ONLY_MODE:
      return "read-only mode";
    case ferry::v1::READ_ONLY_REASON_NOT_READY:
      return "not ready";
    default:
      return "";
  }
}

// The POLICY column: "automated,locked" as fluxctl showed it, why a workload cannot be
// released, its soak times (all containers', then each container's) and automatic
// rollback, and how many policy annotations do not
// parse ("policy-error(1)": automation skips the workload).
std::string PolicyColumn(const ferry::v1::Workload& w) {
  std::vector<std::string> parts;
  if (w.policy().automated()) parts.push_back("automated");
  if (w.policy().locked()) parts.push_back("locked");
  if (w.policy().ignore() == ferry::v1::IGNORE_MODE_ALL) parts.push_back("ignore");
  if (w.policy().ignore() == ferry::v1::IGNORE_MODE_SYNC_ONLY) parts.push_back("ignore=sync_only");
  if (w.read_only() != ferry::v1::READ_ONLY_REASON_UNSPECIFIED) {
    parts.push_back(absl::StrCat("readonly(", ReadOnlyName(w.read_only()), ")"));
  }
  // Safe automation (issue 19); the errors in full are in -o json / yaml.
  if (!w.policy().min_age_all().empty()) parts.push_back("min-age=" + w.policy().min_age_all());
  // Per container, by name (a proto map's order is unspecified).
  const std::map<std::string, std::string> min_ages(w.policy().min_ages().begin(),
                                                    w.policy().min_ages().end());
  for (const auto& [container, age] : min_ages) {
    parts.push_back(absl::StrCat("min-age.", container, "=", age));
  }
  if (w.policy().rollback() == "auto") parts.push_back("rollback=auto");
  if (!w.policy().errors().empty()) {
    parts.push_back(absl::StrCat("policy-error(", w.policy().errors_size(), ")"));
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace

int RunListWorkloads(const ListWorkloadsOptions& options, Env& env) {
  if (absl::Status s = ValidateOutput(options.output); !s.ok()) return ReportError(env.err, s);
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  ferry::v1::ListWorkloadsRequest request;
  request.set_source(env.client.source);
  if (!options.all_namespaces) request.set_namespace_(options.namespace_);
  request.set_container(options.container);
  ferry::v1::ListWorkloadsResponse response;
  grpc::Status s = CallAllPages(env.stub, &ferry::v1::Ferry::StubInterface::ListWorkloads,
                                env.client, *timeout, request, &response);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "listing workloads");
  // On stderr, so that tables and -o json/yaml stay parseable.
  if (!response.git_verify_error().empty()) {
    env.err << "ferryctl: warning: signature check (--git_verify_signatures): "
            << response.git_verify_error() << "; listing the last verified revision "
            << response.revision().substr(0, 12) << "\n";
  }
  // An api of several sources lists the others when one does not answer.
  for (const std::string& s : response.unavailable_sources()) {
    env.err << "ferryctl: warning: source " << s << "; its workloads are not listed\n";
  }
  absl::StatusOr<bool> printed = PrintStructured(options.output, response, env.out);
  if (!printed.ok()) return ReportError(env.err, printed.status());
  if (*printed) return kExitOk;
  // An api of several sources names each workload's: a SOURCE column first.
  const bool sourced =
      std::any_of(response.workloads().begin(), response.workloads().end(),
                  [](const ferry::v1::Workload& w) { return !w.source().empty(); });
  std::vector<std::string> header = {"WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY"};
  if (sourced) header.insert(header.begin(), "SOURCE");
  Table table(header);
  auto add = [&](const ferry::v1::Workload& w, bool first, std::vector<std::string> row) {
    if (sourced) row.insert(row.begin(), first ? w.source() : "");
    table.AddRow(std::move(row));
  };
  for (const ferry::v1::Workload& w : response.workloads()) {
    if (w.containers().empty()) {
      add(w, true, {w.id(), "", "", ReleaseColumn(w), PolicyColumn(w)});
      continue;
    }
    bool first = true;
    for (const ferry::v1::Container& c : w.containers()) {
      if (!options.container.empty() && c.name() != options.container) continue;
      add(w, first,
          {first ? w.id() : "", c.name(), c.image(), first ? ReleaseColumn(w) : "",
           first ? PolicyColumn(w) : ""});
      first = false;
    }
  }
  table.Print(env.out, !options.no_headers);
  return kExitOk;
}

}  // namespace ferry::cli
