// ferryctl identity, save (export), version and jobs: the read-only odds and ends.
#include <stdio.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/table.h"

namespace ferry::cli {
namespace {

// The first line a command prints on stdout, trimmed; empty when it fails.
std::string CommandLine(const char* command) {
  FILE* p = popen(command, "r");
  if (p == nullptr) return "";
  char buf[512];
  std::string out;
  if (fgets(buf, sizeof(buf), p) != nullptr) out = buf;
  pclose(p);
  return std::string(absl::StripAsciiWhitespace(out));
}

// "<namespace>/<name>-<kind>.yaml" for an exported resource id "namespace:kind/name".
std::string FileFor(const std::string& id) {
  const size_t colon = id.find(':');
  const size_t slash = id.find('/', colon);
  std::string ns = id.substr(0, colon);
  if (ns == "<cluster>") ns = "_cluster";
  return absl::StrCat(ns, "/", id.substr(slash + 1), "-", id.substr(colon + 1, slash - colon - 1),
                      ".yaml");
}

}  // namespace

std::string DefaultUser() {
  if (const char* v = std::getenv("FERRY_USER"); v != nullptr && *v != '\0') return v;
  const std::string name = CommandLine("git config --get user.name 2>/dev/null");
  if (!name.empty()) {
    const std::string email = CommandLine("git config --get user.email 2>/dev/null");
    return email.empty() ? name : absl::StrCat(name, " <", email, ">");
  }
  for (const char* var : {"GIT_AUTHOR_NAME", "USER"}) {
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') return v;
  }
  return "";
}

int RunIdentity(const IdentityOptions& options, Env& env) {
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  ferry::v1::Identity identity;
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  ferry::v1::GetIdentityRequest request;
  request.set_source(env.client.source);
  grpc::Status s = env.stub.GetIdentity(&ctx, request, &identity);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "reading the deploy key");
  // The deploy key's line as before (what the git host takes); the signing key, when Ferry
  // signs its commits, on a line of its own after it.
  const bool signing = !identity.signing_format().empty();
  const std::string& deploy = options.fingerprint ? identity.fingerprint() : identity.public_key();
  if (!deploy.empty() || !signing) env.out << deploy << "\n";
  if (signing) {
    env.out << "signing key (" << identity.signing_format() << "): "
            << (options.fingerprint ? identity.signing_fingerprint()
                                    : identity.signing_public_key())
            << "\n";
  }
  return kExitOk;
}

int RunSave(const SaveOptions& options, Env& env) {
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  ferry::v1::ExportRequest request;
  request.set_source(env.client.source);
  for (const auto& ns : options.namespaces) request.add_namespaces(ns);
  for (const auto& kind : options.kinds) request.add_kinds(kind);
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  auto stream = env.stub.Export(&ctx, request);
  std::vector<ferry::v1::ExportedResource> resources;
  ferry::v1::ExportedResource r;
  while (stream->Read(&r)) resources.push_back(r);
  grpc::Status s = stream->Finish();
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "exporting");
  const std::string target = options.output.empty() ? "-" : options.output;
  const bool folder =
      target != "-" && (target.back() == '/' || std::filesystem::is_directory(target));
  if (folder) {
    // One file per resource, a folder per namespace.
    for (const auto& res : resources) {
      const std::filesystem::path path = std::filesystem::path(target) / FileFor(res.id());
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      std::ofstream file(path);
      file << res.yaml();
      if (!file) {
        return ReportError(
            env.err, absl::PermissionDeniedError(absl::StrCat("cannot write ", path.string())));
      }
    }
    env.err << "Saved " << resources.size() << " resource(s) under " << target << "\n";
    return kExitOk;
  }
  std::string all;
  for (size_t i = 0; i < resources.size(); ++i) {
    absl::StrAppend(&all, i > 0 ? "---\n" : "", resources[i].yaml());
  }
  if (target == "-") {
    env.out << all;
    return kExitOk;
  }
  std::ofstream file(target);
  file << all;
  if (!file) {
    return ReportError(env.err, absl::PermissionDeniedError(absl::StrCat("cannot write ", target)));
  }
  env.err << "Saved " << resources.size() << " resource(s) to " << target << "\n";
  return kExitOk;
}

int RunVersion(Env& env, const std::string& client_version) {
  env.out << "client: " << client_version << "\n";
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  ferry::v1::VersionInfo version;
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  grpc::Status s = env.stub.GetVersion(&ctx, ferry::v1::GetVersionRequest(), &version);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "asking the api's version");
  env.out << "api: " << version.version() << " (" << env.client.url << ")\n";
  for (const auto& [service, v] :
       std::map<std::string, std::string>(version.services().begin(), version.services().end())) {
    env.out << service << ": " << v << "\n";
  }
  if (!version.git_verify_error().empty()) {
    env.err << "ferryctl: warning: signature check (--git_verify_signatures): "
            << version.git_verify_error() << "\n";
  }
  return kExitOk;
}

int RunJobs(const JobsOptions& options, Env& env) {
  if (absl::Status s = ValidateOutput(options.output); !s.ok()) return ReportError(env.err, s);
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  if (!options.id.empty()) {
    return FollowAndReport(options.id, 2, options.output, /*fluxctl_lines=*/false, env);
  }
  ferry::v1::ListJobsRequest request;
  request.set_limit(options.limit);
  request.set_source(env.client.source);
  ferry::v1::ListJobsResponse response;
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  grpc::Status s = env.stub.ListJobs(&ctx, request, &response);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "listing jobs");
  absl::StatusOr<bool> printed = PrintStructured(options.output, response, env.out);
  if (!printed.ok()) return ReportError(env.err, printed.status());
  if (*printed) return kExitOk;
  // An api of several sources names each job's: a SOURCE column last.
  const bool sourced = std::any_of(response.jobs().begin(), response.jobs().end(),
                                   [](const ferry::v1::Job& j) { return !j.source().empty(); });
  std::vector<std::string> header = {"ID", "KIND", "STATE", "SUBMITTED", "REVISION", "USER"};
  if (sourced) header.push_back("SOURCE");
  Table table(header);
  for (const ferry::v1::Job& j : response.jobs()) {
    const std::string kind =
        absl::AsciiStrToLower(absl::StripPrefix(ferry::v1::JobKind_Name(j.kind()), "JOB_KIND_"));
    const std::string state =
        absl::AsciiStrToLower(absl::StripPrefix(ferry::v1::JobState_Name(j.state()), "JOB_STATE_"));
    std::vector<std::string> row = {
        j.id(), kind, state, Rfc822(j.submitted()), j.revision().substr(0, 12), j.cause().user()};
    if (sourced) row.push_back(j.source());
    table.AddRow(std::move(row));
  }
  table.Print(env.out);
  return kExitOk;
}

}  // namespace ferry::cli
