#include "services/api/image_listing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::Eq;

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
           const std::string& current, int limit = 0, const ContainerHolds& holds = {},
           absl::Time now = absl::UnixEpoch()) {
  Shown out;
  absl::StatusOr<policy::TagPattern> pattern = policy::ParseFilter(filter);
  FERRY_EXPECT_OK(pattern);
  FillContainerTags(*pattern, listed, current, holds, now, limit, &out.images);
  for (const ferry::v1::ImageTag& t : out.images.tags()) {
    out.tags.push_back(t.info().tag());
    if (t.matches_filter()) out.passing.push_back(t.info().tag());
    if (t.current()) out.current = t.info().tag();
  }
  return out;
}

using ::testing::ElementsAre;

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

// Soak times and rejections (issue 19): a tag passing the filter but too young shows when
// it becomes eligible, a rejected one the job that rejected it, and latest_filtered is the
// tag automation would take now.
TEST(FillContainerTagsTest, SoakingAndRejectedTagsAreMarkedAndLatestHonoursThem) {
  const auto listed =
      Listing({{"2.0.0", 10}, {"1.3.0", 10}, {"1.2.0", 5}, {"1.1.0", 4}, {"1.0.0", 1}});
  ContainerHolds holds;
  holds.min_age = absl::Hours(2);
  holds.rejected = {{"1.2.0", "job-7"}, {"1.1.0", ""}};
  const absl::Time day10 = absl::FromUnixSeconds(10 * 86400);
  Shown s = Fill("semver:~1", listed, "1.0.0", 0, holds, day10 + absl::Hours(1));
  EXPECT_THAT(s.passing, ElementsAre("1.3.0", "1.2.0", "1.1.0", "1.0.0"));
  EXPECT_EQ(s.images.min_age(), "2h");
  EXPECT_EQ(s.images.latest_filtered(), "1.0.0") << "1.3.0 soaks, 1.2.0 and 1.1.0 rejected";
  std::map<std::string, const ferry::v1::ImageTag*> by_tag;
  for (const ferry::v1::ImageTag& t : s.images.tags()) by_tag[t.info().tag()] = &t;
  ASSERT_TRUE(by_tag.at("1.3.0")->has_eligible_at());
  EXPECT_EQ(runtime::FromProtoTimestamp(by_tag.at("1.3.0")->eligible_at()), day10 + absl::Hours(2));
  EXPECT_FALSE(by_tag.at("2.0.0")->has_eligible_at()) << "does not pass the filter";
  EXPECT_TRUE(by_tag.at("1.2.0")->rejected());
  EXPECT_EQ(by_tag.at("1.2.0")->rejected_by_job(), "job-7");
  EXPECT_TRUE(by_tag.at("1.1.0")->rejected()) << "an entry naming no job";
  EXPECT_EQ(by_tag.at("1.1.0")->rejected_by_job(), "");
  EXPECT_FALSE(by_tag.at("1.0.0")->has_eligible_at());
  EXPECT_FALSE(by_tag.at("1.0.0")->rejected());
  EXPECT_EQ(by_tag.at("1.0.0")->rejected_by_job(), "");

  // Once 1.3.0 has aged, it is the one.
  s = Fill("semver:~1", listed, "1.0.0", 0, holds, day10 + absl::Hours(2));
  EXPECT_EQ(s.images.latest_filtered(), "1.3.0");
  // No holds: the plain choice, no soak shown.
  s = Fill("semver:~1", listed, "1.0.0", 0, {}, day10);
  EXPECT_EQ(s.images.latest_filtered(), "1.3.0");
  EXPECT_EQ(s.images.min_age(), "");
}

