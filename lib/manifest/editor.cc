#include "lib/manifest/editor.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/image/reference.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/yaml_text.h"
#include "lib/status/status_macros.h"

namespace ferry::manifest {
namespace {

constexpr size_t kNpos = absl::string_view::npos;

// ParseResourceDocument; `checked_before`: the document's bytes passed the limits already
// (they are what an index read), so only the tree is built.
absl::Status ParseResource(absl::string_view content, Resource& resource,
                           const LoadOptions& options, bool checked_before);

// The document being edited.
struct Doc {
  std::string text;
  NodeHandle root;
  NodeHandle object;  // the resource: the root, or an item of a List
  Resource resource;  // with node = object
};

struct Replacement {
  size_t begin;
  size_t end;
  std::string text;
};

YAML::Node ObjectOf(const YAML::Node& root, int list_item) {
  if (list_item < 0) return root;
  return NodeAt(root, {"items", std::to_string(list_item)});
}

// Parses text the editor produced (within `limits`, as every document it reads).
absl::StatusOr<YAML::Node> Parse(const std::string& text, absl::string_view what,
                                 const DocumentLimits& limits) {
  absl::StatusOr<YAML::Node> root = ParseDocument(text, limits);
  if (!root.ok()) {
    return absl::InternalError(absl::StrCat(what, " does not parse: ", root.status().message()));
  }
  return root;
}

// Opens the document at `source` in `content`. When `indexed` (a resource loaded earlier
// from the same bytes) is given and the bytes still hash the same, its parsed tree is used
// and nothing is parsed again.
absl::StatusOr<Doc> OpenDocument(absl::string_view content, const Source& source,
                                 absl::string_view id, const LoadOptions& options,
                                 const Resource* indexed = nullptr) {
  if (source.begin > source.end || source.end > content.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(source.path, ": the file changed since it was indexed; reload it"));
  }
  Doc doc;
  doc.text = std::string(content.substr(source.begin, source.end - source.begin));
  // The bytes the index read (and checked against the limits) when it made `indexed`.
  const bool indexed_bytes =
      indexed != nullptr && indexed->id == id && indexed->source.begin == source.begin &&
      indexed->source.end == source.end && indexed->source.list_item == source.list_item &&
      indexed->source.document_hash == DocumentHash(doc.text);
  if (indexed_bytes && indexed->document.has_node()) {
    doc.root = indexed->document;
    doc.object = indexed->node;
    doc.resource = *indexed;
    return doc;
  }
  Resource parsed;
  parsed.id = std::string(id);
  parsed.source = source;
  FERRY_RETURN_IF_ERROR(ParseResource(content, parsed, options, /*checked_before=*/indexed_bytes));
  doc.root = parsed.document;
  doc.object = parsed.node;
  doc.resource = std::move(parsed);
  return doc;
}

std::string ApplyReplacements(absl::string_view text, std::vector<Replacement> reps) {
  std::sort(reps.begin(), reps.end(),
            [](const Replacement& a, const Replacement& b) { return a.begin > b.begin; });
  std::string out(text);
  for (const Replacement& r : reps) out.replace(r.begin, r.end - r.begin, r.text);
  return out;
}

bool Overlapping(std::vector<Replacement> reps) {
  std::sort(reps.begin(), reps.end(),
            [](const Replacement& a, const Replacement& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < reps.size(); ++i) {
    if (reps[i].begin < reps[i - 1].end) return true;
  }
  return false;
}

// Whether two parsed trees hold the same content: the same node types, scalars, and
// mapping entries in the same order. Aliases compare as what they repeat.
bool SameTree(const YAML::Node& a, const YAML::Node& b) {
  if (a.Type() != b.Type()) return false;
  switch (a.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return true;
    case YAML::NodeType::Scalar:
      return a.Scalar() == b.Scalar();
    case YAML::NodeType::Sequence:
    case YAML::NodeType::Map: {
      if (a.size() != b.size()) return false;
      auto j = b.begin();
      for (auto i = a.begin(); i != a.end(); ++i, ++j) {
        if (j == b.end()) return false;
        if (a.IsMap() ? !SameTree(i->first, j->first) || !SameTree(i->second, j->second)
                      : !SameTree(*i, *j)) {
          return false;
        }
      }
      return true;
    }
  }
  return false;
}

// Parses the edited document once and checks it against the expected tree. Returns the
// parsed edited document. `checked_before`: the text is one that passed the limits with only
// inert scalars replaced (InertEdit), so they are not checked again.
absl::StatusOr<YAML::Node> VerifyDocument(const std::string& new_text, const YAML::Node& expected,
                                          absl::string_view path, const DocumentLimits& limits,
                                          bool checked_before = false) {
  YAML::Node actual;
  if (checked_before) {
    absl::StatusOr<YAML::Node> loaded = LoadCheckedDocument(new_text);
    if (!loaded.ok()) {
      return absl::InternalError(
          absl::StrCat("the edited ", path, " does not parse: ", loaded.status().message()));
    }
    actual = *std::move(loaded);
  } else {
    FERRY_ASSIGN_OR_RETURN(actual, Parse(new_text, absl::StrCat("the edited ", path), limits));
  }
  if (!SameTree(actual, expected)) {
    return absl::InternalError(absl::StrCat(
        "edit of ", path,
        " not applied: the result would differ from the intended change (is the value shared "
        "through a YAML anchor, or written in a form Ferry cannot rewrite?)"));
  }
  return actual;
}

// Whether writing `reps` over `text`, a document that passed `limits`, leaves it within them
// for sure: each replacement is a scalar of letters, digits and the punctuation of image
// references (in one pair of quotes or none), which adds no node, level, key, anchor or alias;
// and with no anchor in the text nothing repeats, so its scalars' bytes stay under 1.5 times
// its size (the most any decoding makes of a byte: "\L" is 3 bytes of UTF-8, as is a UTF-16
// character of 2).
bool InertEdit(absl::string_view text, const std::vector<Replacement>& reps,
               const DocumentLimits& limits) {
  if (text.find('&') != kNpos) return false;
  size_t size = text.size();
  for (const Replacement& r : reps) {
    absl::string_view scalar = r.text;
    if (scalar.size() >= 2 && (scalar.front() == '"' || scalar.front() == '\'') &&
        scalar.back() == scalar.front()) {
      scalar = scalar.substr(1, scalar.size() - 2);
    }
    if (scalar.empty()) return false;
    for (char c : scalar) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
          absl::string_view("._:/@-").find(c) == kNpos) {
        return false;
      }
    }
    size += r.text.size() - std::min(r.text.size(), r.end - r.begin);
  }
  return size + size / 2 <= limits.max_expanded_bytes;
}

