#include "lib/manifest/editor.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/manifest/workload.h"
#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::Eq;
using ::testing::HasSubstr;

const std::string kTestdata = FERRY_MANIFEST_TESTDATA;

std::string Read(const std::string& name) {
  std::ifstream in(kTestdata + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The one region where two texts differ, by whole lines: the 1-based first line, the lines
// it had before and the lines it has after. Equal hunks mean equal bytes outside it, so a
// test that checks the hunk checks the whole output.
struct Hunk {
  int line = 0;
  std::vector<std::string> before;
  std::vector<std::string> after;
  bool operator==(const Hunk& o) const {
    return line == o.line && before == o.before && after == o.after;
  }
};

std::ostream& operator<<(std::ostream& os, const Hunk& h) {
  os << "@" << h.line << "\n";
  for (const auto& l : h.before) os << "-" << l << "\n";
  for (const auto& l : h.after) os << "+" << l << "\n";
  return os;
}

std::vector<std::string> Lines(const std::string& text) {
  // Keep line endings, so CRLF is part of what is compared.
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return lines;
}

Hunk Diff(const std::string& before, const std::string& after) {
  std::vector<std::string> a = Lines(before);
  std::vector<std::string> b = Lines(after);
  size_t prefix = 0;
  while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
         a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
    ++suffix;
  }
  Hunk h;
  h.line = static_cast<int>(prefix) + 1;
  h.before.assign(a.begin() + prefix, a.end() - suffix);
  h.after.assign(b.begin() + prefix, b.end() - suffix);
  return h;
}

absl::StatusOr<EditResult> Image(const std::string& content, const std::string& id,
                                 ImageChange change) {
  absl::StatusOr<Source> source = FindResource("f.yaml", content, id);
  if (!source.ok()) return source.status();
  return SetImage(content, *source, id, change);
}

absl::StatusOr<EditResult> Annotate(const std::string& content, const std::string& id,
                                    std::vector<AnnotationChange> changes) {
  absl::StatusOr<Source> source = FindResource("f.yaml", content, id);
  if (!source.ok()) return source.status();
  return SetAnnotations(content, *source, id, changes);
}

const char kFrontEnd[] = "sock-shop:deployment/front-end";

TEST(SetImageTest, ChangesOnlyTheImageBytesKeepingTheTrailingComment) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out,
      Image(in, kFrontEnd, {"front-end", "weaveworksdemos/front-end:0.3.0", std::nullopt}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{23,
                  {"        image: weaveworksdemos/front-end:0.2.0 # do not edit by hand\n"},
                  {"        image: weaveworksdemos/front-end:0.3.0 # do not edit by hand\n"}}));
  ASSERT_EQ(out.changes.size(), 1u);
  EXPECT_EQ(out.changes[0].field, "spec.template.spec.containers[0].image");
  EXPECT_EQ(out.changes[0].from, "weaveworksdemos/front-end:0.2.0");
  EXPECT_EQ(out.changes[0].to, "weaveworksdemos/front-end:0.3.0");
  EXPECT_EQ(out.changes[0].line, 23);
}

// The result of an edit is held to the document limits as any document read: an image that
// grows the document's scalars past max_expanded_bytes fails the edit, though the document
// it was made from passed.
TEST(SetImageTest, AnEditThatGrowsTheDocumentPastTheLimitFails) {
  const std::string in =
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n"
      "    spec:\n      containers:\n      - name: c\n        image: nginx:1\n";
  LoadOptions options;
  options.limits.max_expanded_bytes = in.size();  // over the scalars' bytes, under the new ones
  FERRY_ASSERT_OK_AND_ASSIGN(Source source,
                             FindResource("f.yaml", in, "default:deployment/a", options));
  const std::string to =
      "registry.example.com/" + std::string(100, 'p') + ":" + std::string(120, 't');
  EXPECT_THAT(SetImage(in, source, "default:deployment/a", {"c", to, std::nullopt}, options),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("manifest document text")));
  FERRY_EXPECT_OK(
      SetImage(in, source, "default:deployment/a", {"c", "nginx:2", std::nullopt}, options));
}

