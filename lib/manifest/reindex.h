// Keeping the resources loaded from one file in step with edits of its content, so a caller
// that keeps an index per revision re-parses only the document an edit changed.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lib/manifest/resource.h"

namespace ferry::manifest {

// After an edit replaced the bytes of the document at `edited` (`old_content` ->
// `new_content`, the whole file before and after), replaces that document's resources in
// `resources` (the file's resources, as loaded from `old_content`) with those of the edited
// document, and shifts the byte spans and lines of the documents after it. `parsed` is the
// editor's verification parse of the edited document (EditResult::document); when unset the
// document is parsed within `options.limits`. Problems the edited document's objects have
// are dropped with them, as the editor verified the document. Internal when the edited
// document does not parse. Not thread-safe for one `resources`.
absl::Status ReindexEditedDocument(std::vector<Resource>& resources, Source edited,
                                   absl::string_view old_content, absl::string_view new_content,
                                   const NodeHandle& parsed, const LoadOptions& options);

}  // namespace ferry::manifest
