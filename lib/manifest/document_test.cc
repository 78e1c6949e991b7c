#include "lib/manifest/document.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/yaml_json.h"
#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kTestdata = FERRY_MANIFEST_TESTDATA;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(kTestdata + "/" + name, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Nested(int levels) {
  std::string out;
  for (int i = 0; i < levels; ++i) absl::StrAppend(&out, std::string(2 * i, ' '), "a:\n");
  return out;
}

std::string Repeated(const std::string& s, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += s;
  return out;
}

// Nine-fold alias chain `levels` deep over a `leaf` scalar.
std::string AliasChain(int levels, const std::string& leaf) {
  std::string out = absl::StrCat("a0: &a0 \"", leaf, "\"\n");
  for (int i = 1; i <= levels; ++i) {
    std::vector<std::string> refs(9, absl::StrCat("*a", i - 1));
    absl::StrAppend(&out, "a", i, ": &a", i, " [", absl::StrJoin(refs, ","), "]\n");
  }
  return out;
}

DocumentLimits Limits(uint64_t depth, uint64_t nodes, uint64_t bytes) {
  DocumentLimits limits;
  limits.max_depth = depth;
  limits.max_nodes = nodes;
  limits.max_expanded_bytes = bytes;
  return limits;
}

struct LimitCase {
  std::string name;
  std::string text;
  DocumentLimits limits;
  absl::StatusCode code;
  std::vector<std::string> message_parts;  // each must appear in the message
  int line;                                // 0-based line of the problem; -1: not checked
};

std::ostream& operator<<(std::ostream& os, const LimitCase& c) { return os << c.name; }

class ParseDocumentLimitsTest : public ::testing::TestWithParam<LimitCase> {};

TEST_P(ParseDocumentLimitsTest, RefusesBeforeExpandingWithTheLimitAndWhere) {
  const LimitCase& c = GetParam();
  YAML::Mark where;
  absl::StatusOr<YAML::Node> root = ParseDocument(c.text, c.limits, 0, &where);
  ASSERT_THAT(root, StatusIs(c.code));
  for (const std::string& part : c.message_parts) {
    EXPECT_TRUE(absl::StrContains(root.status().message(), part))
        << root.status().message() << "\nmissing: " << part;
  }
  if (c.line >= 0) {
    EXPECT_EQ(where.line, c.line) << root.status();
  }
}

const DocumentLimits kDefaults;

INSTANTIATE_TEST_SUITE_P(
    Limits, ParseDocumentLimitsTest,
    ::testing::Values(
        LimitCase{"AliasBomb",
                  ReadTestdata("hostile/alias_bomb.yaml"),
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"alias *a4 (repeating 66430 nodes", "manifest document size (aliases expanded)",
                   "over the limit of 200000 nodes", "(raise it with --max_manifest_nodes)"},
                  10},
        LimitCase{"AliasBombOfBytes",
                  AliasChain(4, std::string(100, 'x')),
                  Limits(100, 1'000'000, 100'000),
                  absl::StatusCode::kInvalidArgument,
                  {"alias *a3", "manifest document text (aliases expanded)",
                   "over the limit of 100000 bytes", "--max_manifest_expanded_bytes"},
                  4},
        LimitCase{"TooManyNodes",
                  "[1, 2, 3, 4, 5, 6]",
                  Limits(100, 5, 1000),
                  absl::StatusCode::kInvalidArgument,
                  {"over the limit of 5 nodes", "--max_manifest_nodes"},
                  0},
        LimitCase{"DeepFlowNest",
                  std::string(100'000, '['),
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"manifest nesting depth over the limit of 100 levels",
                   "(raise it with --max_manifest_depth)"},
                  0},
        LimitCase{"DeepBlockNest",
                  Nested(150),
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"over the limit of 100 levels", "--max_manifest_depth"},
                  100},
        LimitCase{"DeepCompactSequences",
                  Repeated("- ", 100'000) + "x",
                  Limits(10, 1000, 1000),
                  absl::StatusCode::kInvalidArgument,
                  {"over the limit of 10 levels"},
                  -1},
        LimitCase{
            "DeepOnlyOnceAliasesExpand",
            absl::StrCat("a: &deep ", std::string(60, '['), std::string(60, ']'), "\n",
                         "b: ", std::string(50, '['), "*deep", std::string(50, ']'), "\n"),
            kDefaults,
            absl::StatusCode::kInvalidArgument,
            {"alias *deep", "manifest nesting depth is 111 levels", "over the limit of 100 levels"},
            1},
        LimitCase{"DuplicateKey",
                  "a: 1\nb: 2\na: 3\n",
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"duplicate key \"a\" in a mapping (first at line 1)", "remove one"},
                  2},
        LimitCase{"DuplicateKeyInFlowMapping",
                  "m: {x: 1, y: 2, x: 3}\n",
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"duplicate key \"x\""},
                  0},
        LimitCase{"DuplicateKeyThroughAlias",
                  "k: &k name\nm: {name: 1, *k : 2}\n",
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"duplicate key \"name\""},
                  1},
        LimitCase{"DuplicateQuotedAndPlainKey",
                  "image: a\n\"image\": b\n",
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"duplicate key \"image\""},
                  1},
        LimitCase{"AliasCycle",
                  "a: &loop [1, *loop]\n",
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"alias *loop is used inside the node it names"},
                  0},
        LimitCase{"SyntaxError",
                  "a: [1, 2\n",
                  kDefaults,
                  absl::StatusCode::kInvalidArgument,
                  {"invalid YAML", "fix the syntax"},
                  -1}),
    [](const ::testing::TestParamInfo<LimitCase>& info) { return info.param.name; });