// A double-quoted "\L" is 2 bytes of text and 3 of value: a document can hold more value
// bytes than text bytes, and an edit that grows it past the limit still fails.
TEST(SetImageTest, AnEditOfADocumentWithEscapesIsHeldToTheLimit) {
  std::string escapes = "\"";
  for (int i = 0; i < 200; ++i) escapes += "\\L";
  escapes += "\"";
  const std::string in = absl::StrCat(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  annotations:\n    note: ",
      escapes,
      "\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: "
      "nginx:1\n");
  LoadOptions options;
  // The least limit the document passes, plus 5: the note's value alone is 600 bytes, more
  // than its 402 bytes of text, and an image 6 bytes longer does not fit.
  uint64_t low = 1, high = 4 * in.size();
  while (low < high) {
    options.limits.max_expanded_bytes = (low + high) / 2;
    if (FindResource("f.yaml", in, "default:deployment/a", options).ok()) {
      high = options.limits.max_expanded_bytes;
    } else {
      low = options.limits.max_expanded_bytes + 1;
    }
  }
  options.limits.max_expanded_bytes = low + 5;
  ASSERT_GT(options.limits.max_expanded_bytes, in.size()) << "the escapes count more than the text";
  FERRY_ASSERT_OK_AND_ASSIGN(Source source,
                             FindResource("f.yaml", in, "default:deployment/a", options));
  EXPECT_THAT(
      SetImage(in, source, "default:deployment/a", {"c", "nginx:1.2.3.4", std::nullopt}, options),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("manifest document text")));
}

TEST(SetImageTest, KeepsQuotingStyle) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto dq, Image(in, kFrontEnd, {"sidecar", "quay.io/weaveworks/sidecar:master-b31c617", {}}));
  EXPECT_EQ(Diff(in, dq.content),
            (Hunk{27,
                  {"        image: \"quay.io/weaveworks/sidecar:master-a000001\"\n"},
                  {"        image: \"quay.io/weaveworks/sidecar:master-b31c617\"\n"}}));
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto sq, Image(in, kFrontEnd, {"migrate", "weaveworksdemos/front-end:0.3.0", {}}));
  EXPECT_EQ(Diff(in, sq.content), (Hunk{19,
                                        {"        image: 'weaveworksdemos/front-end:0.2.0'\n"},
                                        {"        image: 'weaveworksdemos/front-end:0.3.0'\n"}}));
}

TEST(SetImageTest, KeepsTheManifestsSpellingOfTheRepository) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out,
      Image(in, kFrontEnd, {"front-end", "index.docker.io/weaveworksdemos/front-end:0.4.0", {}}));
  EXPECT_EQ(Diff(in, out.content).after,
            (std::vector<std::string>{
                "        image: weaveworksdemos/front-end:0.4.0 # do not edit by hand\n"}));
}

TEST(SetImageTest, CompareAndSet) {
  const std::string in = Read("deployment.yaml");
  auto stale =
      Image(in, kFrontEnd,
            {"front-end", "weaveworksdemos/front-end:0.3.0", "weaveworksdemos/front-end:0.1.0"});
  ASSERT_THAT(
      stale,
      StatusIs(absl::StatusCode::kAborted,
               Eq("container front-end of sock-shop:deployment/front-end is now "
                  "weaveworksdemos/front-end:0.2.0, not weaveworksdemos/front-end:0.1.0; plan the "
                  "change again")));
  // The "from" image may be spelled differently.
  auto ok = Image(in, kFrontEnd,
                  {"front-end", "weaveworksdemos/front-end:0.3.0",
                   "docker.io/weaveworksdemos/front-end:0.2.0"});
  FERRY_EXPECT_OK(ok);
}