// git's index for ListImagesOf: `images` per workload id (one container "app" each).
ferry::v1::ListManifestWorkloadsResponse InGit(
    const std::vector<std::pair<std::string, std::string>>& images) {
  ferry::v1::ListManifestWorkloadsResponse out;
  for (const auto& [id, image] : images) {
    ferry::v1::ManifestWorkload* w = out.add_workloads();
    w->set_id(id);
    ferry::v1::Container* c = w->add_containers();
    c->set_name("app");
    c->set_image(image);
    const size_t colon = image.rfind(':');
    if (colon == std::string::npos) continue;  // no image_ref: not a reference
    const size_t slash = image.find('/');
    c->mutable_image_ref()->set_registry(image.substr(0, slash));
    c->mutable_image_ref()->set_repository(image.substr(slash + 1, colon - slash - 1));
    c->mutable_image_ref()->set_tag(image.substr(colon + 1));
  }
  return out;
}

TEST(ListImagesOfTest, EveryContainerIsFilledOrCarriesItsError) {
  auto in_git = InGit({{"default:deployment/app", "reg.test/team/app:build-1"},
                       {"default:deployment/bad-filter", "reg.test/team/app:build-1"},
                       {"default:deployment/down", "reg.test/team/down:1"},
                       {"default:deployment/stale", "reg.test/team/stale:1"},
                       {"default:deployment/raw", "not a reference"}});
  (*in_git.mutable_workloads(0)->mutable_policy()->mutable_tag_filters())["app"] =
      "numerical:^build-(\\d+)$";
  in_git.mutable_workloads(1)->mutable_policy()->set_tag_all("semvr:~1");
  std::map<std::string, RepositoryTags> registry;
  registry["reg.test/team/app"].tags = Listing({{"build-1", 3}, {"build-12", 1}});
  registry["reg.test/team/down"].status = absl::UnavailableError("registry-scanner: 503");
  registry["reg.test/team/stale"].tags = Listing({{"1", 1}, {"2", 2}});
  registry["reg.test/team/stale"].tags.set_fresh(false);
  registry["reg.test/team/stale"].tags.set_last_error("reg.test: 429 Too Many Requests");
  std::vector<std::string> looked_up;
  TagLookup lookup = [&](const std::string& repository) -> const RepositoryTags& {
    looked_up.push_back(repository);
    return registry[repository];
  };
  ferry::v1::ListImagesRequest request;
  request.set_limit(1);
  absl::StatusOr<ferry::v1::ListImagesResponse> listed =
      ListImagesOf(request, in_git, lookup, absl::Now());
  FERRY_ASSERT_OK(listed);
  ASSERT_EQ(listed->workloads_size(), 5);
  struct Row {
    std::string tag_filter, error, latest;
    int tags;
  };
  const Row want[] = {
      {"numerical:^build-(\\d+)$", "", "build-12", 1},
      {"semvr:~1", "unknown filter kind", "", 0},
      {"glob:*", "registry-scanner: 503", "", 0},
      {"glob:*", "reg.test: 429 Too Many Requests", "2", 1},
      {"", "'not a reference' is not an image reference", "", 0},
  };
  for (int i = 0; i < 5; ++i) {
    const ferry::v1::ContainerImages& ci = listed->workloads(i).containers(0);
    SCOPED_TRACE(listed->workloads(i).workload());
    EXPECT_EQ(ci.container(), "app");
    EXPECT_EQ(ci.current_image(), in_git.workloads(i).containers(0).image());
    EXPECT_EQ(ci.tag_filter(), want[i].tag_filter);
    EXPECT_THAT(ci.error(), ::testing::HasSubstr(want[i].error));
    EXPECT_EQ(ci.error().empty(), want[i].error.empty()) << ci.error();
    EXPECT_EQ(ci.latest_filtered(), want[i].latest);
    EXPECT_EQ(ci.tags_size(), want[i].tags) << "limit 1";
  }
  EXPECT_EQ(listed->workloads(0).containers(0).omitted(), 1);
  EXPECT_EQ(listed->workloads(0).containers(0).repository(), "reg.test/team/app");
  EXPECT_THAT(looked_up,
              ElementsAre("reg.test/team/app", "reg.test/team/down", "reg.test/team/stale"))
      << "a bad filter or a non-reference is never looked up";
}