TEST(ParseDocumentTest, AcceptsWhatFitsAndKeepsAliasesShared) {
  const std::string text =
      "base: &env [{name: A, value: '1'}]\nx: {env: *env}\ny: {env: *env}\nsame: {k: 1}\n"
      "other: {k: 2}\n";
  FERRY_ASSERT_OK_AND_ASSIGN(YAML::Node root, ParseDocument(text, DocumentLimits{}));
  EXPECT_EQ(root["y"]["env"][0]["name"].Scalar(), "A");
  // Exactly at each limit passes: 100 levels, and a document of exactly N nodes.
  FERRY_EXPECT_OK(ParseDocument(std::string(100, '[') + std::string(100, ']'), DocumentLimits{}));
  FERRY_EXPECT_OK(ParseDocument("[1, 2, 3, 4, 5]", Limits(1, 6, 5)));
  EXPECT_THAT(ParseDocument("[1, 2, 3, 4, 5]", Limits(1, 5, 5)), Not(IsOk()));
  EXPECT_THAT(ParseDocument("[1, 2, 3, 4, 5]", Limits(1, 6, 4)), Not(IsOk()));
}

TEST(ParseDocumentTest, MessagesCountLinesFromTheDocumentsFirstLine) {
  absl::StatusOr<YAML::Node> root = ParseDocument("a: 1\na: 2\n", DocumentLimits{}, 40);
  EXPECT_TRUE(absl::StrContains(root.status().message(), "(first at line 41)")) << root.status();
}

