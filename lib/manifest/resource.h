// Kubernetes resources as found in a config repository: loading a tree of YAML files into
// resources with ids, source locations and parsed content.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/manifest/document.h"

namespace ferry::manifest {

// A YAML::Node that copies and assigns as a handle. yaml-cpp's Node::operator= writes
// through to the node it refers to, so sorting or moving structs holding plain Nodes would
// rewrite the parsed trees themselves; this wrapper rebinds instead.
class NodeHandle {
 public:
  NodeHandle() = default;
  NodeHandle(const YAML::Node& node) { node_.reset(node); }  // NOLINT: implicit by design
  // noexcept (rebinding copies two pointers): a vector of Resources then moves its elements
  // when it grows instead of copying every string of every one.
  NodeHandle(const NodeHandle& other) noexcept { node_.reset(other.node_); }
  NodeHandle& operator=(const NodeHandle& other) noexcept {
    node_.reset(other.node_);
    return *this;
  }
  NodeHandle& operator=(const YAML::Node& node) {
    node_.reset(node);
    return *this;
  }
  operator const YAML::Node&() const { return node_; }  // NOLINT: implicit by design
  const YAML::Node& get() const { return node_; }
  // Whether it holds a parsed node. An unset handle holds a default node, which yaml-cpp
  // counts as defined (and null); no document that defines a resource parses to null.
  bool has_node() const { return node_.IsDefined() && !node_.IsNull(); }

 private:
  YAML::Node node_;
};

// Where a resource came from.
struct Source {
  // File path relative to the repository root ("apps/web.yaml").
  std::string path;
  // Index of the YAML document in the file (0-based, among documents with content).
  int document = 0;
  // Index in the `items` of a *List document; -1 when the document is the resource.
  int list_item = -1;
  // Byte span of the document in the file.
  size_t begin = 0;
  size_t end = 0;
  // 1-based line of the resource's first key.
  int line = 0;
  // 0-based line where the document starts (at `begin`).
  int document_line = 0;
  // DocumentHash() of the document's bytes, to tell whether a parsed resource still
  // matches a file's content.
  uint64_t document_hash = 0;
};

// One Kubernetes resource.
struct Resource {
  // "namespace:kind/name", kind lower-case, "<cluster>" for cluster-scoped kinds (ResourceId).
  std::string id;
  std::string api_version;
  // Kind as written ("Deployment").
  std::string kind;
  std::string name;
  // Effective namespace (the default namespace when the manifest has none); empty for
  // cluster-scoped resources.
  std::string namespace_;
  Source source;
  // The parsed object (the document, or the list item).
  NodeHandle node;
  // The parsed document that holds it (the same as `node` unless it is a List item).
  NodeHandle document;
  // metadata.annotations, string values only.
  std::map<std::string, std::string> annotations;
};
static_assert(std::is_nothrow_move_constructible_v<Resource>,
              "vectors of Resources would copy them when they grow");

// A problem found while loading: "file:line:column: document N: message", the message
// saying what is wrong and what to fix.
struct LoadError {
  std::string path;
  int line = 0;    // 1-based; 0 when not known
  int column = 0;  // 1-based; 0 when not known
  std::string message;
  int document = -1;  // index of the YAML document in the file (as Source::document); -1: none

  std::string ToString() const;
};

// Everything found in a tree.
struct LoadResult {
  // Resources sorted by id.
  std::vector<Resource> resources;
  // Malformed files and documents, duplicate ids. The rest of the tree still loads; a
  // document with an error contributes no resource.
  std::vector<LoadError> errors;
};

struct LoadOptions {
  // Namespace given to namespaced resources that have none.
  std::string default_namespace = "default";
  // Limits on each document (depth, size with aliases expanded): a document over one is a
  // load error of its own.
  DocumentLimits limits;
};

// The annotation cluster-syncer writes on every object it applies: the repository path of the
// file it came from (a kustomize root's kustomization for what the root builds).
inline constexpr char kSourceAnnotation[] = "ferry.dev/source";

// A 64-bit FNV-1a hash of a document's bytes.
uint64_t DocumentHash(absl::string_view text);

// The resources of one parsed document (`root`, parsed from the bytes `source` describes),
// appending problems to `errors`. `source.list_item` is set per item for List documents.
std::vector<Resource> ResourcesOfDocument(const YAML::Node& root, const Source& source,
                                          const LoadOptions& options,
                                          std::vector<LoadError>& errors);

// The id "namespace:kind/name" of an object ("<cluster>" when namespace is empty, the kind
// lower-cased): WorkloadId::Format, not checked against WorkloadId's grammar.
std::string ResourceId(absl::string_view namespace_, absl::string_view kind,
                       absl::string_view name);

// True for kinds Kubernetes serves cluster-scoped (Namespace, ClusterRole, CRDs, ...).
bool IsClusterScopedKind(absl::string_view kind);

// Parses the resources of one file's content. `path` is used in sources and errors. A
// document fails alone (an error, no resources) when it does not parse, is over
// `options.limits`, has a duplicate mapping key or an alias cycle (see ParseDocument), or
// when an object's apiVersion, kind, name, namespace, container name or image holds a
// control character.
LoadResult LoadFile(absl::string_view path, absl::string_view content,
                    const LoadOptions& options = {});

// Loads every *.yaml / *.yml file under `root`/`paths` (relative paths; "." or empty for the
// whole tree), skipping hidden directories and Helm chart folders (Chart.yaml with
// values.yaml). InvalidArgument when a path leaves the tree or does not exist.
absl::StatusOr<LoadResult> LoadTree(const std::string& root, const std::vector<std::string>& paths,
                                    const LoadOptions& options = {});

// Ids must be unique: adds an error naming both places for every duplicate and drops the
// later resources. Sorts by id. Used by LoadTree; exposed for callers that load files
// themselves (from a git object database).
void FinishLoad(LoadResult& result);

}  // namespace ferry::manifest
