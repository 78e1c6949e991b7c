#include "services/git-writer/commit_template.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::git_writer {

struct CommitTemplate::Node {
  enum class Type { kText, kField, kSection, kInverted };
  Type type = Type::kText;
  std::string text;  // kText: the text; else the field or list name
  std::vector<Node> children;
};

namespace {

using Node = CommitTemplate::Node;

bool IsTopField(absl::string_view name) {
  return name == "job" || name == "kind" || name == "user" || name == "message" ||
         name == "default" || name == "subject";
}
bool IsItemField(absl::string_view name) {
  return name == "workload" || name == "container" || name == "from" || name == "to" ||
         name == "policy";
}
bool IsList(absl::string_view name) {
  return name == "changes" || name == "images" || name == "policies";
}

std::string Where(absl::string_view text, size_t offset) {
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return absl::StrCat("line ", line, ", column ", offset - line_start + 1);
}

absl::Status ErrorAt(absl::string_view text, size_t offset, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(text, offset), ": ", what));
}

// `value` without CR, NUL and other control characters; on one line when `one_line`.
std::string Clean(absl::string_view value, bool one_line) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char c = value[i];
    if (c == '\r') {
      if (i + 1 < value.size() && value[i + 1] == '\n') continue;
      out.push_back(one_line ? ' ' : '\n');
    } else if (c == '\n') {
      out.push_back(one_line ? ' ' : '\n');
    } else if (c == '\t') {
      out.push_back(c);
    } else if (c < 0x20 || c == 0x7f) {
      continue;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<const CommitChange*> ListOf(absl::string_view name, const CommitFields& fields) {
  std::vector<const CommitChange*> list;
  for (const CommitChange& c : fields.changes) {
    const bool policy = !c.policy.empty();
    if (name == "changes" || (name == "images" && !policy) || (name == "policies" && policy)) {
      list.push_back(&c);
    }
  }
  return list;
}

std::string FieldValue(absl::string_view name, const CommitFields& fields,
                       const CommitChange* item) {
  if (name == "job") return Clean(fields.job, true);
  if (name == "kind") return Clean(fields.kind, true);
  if (name == "user") return Clean(fields.user, true);
  if (name == "message") return Clean(fields.message, false);
  if (name == "default") return Clean(fields.default_message, false);
  if (name == "subject") {
    absl::string_view d = fields.default_message;
    return Clean(d.substr(0, d.find('\n')), true);
  }
  if (item == nullptr) return "";
  if (name == "workload") return Clean(item->workload, true);
  if (name == "container") return Clean(item->container, true);
  if (name == "from") return Clean(item->from, true);
  if (name == "to") return Clean(item->to, true);
  if (name == "policy") return Clean(item->policy, true);
  return "";
}

// Renders `nodes`, each list section showing at most `shown` of its changes.
void RenderNodes(const std::vector<Node>& nodes, const CommitFields& fields,
                 const CommitChange* item, size_t shown, std::string& out) {
  for (const Node& n : nodes) {
    switch (n.type) {
      case Node::Type::kText:
        out += n.text;
        break;
      case Node::Type::kField:
        out += FieldValue(n.text, fields, item);
        break;
      case Node::Type::kInverted:
        if (ListOf(n.text, fields).empty()) RenderNodes(n.children, fields, item, shown, out);
        break;
      case Node::Type::kSection: {
        std::vector<const CommitChange*> list = ListOf(n.text, fields);
        const size_t count = std::min(shown, list.size());
        for (size_t i = 0; i < count; ++i) RenderNodes(n.children, fields, list[i], shown, out);
        if (count < list.size()) {
          if (!out.empty() && out.back() != '\n') out += '\n';
          absl::StrAppend(&out, "and ", list.size() - count, " more\n");
        }
        break;
      }
    }
  }
}

// The longest prefix of `text` of at most `max_bytes` that ends on a UTF-8 boundary.
std::string CutUtf8(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

}  // namespace

absl::StatusOr<CommitTemplate> CommitTemplate::Parse(absl::string_view text) {
  if (text.size() > kMaxCommitTemplateBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the template is ", text.size(),
                                                   " bytes; at most ", kMaxCommitTemplateBytes,
                                                   " are accepted"));
  }
  auto root = std::make_shared<std::vector<Node>>();
  struct Open {
    std::vector<Node>* nodes;  // where the section's children go
    std::string name;
    size_t offset;
    bool inverted;
  };
  std::vector<Open> open;
  std::vector<Node>* current = root.get();
  auto add_text = [&](absl::string_view t) {
    if (t.empty()) return;
    if (!current->empty() && current->back().type == Node::Type::kText) {
      absl::StrAppend(&current->back().text, t);
    } else {
      current->push_back(Node{Node::Type::kText, std::string(t), {}});
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t tag = text.find("{{", pos);
    if (tag == absl::string_view::npos) {
      add_text(text.substr(pos));
      break;
    }
    const size_t close = text.find("}}", tag + 2);
    if (close == absl::string_view::npos) return ErrorAt(text, tag, "{{ is never closed by }}");
    absl::string_view inner = absl::StripAsciiWhitespace(text.substr(tag + 2, close - tag - 2));
    const std::string shown = absl::StrCat("{{", inner, "}}");
    size_t next = close + 2;
    const char sigil = inner.empty() ? '\0' : inner[0];
    const bool structural = sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!';
    absl::string_view before = text.substr(pos, tag - pos);
    if (structural) {
      // Alone on its line: the line goes (its indentation and its newline).
      const size_t nl = tag == 0 ? absl::string_view::npos : text.rfind('\n', tag - 1);
      const size_t from = nl == absl::string_view::npos ? 0 : nl + 1;
      size_t line_end = text.find('\n', next);
      if (line_end == absl::string_view::npos) line_end = text.size();
      if (from >= pos && absl::StripAsciiWhitespace(text.substr(from, tag - from)).empty() &&
          absl::StripAsciiWhitespace(text.substr(next, line_end - next)).empty()) {
        before = text.substr(pos, from - pos);
        next = line_end < text.size() ? line_end + 1 : line_end;
      }
    }
    add_text(before);
    pos = next;
    if (sigil == '!') continue;
    absl::string_view name = structural ? absl::StripAsciiWhitespace(inner.substr(1)) : inner;
    if (name.empty()) return ErrorAt(text, tag, absl::StrCat("empty tag ", shown));
    if (sigil == '#' || sigil == '^') {
      if (!IsList(name)) {
        return ErrorAt(
            text, tag,
            absl::StrCat("unknown section ", shown, " (sections: changes, images, policies)"));
      }
      if (!open.empty()) {
        return ErrorAt(
            text, tag,
            absl::StrCat(shown, " inside {{", open.back().inverted ? "^" : "#", open.back().name,
                         "}} (", Where(text, open.back().offset), "): sections do not nest"));
      }
      current->push_back(
          Node{sigil == '#' ? Node::Type::kSection : Node::Type::kInverted, std::string(name), {}});
      open.push_back(Open{current, std::string(name), tag, sigil == '^'});
      current = &current->back().children;
      continue;
    }
    if (sigil == '/') {
      if (open.empty()) return ErrorAt(text, tag, absl::StrCat(shown, " closes no section"));
      if (open.back().name != name) {
        return ErrorAt(text, tag,
                       absl::StrCat(shown, " closes {{", open.back().inverted ? "^" : "#",
                                    open.back().name, "}} of ", Where(text, open.back().offset)));
      }
      current = open.back().nodes;
      open.pop_back();
      continue;
    }
    if (IsTopField(name)) {
      current->push_back(Node{Node::Type::kField, std::string(name), {}});
      continue;
    }
    if (IsItemField(name)) {
      if (open.empty() || open.back().inverted) {
        return ErrorAt(text, tag,
                       absl::StrCat(shown,
                                    " is only known inside {{#changes}}, {{#images}} or "
                                    "{{#policies}}"));
      }
      current->push_back(Node{Node::Type::kField, std::string(name), {}});
      continue;
    }
    return ErrorAt(
        text, tag,
        absl::StrCat("unknown field ", shown,
                     " (fields: job, kind, user, message, default, subject; in a section: "
                     "workload, container, from, to, policy)"));
  }
  if (!open.empty()) {
    return ErrorAt(text, open.back().offset,
                   absl::StrCat("{{", open.back().inverted ? "^" : "#", open.back().name,
                                "}} is never closed"));
  }
  CommitTemplate t;
  t.nodes_ = std::move(root);
  return t;
}