// The key node for `key` in map `m` (undefined when absent).
YAML::Node KeyNode(const YAML::Node& m, absl::string_view key) {
  if (!m || !m.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& kv : m) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.first;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

absl::StatusOr<ScalarSpan> LocateAt(const std::string& text, const YAML::Node& object,
                                    const NodePath& path) {
  NodePath parent_path(path.begin(), path.end() - 1);
  YAML::Node parent = NodeAt(object, parent_path);
  YAML::Node node = NodeAt(object, path);
  if (!node) {
    return absl::NotFoundError(absl::StrCat("no value at ", PathToString(path)));
  }
  size_t key_pos = kNpos;
  if (parent.IsMap()) {
    YAML::Node key = KeyNode(parent, path.back());
    if (key) key_pos = static_cast<size_t>(key.Mark().pos);
  }
  absl::StatusOr<ScalarSpan> span =
      LocateScalar(text, node, parent.Style() == YAML::EmitterStyle::Flow, key_pos);
  if (!span.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(PathToString(path), ": ", span.status().message()));
  }
  return span;
}

int LineOf(absl::string_view text, size_t pos) {
  return static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n'));
}

std::string ContainerNames(const std::vector<Container>& containers) {
  std::vector<std::string> names;
  for (const Container& c : containers) names.push_back(c.name);
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// --- block and flow text surgery for annotations ---

bool BlankOrComment(absl::string_view line) {
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '#';
  }
  return true;
}

