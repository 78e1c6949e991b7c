// Names and texts that Ferry writes into git: commit authors, commit messages, file paths,
// and the short names (workload ids, containers, patterns) that end up in commit subjects.
//
// One owner for each rule: every service that takes such a value from a request checks it
// here before it is queued or written, so a bad value fails with InvalidArgument at the
// edge and never reaches libgit2 (where a newline in an author corrupts the commit) or a
// protobuf string (which must be UTF-8). Texts that come from the repository itself (file
// names) are checked with the same functions and rendered with Escape() in messages.
//
// Every function is pure and thread-safe. Messages name what is wrong and how to fix it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/limits/limits.h"

namespace ferry::names {

// A commit author.
struct Author {
  std::string name;   // trimmed, non-empty, one line, no '<' or '>'
  std::string email;  // "local@domain"; empty when only a name was given (caller's default)
};

// Parses "Name <email>" or a bare "Name" (surrounding whitespace ignored). InvalidArgument
// when the text is empty or blank, is over limits::kAuthorBytes, is not UTF-8, holds a
// control character (newline, tab, NUL...), has '<' or '>' anywhere but around the email,
// has no name before "<email>", or the email is not "local@domain" without spaces.
absl::StatusOr<Author> ParseAuthor(absl::string_view text);

// Checks a commit message given by a caller: UTF-8, no NUL and no control characters other
// than newline and tab, at most `max_bytes`. InvalidArgument naming the offending byte or
// the limit (limits::kCommitMessageBytes and its flag). Empty is fine (the caller picks a
// default message).
absl::Status ValidateCommitMessage(absl::string_view message,
                                   uint64_t max_bytes = limits::kCommitMessageBytes.default_value);

// Checks a one-line name from a request (`what` says which: "workload", "container",
// "tag filter"...): UTF-8, no control characters, at most `max_bytes`. Empty is fine (the
// caller decides whether the name is required). InvalidArgument naming `what`.
absl::Status ValidateName(absl::string_view what, absl::string_view value,
                          uint64_t max_bytes = limits::kRequestNameBytes.default_value);

// Checks a path in the repository (from a request, or a file name read from a tree): UTF-8,
// no control characters, at most limits::kPathBytes. Whether the path stays inside the tree
// ("..", leading '/') is the repository's check, not this one. InvalidArgument with the
// path rendered by Escape().
absl::Status ValidatePath(absl::string_view path);

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF).
bool IsUtf8(absl::string_view text);

// `bytes` as one printable line that is valid UTF-8, for messages and commit subjects:
// well-formed UTF-8 other than control characters is kept, '\\' becomes "\\\\", newline,
// carriage return and tab become "\\n", "\\r", "\\t", and every other control character or
// byte that is not part of well-formed UTF-8 becomes "\\xNN". Escape("a\xff\n") is
// "a\\xff\\n".
std::string Escape(absl::string_view bytes);

}  // namespace ferry::names
