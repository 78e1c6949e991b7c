// Any bytes as a manifest file, then every edit Ferry makes: an edit either fails with an
// error or yields a file that holds the requested change and nothing else. Checked by loading
// the result again, independently of the editor's own verification:
//   - the bytes before and after the edited document are unchanged (so is every other
//     document), and the file has the same resources;
//   - SetImage: the container's image is the new one (spelling of the repository aside), every
//     other container keeps its image, and the edited document, as JSON, differs only in the
//     fields that hold that container's image;
//   - SetAnnotations: the annotations are the old ones with the change applied, and the
//     document differs in nothing else;
//   - an edit that reports no change returns the content as it was.
// A violated property aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "lib/image/reference.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/yaml_json.h"

namespace {

using namespace ferry::manifest;

constexpr char kPath[] = "fuzz.yaml";
constexpr char kNewImage[] = "registry.example:5000/fuzz/image:1.2.3";

void Check(bool ok) {
  if (!ok) std::abort();
}

// The resources of `content`, which must load as `before` did: same ids in the same
// documents, as many load errors.
std::vector<Resource> Reload(const std::string& content, const LoadResult& before) {
  LoadResult after = LoadFile(kPath, content);
  Check(after.resources.size() == before.resources.size());
  Check(after.errors.size() == before.errors.size());
  for (size_t i = 0; i < after.resources.size(); ++i) {
    Check(after.resources[i].id == before.resources[i].id);
    Check(after.resources[i].source.document == before.resources[i].source.document);
    Check(after.resources[i].source.list_item == before.resources[i].source.list_item);
  }
  return std::move(after.resources);
}

// Only the document at `source` may differ: the bytes before and after it are the same.
void CheckOtherBytesKept(const std::string& before, const std::string& after,
                         const Source& source) {
  const size_t suffix = before.size() - source.end;
  Check(after.size() >= source.begin + suffix);
  Check(after.compare(0, source.begin, before, 0, source.begin) == 0);
  Check(after.compare(after.size() - suffix, suffix, before, source.end, suffix) == 0);
}

// The path of a resource's field from its document's root.
NodePath InDocument(const Source& source, NodePath path) {
  if (source.list_item >= 0) {
    path.insert(path.begin(), {"items", std::to_string(source.list_item)});
  }
  return path;
}

// Removes the value at `path` (map keys and sequence indexes) if it is there.
void Erase(nlohmann::json& json, const NodePath& path) {
  nlohmann::json* at = &json;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    size_t index = 0;
    if (at->is_object() && at->contains(path[i])) {
      at = &(*at)[path[i]];
    } else if (at->is_array() && absl::SimpleAtoi(path[i], &index) && index < at->size()) {
      at = &(*at)[index];
    } else {
      return;
    }
  }
  size_t index = 0;
  if (path.empty()) return;
  if (at->is_object()) {
    at->erase(path.back());
  } else if (at->is_array() && absl::SimpleAtoi(path.back(), &index) && index < at->size()) {
    (*at)[index] = nullptr;  // keep the other indexes where they were
  }
}

// The edited document, as JSON, equals the old one once the fields in `allowed` are removed
// from both. Documents JSON cannot hold (a mapping as a key) are not compared.
void CheckDocumentKept(const Resource& before, const Resource& after,
                       const std::vector<NodePath>& allowed) {
  absl::StatusOr<nlohmann::json> old_json = YamlToJson(before.document);
  if (!old_json.ok()) return;
  absl::StatusOr<nlohmann::json> new_json = YamlToJson(after.document);
  Check(new_json.ok());
  for (const NodePath& path : allowed) {
    Erase(*old_json, InDocument(before.source, path));
    Erase(*new_json, InDocument(before.source, path));
  }
  Check(*old_json == *new_json);
}

bool SameImage(const std::string& a, const std::string& b) {
  absl::StatusOr<ferry::image::Reference> ra = ferry::image::Reference::Parse(a);
  absl::StatusOr<ferry::image::Reference> rb = ferry::image::Reference::Parse(b);
  return ra.ok() && rb.ok() && ra->SameRepository(*rb) && ra->tag() == rb->tag() &&
         ra->digest() == rb->digest();
}

// The edited resource `loaded.resources[index]` (ids may repeat in one file: the index tells
// them apart) as the edit's result loads it; nullopt when there is nothing more to check (the
// edit failed, or changed nothing and returned the content as it was).
std::optional<Resource> Edited(const std::string& content, const LoadResult& loaded, size_t index,
                               const absl::StatusOr<EditResult>& edit) {
  if (!edit.ok()) return std::nullopt;
  if (edit->changes.empty()) {
    Check(edit->content == content);
    return std::nullopt;
  }
  CheckOtherBytesKept(content, edit->content, loaded.resources[index].source);
  return Reload(edit->content, loaded)[index];
}

void CheckSetImage(const std::string& content, const LoadResult& loaded, size_t index,
                   const std::vector<Container>& containers, size_t edited) {
  const Resource& r = loaded.resources[index];
  const Container& c = containers[edited];
  std::optional<Resource> after =
      Edited(content, loaded, index, SetImage(content, r.source, r.id, {c.name, kNewImage, {}}));
  if (!after.has_value()) return;
  const std::vector<Container> now = FindContainers(*after);
  Check(now.size() == containers.size());
  for (size_t i = 0; i < now.size(); ++i) {
    Check(now[i].name == containers[i].name && now[i].init == containers[i].init);
    Check(i == edited ? SameImage(now[i].image, kNewImage) : now[i].image == containers[i].image);
  }
  std::vector<NodePath> allowed;
  for (const ImageField& f : c.fields) allowed.push_back(f.path);
  CheckDocumentKept(r, *after, allowed);
}

void CheckSetAnnotation(const std::string& content, const LoadResult& loaded, size_t index,
                        const AnnotationChange& change) {
  const Resource& r = loaded.resources[index];
  std::optional<Resource> after =
      Edited(content, loaded, index, SetAnnotations(content, r.source, r.id, {change}));
  if (!after.has_value()) return;
  std::map<std::string, std::string> expected = r.annotations;
  if (change.value.has_value()) {
    expected[change.key] = *change.value;
  } else {
    expected.erase(change.key);
  }
  Check(after->annotations == expected);
  CheckDocumentKept(r, *after, {{"metadata", "annotations"}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string content(reinterpret_cast<const char*>(data), size);
  const LoadResult loaded = LoadFile(kPath, content);
  for (size_t r = 0; r < loaded.resources.size(); ++r) {
    const std::vector<Container> containers = FindContainers(loaded.resources[r]);
    for (size_t i = 0; i < containers.size(); ++i) {
      // SetImage edits the first container of a name.
      bool first = true;
      for (size_t j = 0; j < i; ++j) first = first && containers[j].name != containers[i].name;
      if (first) CheckSetImage(content, loaded, r, containers, i);
    }
    CheckSetAnnotation(content, loaded, r, {"ferry.dev/automated", "true"});
    CheckSetAnnotation(content, loaded, r, {"fluxcd.io/locked", std::nullopt});
  }
  return 0;
}
