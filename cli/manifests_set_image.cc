// ferryctl manifests set-image
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/checkout.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"
#include "cli/repo_files.h"
#include "lib/image/reference.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/kustomize_images.h"
#include "lib/manifest/workload.h"

namespace ferry::cli {
namespace {

// For a workload kustomize renders: edits where a release would (lib/kustomize
// ImageTarget), checks by building the root from a copy that it renders `image`, and only
// then writes the file.
int SetRenderedImage(const Checkout& checkout, const CheckoutRoot& root,
                     const manifest::Resource& rendered, const manifest::Container& container,
                     const ManifestsSetImageOptions& options, const manifest::LoadOptions& load,
                     std::ostream& out, std::ostream& err) {
  auto fail = [&](const absl::Status& status) { return ReportError(err, status); };
  const std::string& id = rendered.id;
  absl::StatusOr<kustomize::EditTarget> target =
      kustomize::ImageTarget(checkout.layout, root.root, root.origins, id, container.image,
                             [&](const std::string& path) { return checkout.files.at(path); });
  if (!target.ok()) return fail(target.status());
  const std::string& before = checkout.files.at(target->file);
  absl::StatusOr<std::string> after;
  if (target->image_entry >= 0) {
    after = manifest::SetKustomizeImage(before, target->image_entry, options.image, load.limits);
  } else {
    manifest::LoadResult defined = manifest::LoadFile(target->file, before, load);
    auto res = std::find_if(defined.resources.begin(), defined.resources.end(),
                            [&](const manifest::Resource& r) { return r.id == target->id; });
    if (res == defined.resources.end()) {
      return fail(absl::InternalError(absl::StrCat(target->file, " defines no ", target->id)));
    }
    absl::StatusOr<manifest::EditResult> edit =
        manifest::SetImage(before, *res, {container.name, options.image, std::nullopt}, load);
    if (edit.ok()) {
      after = std::move(edit->content);
    } else {
      after = edit.status();
    }
  }
  if (!after.ok()) return fail(after.status());
  if (*after == before) {
    out << "no changes: " << id << " container " << container.name << " already uses "
        << options.image << "\n";
    return kExitOk;
  }
  absl::StatusOr<std::string> built = BuildWithChanges(checkout, root, {{target->file, *after}});
  if (!built.ok()) return fail(built.status());
  std::string now = "(nothing)";
  for (const manifest::Resource& r : manifest::LoadFile(root.root.file, *built, load).resources) {
    if (r.id != id) continue;
    for (const manifest::Container& c : manifest::FindContainers(r)) {
      if (c.name == container.name) now = c.image;
    }
  }
  if (!image::SameImage(now, options.image)) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "after editing ", target->file, ", kustomize renders ", now, " for container ",
        container.name, " of ", id, ", not ", options.image,
        ": something else decides the image (a patch or another images: entry); nothing written")));
  }
  if (absl::Status s = WriteFileAtomically(absl::StrCat(options.path, "/", target->file), *after);
      !s.ok()) {
    return fail(s);
  }
  out << target->file << ": " << id << " " << container.name << ": " << container.image << " -> "
      << options.image << " (kustomize root " << (root.root.folder.empty() ? "." : root.root.folder)
      << ")\n";
  return kExitOk;
}

}  // namespace

int RunManifestsSetImage(const ManifestsSetImageOptions& options, std::ostream& out,
                         std::ostream& err) {
  auto fail = [&](const absl::Status& status) { return ReportError(err, status); };
  manifest::LoadOptions load;
  load.default_namespace = options.namespace_;
  absl::StatusOr<Checkout> checkout = LoadCheckout(options.path, load);
  if (!checkout.ok()) return fail(checkout.status());
  absl::StatusOr<const manifest::Resource*> found =
      FindWorkload(*checkout, options.workload, options.namespace_);
  if (!found.ok()) return fail(found.status());
  const manifest::Resource& resource = **found;
  const std::string& id = resource.id;

  std::vector<manifest::Container> containers = manifest::FindContainers(resource);
  std::string container = options.container;
  if (container.empty()) {
    if (containers.size() != 1) {
      std::vector<std::string> names;
      for (const auto& c : containers) names.push_back(c.name);
      return fail(absl::InvalidArgumentError(
          absl::StrCat(id, " has ", containers.size(), " containers (", absl::StrJoin(names, ", "),
                       "); say which with --container")));
    }
    container = containers[0].name;
  }
  if (const CheckoutRoot* root = checkout->RootOf(resource)) {
    auto c = std::find_if(containers.begin(), containers.end(),
                          [&](const manifest::Container& c) { return c.name == container; });
    if (c == containers.end()) {
      return fail(absl::NotFoundError(absl::StrCat("container ", container, " is not in ", id)));
    }
    return SetRenderedImage(*checkout, *root, resource, *c, options, load, out, err);
  }
  const std::string file = absl::StrCat(options.path, "/", resource.source.path);
  const std::string& content = checkout->files.at(resource.source.path);
  absl::StatusOr<manifest::EditResult> edit =
      manifest::SetImage(content, resource, {container, options.image, std::nullopt}, load);
  if (!edit.ok()) return fail(edit.status());
  if (edit->changes.empty()) {
    out << "no changes: " << id << " container " << container << " already uses " << options.image
        << "\n";
    return kExitOk;
  }
  if (absl::Status s = WriteFileAtomically(file, edit->content); !s.ok()) return fail(s);
  for (const manifest::FieldChange& c : edit->changes) {
    out << resource.source.path << ":" << c.line << ": " << id << " " << container << " " << c.field
        << ": " << c.from << " -> " << c.to << "\n";
  }
  return kExitOk;
}

}  // namespace ferry::cli