// End (start of the following line) of the block entry whose key line starts at
// `key_line`, for entries whose keys sit at column `col`: continuation lines are more
// indented, or "- " items at the same column. Trailing blank and comment lines are not
// part of the entry.
size_t EntryEnd(absl::string_view text, size_t key_line, int col) {
  size_t pos = NextLineStart(text, key_line);
  size_t end = pos;
  while (pos < text.size()) {
    size_t next = NextLineStart(text, pos);
    absl::string_view line = text.substr(pos, next - pos);
    if (BlankOrComment(line)) {
      pos = next;
      continue;
    }
    int indent = IndentAt(text, pos);
    bool dash_item = indent == col && line.size() > static_cast<size_t>(col) && line[col] == '-' &&
                     (line.size() == static_cast<size_t>(col) + 1 ||
                      absl::ascii_isspace(static_cast<unsigned char>(line[col + 1])));
    if (indent > col || dash_item) {
      end = next;
      pos = next;
      continue;
    }
    break;
  }
  return end;
}

// Offset of the first byte of the flow collection starting at `pos` (skipping anchors and
// tags), and of its closing bracket.
absl::StatusOr<std::pair<size_t, size_t>> FlowBounds(absl::string_view text, size_t pos) {
  while (pos < text.size() && text[pos] != '{' && text[pos] != '[') ++pos;
  if (pos >= text.size()) return absl::FailedPreconditionError("flow mapping not found");
  int depth = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
    } else if (c == '\'') {
      for (++i; i < text.size(); ++i) {
        if (text[i] == '\'' && (i + 1 >= text.size() || text[i + 1] != '\'')) break;
        if (text[i] == '\'') ++i;
      }
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return std::make_pair(pos, i);
    }
  }
  return absl::FailedPreconditionError("unterminated flow mapping");
}

// Inserts `entry` ("key: value") into the flow mapping starting at `pos`.
absl::StatusOr<Replacement> FlowInsert(absl::string_view text, size_t pos,
                                       const std::string& entry) {
  FERRY_ASSIGN_OR_RETURN(auto bounds, FlowBounds(text, pos));
  auto [open, close] = bounds;
  size_t last = close;
  while (last > open + 1 && absl::ascii_isspace(static_cast<unsigned char>(text[last - 1]))) {
    --last;
  }
  if (last == open + 1) return Replacement{open + 1, close, entry};
  return Replacement{last, last, absl::StrCat(", ", entry)};
}

// Inserts `lines` (each already indented, each ending in `eol`) at `at`.
Replacement LineInsert(absl::string_view text, size_t at, std::string lines,
                       absl::string_view eol) {
  if (at == text.size() && !text.empty() && text.back() != '\n') {
    lines = absl::StrCat(eol, lines);
    if (absl::EndsWith(lines, eol)) lines.resize(lines.size() - eol.size());
  }
  return Replacement{at, at, std::move(lines)};
}

int ColumnOf(const YAML::Node& n) { return n.Mark().column; }

// The column of the first key of block map `m`.
int FirstKeyColumn(const YAML::Node& m) {
  for (const auto& kv : m) return ColumnOf(kv.first);
  return -1;
}

YAML::Node LastKey(const YAML::Node& m) {
  YAML::Node last(YAML::NodeType::Undefined);
  for (const auto& kv : m) last.reset(kv.first);
  return last;
}

absl::StatusOr<Replacement> BlockAppend(absl::string_view text, const YAML::Node& map,
                                        const std::string& lines_at_col0, int col,
                                        absl::string_view eol) {
  YAML::Node last = LastKey(map);
  if (!last) return absl::FailedPreconditionError("empty mapping");
  size_t key_line = LineStart(text, static_cast<size_t>(last.Mark().pos));
  size_t at = EntryEnd(text, key_line, col);
  // Indent every line by `col`.
  std::string indented;
  std::string pad(col, ' ');
  for (absl::string_view line : absl::StrSplit(lines_at_col0, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&indented, pad, line, eol);
  }
  return LineInsert(text, at, indented, eol);
}

NodePath Child(NodePath path, const std::string& key) {
  path.push_back(key);
  return path;
}