TEST(SetImageTest, BadRequestsSayWhatToFix) {
  const std::string in = Read("deployment.yaml");
  auto container = Image(in, kFrontEnd, {"nope", "a:1", {}});
  EXPECT_THAT(
      container,
      StatusIs(
          absl::StatusCode::kNotFound,
          Eq("sock-shop:deployment/front-end has no container \"nope\" (containers: front-end, "
             "sidecar, migrate)")));
  EXPECT_THAT(Image(in, "sock-shop:deployment/back-end", {"x", "a:1", {}}),
              StatusIs(absl::StatusCode::kNotFound));
  auto no_tag = Image(in, kFrontEnd, {"front-end", "weaveworksdemos/front-end", {}});
  EXPECT_THAT(no_tag, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has no tag")));
  EXPECT_THAT(Image(in, kFrontEnd, {"front-end", "Bad Image:1", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SetImageTest, SameImageIsNoChange) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, kFrontEnd, {"front-end", "weaveworksdemos/front-end:0.2.0", {}}));
  EXPECT_EQ(out.content, in);
  EXPECT_TRUE(out.changes.empty());
}

TEST(SetImageTest, CrlfFileStaysCrlf) {
  const std::string in = Read("crlf.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(auto out,
                             Image(in, "data:statefulset/db", {"db", "postgres:15.2", {}}));
  EXPECT_EQ(Diff(in, out.content), (Hunk{11,
                                         {"          image: postgres:15.1  # CRLF file\r\n"},
                                         {"          image: postgres:15.2  # CRLF file\r\n"}}));
}

TEST(SetImageTest, MultiDocumentFlowMetadataAndOddIndentation) {
  const std::string in = Read("multidoc.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, "default:deployment/helloworld",
                      {"helloworld", "quay.io/weaveworks/helloworld:master-a000001", {}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{20,
                  {"         image: quay.io/weaveworks/helloworld:master-9a16ff945b9e\n"},
                  {"         image: quay.io/weaveworks/helloworld:master-a000001\n"}}));
}

TEST(SetImageTest, ItemOfAList) {
  const std::string in = Read("multidoc.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, "default:cronjob/report", {"report", "example/report:2023-02", {}}));
  EXPECT_EQ(Diff(in, out.content), (Hunk{48,
                                         {"              image: example/report:2023-01\n"},
                                         {"              image: example/report:2023-02\n"}}));
}

TEST(SetImageTest, HelmReleaseImageAndSeparateTag) {
  const std::string in = Read("helmrelease.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(auto out, Image(in, "demo:helmrelease/podinfo",
                                             {"chart-image", "stefanprodan/podinfo:3.2.1", {}}));
  EXPECT_EQ(Diff(in, out.content), (Hunk{16, {"    tag: \"3.1.0\"\n"}, {"    tag: \"3.2.1\"\n"}}));
}

TEST(SetImageTest, HelmReleaseImageMapQuotesANumericTag) {
  const std::string in = Read("helmrelease.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, "demo:helmrelease/podinfo", {"cache", "docker.io/library/redis:7", {}}));
  // A plain 7 would be a number to Helm; the tag must stay a string.
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{21, {"        tag: 6.0.1 # cache\n"}, {"        tag: \"7\" # cache\n"}}));
}

TEST(SetImageTest, HelmReleaseRegistryRepositoryAndTagAllChange) {
  const std::string in = Read("helmrelease.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, "demo:helmrelease/podinfo", {"cache", "quay.io/mirror/redis:6.2.0", {}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{19,
                  {"        registry: docker.io\n", "        repository: library/redis\n",
                   "        tag: 6.0.1 # cache\n"},
                  {"        registry: quay.io\n", "        repository: mirror/redis\n",
                   "        tag: 6.2.0 # cache\n"}}));
  EXPECT_EQ(out.changes.size(), 3u);
}

