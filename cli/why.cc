// ferryctl why: for each container of a workload, every tag of its image repository with
// what automation makes of it (ExplainTags), and what automation will do next.
#include <iostream>
#include <memory>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/table.h"

namespace ferry::cli {
namespace {

// "TAG_VERDICT_OLDER_THAN_CURRENT" -> "older-than-current".
std::string VerdictWord(ferry::v1::TagVerdict verdict) {
  std::string name(absl::StripPrefix(ferry::v1::TagVerdict_Name(verdict), "TAG_VERDICT_"));
  absl::AsciiStrToLower(&name);
  return absl::StrReplaceAll(name, {{"_", "-"}});
}

void PrintContainer(const ferry::v1::ContainerExplanation& c, bool headers, std::ostream& out) {
  out << "Container: " << c.container() << "\n";
  out << "Image:     " << c.current_image() << "\n";
  out << "Filter:    " << (c.tag_filter().empty() ? "glob:*" : c.tag_filter()) << "\n";
  out << "Min age:   " << (c.min_age().empty() ? "none" : c.min_age()) << "\n";
  out << "Next:      " << c.next() << "\n";
  if (!c.error().empty()) {
    out << "Error:     " << c.error() << "\n";
    return;
  }
  Table table({"TAG", "VERDICT", "RANK", "CREATED", "DETAIL"});
  for (const ferry::v1::TagExplanation& t : c.tags()) {
    table.AddRow({t.tag(), VerdictWord(t.verdict()), t.rank() > 0 ? absl::StrCat(t.rank()) : "-",
                  t.has_created() ? Rfc822(t.created()) : "?", t.reason()});
  }
  table.Print(out, headers);
  if (c.omitted() > 0) out << "(" << c.omitted() << " more tag(s) omitted; --limit shows more)\n";
}

}  // namespace

int RunWhy(const WhyOptions& options, Env& env) {
  if (absl::Status s = ValidateOutput(options.output); !s.ok()) return ReportError(env.err, s);
  if (options.workload.empty()) {
    return ReportError(
        env.err, absl::InvalidArgumentError("--workload: which workload (namespace:kind/name)?"));
  }
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  std::vector<std::string> ids;
  if (int code = ResolveWorkloads({options.workload}, options.namespace_, env, ids);
      code != kExitOk) {
    return code;
  }
  ferry::v1::ExplainTagsRequest request;
  request.set_source(env.client.source);
  request.set_workload(ids[0]);
  request.set_container(options.container);
  request.set_limit(options.limit);  // its range is the server's to check (INVALID_ARGUMENT)
  ferry::v1::ExplainTagsResponse response;
  grpc::ClientContext ctx;
  PrepareCall(ctx, env.client, *timeout);
  grpc::Status s = env.stub.ExplainTags(&ctx, request, &response);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "explaining tags");
  absl::StatusOr<bool> printed = PrintStructured(options.output, response, env.out);
  if (!printed.ok()) return ReportError(env.err, printed.status());
  if (*printed) return kExitOk;
  env.out << "Workload:   " << response.workload() << "\n";
  env.out << "Automation: "
          << (response.automation_blocked().empty()
                  ? "on"
                  : absl::StrCat("blocked: ", response.automation_blocked()))
          << "\n";
  for (const ferry::v1::ContainerExplanation& c : response.containers()) {
    env.out << "\n";
    PrintContainer(c, !options.no_headers, env.out);
  }
  return kExitOk;
}

void AddWhyCommand(CLI::App& app, ClientOptions& client, const StubFactory& connect,
                   int& exit_code) {
  auto why = std::make_shared<WhyOptions>();
  CLI::App* cmd = app.add_subcommand(
      "why", "Why automation picks, skips or waits for each tag of a workload's images");
  cmd->add_option("-w,--workload", why->workload, "Workload (namespace:kind/name)")->required();
  cmd->add_option("-c,--container", why->container, "Only this container");
  cmd->add_option("-n,--namespace", why->namespace_, "Namespace of a workload id given without one")
      ->capture_default_str();
  cmd->add_option("-l,--limit", why->limit,
                  "Tags per container, best first (0: the server's default)")
      ->capture_default_str();
  cmd->add_flag("--no-headers", why->no_headers, "No header line");
  cmd->add_option("-o,--output", why->output, "table, json or yaml")->capture_default_str();
  cmd->callback([why, &client, connect, &exit_code] {
    auto stub = connect();
    if (!stub.ok()) {
      exit_code = ReportError(std::cerr, stub.status());
      return;
    }
    Env env{**stub, client, std::cout, std::cerr, false};
    exit_code = RunWhy(*why, env);
  });
}

}  // namespace ferry::cli