// The key after `key` in map `m` (undefined when `key` is the last).
YAML::Node NextKey(const YAML::Node& m, const YAML::Node& key) {
  bool found = false;
  for (const auto& kv : m) {
    if (found) return kv.first;
    found = kv.first.is(key);
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

// Removes `key` (with its value) from the block mapping `map`: its lines, or, when the key
// shares its line with a sequence dash ("- key: v"), its text up to the next key, which
// then takes its place after the dash.
absl::StatusOr<Replacement> BlockRemove(absl::string_view text, const YAML::Node& map,
                                        const YAML::Node& key, absl::string_view eol) {
  const size_t key_pos = static_cast<size_t>(key.Mark().pos);
  const size_t line = LineStart(text, key_pos);
  const size_t end = EntryEnd(text, line, ColumnOf(key));
  if (IndentAt(text, line) == ColumnOf(key)) return Replacement{line, end, ""};
  YAML::Node next = NextKey(map, key);
  if (!next) {
    // The only key of a sequence item: the item becomes an empty mapping.
    return Replacement{
        key_pos, end,
        end > key_pos && text[end - 1] == '\n' ? absl::StrCat("{}", eol) : std::string("{}")};
  }
  const size_t next_pos = static_cast<size_t>(next.Mark().pos);
  if (LineStart(text, next_pos) != end || IndentAt(text, end) != ColumnOf(next)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove \"", key.Scalar(),
                     "\": it starts a sequence item and is not directly followed by the next "
                     "key; edit it by hand"));
  }
  return Replacement{key_pos, next_pos, ""};
}

// Removes `key` (with its value and one neighbouring comma) from the flow mapping whose
// value `key` has at `value_path` under `object`.
absl::StatusOr<Replacement> FlowRemove(const std::string& text, const YAML::Node& object,
                                       const NodePath& value_path, const YAML::Node& key) {
  FERRY_ASSIGN_OR_RETURN(ScalarSpan span, LocateAt(text, object, value_path));
  size_t begin = static_cast<size_t>(key.Mark().pos);
  size_t end = span.end;
  size_t after = end;
  while (after < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[after]))) {
    ++after;
  }
  if (after < text.size() && text[after] == ',') {
    end = after + 1;
    while (end < text.size() && text[end] == ' ') ++end;
  } else {
    size_t before = begin;
    while (before > 0 && absl::ascii_isspace(static_cast<unsigned char>(text[before - 1]))) {
      --before;
    }
    if (before > 0 && text[before - 1] == ',') begin = before - 1;
  }
  return Replacement{begin, end, ""};
}

// Sets or removes `change.key` in the mapping at `map_path` under `object` (parsed from
// `text`): a scalar value is replaced in place in its quoting style; a new key goes after the
// last key of a block mapping (at the column of its first key) or before the closing brace
// of a flow mapping; a removed key takes its lines (block) or its "key: value" and one comma
// (flow) with it. Returns the new text (the same when nothing changes) and sets `what`
// (named `field`) when something changed.
absl::StatusOr<std::string> EditMappingKey(const std::string& text, const YAML::Node& object,
                                           const NodePath& map_path, const AnnotationChange& change,
                                           const std::string& field,
                                           std::optional<FieldChange>& what) {
  const YAML::Node map = NodeAt(object, map_path);
  const bool flow = map.Style() == YAML::EmitterStyle::Flow;
  const absl::string_view eol = LineEnding(text);
  const YAML::Node key = KeyNode(map, change.key);
  const NodePath value_path = Child(map_path, change.key);
  const YAML::Node value = NodeAt(object, value_path);
  const std::string old_value = key && value.IsScalar() ? value.Scalar() : "";
  Replacement rep;
  if (change.value.has_value()) {
    if (key) {
      if (value.IsScalar() && value.Scalar() == *change.value) return text;
      FERRY_ASSIGN_OR_RETURN(ScalarSpan span, LocateAt(text, object, value_path));
      rep = {span.begin, span.end, EncodeScalar(*change.value, span.style, true)};
    } else {
      const std::string entry =
          absl::StrCat(EncodeScalar(change.key, ScalarStyle::kPlain, false), ": ",
                       EncodeScalar(*change.value, ScalarStyle::kPlain, true));
      if (flow) {
        FERRY_ASSIGN_OR_RETURN(rep, FlowInsert(text, static_cast<size_t>(map.Mark().pos), entry));
      } else {
        FERRY_ASSIGN_OR_RETURN(rep, BlockAppend(text, map, entry, FirstKeyColumn(map), eol));
      }
    }
    what = FieldChange{field, old_value, *change.value, LineOf(text, rep.begin)};
    return ApplyReplacements(text, {rep});
  }
  if (!key) return text;
  if (flow) {
    FERRY_ASSIGN_OR_RETURN(rep, FlowRemove(text, object, value_path, key));
  } else {
    FERRY_ASSIGN_OR_RETURN(rep, BlockRemove(text, map, key, eol));
  }
  what = FieldChange{field, old_value, "", LineOf(text, rep.begin)};
  return ApplyReplacements(text, {rep});
}