TEST(SetImageTest, HelmReleaseAnnotationImageMap) {
  const std::string in = Read("helmrelease.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, "demo:helmrelease/podinfo", {"app", "ghcr.io/example/app:v1.3.0", {}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{25, {"        version: v1.2.3\n"}, {"        version: v1.3.0\n"}}));
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto logger, Image(in, "demo:helmrelease/podinfo", {"logger", "fluent/fluent-bit:2.0", {}}));
  EXPECT_EQ(Diff(in, logger.content), (Hunk{27,
                                            {"      image: fluent/fluent-bit:1.9\n"},
                                            {"      image: fluent/fluent-bit:2.0\n"}}));
}

TEST(SetImageTest, SharedAnchorIsRefusedAndNothingIsReturned) {
  const std::string in =
      "kind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      containers:\n"
      "      - name: one\n        image: &img nginx:1\n      - name: two\n        image: *img\n";
  auto one = Image(in, "default:deployment/a", {"one", "nginx:2", {}});
  ASSERT_THAT(one, StatusIs(absl::StatusCode::kFailedPrecondition,
                            HasSubstr("would also change another container")));
  auto two = Image(in, "default:deployment/a", {"two", "nginx:2", {}});
  EXPECT_THAT(two, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("alias")));
}

TEST(SetAnnotationsTest, ChangesAValueKeepingQuotesAndComment) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(auto out, Annotate(in, kFrontEnd, {{"fluxcd.io/automated", "false"}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{10,
                  {"    fluxcd.io/automated: \"true\"   # release new builds at once\n"},
                  {"    fluxcd.io/automated: \"false\"   # release new builds at once\n"}}));
}

TEST(SetAnnotationsTest, AddsAfterTheLastEntryBeforeBlankLines) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out,
      Annotate(in, kFrontEnd,
               {{"fluxcd.io/locked", "true"}, {"fluxcd.io/locked_msg", "hotfix: do not touch"}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{12,
                  {},
                  {"    fluxcd.io/locked: \"true\"\n",
                   "    fluxcd.io/locked_msg: \"hotfix: do not touch\"\n"}}));
  EXPECT_EQ(out.changes.size(), 2u);
}

TEST(SetAnnotationsTest, RemovesEntriesAndTheEmptiedMap) {
  const std::string in = Read("deployment.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(auto one,
                             Annotate(in, kFrontEnd, {{"fluxcd.io/tag.front-end", std::nullopt}}));
  EXPECT_EQ(Diff(in, one.content), (Hunk{11, {"    fluxcd.io/tag.front-end: glob:0.2.*\n"}, {}}));
  FERRY_ASSERT_OK_AND_ASSIGN(auto both, Annotate(in, kFrontEnd,
                                                 {{"fluxcd.io/tag.front-end", std::nullopt},
                                                  {"fluxcd.io/automated", std::nullopt}}));
  EXPECT_EQ(Diff(in, both.content),
            (Hunk{9,
                  {"  annotations:\n",
                   "    fluxcd.io/automated: \"true\"   # release new builds at once\n",
                   "    fluxcd.io/tag.front-end: glob:0.2.*\n"},
                  {}}));
  FERRY_ASSERT_OK_AND_ASSIGN(auto absent,
                             Annotate(in, kFrontEnd, {{"ferry.dev/ignore", std::nullopt}}));
  EXPECT_EQ(absent.content, in);
}

TEST(SetAnnotationsTest, CreatesTheMapWhenMissingKeepingCrlf) {
  const std::string in = Read("crlf.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Annotate(in, "data:statefulset/db", {{"ferry.dev/automated", "true"}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{6, {}, {"  annotations:\r\n", "    ferry.dev/automated: \"true\"\r\n"}}));
}

TEST(SetAnnotationsTest, CreatesTheMapInAListItem) {
  const std::string in = Read("multidoc.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(auto out, Annotate(in, "kube-system:daemonset/agent",
                                                {{"ferry.dev/tag.agent", "semver:~1.0"}}));
  EXPECT_EQ(Diff(in, out.content),
            (Hunk{31, {}, {"    annotations:\n", "      ferry.dev/tag.agent: semver:~1.0\n"}}));
}

