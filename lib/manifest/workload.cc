#include "lib/manifest/workload.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::manifest {
namespace {

constexpr char kChartImage[] = "chart-image";

NodePath PodSpecPath(absl::string_view lower_kind) {
  if (lower_kind == "pod") return {"spec"};
  if (lower_kind == "cronjob") return {"spec", "jobTemplate", "spec", "template", "spec"};
  return {"spec", "template", "spec"};
}

NodePath Append(NodePath path, absl::string_view key) {
  path.emplace_back(key);
  return path;
}

bool IsScalar(const YAML::Node& n) { return n && n.IsScalar(); }

std::string Join(const std::string& registry, const std::string& path, const std::string& tag) {
  std::string s = registry.empty() ? path : absl::StrCat(registry, "/", path);
  if (!tag.empty()) absl::StrAppend(&s, ":", tag);
  return s;
}

// Reads an image from map `m` (at `path` in the resource) in one of the HelmRelease
// shapes. Returns false when `m` holds no image.
bool ReadHelmImage(const YAML::Node& m, const NodePath& path, Container& out) {
  if (!m || !m.IsMap()) return false;
  YAML::Node image = m["image"];
  if (IsScalar(image)) {
    YAML::Node registry = m["registry"];
    YAML::Node tag = m["tag"];
    if (IsScalar(registry) && IsScalar(tag)) {
      out.image = Join(registry.Scalar(), image.Scalar(), tag.Scalar());
      out.fields = {{Append(path, "registry"), ImageField::Part::kRegistry},
                    {Append(path, "image"), ImageField::Part::kPath},
                    {Append(path, "tag"), ImageField::Part::kTag}};
    } else if (IsScalar(tag)) {
      out.image = Join("", image.Scalar(), tag.Scalar());
      out.fields = {{Append(path, "image"), ImageField::Part::kName},
                    {Append(path, "tag"), ImageField::Part::kTag}};
    } else {
      out.image = image.Scalar();
      out.fields = {{Append(path, "image"), ImageField::Part::kFull}};
    }
    return true;
  }
  if (image && image.IsMap() && IsScalar(image["repository"])) {
    NodePath ip = Append(path, "image");
    YAML::Node registry = image["registry"];
    YAML::Node tag = image["tag"];
    std::string reg = IsScalar(registry) ? registry.Scalar() : "";
    std::string t = IsScalar(tag) ? tag.Scalar() : "";
    out.image = Join(reg, image["repository"].Scalar(), t);
    if (!reg.empty()) out.fields.push_back({Append(ip, "registry"), ImageField::Part::kRegistry});
    ImageField::Part repo_part = !reg.empty() ? ImageField::Part::kPath
                                 : !t.empty() ? ImageField::Part::kName
                                              : ImageField::Part::kFull;
    out.fields.push_back({Append(ip, "repository"), repo_part});
    if (!t.empty()) out.fields.push_back({Append(ip, "tag"), ImageField::Part::kTag});
    return true;
  }
  return false;
}

NodePath DottedPath(const NodePath& base, absl::string_view dotted) {
  NodePath p = base;
  for (absl::string_view part : absl::StrSplit(dotted, '.', absl::SkipEmpty())) {
    p.emplace_back(part);
  }
  return p;
}

std::vector<Container> HelmContainers(const Resource& r) {
  std::vector<Container> out;
  const NodePath values_path = {"spec", "values"};
  YAML::Node values = NodeAt(r.node, values_path);
  std::set<std::string> seen;
  // Annotation image maps first: they name containers explicitly.
  const std::string kRepoPrefix = "repository.fluxcd.io/";
  for (const auto& [key, value] : r.annotations) {
    if (!absl::StartsWith(key, kRepoPrefix)) continue;
    std::string name = key.substr(kRepoPrefix.size());
    Container c;
    c.name = name;
    NodePath repo_path = DottedPath(values_path, value);
    YAML::Node repo = NodeAt(r.node, repo_path);
    if (!IsScalar(repo)) continue;
    auto tag_it = r.annotations.find("tag.fluxcd.io/" + name);
    auto reg_it = r.annotations.find("registry.fluxcd.io/" + name);
    std::string reg;
    std::string tag;
    if (reg_it != r.annotations.end()) {
      NodePath p = DottedPath(values_path, reg_it->second);
      if (IsScalar(NodeAt(r.node, p))) {
        reg = NodeAt(r.node, p).Scalar();
        c.fields.push_back({p, ImageField::Part::kRegistry});
      }
    }
    ImageField::Part repo_part = ImageField::Part::kFull;
    NodePath tag_path;
    if (tag_it != r.annotations.end()) {
      tag_path = DottedPath(values_path, tag_it->second);
      if (IsScalar(NodeAt(r.node, tag_path))) tag = NodeAt(r.node, tag_path).Scalar();
    }
    if (!reg.empty())
      repo_part = ImageField::Part::kPath;
    else if (!tag.empty())
      repo_part = ImageField::Part::kName;
    c.fields.push_back({repo_path, repo_part});
    if (!tag.empty()) c.fields.push_back({tag_path, ImageField::Part::kTag});
    c.image = Join(reg, repo.Scalar(), tag);
    seen.insert(name);
    out.push_back(std::move(c));
  }
  if (!values || !values.IsMap()) return out;
  Container top;
  top.name = kChartImage;
  if (!seen.count(kChartImage) && ReadHelmImage(values, values_path, top)) {
    out.push_back(std::move(top));
  }
  for (const auto& kv : values) {
    if (!kv.first.IsScalar() || !kv.second.IsMap()) continue;
    const std::string& key = kv.first.Scalar();
    if (seen.count(key)) continue;
    Container c;
    c.name = key;
    if (ReadHelmImage(kv.second, Append(values_path, key), c)) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

bool IsWorkloadKind(absl::string_view kind) {
  static const auto* kinds = new std::set<std::string>{
      "deployment", "daemonset", "statefulset", "replicaset",  "replicationcontroller",
      "job",        "cronjob",   "pod",         "helmrelease", "fluxhelmrelease"};
  return kinds->count(absl::AsciiStrToLower(std::string(kind))) > 0;
}

YAML::Node NodeAt(const YAML::Node& root, const NodePath& path) {
  // yaml-cpp's operator[] on a non-const node inserts; walk const nodes and rebind.
  YAML::Node current = root;
  for (const std::string& key : path) {
    if (!current) return YAML::Node(YAML::NodeType::Undefined);
    if (current.IsSequence()) {
      size_t index = 0;
      if (!absl::SimpleAtoi(key, &index) || index >= current.size()) {
        return YAML::Node(YAML::NodeType::Undefined);
      }
      const YAML::Node& as_const = current;
      YAML::Node next = as_const[index];
      current.reset(next);
    } else if (current.IsMap()) {
      const YAML::Node& as_const = current;
      YAML::Node next = as_const[key];
      if (!next) return YAML::Node(YAML::NodeType::Undefined);
      current.reset(next);
    } else {
      return YAML::Node(YAML::NodeType::Undefined);
    }
  }
  return current;
}

std::string PathToString(const NodePath& path) {
  std::string out;
  size_t index = 0;
  for (const std::string& key : path) {
    bool numeric = !key.empty() && absl::SimpleAtoi(key, &index);
    if (numeric) {
      absl::StrAppend(&out, "[", key, "]");
    } else {
      absl::StrAppend(&out, out.empty() ? "" : ".", key);
    }
  }
  return out;
}

std::vector<Container> FindContainers(const Resource& resource) {
  std::string kind = absl::AsciiStrToLower(resource.kind);
  // FluxHelmRelease (flux.weave.works/v1beta1, helm-operator 0.x) keeps its images in
  // spec.values in the same shapes, with the same container names.
  if (kind == "helmrelease" || kind == "fluxhelmrelease") return HelmContainers(resource);
  if (!IsWorkloadKind(kind)) return {};
  std::vector<Container> out;
  const NodePath spec = PodSpecPath(kind);
  for (const char* list : {"containers", "initContainers"}) {
    NodePath list_path = Append(spec, list);
    YAML::Node items = NodeAt(resource.node, list_path);
    if (!items || !items.IsSequence()) continue;
    for (size_t i = 0; i < items.size(); ++i) {
      YAML::Node item = items[i];
      if (!item.IsMap()) continue;
      Container c;
      c.init = std::string(list) == "initContainers";
      c.name = IsScalar(item["name"]) ? item["name"].Scalar() : "";
      NodePath image_path = Append(Append(list_path, std::to_string(i)), "image");
      YAML::Node image = item["image"];
      if (IsScalar(image)) c.image = image.Scalar();
      c.fields = {{image_path, ImageField::Part::kFull}};
      out.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace ferry::manifest
