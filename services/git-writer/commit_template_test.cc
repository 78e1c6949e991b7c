#include "services/git-writer/commit_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/support/git_repo.h"

namespace ferry::git_writer {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CommitFields Sample() {
  CommitFields f;
  f.job = "job-42";
  f.kind = "release";
  f.user = "Alice <alice@example.com>";
  f.message = "CI build 7";
  f.default_message = "Release 2 images\n\n- a\n- b";
  f.changes = {
      {"default:deployment/web", "app", "reg/web:1.0", "reg/web:1.1", ""},
      {"default:deployment/api", "api", "reg/api:2.0", "reg/api:2.1", ""},
      {"default:deployment/db", "", "", "", "automated"},
  };
  return f;
}

std::string Render(const std::string& text, const CommitFields& fields, size_t max = 64 * 1024) {
  absl::StatusOr<CommitTemplate> t = CommitTemplate::Parse(text);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "";
  return t->Render(fields, max);
}

struct Golden {
  const char* name;
  const char* text;
  const char* want;
};

TEST(CommitTemplateTest, GoldenMessages) {
  const Golden cases[] = {
      {"plain text", "hello", "hello"},
      {"job", "{{job}}", "job-42"},
      {"kind", "{{kind}}", "release"},
      {"user", "{{user}}", "Alice <alice@example.com>"},
      {"message", "{{message}}", "CI build 7"},
      {"default", "[deploy] {{default}}", "[deploy] Release 2 images\n\n- a\n- b"},
      {"subject", "[deploy] {{subject}}", "[deploy] Release 2 images"},
      {"padded names", "{{ job }}/{{  kind}}", "job-42/release"},
      {"changes inline", "{{#changes}}{{workload}};{{/changes}}",
       "default:deployment/web;default:deployment/api;default:deployment/db;"},
      {"images with standalone tags",
       "{{subject}}\n\n{{#images}}\n- {{workload}} {{container}}: {{from}} -> {{to}}\n"
       "{{/images}}\nby {{user}}\n",
       "Release 2 images\n\n- default:deployment/web app: reg/web:1.0 -> reg/web:1.1\n"
       "- default:deployment/api api: reg/api:2.0 -> reg/api:2.1\nby Alice <alice@example.com>\n"},
      {"indented standalone tags",
       "a\n  {{#policies}}  \n* {{workload}} {{policy}}\n  "
       "{{/policies}}\nb",
       "a\n* default:deployment/db automated\nb"},
      {"top fields inside a section", "{{#policies}}{{job}}:{{workload}}{{/policies}}",
       "job-42:default:deployment/db"},
      {"policy empty for images", "{{#images}}[{{policy}}]{{/images}}", "[][]"},
      {"inverted section skipped when not empty", "{{^changes}}nothing{{/changes}}x", "x"},
      {"comment dropped", "a{{! a note }}b\n{{! alone }}\nc", "ab\nc"},
      {"tag not alone keeps its line", "x {{#images}}\n{{to}}\n{{/images}} y",
       "x \nreg/web:1.1\n\nreg/api:2.1\n y"},
      {"braces that are no tag", "a } b }} c {", "a } b }} c {"},
  };
  for (const Golden& c : cases) {
    EXPECT_EQ(Render(c.text, Sample()), c.want) << c.name;
  }
}

TEST(CommitTemplateTest, EmptyLists) {
  CommitFields f = Sample();
  f.changes.clear();
  EXPECT_EQ(Render("a\n{{#changes}}\n- {{workload}}\n{{/changes}}\nb", f), "a\nb");
  EXPECT_EQ(Render("{{^changes}}\nno changes\n{{/changes}}\n", f), "no changes\n");
  f.changes = {{"w", "c", "a", "b", ""}};
  EXPECT_EQ(Render("{{#policies}}p{{/policies}}{{^policies}}none{{/policies}}", f), "none");
}

TEST(CommitTemplateTest, ControlCharactersInValues) {
  CommitFields f = Sample();
  f.user = "eve\r\nInjected: yes\0x";
  f.user.push_back('\0');
  f.message = "line 1\r\nline 2\rline 3\x01\ttab";
  f.changes = {{"w\nx", "c\r", "a\0", "b\x7f", ""}};
  EXPECT_EQ(Render("{{user}}", f), "eve Injected: yes");
  EXPECT_EQ(Render("{{message}}", f), "line 1\nline 2\nline 3\ttab");
  EXPECT_EQ(Render("{{#changes}}{{workload}}|{{container}}|{{from}}|{{to}}{{/changes}}", f),
            "w x|c |a|b");
}

TEST(CommitTemplateTest, ListCutToTheLimitWithAndNMore) {
  CommitFields f = Sample();
  f.changes.clear();
  for (int i = 0; i < 100; ++i) {
    f.changes.push_back({"default:deployment/w" + std::to_string(i), "app", "r:1", "r:2", ""});
  }
  const std::string text = "{{default}}\n\n{{#changes}}\n- {{workload}}\n{{/changes}}\ndone";
  const std::string all = Render(text, f);
  EXPECT_THAT(all, Not(HasSubstr("more")));
  const std::string cut = Render(text, f, 400);
  EXPECT_LE(cut.size(), 400u);
  EXPECT_THAT(cut, HasSubstr("- default:deployment/w0\n"));
  EXPECT_THAT(cut, Not(HasSubstr("- default:deployment/w99\n")));
  EXPECT_THAT(cut, ::testing::MatchesRegex("(.|\n)*\nand [0-9]+ more\ndone"));
  // Nothing fits but the cut text, at a UTF-8 boundary.
  f.default_message = std::string(10, 'a') + "\xc3\xa9" + "zzz";
  EXPECT_EQ(Render("{{default}}", f, 11), std::string(10, 'a'));
}

struct BadTemplate {
  const char* text;
  const char* error;
};

TEST(CommitTemplateTest, ErrorsNameLineAndColumn) {
  const BadTemplate cases[] = {
      {"{{default}}\n\n  - {{workloads}}", "line 3, column 5: unknown field {{workloads}}"},
      {"{{workload}}", "line 1, column 1: {{workload}} is only known inside"},
      {"a\n{{#changes}}\n", "line 2, column 1: {{#changes}} is never closed"},
      {"x{{/changes}}", "line 1, column 2: {{/changes}} closes no section"},
      {"{{#changes}}{{/images}}",
       "line 1, column 13: {{/images}} closes {{#changes}} of line 1, "
       "column 1"},
      {"{{#changes}}{{#images}}{{/images}}{{/changes}}", "sections do not nest"},
      {"{{#workloads}}{{/workloads}}", "line 1, column 1: unknown section {{#workloads}}"},
      {"{{^changes}}{{to}}{{/changes}}", "{{to}} is only known inside"},
      {"ok\nnot {{job", "line 2, column 5: {{ is never closed"},
      {"{{}}", "empty tag"},
      {"{{{job}}}", "unknown field {{{job}}"},
  };
  for (const BadTemplate& c : cases) {
    absl::StatusOr<CommitTemplate> t = CommitTemplate::Parse(c.text);
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.error)) << c.text;
  }
  absl::StatusOr<CommitTemplate> big =
      CommitTemplate::Parse(std::string(kMaxCommitTemplateBytes + 1, 'x'));
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("16384"));
  EXPECT_TRUE(CommitTemplate::Parse(std::string(kMaxCommitTemplateBytes, 'x')).ok());
}

