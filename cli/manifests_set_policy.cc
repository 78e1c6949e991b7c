// ferryctl manifests set-policy
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"
#include "cli/policy_flags.h"
#include "cli/repo_files.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/policy.h"

namespace ferry::cli {

int RunManifestsSetPolicy(const ManifestsSetPolicyOptions& options, std::ostream& out,
                          std::ostream& err) {
  auto fail = [&](const absl::Status& status) { return ReportError(err, status); };
  absl::StatusOr<manifest::PolicyUpdate> update = ParsePolicyFlags(options);
  if (!update.ok()) return fail(update.status());

  absl::StatusOr<manifest::Resource> resource =
      FindWorkload(options.path, options.workload, options.namespace_);
  if (!resource.ok()) return fail(resource.status());
  const std::string& id = resource->id;
  manifest::LoadOptions load;
  load.default_namespace = options.namespace_;
  absl::StatusOr<std::vector<manifest::AnnotationChange>> changes =
      manifest::PolicyAnnotationChanges(*resource, *update);
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