// Applies one annotation change to a document's text; returns the new text (unchanged when
// there is nothing to do) and what changed.
absl::StatusOr<std::string> ApplyAnnotation(const std::string& text, int list_item,
                                            const AnnotationChange& change,
                                            const DocumentLimits& limits,
                                            std::optional<FieldChange>& what) {
  FERRY_ASSIGN_OR_RETURN(YAML::Node root, Parse(text, "document", limits));
  YAML::Node object = ObjectOf(root, list_item);
  const absl::string_view eol = LineEnding(text);
  YAML::Node metadata = NodeAt(object, {"metadata"});
  if (!metadata || !metadata.IsMap()) {
    return absl::FailedPreconditionError("metadata is not a mapping");
  }
  YAML::Node meta_key = KeyNode(object, "metadata");
  YAML::Node ann_key = KeyNode(metadata, "annotations");
  YAML::Node ann = NodeAt(metadata, {"annotations"});
  const bool meta_flow = metadata.Style() == YAML::EmitterStyle::Flow;
  const std::string field = absl::StrCat("metadata.annotations.", change.key);
  if (ann && ann.IsMap()) {
    // Ferry removes a map it empties, with its key (except inside flow-style metadata,
    // which keeps "annotations: {}").
    const YAML::Node key = KeyNode(ann, change.key);
    if (!change.value.has_value() && key && ann.size() == 1 &&
        (ann.Style() != YAML::EmitterStyle::Flow || !meta_flow)) {
      const YAML::Node value = NodeAt(ann, {change.key});
      size_t line = LineStart(text, static_cast<size_t>(ann_key.Mark().pos));
      what = FieldChange{field, value.IsScalar() ? value.Scalar() : "", "", LineOf(text, line)};
      return ApplyReplacements(text, {{line, EntryEnd(text, line, ColumnOf(ann_key)), ""}});
    }
    return EditMappingKey(text, object, {"metadata", "annotations"}, change, field, what);
  }
  if (!change.value.has_value()) return text;

  // No annotations map yet: create one holding the entry.
  const std::string entry = absl::StrCat(EncodeScalar(change.key, ScalarStyle::kPlain, false), ": ",
                                         EncodeScalar(*change.value, ScalarStyle::kPlain, true));
  Replacement rep;
  if (ann_key) {
    // "annotations:" with no value (or null): write the entry as a flow mapping in place
    // of the null, or on its own line below the key.
    if (!ann.IsNull()) {
      return absl::FailedPreconditionError("metadata.annotations is not a mapping");
    }
    size_t after_colon = text.find(':', static_cast<size_t>(ann_key.Mark().pos));
    size_t line_end = text.find('\n', after_colon);
    if (line_end == std::string::npos) line_end = text.size();
    absl::string_view rest =
        absl::string_view(text).substr(after_colon + 1, line_end - after_colon - 1);
    absl::string_view stripped = absl::StripAsciiWhitespace(rest);
    if (!stripped.empty() && stripped[0] != '#') {
      size_t token = after_colon + 1 + rest.find(stripped);
      size_t token_end = token;
      while (token_end < line_end &&
             !absl::ascii_isspace(static_cast<unsigned char>(text[token_end]))) {
        ++token_end;
      }
      rep = {token, token_end, absl::StrCat("{", entry, "}")};
    } else {
      int col = ColumnOf(ann_key);
      int step = std::max(2, col - (meta_key ? ColumnOf(meta_key) : 0));
      rep = LineInsert(text, NextLineStart(text, after_colon),
                       absl::StrCat(std::string(col + step, ' '), entry, eol), eol);
    }
  } else if (meta_flow) {
    FERRY_ASSIGN_OR_RETURN(rep, FlowInsert(text, static_cast<size_t>(metadata.Mark().pos),
                                           absl::StrCat("annotations: {", entry, "}")));
  } else {
    int col = FirstKeyColumn(metadata);
    int step = std::max(2, col - (meta_key ? ColumnOf(meta_key) : 0));
    FERRY_ASSIGN_OR_RETURN(
        rep, BlockAppend(text, metadata,
                         absl::StrCat("annotations:\n", std::string(step, ' '), entry), col, eol));
  }
  what = FieldChange{field, "", *change.value, LineOf(text, rep.begin)};
  return ApplyReplacements(text, {rep});
}

