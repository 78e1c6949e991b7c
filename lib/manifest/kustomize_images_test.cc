#include "lib/manifest/kustomize_images.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

std::string Golden(const std::string& name) {
  std::ifstream in(std::string(FERRY_MANIFEST_TESTDATA) + "/../kustomize_testdata/" + name,
                   std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(KustomizeImagesTest, ReadsEveryEntryAsWritten) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<KustomizeImage> images,
                             KustomizeImages(Golden("images_before.yaml")));
  ASSERT_EQ(images.size(), 5u);
  EXPECT_EQ(images[0].name, "nginx");
  EXPECT_EQ(images[0].new_tag, "1.25");
  EXPECT_EQ(images[0].line, 9);
  EXPECT_EQ(images[0].OutputName(), "nginx");
  EXPECT_EQ(images[1].new_tag, "1.10");  // a number, read as its text
  EXPECT_EQ(images[2].index, 2);
  EXPECT_EQ(images[2].new_name, "registry.local/org/worker");
  EXPECT_EQ(images[2].new_tag, "");
  EXPECT_EQ(images[2].OutputName(), "registry.local/org/worker");
  EXPECT_EQ(images[3].digest,
            "sha256:1111111111111111111111111111111111111111111111111111111111111111");
  EXPECT_EQ(images[4].name, "busybox");
  EXPECT_EQ(images[4].new_tag, "1.36");
  EXPECT_EQ(images[4].line, 20);
}

TEST(KustomizeImagesTest, NoImagesIsAnEmptyListAndBadShapesAreRefused) {
  FERRY_ASSERT_OK_AND_ASSIGN(auto none, KustomizeImages("resources: [a.yaml]\n"));
  EXPECT_TRUE(none.empty());
  FERRY_ASSERT_OK_AND_ASSIGN(auto empty, KustomizeImages("# nothing yet\n"));
  EXPECT_TRUE(empty.empty());
  EXPECT_THAT(KustomizeImages("images: nginx\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a list")));
  EXPECT_THAT(KustomizeImages("images:\n- nginx\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("images[0]")));
  EXPECT_THAT(KustomizeImages("images:\n- name: a\n- newTag: x\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("images[1] has no name")));
  EXPECT_THAT(KustomizeImages("images:\n- name: a\n  newTag: [x]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("newTag")));
  EXPECT_THAT(KustomizeImages("images: [\n"), StatusIs(absl::StatusCode::kInvalidArgument));
  DocumentLimits tiny;
  tiny.max_nodes = 3;
  EXPECT_THAT(KustomizeImages(Golden("images_before.yaml"), tiny),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

struct ImageCase {
  std::string name;
  std::string before;  // golden file names under testdata/kustomize
  int index;
  std::string to_image;
  std::string after;
};

class SetKustomizeImageTest : public ::testing::TestWithParam<ImageCase> {};

TEST_P(SetKustomizeImageTest, MatchesTheGoldenFile) {
  const ImageCase& c = GetParam();
  const std::string before = Golden(c.before);
  FERRY_ASSERT_OK_AND_ASSIGN(std::string out, SetKustomizeImage(before, c.index, c.to_image));
  EXPECT_EQ(out, Golden(c.after));
  // The entry now produces the image asked for, and a second release of it changes nothing.
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<KustomizeImage> images, KustomizeImages(out));
  ASSERT_LT(static_cast<size_t>(c.index), images.size());
  const KustomizeImage& entry = images[c.index];
  std::string produced = entry.OutputName();
  if (!entry.new_tag.empty()) produced += ":" + entry.new_tag;
  if (!entry.digest.empty()) produced += "@" + entry.digest;
  FERRY_ASSERT_OK_AND_ASSIGN(std::string again, SetKustomizeImage(out, c.index, produced));
  EXPECT_EQ(again, out);
}

constexpr char kDigest2[] =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

INSTANTIATE_TEST_SUITE_P(
    Golden, SetKustomizeImageTest,
    ::testing::Values(ImageCase{"QuotedTagKeepsQuotesAndComment", "images_before.yaml", 0,
                                "nginx:1.26", "nginx_1.26.yaml"},
                      ImageCase{"SameRepositorySpelledOtherwiseKeepsTheName", "images_before.yaml",
                                0, "docker.io/library/nginx:1.26", "nginx_1.26.yaml"},
                      ImageCase{"NumericTagBecomesAQuotedString", "images_before.yaml", 1,
                                "example/api:1.11", "api_numeric_1.11.yaml"},
                      ImageCase{"TagThatReadsAsTextStaysPlain", "images_before.yaml", 1,
                                "example/api:v1.11", "api_v1.11.yaml"},
                      ImageCase{"OtherRepositorySetsNewName", "images_before.yaml", 1,
                                "ghcr.io/example/api:2.0", "api_new_name.yaml"},
                      ImageCase{"TagInsertedIntoAnEntryWithOnlyNewName", "images_before.yaml", 2,
                                "registry.local/org/worker:2.0", "worker_insert_tag.yaml"},
                      ImageCase{"DigestRemovedWhenTheNewImageHasNone", "images_before.yaml", 3,
                                "redis:7.4", "redis_remove_digest.yaml"},
                      ImageCase{"FlowEntryDigestOnly", "images_before.yaml", 4,
                                std::string("busybox@") + kDigest2, "busybox_flow_digest.yaml"},
                      ImageCase{"Crlf", "crlf_before.yaml", 0, "ghcr.io/acme/nginx:1.27",
                                "crlf_after.yaml"}),
    [](const ::testing::TestParamInfo<ImageCase>& info) { return info.param.name; });

TEST(SetKustomizeImageErrorsTest, SaysWhatIsWrong) {
  const std::string in = Golden("images_before.yaml");
  EXPECT_THAT(SetKustomizeImage(in, 0, "nginx"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("neither tag nor digest")));
  EXPECT_THAT(SetKustomizeImage(in, 0, "NGINX:1"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SetKustomizeImage(in, 5, "nginx:1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("images[5]")));
  EXPECT_THAT(SetKustomizeImage("images: {}\n", 0, "nginx:1"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SetKustomizeImage("images:\n- name: a\n  newTag: |\n    1\n", 0, "a:2"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("block scalar")));
}

}  // namespace
}  // namespace ferry::manifest
