// ferryctl list-images: fluxctl's tree of each container's tags, newest first under the
// container's ordering, the running one marked; a tag automation holds back says so after
// its creation time ("soaking until <time>", "rejected" or "rejected (job <id>)"), and a container
// with a soak time shows it on its line ("min-age 2h").
#include <algorithm>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/table.h"
#include "lib/image/reference.h"
#include "lib/runtime/proto_time.h"

namespace ferry::cli {
namespace {

// The tag's creation time, and why automation holds it back, if it does.
std::string CreatedAndHold(const ferry::v1::ImageTag& t) {
  std::string cell = Rfc822(t.info().created());
  if (t.rejected() && t.rejected_by_job().empty()) {
    absl::StrAppend(&cell, "  rejected");
  } else if (t.rejected() || !t.rejected_by_job().empty()) {
    absl::StrAppend(&cell, "  rejected (job ", t.rejected_by_job(), ")");
  } else if (t.has_eligible_at()) {
    absl::StrAppend(&cell, "  soaking until ", runtime::FormatRfc3339Utc(t.eligible_at()));
  }
  return cell;
}

void AddContainer(const ferry::v1::ContainerImages& c, int limit, std::string& workload,
                  Table& table) {
  absl::StatusOr<image::Reference> current = image::Reference::Parse(c.current_image());
  const std::string name = current.ok() ? current->name() : c.current_image();
  const std::string current_tag = current.ok() ? current->tag() : "";
  std::string note = c.error();
  if (c.tags().empty() && note.empty()) note = "no image data";
  if (note.empty() && !c.min_age().empty()) note = "min-age " + c.min_age();
  table.AddRow({workload, c.container(), name, note});
  workload.clear();

  const int n = c.tags_size();
  int current_index = -1;
  for (int i = 0; i < n; ++i) {
    if (c.tags(i).current()) current_index = i;
  }
  for (int i = 0; i < n; ++i) {
    const ferry::v1::ImageTag& t = c.tags(i);
    const bool current = i == current_index;
    if (limit > 0 && i >= limit && !current) continue;
    if (limit > 0 && current && i > limit) {
      // The running tag is always shown, after a line saying how many were left out.
      table.AddRow({"", "", absl::StrCat(": (", i - limit, " image(s) omitted)"), ""});
    }
    const char* marker = current ? "'->" : current_index >= 0 && i > current_index ? "   " : "|  ";
    table.AddRow({"", "", absl::StrCat(marker, " ", t.info().tag()), CreatedAndHold(t)});
  }
  // Tags below the last line shown (fluxctl left these out silently).
  if (limit > 0) {
    const int after = n - std::max(limit, current_index + 1);
    if (after > 0) table.AddRow({"", "", absl::StrCat(": (", after, " image(s) omitted)"), ""});
  }
  const bool found_running = current_index >= 0;
  if (!found_running) {
    table.AddRow(
        {"", "", absl::StrCat("'-> ", current_tag.empty() ? "(untagged)" : current_tag), "?"});
  }
}

}  // namespace

int RunListImages(const ListImagesOptions& options, Env& env) {
  if (absl::Status s = ValidateOutput(options.output); !s.ok()) return ReportError(env.err, s);
  if (options.limit < 0) {
    return ReportError(env.err, absl::InvalidArgumentError("--limit: 0 (all) or more"));
  }
  absl::StatusOr<absl::Duration> timeout = ParseTimeout(env.client);
  if (!timeout.ok()) return ReportError(env.err, timeout.status());
  auto one = [](const std::string& w) {
    return w.empty() ? std::vector<std::string>() : std::vector<std::string>{w};
  };
  absl::StatusOr<std::vector<std::string>> given =
      WorkloadsGiven(one(options.workload), one(options.controller), one(options.service), env.err);
  if (!given.ok()) return ReportError(env.err, given.status());
  ferry::v1::ListImagesRequest request;
  request.set_source(env.client.source);
  if (!given->empty()) {
    std::vector<std::string> ids;
    if (int code = ResolveWorkloads(*given, options.namespace_, env, ids); code != kExitOk) {
      return code;
    }
    request.set_workload(ids[0]);
  } else if (!options.all_namespaces) {
    request.set_namespace_(options.namespace_);
  }
  // The table needs every tag to place the running one; json and yaml get what was asked.
  request.set_limit(options.output == "table" ? 0 : options.limit);
  ferry::v1::ListImagesResponse response;
  grpc::Status s = CallAllPages(env.stub, &ferry::v1::Ferry::StubInterface::ListImages, env.client,
                                *timeout, request, &response);
  if (!s.ok()) return ReportCallError(env.err, s, env.client, "listing images");
  // An api of several sources lists the others when one does not answer.
  for (const std::string& s : response.unavailable_sources()) {
    env.err << "ferryctl: warning: source " << s << "; its workloads are not listed\n";
  }
  absl::StatusOr<bool> printed = PrintStructured(options.output, response, env.out);
  if (!printed.ok()) return ReportError(env.err, printed.status());
  if (*printed) return kExitOk;
  Table table({"WORKLOAD", "CONTAINER", "IMAGE", "CREATED"});
  for (const ferry::v1::WorkloadImages& w : response.workloads()) {
    std::string workload = w.workload();
    // An api of several sources names each workload's.
    if (!w.source().empty()) absl::StrAppend(&workload, " (source ", w.source(), ")");
    if (w.containers().empty()) table.AddRow({workload, "", "", ""});
    for (const ferry::v1::ContainerImages& c : w.containers()) {
      AddContainer(c, options.limit, workload, table);
    }
  }
  table.Print(env.out, !options.no_headers);
  return kExitOk;
}

}  // namespace ferry::cli
