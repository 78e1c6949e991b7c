// Workloads as every command takes them: -w/--workload, fluxctl's older --controller and
// --service, and legacy ids "namespace/name" resolved through the api.
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/workload_id.h"

namespace ferry::cli {

absl::StatusOr<std::vector<std::string>> WorkloadsGiven(const std::vector<std::string>& workloads,
                                                        const std::vector<std::string>& controllers,
                                                        const std::vector<std::string>& services,
                                                        std::ostream& err) {
  std::vector<std::string> used;
  if (!workloads.empty()) used.push_back("--workload");
  if (!controllers.empty()) used.push_back("--controller");
  if (!services.empty()) used.push_back("--service");
  if (used.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::StrJoin(used, " and "),
                     " both name workloads: give them all with --workload (-w); --controller and "
                     "--service are its old names"));
  }
  if (!controllers.empty() || !services.empty()) {
    err << "ferryctl: " << used[0] << " is deprecated; use --workload (-w)\n";
  }
  return !controllers.empty() ? controllers : !services.empty() ? services : workloads;
}

int ResolveWorkloads(const std::vector<std::string>& given, const std::string& namespace_, Env& env,
                     std::vector<std::string>& ids) {
  ids.clear();
  bool legacy = false;
  for (const std::string& w : given) {
    if (IsLegacyWorkloadId(w)) {
      legacy = true;
      continue;
    }
    absl::StatusOr<std::string> id = ParseWorkloadId(w, namespace_);
    if (!id.ok()) return ReportError(env.err, id.status());
  }
  std::vector<std::string> known;
  if (legacy) {
    absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
    if (!timeout.ok()) return ReportError(env.err, timeout.status());
    ferry::v1::ListWorkloadsRequest request;  // every namespace: names the ones there are
    request.set_source(env.client.source);
    ferry::v1::ListWorkloadsResponse response;
    grpc::Status s = CallAllPages(env.stub, &ferry::v1::Ferry::StubInterface::ListWorkloads,
                                  env.client, *timeout, request, &response);
    if (!s.ok()) return ReportCallError(env.err, s, env.client, "looking up workloads");
    for (const ferry::v1::Workload& w : response.workloads()) known.push_back(w.id());
  }
  for (const std::string& w : given) {
    absl::StatusOr<std::string> id =
        IsLegacyWorkloadId(w) ? ResolveLegacyWorkloadId(w, known) : ParseWorkloadId(w, namespace_);
    if (!id.ok()) return ReportError(env.err, id.status());
    ids.push_back(*std::move(id));
  }
  return kExitOk;
}

}  // namespace ferry::cli
