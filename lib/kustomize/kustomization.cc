#include "lib/kustomize/kustomization.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/names/names.h"

namespace ferry::kustomize {
namespace {

absl::Status FieldError(absl::string_view path, absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(names::Escape(path), ": `", field, "` ", what));
}

// The string items of the list `field`, or an error when it is not a list of strings.
absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& root, absl::string_view path,
                                                    const char* field) {
  std::vector<std::string> out;
  const YAML::Node list = root[field];
  if (!list || list.IsNull()) return out;
  if (!list.IsSequence()) return FieldError(path, field, "must be a list");
  for (const YAML::Node& item : list) {
    if (!item.IsScalar()) {
      // Inline plugin configurations (mappings) are allowed in the plugin lists.
      if (item.IsMap()) continue;
      return FieldError(path, field, "must be a list of strings");
    }
    out.push_back(item.Scalar());
  }
  return out;
}

absl::StatusOr<std::string> StringField(const YAML::Node& root, absl::string_view path,
                                        const char* field) {
  const YAML::Node v = root[field];
  if (!v || v.IsNull()) return std::string();
  if (!v.IsScalar()) return FieldError(path, field, "must be a string");
  return v.Scalar();
}

// The strings of `root` that name files kustomize reads for patches, generators, CRDs,
// OpenAPI schemas and replacements (besides resources, bases, components and the plugin
// lists): where a URL would make kustomize fetch.
std::vector<std::string> FileFields(const YAML::Node& root) {
  std::vector<std::string> out;
  auto add = [&out](const YAML::Node& n) {
    if (n && n.IsScalar()) out.push_back(n.Scalar());
  };
  auto each = [](const YAML::Node& list, const auto& f) {
    if (list && list.IsSequence()) {
      for (const YAML::Node& item : list) f(item);
    }
  };
  each(root["patchesStrategicMerge"], add);
  each(root["crds"], add);
  for (const char* field : {"patches", "patchesJson6902", "replacements"}) {
    each(root[field], [&](const YAML::Node& item) {
      if (item.IsMap()) add(item["path"]);
    });
  }
  for (const char* field : {"configMapGenerator", "secretGenerator"}) {
    each(root[field], [&](const YAML::Node& item) {
      if (!item.IsMap()) return;
      add(item["env"]);
      each(item["envs"], add);
      each(item["files"], [&](const YAML::Node& f) {
        if (!f.IsScalar()) return;
        const std::string& v = f.Scalar();
        const size_t eq = v.find('=');  // "key=path"
        out.push_back(eq == std::string::npos ? v : v.substr(eq + 1));
      });
    });
  }
  if (root["openapi"] && root["openapi"].IsMap()) add(root["openapi"]["path"]);
  return out;
}

}  // namespace

bool IsKustomizationFile(absl::string_view path) {
  const size_t slash = path.rfind('/');
  const absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  for (absl::string_view n : kFileNames) {
    if (name == n) return true;
  }
  return false;
}

std::string FolderOf(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? "" : std::string(path.substr(0, slash));
}

absl::StatusOr<std::string> Resolve(absl::string_view folder, absl::string_view entry) {
  if (absl::StartsWith(entry, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("\"", names::Escape(entry),
                                                   "\" is an absolute path: name files and "
                                                   "folders relative to the kustomization"));
  }
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(folder, '/', absl::SkipEmpty())) {
    parts.emplace_back(p);
  }
  for (absl::string_view p : absl::StrSplit(entry, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") {
      if (parts.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("\"", names::Escape(entry),
                                                       "\" leaves the repository: a kustomization "
                                                       "may only use files of the repository"));
      }
      parts.pop_back();
      continue;
    }
    parts.emplace_back(p);
  }
  return absl::StrJoin(parts, "/");
}

bool LooksRemote(absl::string_view entry) {
  if (absl::StrContains(entry, "://") || absl::StartsWith(entry, "git@") ||
      absl::StrContains(entry, "?ref=") || absl::StrContains(entry, "?version=")) {
    return true;
  }
  // "github.com/org/repo//path": a first component that is a host name.
  const absl::string_view first = entry.substr(0, entry.find('/'));
  return first != entry && first != "." && first != ".." && absl::StrContains(first, '.') &&
         !absl::StartsWith(first, ".") && absl::StrContains(entry, '/');
}

absl::StatusOr<Kustomization> ParseKustomization(absl::string_view path, absl::string_view content,
                                                 const manifest::DocumentLimits& limits) {
  absl::StatusOr<YAML::Node> parsed = manifest::ParseDocument(content, limits);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(names::Escape(path), ": ", parsed.status().message()));
  }
  const YAML::Node& root = *parsed;
  Kustomization k;
  k.file = std::string(path);
  k.folder = FolderOf(path);
  if (root.IsNull()) return k;  // an empty kustomization builds nothing
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(names::Escape(path), ": a kustomization must be a mapping"));
  }
  for (const char* field : {"resources", "bases", "components"}) {
    absl::StatusOr<std::vector<std::string>> entries = StringList(root, path, field);
    if (!entries.ok()) return entries.status();
    for (const std::string& entry : *entries) {
      if (LooksRemote(entry)) {
        k.remote.push_back(entry);
        continue;
      }
      absl::StatusOr<std::string> resolved = Resolve(k.folder, entry);
      if (!resolved.ok()) return FieldError(path, field, resolved.status().message());
      if (absl::string_view(field) == "components") k.components.push_back(*resolved);
      k.references.push_back(*std::move(resolved));
    }
  }
  for (const char* field : {"generators", "transformers", "validators"}) {
    absl::StatusOr<std::vector<std::string>> entries = StringList(root, path, field);
    if (!entries.ok()) return entries.status();
    for (const std::string& entry : *entries) {
      if (LooksRemote(entry)) {
        k.remote.push_back(entry);
        continue;
      }
      absl::StatusOr<std::string> resolved = Resolve(k.folder, entry);
      if (!resolved.ok()) return FieldError(path, field, resolved.status().message());
      k.plugin_configs.push_back(*std::move(resolved));
    }
  }
  for (const std::string& file : FileFields(root)) {
    if (LooksRemote(file)) k.remote.push_back(file);
  }
  absl::StatusOr<std::string> prefix = StringField(root, path, "namePrefix");
  absl::StatusOr<std::string> suffix = StringField(root, path, "nameSuffix");
  absl::StatusOr<std::string> ns = StringField(root, path, "namespace");
  for (const auto* s : {&prefix, &suffix, &ns}) {
    if (!s->ok()) return s->status();
  }
  k.name_prefix = *prefix;
  k.name_suffix = *suffix;
  k.namespace_ = *ns;
  return k;
}

std::vector<std::string> GuessReferences(absl::string_view path, absl::string_view content) {
  std::vector<std::string> out;
  const std::string folder = FolderOf(path);
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "- ")) {
      const size_t colon = line.find(": ");
      if (colon == absl::string_view::npos) continue;
      line = line.substr(colon + 2);
    }
    line = absl::StripAsciiWhitespace(line);
    line = absl::StripPrefix(absl::StripSuffix(line, "\""), "\"");
    if (line.empty() || LooksRemote(line) || absl::StrContains(line, ' ')) continue;
    absl::StatusOr<std::string> resolved = Resolve(folder, line);
    if (resolved.ok()) out.push_back(*std::move(resolved));
  }
  return out;
}

bool DeclaresFunction(absl::string_view content) {
  return absl::StrContains(content, "config.kubernetes.io/function") ||
         absl::StrContains(content, "config.k8s.io/function");
}

}  // namespace ferry::kustomize
