#include "lib/manifest/yaml_text.h"

#include <re2/re2.h>

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ferry::manifest {
namespace {

bool IsMarker(absl::string_view line, absl::string_view marker) {
  if (!absl::StartsWith(line, marker)) return false;
  if (line.size() == 3) return true;
  char c = line[3];
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// True when the line holds something other than whitespace and a comment.
bool HasContent(absl::string_view line) {
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c != '#';
  }
  return false;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// Reads `span_text` back as YAML and returns the scalar, for checking a located span.
std::optional<std::string> ReadBack(absl::string_view span_text, bool in_flow) {
  try {
    if (in_flow) {
      YAML::Node n = YAML::Load(absl::StrCat("[", span_text, "]"));
      if (!n.IsSequence() || n.size() != 1 || !n[0].IsScalar()) return std::nullopt;
      return n[0].Scalar();
    }
    YAML::Node n = YAML::Load(absl::StrCat("k: ", span_text));
    if (!n.IsMap() || !n["k"].IsScalar()) return std::nullopt;
    return n["k"].Scalar();
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::vector<DocumentSpan> SplitDocuments(absl::string_view content) {
  std::vector<DocumentSpan> docs;
  DocumentSpan current;
  bool has_content = false;
  int line_no = 0;
  size_t pos = 0;
  auto close = [&](size_t end) {
    current.end = end;
    if (has_content) docs.push_back(current);
    has_content = false;
  };
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    size_t next = eol == absl::string_view::npos ? content.size() : eol + 1;
    absl::string_view line = content.substr(pos, next - pos);
    if (IsMarker(line, "---")) {
      close(pos);
      current = DocumentSpan{pos, pos, line_no};
      has_content = HasContent(line.substr(3));
    } else if (IsMarker(line, "...")) {
      close(next);
      current = DocumentSpan{next, next, line_no + 1};
    } else {
      has_content = has_content || HasContent(line);
    }
    pos = next;
    ++line_no;
  }
  close(content.size());
  return docs;
}

absl::StatusOr<ScalarSpan> LocateScalar(absl::string_view text, const YAML::Node& node,
                                        bool in_flow, size_t key_pos) {
  if (!node.IsScalar()) return absl::FailedPreconditionError("value is not a scalar");
  const YAML::Mark mark = node.Mark();
  if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text.size()) {
    return absl::FailedPreconditionError("value has no position in the text");
  }
  size_t p = static_cast<size_t>(mark.pos);
  if (key_pos != absl::string_view::npos && p < key_pos) {
    return absl::FailedPreconditionError(
        "value is an alias (*name) of an anchor elsewhere; edit the anchored value instead");
  }
  // Skip node properties: anchors (&a) and tags (!t).
  while (p < text.size() && (text[p] == '&' || text[p] == '!')) {
    while (p < text.size() && !absl::ascii_isspace(static_cast<unsigned char>(text[p]))) ++p;
    while (p < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[p]))) ++p;
  }
  if (p >= text.size()) return absl::FailedPreconditionError("value has no text");
  ScalarSpan span;
  span.begin = p;
  const char first = text[p];
  if (first == '"') {
    span.style = ScalarStyle::kDoubleQuoted;
    size_t i = p + 1;
    while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
    if (i >= text.size()) return absl::FailedPreconditionError("unterminated double-quoted value");
    span.end = i + 1;
  } else if (first == '\'') {
    span.style = ScalarStyle::kSingleQuoted;
    size_t i = p + 1;
    while (i < text.size()) {
      if (text[i] == '\'') {
        if (i + 1 < text.size() && text[i + 1] == '\'') {
          i += 2;
          continue;
        }
        break;
      }
      ++i;
    }
    if (i >= text.size()) return absl::FailedPreconditionError("unterminated single-quoted value");
    span.end = i + 1;
  } else if (first == '|' || first == '>') {
    return absl::FailedPreconditionError(
        "value is a block scalar (| or >); write it as a single-line value to let Ferry edit it");
  } else {
    span.style = ScalarStyle::kPlain;
    size_t i = p;
    while (i < text.size() && text[i] != '\n' && text[i] != '\r') {
      if (text[i] == '#' && i > p && IsSpace(text[i - 1])) break;
      if (in_flow && (text[i] == ',' || text[i] == ']' || text[i] == '}')) break;
      if (in_flow && text[i] == ':' && i + 1 < text.size() &&
          (IsSpace(text[i + 1]) || text[i + 1] == ',')) {
        break;
      }
      ++i;
    }
    while (i > p && IsSpace(text[i - 1])) --i;
    span.end = i;
  }
  std::optional<std::string> back =
      ReadBack(text.substr(span.begin, span.end - span.begin), in_flow);
  if (!back.has_value() || *back != node.Scalar()) {
    return absl::FailedPreconditionError(
        "value spans several lines or uses escapes Ferry cannot rewrite in place; write it on "
        "one line");
  }
  return span;
}

bool ResolvesAsNonString(absl::string_view value) {
  static const RE2* re = new RE2(
      "~|null|Null|NULL|"
      "y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|"
      "[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F_]+|0b[01_]+|"
      "[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\\.[0-9_]*)?|"
      "[-+]?(?:\\.[0-9]+|[0-9][0-9_]*(?:\\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|"
      "[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)");
  return value.empty() || RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *re);
}

std::string EncodeScalar(absl::string_view value, ScalarStyle style, bool must_stay_string) {
  bool has_control = false;
  for (char c : value) has_control |= static_cast<unsigned char>(c) < 0x20;
  if (style == ScalarStyle::kPlain) {
    bool plain_ok =
        !value.empty() && !has_control &&
        absl::string_view("-?:,[]{}#&*!|>'\"%@`").find(value[0]) == absl::string_view::npos &&
        !IsSpace(value.front()) && !IsSpace(value.back()) && !absl::StrContains(value, ": ") &&
        !absl::StrContains(value, " #") && !absl::EndsWith(value, ":") &&
        value.find_first_of(",[]{}") == absl::string_view::npos &&
        !(must_stay_string && ResolvesAsNonString(value));
    if (plain_ok) return std::string(value);
    style = ScalarStyle::kDoubleQuoted;
  }
  if (style == ScalarStyle::kSingleQuoted && !has_control) {
    std::string out = "'";
    for (char c : value) {
      if (c == '\'')
        out += "''";
      else
        out += c;
    }
    return out + "'";
  }
  std::string out = "\"";
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

absl::string_view LineEnding(absl::string_view text) {
  size_t nl = text.find('\n');
  if (nl != absl::string_view::npos && nl > 0 && text[nl - 1] == '\r') return "\r\n";
  return "\n";
}

size_t LineStart(absl::string_view text, size_t pos) {
  if (pos == 0) return 0;
  size_t nl = text.rfind('\n', pos - 1);
  return nl == absl::string_view::npos ? 0 : nl + 1;
}

size_t NextLineStart(absl::string_view text, size_t pos) {
  size_t nl = text.find('\n', pos);
  return nl == absl::string_view::npos ? text.size() : nl + 1;
}

int IndentAt(absl::string_view text, size_t line_start) {
  int n = 0;
  while (line_start + n < text.size() && text[line_start + n] == ' ') ++n;
  return n;
}

}  // namespace ferry::manifest
