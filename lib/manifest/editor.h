// Edits of manifests that change only the bytes they must: a container's image, policy
// annotations, or the keys of any mapping. Comments, quoting, key order, indentation, line endings
// and every other document stay byte-identical. Every edit is verified by parsing the result and
// checking that exactly the intended change happened; otherwise it fails and nothing is returned.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"

namespace ferry::manifest {

// "Container `container` of the workload goes to `to_image`" (compare-and-set when
// `from_image` is given).
struct ImageChange {
  std::string container;
  std::string to_image;
  std::optional<std::string> from_image;
};

// Set (`value`) or remove (nullopt) one annotation.
struct AnnotationChange {
  std::string key;
  std::optional<std::string> value;
  bool operator==(const AnnotationChange&) const = default;
};

// One field the edit rewrote.
struct FieldChange {
  std::string field;  // "spec.template.spec.containers[0].image"
  std::string from;
  std::string to;
  int line = 0;  // 1-based line in the file
};

// A successful edit.
struct EditResult {
  std::string content;               // the whole new file
  std::vector<FieldChange> changes;  // empty when nothing had to change
  // The edited document as parsed for verification (unset when nothing changed), so
  // callers that keep an index need not parse it again.
  NodeHandle document;
};

// Changes a container's image in the resource `id` of the document at `source` (as
// LoadFile reported it for this same content). The manifest's spelling of the repository
// is kept when `to_image` names the same repository ("nginx:1" -> "nginx:2", not
// "docker.io/library/nginx:2"). Errors: NotFound (resource or container), InvalidArgument
// (image does not parse; a tag is needed for manifests that keep the tag apart), Aborted
// (`from_image` no longer matches), FailedPrecondition (the value cannot be rewritten in
// place: alias, block scalar), Internal (verification failed; nothing is returned).
absl::StatusOr<EditResult> SetImage(absl::string_view content, const Source& source,
                                    absl::string_view id, const ImageChange& change,
                                    const LoadOptions& options = {});

// Sets or removes annotations of the resource `id` in the document at `source`, creating
// `metadata.annotations` when missing and removing it when it becomes empty. Values are
// written so they read back as strings ("true" is quoted). Same errors as SetImage.
absl::StatusOr<EditResult> SetAnnotations(absl::string_view content, const Source& source,
                                          absl::string_view id,
                                          const std::vector<AnnotationChange>& changes,
                                          const LoadOptions& options = {});

// The same, for a resource loaded from this same content with the same `options` (an index
// kept per revision): when the document's bytes are unchanged, its parsed tree is reused, or
// its bytes are taken as within the limits already, so only its tree is built.
absl::StatusOr<EditResult> SetImage(absl::string_view content, const Resource& resource,
                                    const ImageChange& change, const LoadOptions& options = {});
absl::StatusOr<EditResult> SetAnnotations(absl::string_view content, const Resource& resource,
                                          const std::vector<AnnotationChange>& changes,
                                          const LoadOptions& options = {});

// `resource` as parsed anew from its document in `content` (the file it was loaded from),
// node and document included: for a resource kept without its parsed tree. FailedPrecondition
// when its bytes are no longer there or do not parse, NotFound when its document no longer
// defines it.
absl::Status ParseResourceDocument(absl::string_view content, Resource& resource,
                                   const LoadOptions& options = {});

// Sets or removes keys of the mapping at `mapping` (a path from the root of the first YAML
// document of `content`; empty = the root mapping), as SetAnnotations does for annotations:
// a value nullopt removes the key (its lines in a block mapping; its "key: value" and one
// comma in a flow mapping); a value set replaces an existing scalar in place in its quoting
// style, or inserts "key: value" after the mapping's last key at the column of its first key
// (block) or before its closing brace (flow). Values are written so they read back as
// strings ("1.10" stays "1.10", not a number). Changes apply in order. Every other byte of
// `content` is kept; the result is parsed to verify that only those keys changed. Errors:
// NotFound (no mapping at `mapping`), FailedPrecondition (a value that cannot be rewritten in
// place: alias, block scalar, not a scalar), InvalidArgument (`content` does not parse or is
// over `limits`), Internal (verification failed; nothing is returned). Thread-safe.
absl::StatusOr<std::string> SetMappingKeys(absl::string_view content, const NodePath& mapping,
                                           const std::vector<AnnotationChange>& changes,
                                           const DocumentLimits& limits = {});

// Finds resource `id` in a file's content (loading it) and returns its source.
absl::StatusOr<Source> FindResource(absl::string_view path, absl::string_view content,
                                    absl::string_view id, const LoadOptions& options = {});

}  // namespace ferry::manifest
