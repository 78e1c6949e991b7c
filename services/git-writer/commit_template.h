// Commit message templates (--git_commit_template / --git_commit_template_path): a small,
// mustache-like language, parsed once at start and rendered for every commit Ferry makes.
//
//   {{job}} {{kind}} {{user}} {{message}} {{default}} {{subject}}   the job id, its kind
//       (release, automated_release, revert, policy), the requesting user, the cause's
//       message, the message Ferry writes without a template (for a release of several
//       images: a subject line, a blank line and the list) and that message's first line
//   {{#changes}} ... {{/changes}}   repeated for each change the commit makes; inside it
//       {{workload}} {{container}} {{from}} {{to}} (image changes) and {{policy}} (policy
//       changes: what changed, e.g. "automated, tag.app=semver:~1"), empty where they do
//       not apply; {{#images}} and {{#policies}} list only the image / policy changes
//   {{^changes}} ... {{/changes}}   rendered once when that list is empty
//   {{! comment }}                  dropped
//
// Names may be padded with spaces ({{ job }}). A section or comment tag alone on its line
// takes its line with it, as in mustache. Nothing is escaped (a commit message is text), but
// CR, NUL and other control characters of values are dropped, and the values that are one
// line (all but {{message}} and {{default}}) cannot add lines.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::git_writer {

// Largest template accepted.
inline constexpr size_t kMaxCommitTemplateBytes = 16 * 1024;

// One change a commit makes.
struct CommitChange {
  std::string workload;
  std::string container;  // image changes
  std::string from;       // image before (may be empty when the request did not say)
  std::string to;         // image after
  std::string policy;     // policy changes: what changed; empty for image changes
};

// What a template can show.
struct CommitFields {
  std::string job;
  std::string kind;
  std::string user;
  std::string message;
  std::string default_message;
  std::vector<CommitChange> changes;
};

class CommitTemplate {
 public:
  // Parses `text`. InvalidArgument "line L, column C: ..." (1-based, columns in bytes) for
  // an unknown field, a field used outside the section that defines it, an unbalanced or
  // nested list section, an unterminated tag, or a template over kMaxCommitTemplateBytes.
  static absl::StatusOr<CommitTemplate> Parse(absl::string_view text);

  // The message for `fields`, at most `max_bytes` long: when the whole list does not fit,
  // each list section shows as many changes as fit, followed by a line "and N more"; when
  // even no changes do not fit, the text is cut at a UTF-8 boundary.
  std::string Render(const CommitFields& fields, size_t max_bytes) const;

  struct Node;  // defined in commit_template.cc

 private:
  std::shared_ptr<const std::vector<Node>> nodes_;
};

// `message` ending with the git trailer "Ferry-Job: <job>", where git reads it: in the last
// paragraph, never the first. Kept when the last paragraph (not the first) is a block of
// trailers ending with exactly that line and holding no other Ferry-Job; added to a last
// paragraph of trailers without Ferry-Job; else added in a paragraph of its own. So git
// reads one Ferry-Job, this job's, whatever the message holds (e.g. a cause's message with
// a Ferry-Job line). Trailing blank lines of `message` are dropped. An empty `job` adds
// nothing.
std::string WithJobTrailer(std::string message, absl::string_view job);

}  // namespace ferry::git_writer
