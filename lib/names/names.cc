#include "lib/names/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ferry::names {
namespace {

// Length of the well-formed UTF-8 sequence starting at text[i], 0 when there is none.
// `code_point` receives its value.
size_t Utf8SequenceAt(absl::string_view text, size_t i, uint32_t& code_point) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  size_t length;
  uint32_t min;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    min = 0x80;
    code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    min = 0x800;
    code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    min = 0x10000;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return length;
}

// C0 controls, DEL and the C1 controls.
bool IsControl(uint32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
}

// The first byte offset where `text` is not UTF-8 or holds a control character that
// `allowed` does not accept; npos when there is none.
template <typename Allowed>
size_t FirstBadByte(absl::string_view text, Allowed allowed) {
  for (size_t i = 0; i < text.size();) {
    uint32_t code_point = 0;
    size_t n = Utf8SequenceAt(text, i, code_point);
    if (n == 0 || (IsControl(code_point) && !allowed(code_point))) return i;
    i += n;
  }
  return absl::string_view::npos;
}

// "is not UTF-8 at byte 3" or "has a control character (\n) at byte 3".
std::string DescribeBadByte(absl::string_view text, size_t at) {
  uint32_t code_point = 0;
  size_t n = Utf8SequenceAt(text, at, code_point);
  if (n == 0) {
    return absl::StrCat("is not UTF-8 at byte ", at, " (", Escape(text.substr(at, 1)), ")");
  }
  return absl::StrCat("has a control character (", Escape(text.substr(at, n)), ") at byte ", at);
}

bool NoControl(uint32_t) { return false; }

// Characters libgit2 trims from both ends of a signature's name and email.
bool IsTrimmedBySignature(char c) {
  return absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '.' || c == ',' || c == ':' ||
         c == ';' || c == '"' || c == '\'' || c == '\\';
}

bool HasSignatureContent(absl::string_view text) {
  for (char c : text) {
    if (!IsTrimmedBySignature(c)) return true;
  }
  return false;
}

absl::Status ValidateEmail(absl::string_view email) {
  const std::string hint = "; give the author as \"Name <local@domain>\"";
  if (email.empty()) return absl::InvalidArgumentError("author: the email in <> is empty" + hint);
  size_t at = email.find('@');
  if (at == absl::string_view::npos || at == 0 || at + 1 == email.size() ||
      email.find('@', at + 1) != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("author: email \"", Escape(email), "\" is not local@domain", hint));
  }
  for (char c : email) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == ',' || c == ';' || c == '"' ||
        c == '<' || c == '>') {
      return absl::InvalidArgumentError(absl::StrCat(
          "author: email \"", Escape(email), "\" holds a space, ',', ';', '\"', '<' or '>'", hint));
    }
  }
  if (!HasSignatureContent(email.substr(0, at)) || !HasSignatureContent(email.substr(at + 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("author: email \"", Escape(email), "\" is not local@domain", hint));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsUtf8(absl::string_view text) {
  for (size_t i = 0; i < text.size();) {
    uint32_t code_point = 0;
    size_t n = Utf8SequenceAt(text, i, code_point);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string Escape(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    uint32_t code_point = 0;
    size_t n = Utf8SequenceAt(bytes, i, code_point);
    if (n == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(bytes[i]));
      ++i;
      continue;
    }
    if (code_point == '\\') {
      out += "\\\\";
    } else if (code_point == '\n') {
      out += "\\n";
    } else if (code_point == '\r') {
      out += "\\r";
    } else if (code_point == '\t') {
      out += "\\t";
    } else if (IsControl(code_point)) {
      for (size_t k = 0; k < n; ++k) {
        absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(bytes[i + k]));
      }
    } else {
      out.append(bytes.data() + i, n);
    }
    i += n;
  }
  return out;
}

absl::StatusOr<Author> ParseAuthor(absl::string_view text) {
  const std::string form = "give \"Name <local@domain>\" or a bare name";
  if (text.size() > limits::kAuthorBytes.default_value) {
    return absl::InvalidArgumentError(limits::OverLimit("", limits::kAuthorBytes,
                                                        limits::kAuthorBytes.default_value,
                                                        text.size()) +
                                      "; " + form);
  }
  if (size_t bad = FirstBadByte(text, NoControl); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "author \"", Escape(text), "\" ", DescribeBadByte(text, bad), "; ", form, " on one line"));
  }
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (trimmed.empty()) return absl::InvalidArgumentError("author is empty; " + form);
  Author author;
  absl::string_view name = trimmed;
  if (trimmed.back() == '>') {
    size_t lt = trimmed.rfind('<');
    if (lt == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("author \"", trimmed, "\" has '>' without '<'; ", form));
    }
    name = absl::StripAsciiWhitespace(trimmed.substr(0, lt));
    absl::string_view email =
        absl::StripAsciiWhitespace(trimmed.substr(lt + 1, trimmed.size() - lt - 2));
    if (absl::Status s = ValidateEmail(email); !s.ok()) return s;
    author.email = std::string(email);
  }
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("author \"", trimmed, "\" has no name before the email; ", form));
  }
  if (name.find_first_of("<>") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("author \"", trimmed, "\": '<' and '>' may only enclose the email; ", form));
  }
  if (!HasSignatureContent(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("author \"", trimmed, "\" has no name (only punctuation); ", form));
  }
  // The limit holds for the author as written ("Name <email>"), which "Name<email>" exceeds
  // by a byte: an accepted author must parse again from its written form.
  const size_t written = author.email.empty() ? name.size() : name.size() + author.email.size() + 3;
  if (written > limits::kAuthorBytes.default_value) {
    return absl::InvalidArgumentError(
        absl::StrCat(limits::OverLimit("written as \"Name <email>\"", limits::kAuthorBytes,
                                       limits::kAuthorBytes.default_value, written),
                     "; ", form));
  }
  author.name = std::string(name);
  return author;
}

absl::Status ValidateCommitMessage(absl::string_view message, uint64_t max_bytes) {
  if (message.size() > max_bytes) {
    return absl::InvalidArgumentError(
        limits::OverLimit("", limits::kCommitMessageBytes, max_bytes, message.size()));
  }
  size_t bad = FirstBadByte(message, [](uint32_t c) { return c == '\n' || c == '\t'; });
  if (bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("commit message ", DescribeBadByte(message, bad),
                     "; use UTF-8 text with no control characters but newline and tab"));
  }
  return absl::OkStatus();
}

absl::Status ValidateName(absl::string_view what, absl::string_view value, uint64_t max_bytes) {
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(
        limits::OverLimit(what, limits::kRequestNameBytes, max_bytes, value.size()));
  }
  if (size_t bad = FirstBadByte(value, NoControl); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", Escape(value), "\" ",
                                                   DescribeBadByte(value, bad),
                                                   "; use one line of UTF-8 text"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePath(absl::string_view path) {
  if (path.size() > limits::kPathBytes.default_value) {
    return absl::InvalidArgumentError(
        limits::OverLimit(absl::StrCat("path \"", Escape(path.substr(0, 64)), "...\""),
                          limits::kPathBytes, limits::kPathBytes.default_value, path.size()));
  }
  if (size_t bad = FirstBadByte(path, NoControl); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", Escape(path), "\" ", DescribeBadByte(path, bad),
                     "; Ferry reads only file names that are UTF-8 without control characters "
                     "(rename the file)"));
  }
  return absl::OkStatus();
}

}  // namespace ferry::names
