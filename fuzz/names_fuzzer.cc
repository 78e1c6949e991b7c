// Fuzzes the validators of names Ferry writes into git (lib/names): whatever they accept must
// be safe to write (UTF-8, no control characters, authors that print back to themselves), and
// Escape() must turn any bytes into one printable UTF-8 line.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/names/names.h"

namespace {

bool HasControl(const std::string& s, bool allow_newline_and_tab) {
  for (unsigned char c : s) {
    if (allow_newline_and_tab && (c == '\n' || c == '\t')) continue;
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  using namespace ferry::names;

  absl::StatusOr<Author> author = ParseAuthor(text);
  if (author.ok()) {
    Check(!author->name.empty() && IsUtf8(author->name) && !HasControl(author->name, false));
    Check(author->name.find_first_of("<>") == std::string::npos);
    Check(!HasControl(author->email, false) &&
          author->email.find_first_of("<> ") == std::string::npos);
    // What is written as "Name <email>" parses back to the same author.
    const std::string written =
        author->email.empty() ? author->name : absl::StrCat(author->name, " <", author->email, ">");
    absl::StatusOr<Author> again = ParseAuthor(written);
    Check(again.ok() && again->name == author->name && again->email == author->email);
  } else {
    Check(author.status().code() == absl::StatusCode::kInvalidArgument);
    Check(IsUtf8(std::string(author.status().message())));
  }

  if (ValidatePath(text).ok()) Check(IsUtf8(text) && !HasControl(text, false));
  if (ValidateCommitMessage(text).ok()) Check(IsUtf8(text) && !HasControl(text, true));
  if (ValidateName("name", text, size + 1).ok()) Check(IsUtf8(text) && !HasControl(text, false));

  // Any bytes escape to one printable line that the name check accepts.
  const std::string escaped = Escape(text);
  Check(IsUtf8(escaped) && !HasControl(escaped, false));
  Check(ValidateName("escaped", escaped, escaped.size() + 1).ok());
  // Text that the name check accepts and that has no backslash escapes to itself.
  if (ValidateName("name", text, size + 1).ok() && text.find('\\') == std::string::npos) {
    Check(escaped == text);
  }
  return 0;
}
