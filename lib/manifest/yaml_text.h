// Byte-level helpers for editing YAML text without re-emitting it: where documents start
// and end, the exact bytes of a scalar, line boundaries, and how to write a scalar in a
// given style. Parsing itself is yaml-cpp's job; these only locate what it parsed.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::manifest {

// One YAML document of a multi-document file: bytes [begin, end).
struct DocumentSpan {
  size_t begin = 0;
  size_t end = 0;
  // 0-based line number of `begin` in the file.
  int line = 0;
};

// Splits `content` at document markers ("---" / "..." at the start of a line). Documents
// holding nothing but blank lines, comments and markers are left out. Never fails.
std::vector<DocumentSpan> SplitDocuments(absl::string_view content);

// How a scalar is written.
enum class ScalarStyle { kPlain, kSingleQuoted, kDoubleQuoted };

// The bytes of one scalar value in a document's text.
struct ScalarSpan {
  size_t begin = 0;  // first byte of the scalar (after any anchor / tag)
  size_t end = 0;    // one past its last byte
  ScalarStyle style = ScalarStyle::kPlain;
};

// Locates the scalar that `node` (parsed by yaml-cpp from `text`) was read from. `in_flow`
// says whether it sits in a flow collection ({...} or [...]). `key_pos` is the offset of
// the mapping key the value belongs to (or npos): a value found before its key is an alias.
// FailedPrecondition when the scalar cannot be edited in place (block scalar, alias,
// multi-line plain scalar): the message says which.
absl::StatusOr<ScalarSpan> LocateScalar(absl::string_view text, const YAML::Node& node,
                                        bool in_flow, size_t key_pos);

// `value` written as a scalar in `style`. A plain scalar is written double-quoted instead
// when plain would read back differently (leading indicator, ": ", " #", surrounding
// spaces) or, with `must_stay_string`, as a number, boolean or null.
std::string EncodeScalar(absl::string_view value, ScalarStyle style, bool must_stay_string);

// True when a plain scalar `value` would be read as something other than a string by YAML
// 1.1 or 1.2 readers (numbers, booleans, null, "yes"/"no"/"on"/"off", "~").
bool ResolvesAsNonString(absl::string_view value);

// The line ending the text uses ("\r\n" when its first line ends so, else "\n").
absl::string_view LineEnding(absl::string_view text);

// Offset of the first byte of the line containing `pos`.
size_t LineStart(absl::string_view text, size_t pos);
// Offset one past the line break of the line containing `pos` (or text.size()).
size_t NextLineStart(absl::string_view text, size_t pos);
// Number of leading spaces of the line starting at `line_start`.
int IndentAt(absl::string_view text, size_t line_start);

}  // namespace ferry::manifest
