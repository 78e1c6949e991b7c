#include "lib/kustomize/layout.h"

#include <algorithm>
#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/image/reference.h"
#include "lib/manifest/kustomize_images.h"
#include "lib/names/names.h"

namespace ferry::kustomize {
namespace {

// The error of a root whose chain reaches `k` (empty when `k` is fine for a build).
std::string ChainError(const Kustomization& k, const Layout& layout,
                       const std::map<std::string, std::string>& files,
                       const LayoutOptions& options) {
  if (!k.remote.empty() && !options.allow_remote) {
    return absl::StrCat(names::Escape(k.file), ": remote reference \"",
                        names::Escape(k.remote.front()),
                        "\" refused: Ferry builds only what is in the repository (allow remote "
                        "bases with --kustomize_allow_remote)");
  }
  for (const std::string& ref : k.references) {
    if (layout.folders.count(ref) > 0 || files.count(ref) > 0) continue;
    auto below = files.lower_bound(ref + "/");
    if (below != files.end() && absl::StartsWith(below->first, ref + "/")) {
      return absl::StrCat(names::Escape(k.file), ": refers to the folder \"", names::Escape(ref),
                          "\", which has no kustomization file");
    }
  }
  for (const std::string& config : k.plugin_configs) {
    auto f = files.find(config);
    if (f != files.end() && DeclaresFunction(f->second)) {
      return absl::StrCat(names::Escape(k.file), ": \"", names::Escape(config),
                          "\" declares a KRM function; Ferry never runs exec or container "
                          "functions or plugins");
    }
  }
  return "";
}

// The folders `root` reads, breadth first, and the first error on the way.
void WalkChain(Root& root, const Layout& layout, const std::map<std::string, std::string>& broken,
               const std::map<std::string, std::string>& files, const LayoutOptions& options) {
  std::deque<std::string> queue = {root.folder};
  std::set<std::string> seen = {root.folder};
  while (!queue.empty()) {
    const std::string folder = queue.front();
    queue.pop_front();
    root.folders.push_back(folder);
    if (auto b = broken.find(folder); b != broken.end()) {
      if (root.error.empty()) root.error = b->second;
      continue;
    }
    const Kustomization& k = layout.kustomizations.at(folder);
    if (root.error.empty()) root.error = ChainError(k, layout, files, options);
    for (const std::string& ref : k.references) {
      if (layout.folders.count(ref) > 0 && seen.insert(ref).second) queue.push_back(ref);
    }
  }
}

struct Item {
  std::string namespace_;
  std::string kind;
  std::string name;
  Origin origin;
};

// Applies the name prefix and suffix and the namespace of `k` (in `folder`) to `items`,
// and puts `folder` first on their chains.
void Transform(const Kustomization& k, const std::string& folder, std::vector<Item>& items) {
  for (Item& item : items) {
    item.name = absl::StrCat(k.name_prefix, item.name, k.name_suffix);
    if (!k.namespace_.empty() && !manifest::IsClusterScopedKind(item.kind)) {
      item.namespace_ = k.namespace_;
    }
    item.origin.chain.insert(item.origin.chain.begin(), folder);
  }
}

const std::vector<Item>& Expand(const std::string& folder, const Layout& layout,
                                const std::map<std::string, std::string>& files,
                                const manifest::LoadOptions& options,
                                std::map<std::string, std::vector<Item>>& memo);

// Into `items`: the objects the kustomization `k` lists in its resources and bases (not its
// components), each with the changes of the kustomizations it comes through.
void Gather(const Kustomization& k, const Layout& layout,
            const std::map<std::string, std::string>& files, const manifest::LoadOptions& options,
            std::map<std::string, std::vector<Item>>& memo, std::vector<Item>& items) {
  for (const std::string& ref : k.references) {
    if (std::find(k.components.begin(), k.components.end(), ref) != k.components.end()) continue;
    if (layout.folders.count(ref) > 0) {
      const std::vector<Item>& below = Expand(ref, layout, files, options, memo);
      items.insert(items.end(), below.begin(), below.end());
      continue;
    }
    auto f = files.find(ref);
    if (f == files.end()) continue;
    for (const manifest::Resource& r : manifest::LoadFile(ref, f->second, options).resources) {
      items.push_back({r.namespace_, r.kind, r.name, {ref, r.id, {}}});
    }
  }
}

// The objects the kustomization in `folder` lists, with its own changes applied: its
// resources and bases, then each component (its resources join, and its changes apply to
// everything gathered so far, as kustomize does), then its own changes.
const std::vector<Item>& Expand(const std::string& folder, const Layout& layout,
                                const std::map<std::string, std::string>& files,
                                const manifest::LoadOptions& options,
                                std::map<std::string, std::vector<Item>>& memo) {
  if (auto m = memo.find(folder); m != memo.end()) return m->second;
  memo[folder];  // empty while expanding: a cycle adds nothing
  auto k = layout.kustomizations.find(folder);
  if (k == layout.kustomizations.end()) return memo[folder];
  std::vector<Item> items;
  Gather(k->second, layout, files, options, memo, items);
  for (const std::string& component : k->second.components) {
    auto c = layout.kustomizations.find(component);
    if (c == layout.kustomizations.end()) continue;
    Gather(c->second, layout, files, options, memo, items);
    Transform(c->second, component, items);
  }
  Transform(k->second, folder, items);
  memo[folder] = std::move(items);
  return memo[folder];
}

}  // namespace

bool Layout::Uses(const std::string& path) const {
  if (folders.empty()) return false;
  std::string folder = path;
  while (true) {
    const size_t slash = folder.rfind('/');
    folder = slash == std::string::npos ? "" : folder.substr(0, slash);
    if (folders.count(folder) > 0) return true;
    if (folder.empty()) return false;
  }
}

bool Root::Reads(const std::string& path) const {
  for (const std::string& folder : folders) {
    if (folder.empty() || absl::StartsWith(path, folder + "/")) return true;
  }
  return false;
}

std::vector<std::string> Layout::RootsReading(const std::string& path) const {
  std::vector<std::string> out;
  for (const Root& root : roots) {
    if (root.Reads(path)) out.push_back(root.file);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Layout FindLayout(const std::map<std::string, std::string>& files, const LayoutOptions& options) {
  Layout layout;
  std::map<std::string, std::string> broken;   // folder -> parse error
  std::map<std::string, std::string> file_of;  // folder -> its kustomization file
  std::set<std::string> referenced;
  for (absl::string_view name : kFileNames) {  // kustomize's preference when a folder has two
    for (const auto& [path, content] : files) {
      if (!IsKustomizationFile(path) || !absl::EndsWith(path, name)) continue;
      const std::string folder = FolderOf(path);
      if (path.size() != (folder.empty() ? 0 : folder.size() + 1) + name.size()) continue;
      if (!layout.folders.insert(folder).second) continue;
      file_of[folder] = path;
      absl::StatusOr<Kustomization> k = ParseKustomization(path, content, options.limits);
      if (k.ok()) {
        for (const std::string& ref : k->references) {
          if (ref != folder) referenced.insert(ref);
        }
        layout.kustomizations[folder] = *std::move(k);
      } else {
        broken[folder] = std::string(k.status().message());
        for (const std::string& ref : GuessReferences(path, content)) {
          if (ref != folder) referenced.insert(ref);
        }
      }
    }
  }
  for (const std::string& folder : layout.folders) {
    if (referenced.count(folder) > 0) continue;
    Root root;
    root.folder = folder;
    root.file = file_of[folder];
    WalkChain(root, layout, broken, files, options);
    layout.roots.push_back(std::move(root));
  }
  return layout;
}

std::map<std::string, Origin> Origins(const Layout& layout, const Root& root,
                                      const std::map<std::string, std::string>& files,
                                      const manifest::LoadOptions& options) {
  std::map<std::string, std::vector<Item>> memo;
  std::map<std::string, Origin> out;
  std::set<std::string> ambiguous;
  for (const Item& item : Expand(root.folder, layout, files, options, memo)) {
    const std::string id = manifest::ResourceId(
        manifest::IsClusterScopedKind(item.kind) ? "" : item.namespace_, item.kind, item.name);
    if (!out.emplace(id, item.origin).second) ambiguous.insert(id);
  }
  for (const std::string& id : ambiguous) out.erase(id);
  return out;
}

namespace {

const Origin* FindOrigin(const std::map<std::string, Origin>& origins, const std::string& id) {
  auto it = origins.find(id);
  return it != origins.end() ? &it->second : nullptr;
}

absl::Status NoOrigin(const Root& root, const std::string& id) {
  return absl::FailedPreconditionError(absl::StrCat(
      "kustomize root ", names::Escape(root.folder.empty() ? "." : root.folder), " renders ", id,
      " but Ferry cannot tell which file defines it (a generator, or a patch that renames it?): "
      "edit it by hand"));
}

}  // namespace

absl::StatusOr<EditTarget> ImageTarget(
    const Layout& layout, const Root& root, const std::map<std::string, Origin>& origins,
    const std::string& rendered_id, const std::string& rendered_image,
    const std::function<std::string(const std::string&)>& content_of) {
  const Origin* origin = FindOrigin(origins, rendered_id);
  const std::vector<std::string> chain =
      origin != nullptr ? origin->chain : std::vector<std::string>{root.folder};
  absl::StatusOr<image::Reference> image = image::Reference::Parse(rendered_image);
  for (const std::string& folder : chain) {
    auto k = layout.kustomizations.find(folder);
    if (k == layout.kustomizations.end() || !image.ok()) continue;
    absl::StatusOr<std::vector<manifest::KustomizeImage>> entries =
        manifest::KustomizeImages(content_of(k->second.file));
    if (!entries.ok()) continue;
    for (const manifest::KustomizeImage& e : *entries) {
      absl::StatusOr<image::Reference> produced = image::Reference::Parse(e.OutputName());
      if (e.OutputName() == image->name() || (produced.ok() && produced->SameRepository(*image))) {
        return EditTarget{k->second.file, e.index, ""};
      }
    }
  }
  if (origin == nullptr) return NoOrigin(root, rendered_id);
  return EditTarget{origin->file, -1, origin->id};
}

absl::StatusOr<EditTarget> PolicyTarget(const Layout& layout, const Root& root,
                                        const std::map<std::string, Origin>& origins,
                                        const std::string& rendered_id) {
  const Origin* origin = FindOrigin(origins, rendered_id);
  if (origin == nullptr) return NoOrigin(root, rendered_id);
  const std::vector<std::string> sharing = layout.RootsReading(origin->file);
  if (sharing.size() > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        rendered_id, " is defined in ", names::Escape(origin->file), ", which ", sharing.size(),
        " kustomize roots build (", names::Escape(absl::StrJoin(sharing, ", ")),
        "): a policy written there would change them all; set the annotation with a patch in "
        "the overlay ",
        names::Escape(root.folder.empty() ? "." : root.folder)));
  }
  return EditTarget{origin->file, -1, origin->id};
}

}  // namespace ferry::kustomize
