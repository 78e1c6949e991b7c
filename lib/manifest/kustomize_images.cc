#include "lib/manifest/kustomize_images.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/image/reference.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/yaml_text.h"
#include "lib/status/status_macros.h"

namespace ferry::manifest {
namespace {

// The text of key `key` of entry `item` ("" when absent or null); InvalidArgument when it
// is not a scalar.
absl::StatusOr<std::string> StringKey(const YAML::Node& item, int index, const char* key) {
  const YAML::Node& const_item = item;
  const YAML::Node value = const_item[key];
  if (!value || value.IsNull()) return std::string();
  if (!value.IsScalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("images[", index, "].", key, " is not a string"));
  }
  return value.Scalar();
}

}  // namespace

absl::StatusOr<std::vector<KustomizeImage>> KustomizeImages(absl::string_view content,
                                                            const DocumentLimits& limits) {
  const std::vector<DocumentSpan> docs = SplitDocuments(content);
  if (docs.empty()) return std::vector<KustomizeImage>();
  const DocumentSpan& doc = docs.front();
  FERRY_ASSIGN_OR_RETURN(
      YAML::Node root,
      ParseDocument(content.substr(doc.begin, doc.end - doc.begin), limits, doc.line));
  if (root.IsNull()) return std::vector<KustomizeImage>();
  if (!root.IsMap()) return absl::InvalidArgumentError("a kustomization must be a mapping");
  const YAML::Node& const_root = root;
  const YAML::Node images = const_root["images"];
  std::vector<KustomizeImage> out;
  if (!images || images.IsNull()) return out;
  if (!images.IsSequence()) return absl::InvalidArgumentError("images is not a list");
  for (size_t i = 0; i < images.size(); ++i) {
    const YAML::Node item = images[i];
    KustomizeImage entry;
    entry.index = static_cast<int>(i);
    entry.line = doc.line + item.Mark().line + 1;
    if (!item.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat("images[", i, "] is not a mapping"));
    }
    FERRY_ASSIGN_OR_RETURN(entry.name, StringKey(item, entry.index, "name"));
    if (entry.name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("images[", i, "] has no name"));
    }
    FERRY_ASSIGN_OR_RETURN(entry.new_name, StringKey(item, entry.index, "newName"));
    FERRY_ASSIGN_OR_RETURN(entry.new_tag, StringKey(item, entry.index, "newTag"));
    FERRY_ASSIGN_OR_RETURN(entry.digest, StringKey(item, entry.index, "digest"));
    out.push_back(std::move(entry));
  }
  return out;
}

absl::StatusOr<std::string> SetKustomizeImage(absl::string_view content, int index,
                                              absl::string_view to_image,
                                              const DocumentLimits& limits) {
  FERRY_ASSIGN_OR_RETURN(image::Reference to, image::Reference::Parse(to_image));
  if (to.tag().empty() && to.digest().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("image \"", to_image,
                                                   "\" has neither tag nor digest; give one, e.g. ",
                                                   to.name(), ":1.2.3"));
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<KustomizeImage> entries, KustomizeImages(content, limits));
  if (index < 0 || static_cast<size_t>(index) >= entries.size()) {
    return absl::NotFoundError(
        absl::StrCat("no images[", index, "] entry (the kustomization has ", entries.size(), ")"));
  }
  const KustomizeImage& entry = entries[index];
  std::vector<AnnotationChange> changes;
  absl::StatusOr<image::Reference> now = image::Reference::Parse(entry.OutputName());
  if (!now.ok() || !now->SameRepository(to)) changes.push_back({"newName", to.name()});
  auto set_or_remove = [](const std::string& value) {
    return value.empty() ? std::nullopt : std::optional<std::string>(value);
  };
  changes.push_back({"newTag", set_or_remove(to.tag())});
  changes.push_back({"digest", set_or_remove(to.digest())});
  return SetMappingKeys(content, {"images", std::to_string(index)}, changes, limits);
}

}  // namespace ferry::manifest