// Checks the edited document at the domain level: the target container has the new image
// and every other container kept its image (YAML anchors could share a value).
absl::Status VerifyContainers(const YAML::Node& new_root, const Source& source,
                              absl::string_view id, const LoadOptions& options,
                              const std::vector<Container>& before, const std::string& target,
                              const std::string& new_image) {
  Source doc_source = source;
  doc_source.list_item = -1;
  std::vector<LoadError> errors;
  std::vector<Container> after;
  for (const Resource& r : ResourcesOfDocument(new_root, doc_source, options, errors)) {
    if (r.id == id && r.source.list_item == source.list_item) after = FindContainers(r);
  }
  bool ok = after.size() == before.size();
  for (size_t i = 0; ok && i < after.size(); ++i) {
    const std::string& want = after[i].name == target ? new_image : before[i].image;
    ok = after[i].name == before[i].name && after[i].image == want;
  }
  if (!ok) {
    return absl::FailedPreconditionError(absl::StrCat(
        id, ": changing container ", target,
        " would also change another container (a YAML anchor shares the value); edit it by "
        "hand"));
  }
  return absl::OkStatus();
}

EditResult Splice(absl::string_view content, const Source& source, const std::string& doc_text,
                  std::vector<FieldChange> changes) {
  EditResult result;
  result.content =
      absl::StrCat(content.substr(0, source.begin), doc_text, content.substr(source.end));
  for (FieldChange& c : changes) c.line += source.document_line + 1;
  result.changes = std::move(changes);
  return result;
}

}  // namespace

absl::StatusOr<Source> FindResource(absl::string_view path, absl::string_view content,
                                    absl::string_view id, const LoadOptions& options) {
  LoadResult loaded = LoadFile(path, content, options);
  for (const Resource& r : loaded.resources) {
    if (r.id == id) return r.source;
  }
  for (const LoadError& e : loaded.errors) {
    return absl::NotFoundError(absl::StrCat("resource ", id, " not found in ", path,
                                            " (the file has errors: ", e.ToString(), ")"));
  }
  return absl::NotFoundError(absl::StrCat("resource ", id, " not found in ", path));
}