std::string CommitTemplate::Render(const CommitFields& fields, size_t max_bytes) const {
  auto render = [&](size_t shown) {
    std::string out;
    RenderNodes(*nodes_, fields, nullptr, shown, out);
    return out;
  };
  std::string all = render(std::numeric_limits<size_t>::max());
  if (all.size() <= max_bytes) return all;
  // The most changes per list that fit (the output grows with `shown`).
  size_t lo = 0;
  size_t hi = fields.changes.size();
  std::string best = render(0);
  if (best.size() > max_bytes) return CutUtf8(std::move(best), max_bytes);
  while (lo + 1 < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    std::string out = render(mid);
    if (out.size() <= max_bytes) {
      lo = mid;
      best = std::move(out);
    } else {
      hi = mid;
    }
  }
  return best;
}

namespace {

// "Token: value" as git reads a trailer line: a token of letters, digits and '-', then ':'.
bool IsTrailerLine(absl::string_view line) {
  const size_t colon = line.find(':');
  if (colon == 0 || colon == absl::string_view::npos) return false;
  for (char c : line.substr(0, colon)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

bool IsJobTrailer(absl::string_view line) {
  return IsTrailerLine(line) && absl::EqualsIgnoreCase(line.substr(0, line.find(':')), "Ferry-Job");
}

}  // namespace

std::string WithJobTrailer(std::string message, absl::string_view job) {
  if (job.empty()) return message;
  while (!message.empty() &&
         (message.back() == '\n' || message.back() == ' ' || message.back() == '\t')) {
    message.pop_back();
  }
  const std::string trailer = absl::StrCat("Ferry-Job: ", job);
  if (message.empty()) return trailer + "\n";
  // git reads trailers only in the last paragraph, and not in the first (the subject): the
  // trailer joins the last paragraph when that is a block of trailers holding no Ferry-Job
  // (or only this one, last), else it goes in a paragraph of its own after it. So the only
  // Ferry-Job git reads is this job's, whatever a value rendered into the message holds.
  const size_t blank = message.rfind("\n\n");
  if (blank != std::string::npos) {
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(message).substr(blank + 2), '\n');
    bool block = true;
    int jobs = 0;
    for (absl::string_view line : lines) {
      block = block && IsTrailerLine(line);
      if (IsJobTrailer(line)) ++jobs;
    }
    if (block && jobs == 1 && lines.back() == trailer) return message + "\n";
    if (block && jobs == 0) return absl::StrCat(message, "\n", trailer, "\n");
  }
  return absl::StrCat(message, "\n\n", trailer, "\n");
}

}  // namespace ferry::git_writer