TEST(ListImagesOfTest, SoakTimesComeFromEachContainersPolicyAndABadOneIsItsError) {
  auto in_git = InGit({{"default:deployment/soak", "reg.test/team/app:1"},
                       {"default:deployment/bad", "reg.test/team/app:1"}});
  (*in_git.mutable_workloads(0)->mutable_policy()->mutable_min_ages())["app"] = "1d";
  in_git.mutable_workloads(0)->mutable_policy()->set_min_age_all("1h");
  in_git.mutable_workloads(1)->mutable_policy()->set_min_age_all("2x");
  std::map<std::string, RepositoryTags> registry;
  registry["reg.test/team/app"].tags = Listing({{"2", 10}, {"1", 1}});
  TagLookup lookup = [&](const std::string& repository) -> const RepositoryTags& {
    return registry[repository];
  };
  ferry::v1::ListImagesRequest request;
  const absl::Time now = absl::FromUnixSeconds(10 * 86400) + absl::Hours(3);
  FERRY_ASSERT_OK_AND_ASSIGN(ferry::v1::ListImagesResponse listed,
                             ListImagesOf(request, in_git, lookup, now));
  const ferry::v1::ContainerImages& soak = listed.workloads(0).containers(0);
  EXPECT_EQ(soak.min_age(), "1d") << "the container's own soak time wins";
  EXPECT_EQ(soak.latest_filtered(), "1");
  ASSERT_EQ(soak.tags(0).info().tag(), "2");
  EXPECT_EQ(runtime::FromProtoTimestamp(soak.tags(0).eligible_at()),
            absl::FromUnixSeconds(11 * 86400));
  const ferry::v1::ContainerImages& bad = listed.workloads(1).containers(0);
  EXPECT_THAT(bad.error(), ::testing::StartsWith("policy error: ferry.dev/min-age: "));
  EXPECT_EQ(bad.latest_filtered(), "");
}

TEST(ListImagesOfTest, OneWorkloadOrNotFound) {
  const auto in_git = InGit(
      {{"default:deployment/a", "not a reference"}, {"default:deployment/b", "not a reference"}});
  TagLookup none = [](const std::string&) -> const RepositoryTags& {
    ADD_FAILURE() << "no lookup expected";
    static const RepositoryTags empty;
    return empty;
  };
  struct Case {
    std::string workload, ns;
    const ferry::v1::ListManifestWorkloadsResponse* in_git;
    std::vector<std::string> want;  // workload ids, or
    std::string not_found;          // the NotFound message
  };
  const ferry::v1::ListManifestWorkloadsResponse empty;
  const Case cases[] = {
      {"default:deployment/b", "", &in_git, {"default:deployment/b"}, ""},
      {"", "", &in_git, {"default:deployment/a", "default:deployment/b"}, ""},
      {"default:deployment/ghost",
       "",
       &in_git,
       {},
       "workload default:deployment/ghost is not in the repository"},
      {"", "defualt", &empty, {}, "namespace defualt has no workloads in the repository"},
      {"", "", &empty, {}, ""},
  };
  for (const Case& c : cases) {
    ferry::v1::ListImagesRequest request;
    request.set_workload(c.workload);
    request.set_namespace_(c.ns);
    absl::StatusOr<ferry::v1::ListImagesResponse> listed =
        ListImagesOf(request, *c.in_git, none, absl::Now());
    if (!c.not_found.empty()) {
      EXPECT_THAT(listed, StatusIs(absl::StatusCode::kNotFound, Eq(c.not_found))) << c.not_found;
      continue;
    }
    FERRY_ASSERT_OK(listed);
    std::vector<std::string> ids;
    for (const auto& w : listed->workloads()) ids.push_back(w.workload());
    EXPECT_THAT(ids, ::testing::ElementsAreArray(c.want)) << c.workload << c.ns;
  }
}

}  // namespace
}  // namespace ferry::api
