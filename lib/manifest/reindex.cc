#include "lib/manifest/reindex.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ferry::manifest {
namespace {

int CountLines(absl::string_view text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

size_t Shifted(size_t offset, int64_t delta) {
  return static_cast<size_t>(static_cast<int64_t>(offset) + delta);
}

}  // namespace

absl::Status ReindexEditedDocument(std::vector<Resource>& resources, Source edited,
                                   absl::string_view old_content, absl::string_view new_content,
                                   const NodeHandle& parsed, const LoadOptions& options) {
  const int64_t delta =
      static_cast<int64_t>(new_content.size()) - static_cast<int64_t>(old_content.size());
  const size_t new_end = Shifted(edited.end, delta);
  absl::string_view new_doc = new_content.substr(edited.begin, new_end - edited.begin);
  absl::string_view old_doc = old_content.substr(edited.begin, edited.end - edited.begin);
  const int line_delta = CountLines(new_doc) - CountLines(old_doc);
  YAML::Node root = parsed.get();
  if (!parsed.has_node()) {
    absl::StatusOr<YAML::Node> reparsed =
        ParseDocument(new_doc, options.limits, edited.document_line);
    if (!reparsed.ok()) {
      return absl::InternalError(absl::StrCat(
          edited.path, ": edited document does not parse: ", reparsed.status().message()));
    }
    root.reset(*reparsed);  // rebinds; assignment would write through
  }
  Source source = edited;
  source.list_item = -1;
  source.end = new_end;
  source.document_hash = DocumentHash(new_doc);
  std::vector<LoadError> errors;
  std::vector<Resource> fresh = ResourcesOfDocument(root, source, options, errors);
  std::vector<Resource> next;
  for (Resource& r : resources) {
    if (r.source.document == edited.document) continue;
    if (r.source.begin >= edited.end) {
      r.source.begin = Shifted(r.source.begin, delta);
      r.source.end = Shifted(r.source.end, delta);
      r.source.line += line_delta;
      r.source.document_line += line_delta;
    }
    next.push_back(std::move(r));
  }
  for (Resource& r : fresh) next.push_back(std::move(r));
  resources = std::move(next);
  return absl::OkStatus();
}

}  // namespace ferry::manifest
