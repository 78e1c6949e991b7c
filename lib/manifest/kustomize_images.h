// The `images:` entries of a kustomization file, read and edited in place. An entry names
// an image (`name`, without tag) and says what kustomize writes instead: a repository
// (`newName`), a tag (`newTag`) and/or a digest (`digest`). A release of an image decided by
// an entry edits those keys and nothing else: comments, quoting, order and every other byte
// stay as they were (SetMappingKeys).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/manifest/document.h"

namespace ferry::manifest {

// One entry of a kustomization's `images:` list.
struct KustomizeImage {
  int index = 0;         // position in the list
  std::string name;      // `name`: the image name it matches (no tag)
  std::string new_name;  // `newName`, "" when absent
  std::string new_tag;   // `newTag`, "" when absent (numbers as written: 1.10 stays "1.10")
  std::string digest;    // `digest`, "" when absent
  int line = 0;          // 1-based line of the entry in the file
  // The image name this entry produces: new_name when set, else name.
  const std::string& OutputName() const { return new_name.empty() ? name : new_name; }
};

// The `images:` entries of a kustomization file's content (its first YAML document). A
// missing or empty `images:` is an empty list. InvalidArgument when the content does not
// parse (or is over `limits`, as ParseDocument), is not a mapping, or `images` is not a list
// of mappings each with a non-empty string `name` and string `newName`, `newTag`, `digest`.
// Thread-safe.
absl::StatusOr<std::vector<KustomizeImage>> KustomizeImages(absl::string_view content,
                                                            const DocumentLimits& limits = {});

// Rewrites entry `index` of `images:` so that the image it produces becomes `to_image` (a
// full reference: name[:tag][@digest]). `newName` is written only when `to_image` names
// another repository than the entry produces now (the same repository spelled differently,
// "nginx" and "docker.io/library/nginx", keeps the file's spelling); `newTag` becomes the
// tag (removed when `to_image` has none), `digest` the digest (removed when none). Returns
// the whole new content, the same when nothing changes. Errors: InvalidArgument (`to_image`
// does not parse or has neither tag nor digest; the content is not a kustomization as
// KustomizeImages reads it), NotFound (no entry `index`), otherwise as SetMappingKeys.
// Thread-safe.
absl::StatusOr<std::string> SetKustomizeImage(absl::string_view content, int index,
                                              absl::string_view to_image,
                                              const DocumentLimits& limits = {});

}  // namespace ferry::manifest
