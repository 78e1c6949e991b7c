#include "lib/manifest/resource.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/yaml_text.h"
#include "lib/names/names.h"

namespace ferry::manifest {
namespace {

namespace fs = std::filesystem;

// Kinds served cluster-scoped by Kubernetes and common add-ons.
const std::set<std::string>& ClusterScopedKinds() {
  static const auto* kinds = new std::set<std::string>{"namespace",
                                                       "node",
                                                       "persistentvolume",
                                                       "clusterrole",
                                                       "clusterrolebinding",
                                                       "customresourcedefinition",
                                                       "storageclass",
                                                       "priorityclass",
                                                       "podsecuritypolicy",
                                                       "mutatingwebhookconfiguration",
                                                       "validatingwebhookconfiguration",
                                                       "apiservice",
                                                       "csidriver",
                                                       "csinode",
                                                       "runtimeclass",
                                                       "ingressclass",
                                                       "volumeattachment",
                                                       "certificatesigningrequest",
                                                       "componentstatus",
                                                       "flowschema",
                                                       "prioritylevelconfiguration",
                                                       "clusterissuer",
                                                       "validatingadmissionpolicy",
                                                       "validatingadmissionpolicybinding"};
  return *kinds;
}

std::string ScalarAt(const YAML::Node& node, const char* key) {
  if (!node.IsMap()) return "";
  YAML::Node v = node[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

// An error when a scalar Ferry indexes (shown in listings, used in ids and edits) holds a
// control character: the first such field of `r`, or nullopt.
std::optional<LoadError> ControlCharacterError(const Resource& r, const Source& source) {
  struct Field {
    std::string what;
    NodePath path;
    std::string value;
  };
  std::vector<Field> fields = {{"apiVersion", {"apiVersion"}, r.api_version},
                               {"kind", {"kind"}, r.kind},
                               {"metadata.name", {"metadata", "name"}, r.name},
                               {"metadata.namespace",
                                {"metadata", "namespace"},
                                ScalarAt(r.node.get()["metadata"], "namespace")}};
  if (IsWorkloadKind(r.kind)) {
    for (const Container& c : FindContainers(r)) {
      const NodePath at = c.fields.empty() ? NodePath{} : c.fields.front().path;
      const std::string container = absl::CHexEscape(c.name);
      fields.push_back({absl::StrCat("the name of container ", container), at, c.name});
      fields.push_back({absl::StrCat("the image of container ", container), at, c.image});
    }
  }
  for (const Field& f : fields) {
    // lib/names owns the rule (C0, DEL, C1 such as U+009B CSI, and bytes that are not
    // UTF-8); the size limits are the loader's own, so none is applied here.
    absl::Status valid = names::ValidateName(f.what, f.value, std::numeric_limits<uint64_t>::max());
    if (valid.ok()) continue;
    YAML::Node node = NodeAt(r.node, f.path);
    const int line = node ? source.document_line + node.Mark().line + 1 : source.line;
    return LoadError{source.path, line, 0,
                     absl::StrCat(valid.message(),
                                  "; names, namespaces and images must be printable "
                                  "text; remove it"),
                     source.document};
  }
  return std::nullopt;
}

// Adds `obj` (a document or list item) as a resource, or an error, to `result`.
void AddObject(const YAML::Node& obj, const YAML::Node& document, const Source& source,
               const LoadOptions& options, std::vector<Resource>& resources,
               std::vector<LoadError>& errors) {
  if (!obj.IsMap()) return;
  std::string kind = ScalarAt(obj, "kind");
  YAML::Node metadata = obj["metadata"];
  if (kind.empty()) return;  // not a Kubernetes object (e.g. a values or config file)
  if (!metadata || !metadata.IsMap()) {
    if (absl::EndsWith(kind, "List")) return;
    errors.push_back({source.path, source.line, 0,
                      absl::StrCat(kind, " has no metadata mapping; add metadata with a name"),
                      source.document});
    return;
  }
  Resource r;
  r.kind = kind;
  r.api_version = ScalarAt(obj, "apiVersion");
  r.name = ScalarAt(metadata, "name");
  if (r.name.empty()) {
    errors.push_back({source.path, source.line, 0,
                      absl::StrCat(kind, " has no metadata.name; add one"), source.document});
    return;
  }
  std::string ns = ScalarAt(metadata, "namespace");
  if (ns.empty() && !IsClusterScopedKind(kind)) ns = options.default_namespace;
  r.namespace_ = ns;
  r.id = ResourceId(ns, kind, r.name);
  r.source = source;
  r.node = obj;
  r.document = document;
  YAML::Node annotations = metadata["annotations"];
  if (annotations && annotations.IsMap()) {
    for (const auto& kv : annotations) {
      if (kv.first.IsScalar() && kv.second.IsScalar()) {
        r.annotations[kv.first.Scalar()] = kv.second.Scalar();
      }
    }
  }
  if (std::optional<LoadError> error = ControlCharacterError(r, source)) {
    errors.push_back(*std::move(error));
    return;
  }
  resources.push_back(std::move(r));
}

bool IsManifestFile(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

bool IsChartDir(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "Chart.yaml", ec) && fs::exists(dir / "values.yaml", ec);
}

absl::StatusOr<std::string> ReadWholeFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", p.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

uint64_t DocumentHash(absl::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::vector<Resource> ResourcesOfDocument(const YAML::Node& root, const Source& source,
                                          const LoadOptions& options,
                                          std::vector<LoadError>& errors) {
  std::vector<Resource> out;
  std::string kind = ScalarAt(root, "kind");
  YAML::Node items = root.IsMap() ? root["items"] : YAML::Node();
  if (absl::EndsWith(kind, "List") && items && items.IsSequence()) {
    for (size_t i = 0; i < items.size(); ++i) {
      Source item_source = source;
      item_source.list_item = static_cast<int>(i);
      item_source.line = source.document_line + items[i].Mark().line + 1;
      AddObject(items[i], root, item_source, options, out, errors);
    }
    return out;
  }
  AddObject(root, root, source, options, out, errors);
  return out;
}

std::string LoadError::ToString() const {
  std::string out = path;
  if (line > 0) absl::StrAppend(&out, ":", line);
  if (line > 0 && column > 0) absl::StrAppend(&out, ":", column);
  if (document >= 0) absl::StrAppend(&out, ": document ", document);
  absl::StrAppend(&out, ": ", message);
  return out;
}

std::string ResourceId(absl::string_view namespace_, absl::string_view kind,
                       absl::string_view name) {
  return WorkloadId::Format(namespace_, kind, name);
}

bool IsClusterScopedKind(absl::string_view kind) {
  return ClusterScopedKinds().count(absl::AsciiStrToLower(std::string(kind))) > 0;
}

LoadResult LoadFile(absl::string_view path, absl::string_view content, const LoadOptions& options) {
  LoadResult result;
  std::vector<DocumentSpan> docs = SplitDocuments(content);
  for (size_t d = 0; d < docs.size(); ++d) {
    const DocumentSpan& span = docs[d];
    const absl::string_view text = content.substr(span.begin, span.end - span.begin);
    YAML::Mark where;
    absl::StatusOr<YAML::Node> parsed = ParseDocument(text, options.limits, span.line, &where);
    if (!parsed.ok()) {
      int line = where.line;
      int column = where.column + 1;
      // A document that ends inside an open construct is reported at its end; point at
      // its last line rather than past it.
      if (where.pos >= static_cast<int>(text.size()) && line > 0 && absl::EndsWith(text, "\n")) {
        --line;
        size_t last_start = text.rfind('\n', text.size() - 2);
        last_start = last_start == absl::string_view::npos ? 0 : last_start + 1;
        column = static_cast<int>(text.size() - 1 - last_start) + 1;
      }
      if (line < 0) {  // position unknown: the document's first line
        line = 0;
        column = 0;
      }
      result.errors.push_back({std::string(path), span.line + line + 1, column,
                               std::string(parsed.status().message()), static_cast<int>(d)});
      continue;
    }
    const YAML::Node& root = *parsed;
    Source source;
    source.path = std::string(path);
    source.document = static_cast<int>(d);
    source.begin = span.begin;
    source.end = span.end;
    source.line = span.line + root.Mark().line + 1;
    source.document_line = span.line;
    source.document_hash = DocumentHash(text);
    for (Resource& r : ResourcesOfDocument(root, source, options, result.errors)) {
      result.resources.push_back(std::move(r));
    }
  }
  return result;
}

void FinishLoad(LoadResult& result) {
  std::vector<Resource>& resources = result.resources;
  // Sorted through a permutation, applied in place: std::stable_sort of the resources
  // themselves takes a buffer of as many Resources (~10 MB at 20,000), and a second vector
  // for the unique ones as much again.
  std::vector<uint32_t> order(resources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&resources](uint32_t x, uint32_t y) {
    const Resource& a = resources[x];
    const Resource& b = resources[y];
    if (a.id != b.id) return a.id < b.id;
    if (a.source.path != b.source.path) return a.source.path < b.source.path;
    return a.source.line < b.source.line;
  });
  // Position i takes the resource at order[i]: each cycle of the permutation is walked once.
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] == i) continue;
    Resource first = std::move(resources[i]);
    size_t at = i;
    while (order[at] != i) {
      const size_t from = order[at];
      resources[at] = std::move(resources[from]);
      order[at] = static_cast<uint32_t>(at);
      at = from;
    }
    resources[at] = std::move(first);
    order[at] = static_cast<uint32_t>(at);
  }
  size_t kept = 0;
  for (size_t i = 0; i < resources.size(); ++i) {
    if (kept > 0 && resources[kept - 1].id == resources[i].id) {
      const Source& first = resources[kept - 1].source;
      const Resource& r = resources[i];
      result.errors.push_back(
          {r.source.path, r.source.line, 0,
           absl::StrCat("duplicate resource ", r.id, ", also defined at ", first.path, ":",
                        first.line, "; remove or rename one of them"),
           r.source.document});
      continue;
    }
    if (kept != i) resources[kept] = std::move(resources[i]);
    ++kept;
  }
  resources.erase(resources.begin() + static_cast<ptrdiff_t>(kept), resources.end());
}

absl::StatusOr<LoadResult> LoadTree(const std::string& root, const std::vector<std::string>& paths,
                                    const LoadOptions& options) {
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::path(root), ec);
  if (ec || !fs::is_directory(base)) {
    return absl::InvalidArgumentError(absl::StrCat(root, " is not a directory"));
  }
  std::vector<std::string> roots = paths.empty() ? std::vector<std::string>{"."} : paths;
  std::vector<fs::path> files;
  for (const std::string& rel : roots) {
    fs::path start = fs::weakly_canonical(base / rel, ec);
    std::string start_s = start.string();
    std::string base_s = base.string();
    if (ec || !(start_s == base_s || absl::StartsWith(start_s, base_s + "/"))) {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", rel, "\" is outside the repository"));
    }
    if (!fs::exists(start, ec)) {
      return absl::InvalidArgumentError(absl::StrCat("path \"", rel, "\" does not exist"));
    }
    if (fs::is_regular_file(start)) {
      files.push_back(start);
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(start, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const fs::path& p = it->path();
      if (it->is_directory()) {
        std::string name = p.filename().string();
        if ((!name.empty() && name[0] == '.') || IsChartDir(p)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && IsManifestFile(p)) files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  LoadResult result;
  for (const fs::path& file : files) {
    std::string rel = fs::relative(file, base).string();
    absl::StatusOr<std::string> content = ReadWholeFile(file);
    if (!content.ok()) {
      result.errors.push_back({rel, 0, 0, std::string(content.status().message()), -1});
      continue;
    }
    LoadResult one = LoadFile(rel, *content, options);
    for (Resource& r : one.resources) result.resources.push_back(std::move(r));
    for (LoadError& e : one.errors) result.errors.push_back(std::move(e));
  }
  FinishLoad(result);
  return result;
}

}  // namespace ferry::manifest
