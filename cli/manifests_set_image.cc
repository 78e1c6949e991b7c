// ferryctl manifests set-image
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"
#include "cli/repo_files.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/workload.h"

namespace ferry::cli {

int RunManifestsSetImage(const ManifestsSetImageOptions& options, std::ostream& out,
                         std::ostream& err) {
  auto fail = [&](const absl::Status& status) { return ReportError(err, status); };
  absl::StatusOr<manifest::Resource> resource =
      FindWorkload(options.path, options.workload, options.namespace_);
  if (!resource.ok()) return fail(resource.status());
  const std::string& id = resource->id;
  manifest::LoadOptions load;
  load.default_namespace = options.namespace_;

  std::string container = options.container;
  if (container.empty()) {
    std::vector<manifest::Container> containers = manifest::FindContainers(*resource);
    if (containers.size() != 1) {
      std::vector<std::string> names;
      for (const auto& c : containers) names.push_back(c.name);
      return fail(absl::InvalidArgumentError(
          absl::StrCat(id, " has ", containers.size(), " containers (", absl::StrJoin(names, ", "),
                       "); say which with --container")));
    }
    container = containers[0].name;
  }
  const std::string file = absl::StrCat(options.path, "/", resource->source.path);
  absl::StatusOr<std::string> content = ReadFile(file);
  if (!content.ok()) return fail(content.status());
  absl::StatusOr<manifest::EditResult> edit =
      manifest::SetImage(*content, *resource, {container, options.image, std::nullopt}, load);
  if (!edit.ok()) return fail(edit.status());
  if (edit->changes.empty()) {
    out << "no changes: " << id << " container " << container << " already uses " << options.image
        << "\n";
    return kExitOk;
  }
  if (absl::Status s = WriteFileAtomically(file, edit->content); !s.ok()) return fail(s);
  for (const manifest::FieldChange& c : edit->changes) {
    out << resource->source.path << ":" << c.line << ": " << id << " " << container << " "
        << c.field << ": " << c.from << " -> " << c.to << "\n";
  }
  return kExitOk;
}

}  // namespace ferry::cli
