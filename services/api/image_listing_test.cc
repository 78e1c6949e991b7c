#include "services/api/image_listing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/runtime/proto_time.h"

namespace ferry::api {
namespace {

// The scanner's listing: every tag, newest first by creation time; 0 = no creation time.
ferry::v1::ListTagsResponse Listing(const std::vector<std::pair<std::string, int>>& tags) {
  ferry::v1::ListTagsResponse out;
  for (const auto& [name, day] : tags) {
    ferry::v1::TagInfo* t = out.add_tags();
    t->set_tag(name);
    if (day > 0) {
      *t->mutable_created() = runtime::ToProtoTimestamp(absl::FromUnixSeconds(day * 86400));
    } else {
      t->set_incomplete_reason("the image config has no creation time");
    }
  }
  out.set_total(out.tags_size());
  return out;
}

struct Shown {
  std::vector<std::string> tags;     // in the answer's order
  std::vector<std::string> passing;  // those marked as passing the filter
  std::string current;               // the one marked as running
  ferry::v1::ContainerImages images;
};

Shown Fill(const std::string& filter, const ferry::v1::ListTagsResponse& listed,
           const std::string& current, int limit = 0) {
  Shown out;
  absl::StatusOr<policy::TagPattern> pattern = policy::ParseFilter(filter);
  EXPECT_TRUE(pattern.ok()) << pattern.status();
  FillContainerTags(*pattern, listed, current, limit, &out.images);
  for (const ferry::v1::ImageTag& t : out.images.tags()) {
    out.tags.push_back(t.info().tag());
    if (t.matches_filter()) out.passing.push_back(t.info().tag());
    if (t.current()) out.current = t.info().tag();
  }
  return out;
}

using testing::ElementsAre;

TEST(FillContainerTagsTest, NumericalCaptureRanksTheCapturedNumber) {
  const auto listed = Listing({{"latest", 9}, {"build-1", 3}, {"build-2", 2}, {"build-12", 1}});
  Shown s = Fill("numerical:^build-(\\d+)$", listed, "build-1");
  EXPECT_THAT(s.tags, ElementsAre("build-12", "build-2", "build-1"));
  EXPECT_THAT(s.passing, ElementsAre("build-12", "build-2", "build-1"));
  EXPECT_EQ(s.current, "build-1");
  EXPECT_EQ(s.images.latest_filtered(), "build-12");
  EXPECT_EQ(s.images.total(), 4);
  EXPECT_EQ(s.images.filtered(), 3);
  EXPECT_EQ(s.images.omitted(), 0);
}

TEST(FillContainerTagsTest, SemverListsEveryVersionAndPicksWithinTheConstraint) {
  const auto listed =
      Listing({{"v1.9.0", 4}, {"master", 3}, {"v2.0.0", 2}, {"v1.10.0", 1}, {"v1.2.0", 1}});
  Shown s = Fill("semver:~1", listed, "v1.2.0", /*limit=*/2);
  EXPECT_THAT(s.tags, ElementsAre("v2.0.0", "v1.10.0"));
  EXPECT_THAT(s.passing, ElementsAre("v1.10.0"));
  EXPECT_EQ(s.images.latest_filtered(), "v1.10.0");
  EXPECT_EQ(s.images.filtered(), 3);
  EXPECT_EQ(s.images.omitted(), 2) << "v1.9.0 and v1.2.0 (master is no version)";
}

TEST(FillContainerTagsTest, ByTimeTheNewestTagWithoutMetadataIsShownButNotPicked) {
  const auto listed = Listing({{"main-c", 0}, {"main-b", 2}, {"main-a", 1}, {"other", 5}});
  Shown s = Fill("glob:main-*", listed, "main-a");
  EXPECT_THAT(s.tags, ElementsAre("other", "main-b", "main-a", "main-c"));
  EXPECT_THAT(s.passing, ElementsAre("main-b", "main-a", "main-c"));
  EXPECT_EQ(s.images.latest_filtered(), "main-b") << "the tag automation would pick";
  EXPECT_EQ(s.images.filtered(), 3);
}

TEST(FillContainerTagsTest, NoTagPassesNoLatest) {
  Shown s = Fill("alphabetical:^rel-(.+)$", Listing({{"1.0", 1}}), "1.0");
  EXPECT_TRUE(s.tags.empty());
  EXPECT_EQ(s.images.latest_filtered(), "");
  EXPECT_EQ(s.images.filtered(), 0);
  EXPECT_EQ(s.images.total(), 1);
}

}  // namespace
}  // namespace ferry::api
