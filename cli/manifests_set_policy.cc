// ferryctl manifests set-policy
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/checkout.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"
#include "cli/policy_flags.h"
#include "cli/repo_files.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/policy.h"

namespace ferry::cli {
namespace {

// For a workload kustomize renders: the file that defines it (when no other root reads it)
// and that file's resource, or why not.
absl::StatusOr<manifest::Resource> DefiningResource(const Checkout& checkout,
                                                    const CheckoutRoot& root, const std::string& id,
                                                    const manifest::LoadOptions& load) {
  absl::StatusOr<kustomize::EditTarget> target =
      kustomize::PolicyTarget(checkout.layout, root.root, root.origins, id);
  if (!target.ok()) return target.status();
  for (manifest::Resource& r :
       manifest::LoadFile(target->file, checkout.files.at(target->file), load).resources) {
    if (r.id == target->id) return std::move(r);
  }
  return absl::InternalError(absl::StrCat(target->file, " defines no ", target->id));
}

// True when what `root` builds with `file` = `content` carries `changes` on `id`.
absl::Status VerifyRendered(const Checkout& checkout, const CheckoutRoot& root,
                            const std::string& id, const std::string& file,
                            const std::string& content,
                            const std::vector<manifest::AnnotationChange>& changes,
                            const manifest::LoadOptions& load) {
  absl::StatusOr<std::string> built = BuildWithChanges(checkout, root, {{file, content}});
  if (!built.ok()) return built.status();
  for (const manifest::Resource& r : manifest::LoadFile(root.root.file, *built, load).resources) {
    if (r.id != id) continue;
    for (const manifest::AnnotationChange& c : changes) {
      auto a = r.annotations.find(c.key);
      const std::optional<std::string> now =
          a != r.annotations.end() ? std::optional<std::string>(a->second) : std::nullopt;
      if (now != c.value) {
        return absl::FailedPreconditionError(
            absl::StrCat("after editing ", file, ", kustomize renders the annotation ", c.key,
                         " of ", id, " as ", now.value_or("(none)"),
                         ": a patch or commonAnnotations decide it; nothing written"));
      }
    }
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("after editing ", file, ", kustomize no longer renders ", id));
}

}  // namespace

int RunManifestsSetPolicy(const ManifestsSetPolicyOptions& options, std::ostream& out,
                          std::ostream& err) {
  auto fail = [&](const absl::Status& status) { return ReportError(err, status); };
  absl::StatusOr<manifest::PolicyUpdate> update = ParsePolicyFlags(options);
  if (!update.ok()) return fail(update.status());

  manifest::LoadOptions load;
  load.default_namespace = options.namespace_;
  absl::StatusOr<Checkout> checkout = LoadCheckout(options.path, load);
  if (!checkout.ok()) return fail(checkout.status());
  absl::StatusOr<const manifest::Resource*> found =
      FindWorkload(*checkout, options.workload, options.namespace_);
  if (!found.ok()) return fail(found.status());
  const manifest::Resource& rendered = **found;
  const std::string& id = rendered.id;
  absl::StatusOr<std::vector<manifest::AnnotationChange>> changes =
      manifest::PolicyAnnotationChanges(rendered, *update);
  if (!changes.ok()) return fail(changes.status());
  if (changes->empty()) {
    out << "no changes: " << id << " already has these policies\n";
    return kExitOk;
  }
  const CheckoutRoot* root = checkout->RootOf(rendered);
  absl::StatusOr<manifest::Resource> resource =
      root != nullptr ? DefiningResource(*checkout, *root, id, load) : rendered;
  if (!resource.ok()) return fail(resource.status());
  const std::string& path = resource->source.path;
  absl::StatusOr<manifest::EditResult> edit =
      manifest::SetAnnotations(checkout->files.at(path), *resource, *changes, load);
  if (!edit.ok()) return fail(edit.status());
  if (root != nullptr) {
    if (absl::Status s = VerifyRendered(*checkout, *root, id, path, edit->content, *changes, load);
        !s.ok()) {
      return fail(s);
    }
  }
  if (absl::Status s = WriteFileAtomically(absl::StrCat(options.path, "/", path), edit->content);
      !s.ok()) {
    return fail(s);
  }
  for (const manifest::FieldChange& c : edit->changes) {
    out << path << ":" << c.line << ": " << id << " " << c.field << ": ";
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