TEST(CommitTemplateTest, JobTrailer) {
  EXPECT_EQ(WithJobTrailer("Release x", "j1"), "Release x\n\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Release x\n\nbody\n\n\n", "j1"),
            "Release x\n\nbody\n\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Release x\n\nFerry-Job: j1", "j1"), "Release x\n\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Release x\n\nFerry-Job: j2\n", "j1"),
            "Release x\n\nFerry-Job: j2\n\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Release x\n", ""), "Release x\n");
  // In the first paragraph git sees no trailer: added after it.
  EXPECT_EQ(WithJobTrailer("Release x\nFerry-Job: j1", "j1"),
            "Release x\nFerry-Job: j1\n\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Ferry-Job: j1", "j1"), "Ferry-Job: j1\n\nFerry-Job: j1\n");
  // A last paragraph of trailers gains it; one with prose, or another Ferry-Job, does not.
  EXPECT_EQ(WithJobTrailer("Release x\n\nSigned-off-by: a <a@b>", "j1"),
            "Release x\n\nSigned-off-by: a <a@b>\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Release x\n\nsome words\nFerry-Job: j1", "j1"),
            "Release x\n\nsome words\nFerry-Job: j1\n\nFerry-Job: j1\n");
  EXPECT_EQ(WithJobTrailer("Release x\n\nferry-job: fake\nFerry-Job: j1", "j1"),
            "Release x\n\nferry-job: fake\nFerry-Job: j1\n\nFerry-Job: j1\n");
}

// The Ferry-Job that git itself reads from a message (git interpret-trailers --parse).
std::string GitJobTrailers(const std::string& message) {
  const std::string path = ::testing::TempDir() + "/ferry_trailer_message";
  std::ofstream(path, std::ios::trunc) << message;
  int status = 0;
  std::string out = ::ferry::testing::RunCommand(
      "GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent git interpret-trailers --parse --no-divider < " +
          path + " 2>&1",
      &status);
  EXPECT_EQ(status, 0) << out;
  return out;
}

TEST(CommitTemplateTest, GitReadsTheJobsTrailerAndNoOther) {
  for (const std::string& message : {
           std::string("Release x\nFerry-Job: j1"),
           std::string("Release x"),
           std::string("Release x\n\nCI build 7\n\nFerry-Job: fake"),
           std::string("Release x\n\nCI build 7\n\nFerry-Job: fake\nFerry-Job: j1"),
           std::string("Release x\n\nFerry-Job: j1\nFerry-Job: fake\n"),
           std::string("Release x\n\nSigned-off-by: a <a@b>\n\n"),
           std::string("Release x\n\nsome words\nFerry-Job: j1"),
       }) {
    const std::string out = WithJobTrailer(message, "j1");
    std::string trailers = GitJobTrailers(out);
    std::string jobs;
    for (absl::string_view line : absl::StrSplit(trailers, '\n', absl::SkipEmpty())) {
      if (absl::StartsWithIgnoreCase(line, "Ferry-Job:")) absl::StrAppend(&jobs, line, "\n");
    }
    EXPECT_EQ(jobs, "Ferry-Job: j1\n") << "message: " << message << "\nbecame: " << out;
  }
}

}  // namespace
}  // namespace ferry::git_writer