TEST(SetAnnotationsTest, FlowStyleMetadata) {
  const std::string in = Read("multidoc.yaml");
  const char kId[] = "default:deployment/helloworld";
  FERRY_ASSERT_OK_AND_ASSIGN(auto add, Annotate(in, kId, {{"flux.weave.works/automated", "true"}}));
  EXPECT_EQ(Diff(in, add.content).after,
            (std::vector<std::string>{
                "metadata: {name: helloworld, annotations: {flux.weave.works/locked: \"true\", "
                "flux.weave.works/automated: \"true\"}}\n"}));
  FERRY_ASSERT_OK_AND_ASSIGN(auto remove,
                             Annotate(in, kId, {{"flux.weave.works/locked", std::nullopt}}));
  EXPECT_EQ(Diff(in, remove.content).after,
            (std::vector<std::string>{"metadata: {name: helloworld, annotations: {}}\n"}));
  FERRY_ASSERT_OK_AND_ASSIGN(auto create,
                             Annotate("kind: Pod\nmetadata: {name: p}\n", "default:pod/p",
                                      {{"ferry.dev/ignore", "sync_only"}}));
  EXPECT_EQ(create.content,
            "kind: Pod\nmetadata: {name: p, annotations: {ferry.dev/ignore: sync_only}}\n");
}

TEST(SetAnnotationsTest, EmptyAnnotationsKeyAndFileWithoutFinalNewline) {
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto empty, Annotate("kind: Pod\nmetadata:\n  name: p\n  annotations:\n  labels: {}\n",
                           "default:pod/p", {{"ferry.dev/automated", "true"}}));
  EXPECT_EQ(empty.content,
            "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    ferry.dev/automated: \"true\"\n"
            "  labels: {}\n");
  FERRY_ASSERT_OK_AND_ASSIGN(auto no_newline,
                             Annotate("kind: Pod\nmetadata:\n  name: p", "default:pod/p",
                                      {{"ferry.dev/automated", "true"}}));
  EXPECT_EQ(no_newline.content,
            "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    ferry.dev/automated: \"true\"");
}

TEST(EditTest, IndexedResourceGivesTheSameResultAndStaleIndexesAreReparsed) {
  const std::string in = Read("multidoc.yaml");
  LoadResult index = LoadFile("f.yaml", in);
  const Resource* cron = nullptr;
  for (const Resource& r : index.resources) {
    if (r.id == "default:cronjob/report") cron = &r;
  }
  ASSERT_NE(cron, nullptr);
  auto fast = SetImage(in, *cron, {"report", "example/report:2023-02", {}});
  auto slow = Image(in, "default:cronjob/report", {"report", "example/report:2023-02", {}});
  FERRY_ASSERT_OK(fast);
  FERRY_ASSERT_OK(slow);
  EXPECT_EQ(fast->content, slow->content);
  // Same length, other bytes: the index no longer matches the content and is not trusted.
  std::string changed = in;
  changed.replace(changed.find("2023-01"), 7, "2023-09");
  FERRY_ASSERT_OK_AND_ASSIGN(auto stale,
                             SetImage(changed, *cron, {"report", "example/report:2023-02", {}}));
  EXPECT_EQ(stale.changes[0].from, "example/report:2023-09");
}

TEST(EditTest, OtherDocumentsAreByteIdentical) {
  const std::string in = Read("multidoc.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto out, Image(in, "kube-system:daemonset/agent", {"agent", "example/agent:1.1.0", {}}));
  // Spelling kept: the manifest says docker.io/example/agent.
  EXPECT_EQ(Diff(in, out.content), (Hunk{36,
                                         {"          image: docker.io/example/agent:1.0.0\n"},
                                         {"          image: docker.io/example/agent:1.1.0\n"}}));
}

}  // namespace
}  // namespace ferry::manifest