TEST(ValidateDocumentLimitsTest, NamesTheFlag) {
  FERRY_EXPECT_OK(ValidateDocumentLimits(DocumentLimits{}));
  absl::Status deep = ValidateDocumentLimits(Limits(401, 1, 1));
  EXPECT_THAT(deep,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_manifest_depth")));
  EXPECT_TRUE(
      absl::StrContains(ValidateDocumentLimits(Limits(1, 0, 1)).message(), "--max_manifest_nodes"));
  EXPECT_TRUE(absl::StrContains(ValidateDocumentLimits(Limits(1, 1, 0)).message(),
                                "--max_manifest_expanded_bytes"));
}

constexpr char kGood[] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n";

// The document over a limit fails alone, with file, line, document and flag; the others load.
TEST(LoadFileLimitsTest, AliasBombFailsAloneNamingFileDocumentLineAndFlag) {
  const std::string content =
      absl::StrCat(kGood, "---\n", ReadTestdata("hostile/alias_bomb.yaml"), "---\n",
                   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n");
  LoadResult r = LoadFile("apps/bomb.yaml", content);
  ASSERT_EQ(r.resources.size(), 2u);
  EXPECT_EQ(r.resources[0].id, "default:configmap/good");
  EXPECT_EQ(r.resources[1].id, "default:configmap/after");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 15);  // a5, where the count passes the limit
  EXPECT_EQ(r.errors[0].document, 1);
  EXPECT_TRUE(absl::StartsWith(r.errors[0].ToString(), "apps/bomb.yaml:15:"))
      << r.errors[0].ToString();
  EXPECT_TRUE(absl::StrContains(r.errors[0].ToString(), ": document 1: alias *a4"))
      << r.errors[0].ToString();
  EXPECT_TRUE(absl::StrContains(r.errors[0].ToString(), "--max_manifest_nodes"));

  // Raised limits are honoured (the bomb is still far over).
  LoadOptions options;
  options.limits.max_nodes = 10'000'000;
  r = LoadFile("apps/bomb.yaml", content, options);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(absl::StrContains(r.errors[0].message, "alias *a6")) << r.errors[0].message;
}

TEST(LoadFileLimitsTest, DeepNestingSaysDepthNotBadFile) {
  LoadResult r = LoadFile(
      "deep.yaml", absl::StrCat(kGood, "---\nkind: X\nspec: ", std::string(100'000, '['), "\n"));
  ASSERT_EQ(r.resources.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 6);
  EXPECT_EQ(r.errors[0].message,
            "manifest nesting depth over the limit of 100 levels (raise it with "
            "--max_manifest_depth)");
  EXPECT_TRUE(absl::StrContains(r.errors[0].ToString(), ": document 1: manifest nesting depth"));
}

TEST(LoadFileLimitsTest, DuplicateKeysFailTheDocumentNamingKeyAndLines) {
  const std::string dup =
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
      "    spec:\n      containers:\n      - name: web\n        image: web:1\n"
      "        image: evil:2\n";
  LoadResult r = LoadFile("dup.yaml", absl::StrCat(kGood, "---\n", dup));
  ASSERT_EQ(r.resources.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "dup.yaml:14:9: document 1: duplicate key \"image\" in a mapping (first at line 13): "
            "remove one; kubectl refuses duplicate keys too, and tools disagree on which value "
            "wins");
}

struct ControlCase {
  std::string name;
  std::string document;
  std::string field;  // named in the message
  int line;
};

std::ostream& operator<<(std::ostream& os, const ControlCase& c) { return os << c.name; }

class ControlCharacterTest : public ::testing::TestWithParam<ControlCase> {};

TEST_P(ControlCharacterTest, RefusesTheDocumentNamingFieldAndLine) {
  const ControlCase& c = GetParam();
  LoadResult r = LoadFile("ctl.yaml", absl::StrCat(kGood, "---\n", c.document));
  ASSERT_EQ(r.resources.size(), 1u) << c.name;
  ASSERT_EQ(r.errors.size(), 1u);
  const std::string message = r.errors[0].ToString();
  EXPECT_TRUE(absl::StartsWith(message, absl::StrCat("ctl.yaml:", c.line, ": document 1: ")))
      << message;
  EXPECT_TRUE(absl::StrContains(message, c.field)) << message << "\nwant: " << c.field;
  EXPECT_TRUE(absl::StrContains(message, "must be printable text; remove it")) << message;
}

constexpr char kDeployHead[] = "apiVersion: apps/v1\nkind: Deployment\n";

INSTANTIATE_TEST_SUITE_P(
    Fields, ControlCharacterTest,
    ::testing::Values(
        ControlCase{"NulInImage",
                    absl::StrCat(kDeployHead,
                                 "metadata: {name: web}\nspec:\n  template:\n"
                                 "    spec:\n      containers:\n      - name: web\n"
                                 "        image: \"web:1\\0evil\"\n"),
                    "the image of container web \"web:1\\x00evil\" has a control character "
                    "(\\x00) at byte 5",
                    13},
        ControlCase{
            "EscapeInImage",
            absl::StrCat(kDeployHead,
                         "metadata: {name: web}\nspec:\n  template:\n"
                         "    spec:\n      initContainers:\n      - name: init\n"
                         "        image: \"web:1\\e[31m\"\n"),
            "the image of container init \"web:1\\x1b[31m\" has a control character (\\x1b)", 13},
        ControlCase{"NewlineInName", absl::StrCat(kDeployHead, "metadata:\n  name: \"web\\nx\"\n"),
                    "metadata.name \"web\\nx\" has a control character (\\n) at byte 3", 8},
        ControlCase{"TabInNamespace",
                    "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: \"a\\tb\"}\n",
                    "metadata.namespace \"a\\tb\" has a control character (\\t)", 7},
        ControlCase{"DelInKind", "apiVersion: v1\nkind: \"Service\\x7f\"\nmetadata: {name: s}\n",
                    "kind \"Service\\x7f\" has a control character (\\x7f)", 6},
        ControlCase{"ListItem",
                    "apiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n  metadata:\n"
                    "    name: \"a\\u0001\"\n",
                    "metadata.name \"a\\x01\" has a control character (\\x01)", 10},
        // C1: U+009B (CSI) starts a terminal escape as ESC [ does.
        ControlCase{"C1CsiInImage",
                    absl::StrCat(kDeployHead,
                                 "metadata: {name: web}\nspec:\n  template:\n"
                                 "    spec:\n      containers:\n      - name: web\n"
                                 "        image: \"web:1\\u009b31m\"\n"),
                    "the image of container web \"web:1\\xc2\\x9b31m\" has a control character "
                    "(\\xc2\\x9b) at byte 5",
                    13},
        ControlCase{"C1InName", absl::StrCat(kDeployHead, "metadata:\n  name: \"web\\x85\"\n"),
                    "metadata.name \"web\\xc2\\x85\" has a control character (\\xc2\\x85)", 8}),
    [](const ::testing::TestParamInfo<ControlCase>& info) { return info.param.name; });

// JSON holds only UTF-8 (nlohmann::json::dump() throws on anything else): a scalar, value
// or key, that is not UTF-8 fails its document, with its line, and nothing else.
TEST(LoadFileTest, RefusesScalarsThatAreNotUtf8) {
  for (const char* doc : {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                          "data:\n  x: caf\xe9\n",
                          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                          "data:\n  caf\xe9: x\n"}) {
    LoadResult r = LoadFile("u.yaml", absl::StrCat(kGood, "---\n", doc));
    ASSERT_EQ(r.resources.size(), 1u) << doc;
    ASSERT_EQ(r.errors.size(), 1u) << doc;
    const std::string message = r.errors[0].ToString();
    EXPECT_TRUE(absl::StartsWith(message, "u.yaml:")) << message;
    EXPECT_EQ(r.errors[0].line, 9) << message;
    EXPECT_TRUE(absl::StrContains(message, "\"caf\\xe9\" is not valid UTF-8")) << message;
    EXPECT_TRUE(absl::StrContains(message, "re-save the file as UTF-8")) << message;
  }
  // YamlToJson refuses them too (a tree from elsewhere): never a string dump() throws on.
  absl::StatusOr<nlohmann::json> json = YamlToJson(YAML::Load("a: caf\xe9\n"));
  EXPECT_THAT(json, StatusIs(absl::StatusCode::kInvalidArgument));
  json = YamlToJson(YAML::Load("caf\xe9: a\n"));
  EXPECT_THAT(json, StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(LoadFileTest, EveryErrorNamesFileLineDocumentAndTheFix) {
  LoadResult r = LoadFile("f.yaml",
                          "kind: ConfigMap\nmetadata: {name: a}\n---\n"
                          "kind: Deployment\nmetadata:\n  labels: {}\n---\n"
                          "kind: Secret\nmetadata: 3\n---\nkind: X\n  bad: [\n");
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].ToString(),
            "f.yaml:4: document 1: Deployment has no metadata.name; add one");
  EXPECT_EQ(r.errors[1].ToString(),
            "f.yaml:8: document 2: Secret has no metadata mapping; add metadata with a name");
  EXPECT_TRUE(absl::StartsWith(r.errors[2].ToString(), "f.yaml:12:"));
  EXPECT_TRUE(absl::StrContains(r.errors[2].ToString(), "document 3: invalid YAML: "));
  EXPECT_TRUE(absl::StrContains(r.errors[2].ToString(), "; fix the syntax there"));
}

// Trees built elsewhere (plain yaml-cpp) are walked within the limits too.
TEST(YamlToJsonLimitsTest, CyclesAndBombsFailInsteadOfRecursingOrExpanding) {
  YAML::Node cycle = YAML::Load("a: &a [1, *a]");
  absl::StatusOr<nlohmann::json> json = YamlToJson(cycle);
  EXPECT_THAT(json,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_manifest_depth")));

  YAML::Node bomb = YAML::Load(ReadTestdata("hostile/alias_bomb.yaml"));
  json = YamlToJson(bomb);
  EXPECT_THAT(json,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_manifest_nodes")));
  json = YamlToJson(YAML::Load("a: [1, 2]"), Limits(1, 100, 100));
  EXPECT_THAT(json, StatusIs(absl::StatusCode::kInvalidArgument));
  FERRY_ASSERT_OK(YamlToJson(YAML::Load("a: [1, 2]"), Limits(2, 100, 100)));
}

// The editor reads and verifies within the same limits: the bomb is refused up front.
TEST(EditorLimitsTest, EditOfTheAliasBombIsRefusedWithoutExpanding) {
  const std::string content = ReadTestdata("hostile/alias_bomb.yaml");
  Source source;
  source.path = "bomb.yaml";
  source.end = content.size();
  ImageChange change{"bomb", "busybox:1.37", std::nullopt};
  absl::StatusOr<EditResult> edit = SetImage(content, source, "hostile:deployment/bomb", change);
  EXPECT_THAT(edit, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("bomb.yaml document 0: alias *a4")));
  EXPECT_THAT(FindResource("bomb.yaml", content, "hostile:deployment/bomb"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace ferry::manifest