namespace {

absl::StatusOr<EditResult> SetImageImpl(absl::string_view content, const Source& source,
                                        absl::string_view id, const ImageChange& change,
                                        const LoadOptions& options, const Resource* indexed) {
  absl::StatusOr<image::Reference> to = image::Reference::Parse(change.to_image);
  if (!to.ok()) return to.status();
  if (to->tag().empty() && to->digest().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image \"", change.to_image, "\" has no tag; give one, e.g. ", to->name(), ":1.2.3"));
  }
  FERRY_ASSIGN_OR_RETURN(Doc doc, OpenDocument(content, source, id, options, indexed));
  std::vector<Container> containers = FindContainers(doc.resource);
  auto it = std::find_if(containers.begin(), containers.end(),
                         [&](const Container& c) { return c.name == change.container; });
  if (it == containers.end()) {
    return absl::NotFoundError(absl::StrCat(id, " has no container \"", change.container,
                                            "\" (containers: ", ContainerNames(containers), ")"));
  }
  const Container& container = *it;
  if (change.from_image.has_value() && !image::SameImage(container.image, *change.from_image)) {
    return absl::AbortedError(absl::StrCat("container ", change.container, " of ", id, " is now ",
                                           container.image, ", not ", *change.from_image,
                                           "; plan the change again"));
  }
  // Keep the manifest's spelling of the repository name.
  std::string new_full = change.to_image;
  absl::StatusOr<image::Reference> current = image::Reference::Parse(container.image);
  if (current.ok() && current->SameRepository(*to)) {
    new_full = current->name();
    if (!to->tag().empty()) absl::StrAppend(&new_full, ":", to->tag());
    if (!to->digest().empty()) absl::StrAppend(&new_full, "@", to->digest());
  }
  EditResult unchanged;
  unchanged.content = std::string(content);
  if (new_full == container.image) return unchanged;
  absl::StatusOr<image::Reference> next = image::Reference::Parse(new_full);
  if (!next.ok()) return next.status();

  YAML::Node expected_root = YAML::Clone(doc.root);
  YAML::Node expected = ObjectOf(expected_root, source.list_item);
  std::vector<Replacement> reps;
  std::vector<FieldChange> changes;
  for (const ImageField& field : container.fields) {
    std::string value;
    switch (field.part) {
      case ImageField::Part::kFull:
        value = new_full;
        break;
      case ImageField::Part::kName:
        value = next->name();
        break;
      case ImageField::Part::kRegistry:
        value = next->domain().empty() ? "docker.io" : next->domain();
        break;
      case ImageField::Part::kPath:
        value = next->path();
        break;
      case ImageField::Part::kTag:
        if (next->tag().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              id, " keeps the tag of ", change.container, " in ", PathToString(field.path),
              "; give an image with a tag, not only a digest"));
        }
        value = next->tag();
        break;
    }
    YAML::Node node = NodeAt(doc.object, field.path);
    if (node.IsScalar() && node.Scalar() == value) continue;
    FERRY_ASSIGN_OR_RETURN(ScalarSpan span, LocateAt(doc.text, doc.object, field.path));
    reps.push_back({span.begin, span.end, EncodeScalar(value, span.style, true)});
    changes.push_back({PathToString(field.path), node.IsScalar() ? node.Scalar() : "", value,
                       LineOf(doc.text, span.begin)});
    NodeAt(expected, field.path) = value;
  }
  if (Overlapping(reps)) {
    return absl::FailedPreconditionError(absl::StrCat(
        id, ": the fields of container ", change.container, " overlap; edit it by hand"));
  }
  // The document opened was checked against the limits (now or when it was indexed): the result
  // need not be, when the edit cannot have changed what they count.
  const bool inert = InertEdit(doc.text, reps, options.limits);
  std::string new_text = ApplyReplacements(doc.text, reps);
  FERRY_ASSIGN_OR_RETURN(YAML::Node new_root, VerifyDocument(new_text, expected_root, source.path,
                                                             options.limits, inert));
  FERRY_RETURN_IF_ERROR(
      VerifyContainers(new_root, source, id, options, containers, change.container, new_full));
  EditResult result = Splice(content, source, new_text, std::move(changes));
  result.document = new_root;
  return result;
}

absl::StatusOr<EditResult> SetAnnotationsImpl(absl::string_view content, const Source& source,
                                              absl::string_view id,
                                              const std::vector<AnnotationChange>& changes,
                                              const LoadOptions& options, const Resource* indexed) {
  FERRY_ASSIGN_OR_RETURN(Doc doc, OpenDocument(content, source, id, options, indexed));
  YAML::Node expected_root = YAML::Clone(doc.root);
  YAML::Node expected_meta = NodeAt(ObjectOf(expected_root, source.list_item), {"metadata"});
  const YAML::Node metadata = NodeAt(doc.object, {"metadata"});
  const bool meta_flow = metadata && metadata.Style() == YAML::EmitterStyle::Flow;
  std::string text = doc.text;
  std::vector<FieldChange> made;
  for (const AnnotationChange& change : changes) {
    std::optional<FieldChange> what;
    absl::StatusOr<std::string> next =
        ApplyAnnotation(text, source.list_item, change, options.limits, what);
    if (!next.ok()) {
      return absl::Status(next.status().code(),
                          absl::StrCat(source.path, ": ", id, ": ", next.status().message()));
    }
    text = *std::move(next);
    if (what.has_value()) made.push_back(*what);
    // The same change, on the expected tree.
    if (expected_meta && expected_meta.IsMap()) {
      if (change.value.has_value()) {
        expected_meta["annotations"][change.key] = *change.value;
      } else {
        const YAML::Node& const_meta = expected_meta;
        YAML::Node ann = const_meta["annotations"];
        if (ann && ann.IsMap()) {
          ann.remove(change.key);
          // Ferry removes an emptied annotations map, except inside a flow-style metadata
          // mapping, where it leaves "annotations: {}".
          if (ann.size() == 0 && !meta_flow) expected_meta.remove("annotations");
        }
      }
    }
  }
  FERRY_ASSIGN_OR_RETURN(YAML::Node new_root,
                         VerifyDocument(text, expected_root, source.path, options.limits));
  EditResult result = Splice(content, source, text, std::move(made));
  if (!result.changes.empty()) result.document = new_root;
  return result;
}

}  // namespace