namespace ferry::manifest {
namespace {

const char kOdd[] = "weird:deployment/odd";

TEST(OddStyleTest, ImageAfterUnicodeAndInAFlowMapping) {
  const std::string in = Read("odd.yaml");
  auto main = Image(in, kOdd, {"main", "registry.example.com:5000/odd/main:v1.1.0", {}});
  FERRY_ASSERT_OK(main);
  EXPECT_EQ(Diff(in, main->content),
            (Hunk{23,
                  {"     image: \"registry.example.com:5000/odd/main:v1.0.0\"   # ☃ snowman\n"},
                  {"     image: \"registry.example.com:5000/odd/main:v1.1.0\"   # ☃ snowman\n"}}));
  auto flow = Image(in, kOdd, {"flow", "busybox:1.37", {}});
  FERRY_ASSERT_OK(flow);
  EXPECT_EQ(Diff(in, flow->content),
            (Hunk{25,
                  {"   - {name: flow, image: 'busybox:1.36', args: [sleep, \"1\"]}\n"},
                  {"   - {name: flow, image: 'busybox:1.37', args: [sleep, \"1\"]}\n"}}));
}

TEST(OddStyleTest, OneSpaceIndentationAndBlockScalarsSurviveAnnotationEdits) {
  const std::string in = Read("odd.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(auto add, Annotate(in, kOdd, {{"ferry.dev/locked", "true"}}));
  EXPECT_EQ(Diff(in, add.content), (Hunk{14, {}, {"  ferry.dev/locked: \"true\"\n"}}));
  FERRY_ASSERT_OK_AND_ASSIGN(auto change, Annotate(in, kOdd, {{"ferry.dev/automated", "false"}}));
  EXPECT_EQ(Diff(in, change.content),
            (Hunk{13, {"  ferry.dev/automated: 'true'\n"}, {"  ferry.dev/automated: 'false'\n"}}));
  FERRY_ASSERT_OK_AND_ASSIGN(auto remove, Annotate(in, kOdd, {{"description", std::nullopt}}));
  EXPECT_EQ(
      Diff(in, remove.content),
      (Hunk{10, {"  description: |\n", "   Multi-line text\n", "   that must survive.\n"}, {}}));
}

// SetMappingKeys on a list of mappings written in every style it meets: golden texts.
constexpr char kItems[] =
    "# pinned images\n"
    "images:\n"
    "- name: web   # the front end\n"
    "  newTag: \"1.0\"\n"
    "  digest: sha256:aaaa\n"
    "\n"
    "# the api\n"
    "- name: api\n"
    "  newName: registry.local/api\n"
    "  # keep this comment\n"
    "\n"
    "- {name: db, newTag: '5.7'}\n"
    "---\n"
    "images: [other-document]\n";

struct MappingCase {
  std::string name;
  NodePath mapping;
  std::vector<AnnotationChange> changes;
  std::string want;  // the whole expected text
};

class SetMappingKeysTest : public ::testing::TestWithParam<MappingCase> {};

TEST_P(SetMappingKeysTest, ChangesOnlyThoseKeys) {
  const MappingCase& c = GetParam();
  FERRY_ASSERT_OK_AND_ASSIGN(std::string out, SetMappingKeys(kItems, c.mapping, c.changes));
  EXPECT_EQ(out, c.want);
  // Applying the same changes again changes nothing.
  FERRY_ASSERT_OK_AND_ASSIGN(std::string again, SetMappingKeys(out, c.mapping, c.changes));
  EXPECT_EQ(again, out);
}

std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

INSTANTIATE_TEST_SUITE_P(
    Golden, SetMappingKeysTest,
    ::testing::Values(
        MappingCase{"ReplacesInPlaceKeepingQuotesAndComments",
                    {"images", "0"},
                    {{"newTag", "1.1"}, {"name", "web2"}},
                    Replaced(Replaced(kItems, "\"1.0\"", "\"1.1\""), "name: web ", "name: web2 ")},
        MappingCase{"RemovesAKeysLine",
                    {"images", "0"},
                    {{"digest", std::nullopt}},
                    Replaced(kItems, "  digest: sha256:aaaa\n", "")},
        MappingCase{"InsertsAfterTheLastKeyBeforeCommentsAndBlankLines",
                    {"images", "1"},
                    {{"newTag", "1.10"}, {"digest", "sha256:bbbb"}},
                    Replaced(kItems, "  newName: registry.local/api\n",
                             "  newName: registry.local/api\n  newTag: \"1.10\"\n"
                             "  digest: sha256:bbbb\n")},
        MappingCase{"RemovingTheKeyAfterTheDashMovesTheNextKeyUp",
                    {"images", "1"},
                    {{"name", std::nullopt}},
                    Replaced(kItems, "- name: api\n  newName:", "- newName:")},
        MappingCase{"FlowItem",
                    {"images", "2"},
                    {{"newTag", "5.8"}, {"digest", "sha256:cccc"}, {"name", std::nullopt}},
                    Replaced(kItems, "- {name: db, newTag: '5.7'}",
                             "- {newTag: '5.8', digest: sha256:cccc}")},
        MappingCase{"RootMappingOfTheFirstDocumentOnly",
                    {},
                    {{"namespace", "prod"}},
                    Replaced(kItems, "---\n", "namespace: prod\n---\n")}),
    [](const ::testing::TestParamInfo<MappingCase>& info) { return info.param.name; });

TEST(SetMappingKeysLayoutTest, CrlfNoFinalNewlineOnlyKeyAndIndentedSequence) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::string crlf,
                             SetMappingKeys("images:\r\n- name: a # x\r\n  newName: b\r\n",
                                            {"images", "0"}, {{"newTag", "true"}}));
  EXPECT_EQ(crlf, "images:\r\n- name: a # x\r\n  newName: b\r\n  newTag: \"true\"\r\n");
  FERRY_ASSERT_OK_AND_ASSIGN(std::string bare,
                             SetMappingKeys("a: 1\nb: 2", {}, {{"c", "3"}, {"a", std::nullopt}}));
  EXPECT_EQ(bare, "b: 2\nc: \"3\"");
  FERRY_ASSERT_OK_AND_ASSIGN(
      std::string only, SetMappingKeys("l:\n- a: 1\n- b: 2\n", {"l", "0"}, {{"a", std::nullopt}}));
  EXPECT_EQ(only, "l:\n- {}\n- b: 2\n");
  FERRY_ASSERT_OK_AND_ASSIGN(
      std::string indented,
      SetMappingKeys("---\nimages:\n  - name: a\n    newTag: x  # t\n  - name: b\nkind: K\n",
                     {"images", "0"}, {{"digest", "sha256:d"}, {"newTag", "v2"}}));
  EXPECT_EQ(indented,
            "---\nimages:\n  - name: a\n    newTag: v2  # t\n    digest: sha256:d\n  - name: b\n"
            "kind: K\n");
}

TEST(SetMappingKeysErrorsTest, SaysWhatIsWrong) {
  EXPECT_THAT(SetMappingKeys(kItems, {"images", "7"}, {{"newTag", "1"}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("images[7]")));
  EXPECT_THAT(SetMappingKeys(kItems, {"images"}, {{"newTag", "1"}}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(SetMappingKeys("a: [1\n", {}, {{"b", "1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SetMappingKeys("a: |\n  x\n", {}, {{"a", "y"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("block scalar")));
  EXPECT_THAT(SetMappingKeys("a: &x v\nm:\n  b: *x\n", {"m"}, {{"b", "w"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("alias")));
  EXPECT_THAT(SetMappingKeys("a:\n  b: c\n", {}, {{"a", "w"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a scalar")));
  DocumentLimits tiny;
  tiny.max_nodes = 2;
  EXPECT_THAT(SetMappingKeys(kItems, {}, {{"a", "b"}}, tiny),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ferry::manifest
