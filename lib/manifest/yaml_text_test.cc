#include "lib/manifest/yaml_text.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::Not;

std::vector<std::string> Docs(const std::string& content) {
  std::vector<std::string> out;
  for (const DocumentSpan& d : SplitDocuments(content)) {
    out.push_back(content.substr(d.begin, d.end - d.begin));
  }
  return out;
}

TEST(SplitDocumentsTest, SplitsAtMarkersAndDropsEmptyDocuments) {
  EXPECT_EQ(Docs("a: 1\n"), (std::vector<std::string>{"a: 1\n"}));
  EXPECT_EQ(Docs("# head\n---\na: 1\n---\n# only a comment\n---\nb: 2"),
            (std::vector<std::string>{"---\na: 1\n", "---\nb: 2"}));
  EXPECT_EQ(Docs("a: 1\n...\nb: 2\n"), (std::vector<std::string>{"a: 1\n...\n", "b: 2\n"}));
  EXPECT_EQ(Docs("--- {a: 1}\n---\n"), (std::vector<std::string>{"--- {a: 1}\n"}));
  EXPECT_EQ(Docs("a: 1\r\n---\r\nb: 2\r\n"),
            (std::vector<std::string>{"a: 1\r\n", "---\r\nb: 2\r\n"}));
  // "----" and "--- x" inside text are not both markers: only "---" followed by a space.
  EXPECT_EQ(Docs("a: |\n  ---x\n----\n"), (std::vector<std::string>{"a: |\n  ---x\n----\n"}));
  EXPECT_TRUE(Docs("").empty());
  EXPECT_TRUE(Docs("# nothing\n\n---\n").empty());
}

TEST(SplitDocumentsTest, ReportsStartLines) {
  std::vector<DocumentSpan> docs = SplitDocuments("x: 1\n---\ny: 2\n\n---\nz: 3\n");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].line, 0);
  EXPECT_EQ(docs[1].line, 1);
  EXPECT_EQ(docs[2].line, 4);
}

// Locates the value of `key` in a one-level document.
absl::StatusOr<std::string> SpanOf(const std::string& text, const std::string& key,
                                   ScalarStyle* style = nullptr) {
  YAML::Node root = YAML::Load(text);
  YAML::Node key_node;
  for (const auto& kv : root) {
    if (kv.first.Scalar() == key) key_node.reset(kv.first);
  }
  const YAML::Node& croot = root;
  bool flow = false;
  absl::StatusOr<ScalarSpan> span = LocateScalar(text, croot[key], flow, key_node.Mark().pos);
  if (!span.ok()) return span.status();
  if (style) *style = span->style;
  return text.substr(span->begin, span->end - span->begin);
}

TEST(LocateScalarTest, FindsExactBytesInEveryStyle) {
  ScalarStyle style;
  EXPECT_EQ(*SpanOf("image: nginx:1.25 # pinned\n", "image", &style), "nginx:1.25");
  EXPECT_EQ(style, ScalarStyle::kPlain);
  EXPECT_EQ(*SpanOf("image: 'nginx:1.25'\n", "image", &style), "'nginx:1.25'");
  EXPECT_EQ(style, ScalarStyle::kSingleQuoted);
  EXPECT_EQ(*SpanOf("image: \"nginx:1.25\"   \n", "image", &style), "\"nginx:1.25\"");
  EXPECT_EQ(style, ScalarStyle::kDoubleQuoted);
  EXPECT_EQ(*SpanOf("a: 'it''s'\n", "a"), "'it''s'");
  EXPECT_EQ(*SpanOf("a: \"q\\\"x\"\n", "a"), "\"q\\\"x\"");
  EXPECT_EQ(*SpanOf("a: &anchor value\n", "a"), "value");
  EXPECT_EQ(*SpanOf("a: !!str 12\n", "a"), "12");
  EXPECT_EQ(*SpanOf("a: x#y\n", "a"), "x#y");
  EXPECT_EQ(*SpanOf("a: héllo wörld\r\nb: 1\r\n", "a"), "héllo wörld");
}

TEST(LocateScalarTest, RefusesWhatCannotBeRewrittenInPlace) {
  EXPECT_THAT(SpanOf("a: |\n  text\n", "a"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(SpanOf("a: one\n  two\n", "a"), StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<std::string> alias = SpanOf("x: &v nginx\na: *v\n", "a");
  ASSERT_THAT(alias, Not(IsOk()));
  EXPECT_NE(alias.status().message().find("alias"), std::string::npos);
}

TEST(EncodeScalarTest, KeepsStyleAndQuotesWhenNeeded) {
  EXPECT_EQ(EncodeScalar("nginx:1.26", ScalarStyle::kPlain, true), "nginx:1.26");
  EXPECT_EQ(EncodeScalar("nginx:1.26", ScalarStyle::kSingleQuoted, true), "'nginx:1.26'");
  EXPECT_EQ(EncodeScalar("nginx:1.26", ScalarStyle::kDoubleQuoted, true), "\"nginx:1.26\"");
  EXPECT_EQ(EncodeScalar("it's", ScalarStyle::kSingleQuoted, true), "'it''s'");
  EXPECT_EQ(EncodeScalar("a\"b\\c\n", ScalarStyle::kDoubleQuoted, true), "\"a\\\"b\\\\c\\n\"");
  // Plain values that would read back as something else.
  EXPECT_EQ(EncodeScalar("true", ScalarStyle::kPlain, true), "\"true\"");
  EXPECT_EQ(EncodeScalar("1.10", ScalarStyle::kPlain, true), "\"1.10\"");
  EXPECT_EQ(EncodeScalar("1.10", ScalarStyle::kPlain, false), "1.10");
  EXPECT_EQ(EncodeScalar("", ScalarStyle::kPlain, false), "\"\"");
  EXPECT_EQ(EncodeScalar("a: b", ScalarStyle::kPlain, false), "\"a: b\"");
  EXPECT_EQ(EncodeScalar("*x", ScalarStyle::kPlain, false), "\"*x\"");
  EXPECT_EQ(EncodeScalar("x #y", ScalarStyle::kPlain, false), "\"x #y\"");
}

TEST(ResolvesAsNonStringTest, YamlOneOneAndOneTwoScalars) {
  for (const char* v :
       {"true", "False", "yes", "NO",  "on",   "off",  "y",    "~",    "null", "",     "12",
        "-3",   "1.5",   ".5",  "1e3", "0x1F", "0o17", "1:30", ".inf", ".NaN", "1_000"}) {
    EXPECT_TRUE(ResolvesAsNonString(v)) << v;
  }
  for (const char* v : {"1.2.3", "v1", "nginx:1", "master-a000001", "1.0-rc1", "yesno", "0.2.0"}) {
    EXPECT_FALSE(ResolvesAsNonString(v)) << v;
  }
}

}  // namespace
}  // namespace ferry::manifest
