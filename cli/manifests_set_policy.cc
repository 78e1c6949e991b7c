// ferryctl manifests set-policy
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"
#include "cli/repo_files.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/policy.h"

namespace ferry::cli {
namespace {

// "*" and "glob:*" are the default filter: setting them removes the annotation.
bool IsDefaultFilter(const std::string& pattern) { return pattern == "*" || pattern == "glob:*"; }

}  // namespace

int RunManifestsSetPolicy(const ManifestsSetPolicyOptions& options, std::ostream& out,
                          std::ostream& err) {
  auto fail = [&](const absl::Status& status) { return ReportError(err, status); };
  if (options.automate && options.deautomate) {
    return fail(absl::InvalidArgumentError("--automate and --deautomate contradict each other"));
  }
  if (options.lock && options.unlock) {
    return fail(absl::InvalidArgumentError("--lock and --unlock contradict each other"));
  }
  manifest::PolicyUpdate update;
  if (options.automate) update.automated = true;
  if (options.deautomate) update.automated = false;
  if (options.lock) {
    update.locked = true;
    update.locked_user = options.user;
    update.locked_msg = options.message;
  }
  if (options.unlock) update.locked = false;
  for (const std::string& tag : options.tags) {
    size_t eq = tag.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tag.size()) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "--tag \"", tag, "\": use CONTAINER=PATTERN, e.g. --tag web=semver:~1.2")));
    }
    std::string container = tag.substr(0, eq);
    std::string pattern = tag.substr(eq + 1);
    if (update.tag_filters.count(container)) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("--tag names container ", container, " twice")));
    }
    update.tag_filters[container] =
        IsDefaultFilter(pattern) ? std::nullopt : std::optional<std::string>(pattern);
  }
  if (options.tag_all.has_value()) {
    update.tag_all = IsDefaultFilter(*options.tag_all) ? std::optional<std::string>()
                                                       : std::optional(*options.tag_all);
  }
  if (!update.automated && !update.locked && update.tag_filters.empty() && !update.tag_all) {
    return fail(absl::InvalidArgumentError(
        "nothing to change: give --automate, --deautomate, --lock, --unlock, --tag or --tag-all"));
  }

  absl::StatusOr<manifest::Resource> resource =
      FindWorkload(options.path, options.workload, options.namespace_);
  if (!resource.ok()) return fail(resource.status());
  const std::string& id = resource->id;
  manifest::LoadOptions load;
  load.default_namespace = options.namespace_;
  absl::StatusOr<std::vector<manifest::AnnotationChange>> changes =
      manifest::PolicyAnnotationChanges(*resource, update);
  if (!changes.ok()) return fail(changes.status());
  if (changes->empty()) {
    out << "no changes: " << id << " already has these policies\n";
    return kExitOk;
  }
  const std::string file = absl::StrCat(options.path, "/", resource->source.path);
  absl::StatusOr<std::string> content = ReadFile(file);
  if (!content.ok()) return fail(content.status());
  absl::StatusOr<manifest::EditResult> edit =
      manifest::SetAnnotations(*content, *resource, *changes, load);
  if (!edit.ok()) return fail(edit.status());
  if (absl::Status s = WriteFileAtomically(file, edit->content); !s.ok()) return fail(s);
  for (const manifest::FieldChange& c : edit->changes) {
    out << resource->source.path << ":" << c.line << ": " << id << " " << c.field << ": ";
    if (c.to.empty()) {
      out << "removed (was " << c.from << ")\n";
    } else if (c.from.empty()) {
      out << "set to " << c.to << "\n";
    } else {
      out << c.from << " -> " << c.to << "\n";
    }
  }
  return kExitOk;
}

}  // namespace ferry::cli