absl::StatusOr<std::string> SetMappingKeys(absl::string_view content, const NodePath& mapping,
                                           const std::vector<AnnotationChange>& changes,
                                           const DocumentLimits& limits) {
  const std::vector<DocumentSpan> docs = SplitDocuments(content);
  const DocumentSpan span = docs.empty() ? DocumentSpan{0, content.size(), 0} : docs.front();
  std::string text(content.substr(span.begin, span.end - span.begin));
  FERRY_ASSIGN_OR_RETURN(YAML::Node root, ParseDocument(text, limits, span.line));
  const std::string where = mapping.empty() ? "the document's root" : PathToString(mapping);
  const YAML::Node map = NodeAt(root, mapping);
  if (!map || !map.IsMap()) return absl::NotFoundError(absl::StrCat("no mapping at ", where));
  YAML::Node expected_root = YAML::Clone(root);
  YAML::Node expected = NodeAt(expected_root, mapping);
  for (size_t i = 0; i < changes.size(); ++i) {
    const AnnotationChange& change = changes[i];
    if (i > 0) {
      FERRY_ASSIGN_OR_RETURN(root, Parse(text, "the edited document", limits));
    }
    std::optional<FieldChange> what;
    absl::StatusOr<std::string> next =
        EditMappingKey(text, root, mapping, change, PathToString(Child(mapping, change.key)), what);
    if (!next.ok()) {
      return absl::Status(next.status().code(),
                          absl::StrCat(where, ": ", change.key, ": ", next.status().message()));
    }
    text = *std::move(next);
    if (change.value.has_value()) {
      expected[change.key] = *change.value;
    } else {
      expected.remove(change.key);
    }
  }
  FERRY_RETURN_IF_ERROR(VerifyDocument(text, expected_root, where, limits).status());
  return absl::StrCat(content.substr(0, span.begin), text, content.substr(span.end));
}

absl::Status ParseResourceDocument(absl::string_view content, Resource& resource,
                                   const LoadOptions& options) {
  return ParseResource(content, resource, options, /*checked_before=*/false);
}

namespace {

absl::Status ParseResource(absl::string_view content, Resource& resource,
                           const LoadOptions& options, bool checked_before) {
  const Source& source = resource.source;
  if (source.begin > source.end || source.end > content.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(source.path, ": the file changed since it was indexed; reload it"));
  }
  const absl::string_view text = content.substr(source.begin, source.end - source.begin);
  absl::StatusOr<YAML::Node> root = checked_before
                                        ? LoadCheckedDocument(text)
                                        : ParseDocument(text, options.limits, source.document_line);
  if (!root.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(source.path, " document ", source.document, ": ", root.status().message()));
  }
  Source doc_source = source;
  doc_source.list_item = -1;
  std::vector<LoadError> errors;
  for (Resource& r : ResourcesOfDocument(*root, doc_source, options, errors)) {
    if (r.id == resource.id && r.source.list_item == source.list_item) {
      resource = std::move(r);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat("resource ", resource.id, " is not in ", source.path,
                                          " document ", source.document));
}

}  // namespace

absl::StatusOr<EditResult> SetImage(absl::string_view content, const Source& source,
                                    absl::string_view id, const ImageChange& change,
                                    const LoadOptions& options) {
  return SetImageImpl(content, source, id, change, options, nullptr);
}

absl::StatusOr<EditResult> SetImage(absl::string_view content, const Resource& resource,
                                    const ImageChange& change, const LoadOptions& options) {
  return SetImageImpl(content, resource.source, resource.id, change, options, &resource);
}

absl::StatusOr<EditResult> SetAnnotations(absl::string_view content, const Source& source,
                                          absl::string_view id,
                                          const std::vector<AnnotationChange>& changes,
                                          const LoadOptions& options) {
  return SetAnnotationsImpl(content, source, id, changes, options, nullptr);
}

absl::StatusOr<EditResult> SetAnnotations(absl::string_view content, const Resource& resource,
                                          const std::vector<AnnotationChange>& changes,
                                          const LoadOptions& options) {
  return SetAnnotationsImpl(content, resource.source, resource.id, changes, options, &resource);
}

}  // namespace ferry::manifest
