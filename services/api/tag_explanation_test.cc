#include "services/api/tag_explanation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kApp[] = "registry.test/team/app";
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);  // 2027-01-15T08:00:00Z

// A tag created `age` before kNow; a negative age: no creation time (incomplete metadata).
ferry::v1::TagInfo Tag(const std::string& name, absl::Duration age) {
  ferry::v1::TagInfo t;
  t.set_tag(name);
  if (age >= absl::ZeroDuration()) {
    *t.mutable_created() = runtime::ToProtoTimestamp(kNow - age);
  } else {
    t.set_incomplete_reason("config blob has no creation time");
  }
  return t;
}

ferry::v1::ManifestWorkload Workload(const std::string& image) {
  ferry::v1::ManifestWorkload w;
  w.set_id("default:deployment/app");
  ferry::v1::Container* c = w.add_containers();
  c->set_name("app");
  c->set_image(image);
  w.mutable_policy()->set_automated(true);
  return w;
}

RepositoryTags Listed(std::vector<ferry::v1::TagInfo> tags) {
  RepositoryTags r;
  r.tags.set_repository(kApp);
  for (auto& t : tags) *r.tags.add_tags() = std::move(t);
  r.tags.set_total(r.tags.tags_size());
  r.tags.set_fresh(true);
  return r;
}

// "TAG VERDICT RANK" per tag, in the answer's order.
std::vector<std::string> Verdicts(const ferry::v1::ContainerExplanation& e) {
  std::vector<std::string> out;
  for (const ferry::v1::TagExplanation& t : e.tags()) {
    std::string verdict = ferry::v1::TagVerdict_Name(t.verdict());
    verdict.erase(0, std::string("TAG_VERDICT_").size());
    out.push_back(absl::StrCat(t.tag(), " ", verdict, " ", t.rank()));
  }
  return out;
}

const ferry::v1::TagExplanation& Find(const ferry::v1::ContainerExplanation& e,
                                      const std::string& tag) {
  for (const ferry::v1::TagExplanation& t : e.tags()) {
    if (t.tag() == tag) return t;
  }
  ADD_FAILURE() << "no tag " << tag << " in " << e.ShortDebugString();
  static const ferry::v1::TagExplanation kNone;
  return kNone;
}

// Every verdict at once, under a semver filter with a soak time and a rejected tag.
class SemverExplanationTest : public ::testing::Test {
 protected:
  SemverExplanationTest() {
    workload_ = Workload(std::string(kApp) + ":1.0.0");
    ferry::v1::Policy& p = *workload_.mutable_policy();
    (*p.mutable_tag_filters())["app"] = "semver:<2.0";
    p.set_min_age_all("2h");
    (*p.mutable_rejected())["app"] = "1.2.5=job-7";
    tags_ = Listed({Tag("1.0.0", absl::Hours(100)), Tag("1.1.0", absl::Hours(50)),
                    Tag("1.2.0", absl::Hours(10)), Tag("1.2.5", absl::Hours(9)),
                    Tag("1.3.0", absl::Hours(1)), Tag("0.9.0", absl::Hours(200)),
                    Tag("2.0.0", absl::Hours(5)), Tag("edge", absl::Hours(3)),
                    Tag("latest", absl::Hours(3))});
  }

  ferry::v1::ManifestWorkload workload_;
  RepositoryTags tags_;
};

TEST_F(SemverExplanationTest, EveryTagHasItsVerdictInTheAnswersOrder) {
  const ferry::v1::ContainerExplanation e =
      ExplainContainer(workload_, workload_.containers(0), tags_, kNow, 0);
  EXPECT_EQ(e.error(), "");
  EXPECT_EQ(e.container(), "app");
  EXPECT_EQ(e.repository(), kApp);
  EXPECT_EQ(e.tag_filter(), "semver:<2.0");
  EXPECT_EQ(e.min_age(), "2h");
  EXPECT_THAT(Verdicts(e),
              ElementsAre("1.2.0 CHOSEN 1", "1.1.0 CANDIDATE 2", "1.0.0 CURRENT 3",
                          "1.3.0 TOO_YOUNG 0", "1.2.5 REJECTED 0", "0.9.0 OLDER_THAN_CURRENT 4",
                          "2.0.0 FILTERED 0", "edge FILTERED 0", "latest FILTERED 0"));
  EXPECT_EQ(Find(e, "2.0.0").reason(), "outside semver:<2.0");
  EXPECT_EQ(Find(e, "edge").reason(), "not a version (semver:<2.0)");
  EXPECT_EQ(Find(e, "latest").reason(), "latest is excluded unless the filter names it");
  const ferry::v1::TagExplanation& young = Find(e, "1.3.0");
  EXPECT_EQ(runtime::FromProtoTimestamp(young.eligible_at()), kNow + absl::Hours(1));
  EXPECT_EQ(young.reason(),
            "1.3.0 is soaking until 2027-01-15T09:00:00Z (min-age 2h); counted from its creation");
  EXPECT_EQ(Find(e, "1.2.5").rejected_by_job(), "job-7");
  EXPECT_EQ(Find(e, "1.2.5").reason(), "1.2.5 was rejected by job job-7 (an automatic revert)");
  EXPECT_EQ(Find(e, "0.9.0").reason(),
            "ranks below the running 1.0.0: automation never moves a container back");
  EXPECT_EQ(Find(e, "1.1.0").reason(), "eligible, ranks below 1.2.0");
  EXPECT_EQ(runtime::FromProtoTimestamp(Find(e, "1.2.0").created()), kNow - absl::Hours(10));
  // Moves now, and on again once the soaking tag is old enough.
  EXPECT_EQ(e.next(),
            "release 1.2.0 at automation's next pass; then 1.3.0 once it has soaked, at "
            "2027-01-15T09:00:00Z");
  EXPECT_FALSE(e.has_next_at());
}

TEST_F(SemverExplanationTest, RunningTheBestEligibleTagItWaitsForTheSoakingOne) {
  workload_.mutable_containers(0)->set_image(std::string(kApp) + ":1.2.0");
  const ferry::v1::ContainerExplanation e =
      ExplainContainer(workload_, workload_.containers(0), tags_, kNow, 0);
  EXPECT_THAT(Verdicts(e), ElementsAre("1.2.0 CURRENT 1", "1.3.0 TOO_YOUNG 0", "1.2.5 REJECTED 0",
                                       "1.1.0 OLDER_THAN_CURRENT 2", "1.0.0 OLDER_THAN_CURRENT 3",
                                       "0.9.0 OLDER_THAN_CURRENT 4", "2.0.0 FILTERED 0",
                                       "edge FILTERED 0", "latest FILTERED 0"));
  EXPECT_EQ(e.next(), "wait for 1.3.0: soaking until 2027-01-15T09:00:00Z");
  EXPECT_EQ(runtime::FromProtoTimestamp(e.next_at()), kNow + absl::Hours(1));
  // Once it has soaked: released.
  const ferry::v1::ContainerExplanation later =
      ExplainContainer(workload_, workload_.containers(0), tags_, kNow + absl::Hours(1), 0);
  EXPECT_EQ(later.next(), "release 1.3.0 at automation's next pass");
  EXPECT_EQ(Find(later, "1.3.0").verdict(), ferry::v1::TAG_VERDICT_CHOSEN);
}

// Two tags soaking: the next move is at the earlier soak end, to the tag eligible then (what
// automation will do), not to the best one, which comes after.
TEST_F(SemverExplanationTest, TheNextMoveIsAtTheEarliestSoakEndThatChangesTheChoice) {
  workload_.mutable_containers(0)->set_image(std::string(kApp) + ":1.2.0");
  *tags_.tags.add_tags() = Tag("1.4.0", absl::Minutes(30));   // eligible at +1h30
  *tags_.tags.add_tags() = Tag("1.0.1", absl::Minutes(110));  // eligible first, ranks below
  const ferry::v1::ContainerExplanation e =
      ExplainContainer(workload_, workload_.containers(0), tags_, kNow, 0);
  EXPECT_EQ(e.next(), "wait for 1.3.0: soaking until 2027-01-15T09:00:00Z");
  EXPECT_EQ(Find(e, "1.0.1").verdict(), ferry::v1::TAG_VERDICT_TOO_YOUNG);
}

TEST_F(SemverExplanationTest, RunningTheBestWithNothingSoakingThereIsNothingToDo) {
  workload_.mutable_containers(0)->set_image(std::string(kApp) + ":1.3.0");
  const ferry::v1::ContainerExplanation e =
      ExplainContainer(workload_, workload_.containers(0), tags_, kNow, 0);
  // The running tag stays in the ranking, soaking or not.
  EXPECT_EQ(Find(e, "1.3.0").verdict(), ferry::v1::TAG_VERDICT_CURRENT);
  EXPECT_EQ(Find(e, "1.3.0").rank(), 1);
  EXPECT_EQ(Find(e, "1.3.0").reason(), "running; the best eligible tag");
  EXPECT_EQ(e.next(), "nothing: app runs the best eligible tag");
  EXPECT_FALSE(e.has_next_at());
}

TEST_F(SemverExplanationTest, ABlockedWorkloadStillGetsEveryVerdictAndNothingNext) {
  struct Case {
    std::string name;
    std::function<void(ferry::v1::Policy&)> set;
    std::string blocked;
  };
  const std::vector<Case> cases = {
      {"not automated", [](ferry::v1::Policy& p) { p.set_automated(false); }, "not automated"},
      {"locked",
       [](ferry::v1::Policy& p) {
         p.set_locked(true);
         p.set_locked_user("alice");
         p.set_locked_msg("incident 12");
       },
       "locked by alice: incident 12"},
      {"ignored", [](ferry::v1::Policy& p) { p.set_ignore(ferry::v1::IGNORE_MODE_ALL); },
       "ignored (ignore: true)"},
      {"policy error",
       [](ferry::v1::Policy& p) { p.add_errors("ferry.dev/rollback: use auto or off"); },
       "policy error: ferry.dev/rollback: use auto or off"},
      {"two",
       [](ferry::v1::Policy& p) {
         p.set_automated(false);
         p.set_locked(true);
       },
       "locked; not automated"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ferry::v1::ManifestWorkload w = workload_;
    c.set(*w.mutable_policy());
    EXPECT_EQ(AutomationBlocker(w.policy()), c.blocked);
    const ferry::v1::ContainerExplanation e = ExplainContainer(w, w.containers(0), tags_, kNow, 0);
    EXPECT_EQ(e.next(), "nothing: " + c.blocked);
    EXPECT_EQ(Find(e, "1.2.0").verdict(), ferry::v1::TAG_VERDICT_CHOSEN) << "for a manual release";
    EXPECT_EQ(e.tags_size(), 9);
  }
  // A sync_only workload is released: not blocked.
  ferry::v1::Policy sync_only = workload_.policy();
  sync_only.set_ignore(ferry::v1::IGNORE_MODE_SYNC_ONLY);
  EXPECT_EQ(AutomationBlocker(sync_only), "");
}

TEST(TagExplanationTest, GlobTagsWithoutACreationTimeAreIncompleteAndUnlistedRunningTagsShown) {
  ferry::v1::ManifestWorkload w = Workload(std::string(kApp) + ":main-a");
  w.mutable_policy()->set_tag_all("glob:main-*");
  RepositoryTags tags = Listed({Tag("main-c", -absl::Hours(1)), Tag("main-b", absl::Hours(2)),
                                Tag("main-a", absl::Hours(3)), Tag("dev-x", absl::Hours(1))});
  ferry::v1::ContainerExplanation e = ExplainContainer(w, w.containers(0), tags, kNow, 0);
  EXPECT_THAT(Verdicts(e), ElementsAre("main-b CHOSEN 1", "main-a CURRENT 2", "main-c INCOMPLETE 0",
                                       "dev-x FILTERED 0"));
  EXPECT_EQ(Find(e, "main-c").reason(), "metadata incomplete: config blob has no creation time");
  EXPECT_EQ(Find(e, "dev-x").reason(), "does not match glob:main-*");
  EXPECT_EQ(e.next(), "release main-b at automation's next pass");

  // The running tag gone from the registry: still shown, not ranked (its time is unknown).
  w.mutable_containers(0)->set_image(std::string(kApp) + ":main-0");
  e = ExplainContainer(w, w.containers(0), tags, kNow, 0);
  EXPECT_THAT(Verdicts(e), ElementsAre("main-b CHOSEN 1", "main-a CANDIDATE 2", "main-0 CURRENT 0",
                                       "main-c INCOMPLETE 0", "dev-x FILTERED 0"));
  EXPECT_THAT(Find(e, "main-0").reason(), HasSubstr("not listed by the registry"));

  // No tag ranks at all: nothing, and why.
  w.mutable_policy()->set_tag_all("glob:none-*");
  e = ExplainContainer(w, w.containers(0), tags, kNow, 0);
  EXPECT_EQ(e.next(),
            "nothing: no eligible tag of registry.test/team/app passes the tag filter "
            "glob:none-*");
}

TEST(TagExplanationTest, FilterFailuresNameThePartThatFailed) {
  struct Case {
    std::string filter, tag, want;
  };
  const std::vector<Case> cases = {
      {"glob:1.*", "2.0", "does not match glob:1.*"},
      {"1.*", "2.0", "does not match glob:1.*"},
      {"glob:1.*", "1.0", ""},
      {"glob:*", "latest", "latest is excluded unless the filter names it"},
      {"glob:latest", "latest", ""},
      {"glob:latest-*", "latest", "does not match glob:latest-*"},
      {"semver:~1.2", "1.3.0", "outside semver:~1.2"},
      {"semver:~1.2", "main", "not a version (semver:~1.2)"},
      {"semver:~1.2", "1.2.9", ""},
      {"regexp:^v[0-9]+$", "v1x", "does not match regexp:^v[0-9]+$"},
      {"numerical:^build-(\\d+)$", "rc-1", "does not match numerical:^build-(\\d+)$"},
      {"numerical:^build-(.+)$", "build-x", "no number to rank by (numerical:^build-(.+)$)"},
      {"numerical:^build-(\\d+)$", "build-12", ""},
      {"alphabetical:^rel-([a-z]+)$", "rel-1", "does not match alphabetical:^rel-([a-z]+)$"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.filter + " " + c.tag);
    absl::StatusOr<policy::TagPattern> filter = policy::ParseFilter(c.filter);
    FERRY_ASSERT_OK(filter.status());
    EXPECT_EQ(FilterFailure(*filter, c.tag), c.want);
  }
}

TEST(TagExplanationTest, HeldTagsSayWhyAndTheRunningTagIsNeverHeld) {
  ferry::v1::ManifestWorkload w = Workload(std::string(kApp) + ":3");
  ferry::v1::Policy& p = *w.mutable_policy();
  (*p.mutable_tag_filters())["app"] = "numerical:";
  (*p.mutable_min_ages())["app"] = "1d";
  (*p.mutable_rejected())["app"] = "3=job-1,5";
  ferry::v1::TagInfo seen = Tag("6", absl::ZeroDuration());
  seen.clear_created();
  *seen.mutable_first_seen() = runtime::ToProtoTimestamp(kNow - absl::Hours(1));
  ferry::v1::TagInfo unknown = Tag("7", absl::ZeroDuration());
  unknown.clear_created();
  RepositoryTags tags = Listed({Tag("3", absl::Hours(48)), Tag("4", absl::Hours(30)),
                                Tag("5", absl::Hours(40)), seen, unknown});
  const ferry::v1::ContainerExplanation e = ExplainContainer(w, w.containers(0), tags, kNow, 0);
  EXPECT_EQ(e.min_age(), "1d");
  EXPECT_THAT(Verdicts(e), ElementsAre("4 CHOSEN 1", "3 CURRENT 2", "7 TOO_YOUNG 0",
                                       "6 TOO_YOUNG 0", "5 REJECTED 0"));
  EXPECT_EQ(Find(e, "6").reason(),
            "6 is soaking until 2027-01-16T07:00:00Z (min-age 1d); counted from when the scanner "
            "first saw it");
  EXPECT_FALSE(Find(e, "7").has_eligible_at());
  EXPECT_EQ(Find(e, "7").reason(),
            "7 is soaking: its age is unknown yet (min-age 1d); no creation time and not yet "
            "seen by the scanner");
  EXPECT_EQ(Find(e, "5").reason(), "5 was rejected (an automatic revert)");
  EXPECT_EQ(Find(e, "3").rejected_by_job(), "job-1");
  EXPECT_THAT(Find(e, "3").reason(), HasSubstr("3 was rejected by job job-1 (an automatic revert); "
                                               "automation leaves a running tag as it is"));
  EXPECT_EQ(e.next(),
            "release 4 at automation's next pass; then 6 once it has soaked, at "
            "2027-01-16T07:00:00Z");
}

TEST(TagExplanationTest, LimitKeepsTheBestAndCountsTheRest) {
  ferry::v1::ManifestWorkload w = Workload(std::string(kApp) + ":0");
  (*w.mutable_policy()->mutable_tag_filters())["app"] = "numerical:";
  std::vector<ferry::v1::TagInfo> many;
  for (int i = 0; i < 1500; ++i) many.push_back(Tag(absl::StrCat(i), absl::Hours(1)));
  RepositoryTags tags = Listed(many);
  ferry::v1::ContainerExplanation e = ExplainContainer(w, w.containers(0), tags, kNow, 0);
  EXPECT_EQ(e.tags_size(), kExplainDefaultLimit);
  EXPECT_EQ(e.omitted(), 1500 - kExplainDefaultLimit);
  EXPECT_EQ(e.tags(0).tag(), "1499");
  EXPECT_EQ(e.tags(0).verdict(), ferry::v1::TAG_VERDICT_CHOSEN);
  e = ExplainContainer(w, w.containers(0), tags, kNow, 3);
  EXPECT_THAT(Verdicts(e), ElementsAre("1499 CHOSEN 1", "1498 CANDIDATE 2", "1497 CANDIDATE 3"));
  EXPECT_EQ(e.omitted(), 1497);
  EXPECT_EQ(e.next(), "release 1499 at automation's next pass") << "the limit cuts the list only";
  e = ExplainContainer(w, w.containers(0), tags, kNow, 5000);
  EXPECT_EQ(e.tags_size(), kExplainMaxLimit);
  EXPECT_EQ(e.omitted(), 500);
}

TEST(TagExplanationTest, WhatCannotBeExplainedSaysWhy) {
  ferry::v1::ManifestWorkload w = Workload(std::string(kApp) + ":1.0.0");
  RepositoryTags down;
  down.status = absl::UnavailableError("registry.test: 503 Service Unavailable");
  ferry::v1::ContainerExplanation e = ExplainContainer(w, w.containers(0), down, kNow, 0);
  EXPECT_EQ(e.error(), "registry.test/team/app: registry.test: 503 Service Unavailable");
  EXPECT_EQ(e.next(), "nothing: " + e.error());
  EXPECT_EQ(e.tags_size(), 0);

  RepositoryTags stale = Listed({Tag("1.0.0", absl::Hours(2)), Tag("1.1.0", absl::Hours(1))});
  stale.tags.set_fresh(false);
  stale.tags.set_last_error("registry.test: 401 Unauthorized");
  e = ExplainContainer(w, w.containers(0), stale, kNow, 0);
  EXPECT_EQ(e.next(),
            "release 1.1.0 at automation's next pass (the tags may be out of date: the last scan "
            "of registry.test/team/app failed: registry.test: 401 Unauthorized)");
  EXPECT_EQ(e.tags_size(), 2);

  RepositoryTags some = Listed({Tag("1.0.0", absl::Hours(1))});
  (*w.mutable_policy()->mutable_tag_filters())["app"] = "semvr:1";
  e = ExplainContainer(w, w.containers(0), some, kNow, 0);
  EXPECT_EQ(e.tag_filter(), "semvr:1");
  EXPECT_THAT(e.error(), HasSubstr("unknown filter kind"));

  w.mutable_policy()->clear_tag_filters();
  w.mutable_policy()->set_min_age_all("soon");
  e = ExplainContainer(w, w.containers(0), some, kNow, 0);
  EXPECT_THAT(e.error(), HasSubstr("ferry.dev/min-age"));

  w.mutable_policy()->clear_min_age_all();
  w.mutable_containers(0)->set_image("Not An Image");
  e = ExplainContainer(w, w.containers(0), some, kNow, 0);
  EXPECT_EQ(e.error(), "'Not An Image' is not an image reference");
}

TEST(TagExplanationTest, RequestsAreCheckedAndUnknownNamesAreNotFound) {
  ferry::v1::ExplainTagsRequest request;
  EXPECT_THAT(ValidateExplainTagsRequest(request), StatusIs(absl::StatusCode::kInvalidArgument));
  request.set_workload("default/app");
  EXPECT_THAT(ValidateExplainTagsRequest(request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("workload: ")));
  request.set_workload("default:deployment/app");
  FERRY_EXPECT_OK(ValidateExplainTagsRequest(request));
  request.set_container("a\nb");
  EXPECT_THAT(ValidateExplainTagsRequest(request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("container")));
  request.set_container("app");
  request.set_limit(1001);
  EXPECT_THAT(ValidateExplainTagsRequest(request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
  request.set_limit(-1);
  EXPECT_THAT(ValidateExplainTagsRequest(request), StatusIs(absl::StatusCode::kInvalidArgument));
  request.set_limit(1000);
  FERRY_EXPECT_OK(ValidateExplainTagsRequest(request));

  ferry::v1::ListManifestWorkloadsResponse in_git;
  in_git.set_revision(std::string(40, 'a'));
  ferry::v1::ManifestWorkload w = Workload(std::string(kApp) + ":1.0.0");
  ferry::v1::Container* sidecar = w.add_containers();
  sidecar->set_name("proxy");
  sidecar->set_image("registry.test/tools/proxy:v1");
  *in_git.add_workloads() = w;
  std::map<std::string, RepositoryTags> repos = {
      {kApp, Listed({Tag("1.0.0", absl::Hours(2)), Tag("1.1.0", absl::Hours(1))})},
      {"registry.test/tools/proxy", Listed({Tag("v1", absl::Hours(1))})}};
  std::vector<std::string> asked;
  const TagLookup lookup = [&](const std::string& r) -> const RepositoryTags& {
    asked.push_back(r);
    return repos[r];
  };
  request.set_container("");
  request.set_limit(0);
  absl::StatusOr<ferry::v1::ExplainTagsResponse> all = ExplainTagsOf(request, in_git, lookup, kNow);
  FERRY_ASSERT_OK(all.status());
  EXPECT_EQ(all->workload(), "default:deployment/app");
  EXPECT_EQ(all->automation_blocked(), "");
  ASSERT_EQ(all->containers_size(), 2);
  EXPECT_EQ(all->containers(0).next(), "release 1.1.0 at automation's next pass");
  EXPECT_EQ(all->containers(1).next(), "nothing: proxy runs the best eligible tag");

  asked.clear();
  request.set_container("proxy");
  absl::StatusOr<ferry::v1::ExplainTagsResponse> one = ExplainTagsOf(request, in_git, lookup, kNow);
  FERRY_ASSERT_OK(one.status());
  ASSERT_EQ(one->containers_size(), 1);
  EXPECT_EQ(one->containers(0).container(), "proxy");
  EXPECT_THAT(asked, ElementsAre("registry.test/tools/proxy")) << "only the repository asked for";

  request.set_container("sidecar");
  EXPECT_THAT(ExplainTagsOf(request, in_git, lookup, kNow),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("has no container sidecar (its containers: app, proxy)")));
  request.set_workload("default:deployment/other");
  EXPECT_THAT(ExplainTagsOf(request, in_git, lookup, kNow),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("workload default:deployment/other is not in the repository")));
  // A file that failed to load may be why: said.
  in_git.add_load_errors("apps/other.yaml:3:1: mapping values are not allowed here");
  EXPECT_THAT(ExplainTagsOf(request, in_git, lookup, kNow),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("(1 file(s) failed to load, the first: apps/other.yaml:3:1")));
}

// The explanation's CHOSEN tag is the one automation releases (PlanAutomation over the same
// workloads, tags and time), and there is none exactly when automation releases nothing.
TEST(TagExplanationTest, TheChosenTagIsTheTagAutomationReleases) {
  struct Case {
    std::string name, running, filter, min_age, rejected;
    absl::Time at;
    std::string want;  // the tag both pick ("" none)
  };
  const std::vector<Case> cases = {
      {"semver moves up", "1.0.0", "semver:<2.0", "", "", kNow, "1.3.0"},
      {"semver soaking", "1.0.0", "semver:<2.0", "2h", "", kNow, "1.2.0"},
      {"semver soaked", "1.0.0", "semver:<2.0", "2h", "", kNow + absl::Hours(3), "1.3.0"},
      {"semver rejected", "1.0.0", "semver:<2.0", "", "1.3.0=job-1,1.2.0=job-2", kNow, ""},
      {"semver at the top", "1.3.0", "semver:<2.0", "", "", kNow, ""},
      {"glob newest", "main-a", "glob:main-*", "", "", kNow, "main-b"},
      {"glob soaking", "main-a", "glob:main-*", "90m", "", kNow, ""},
      {"glob running gone", "main-z", "glob:main-*", "", "", kNow, "main-b"},
      {"any tag", "1.0.0", "", "", "", kNow, "main-b"},
      {"numbers", "1.0.0", "numerical:^(\\d+)\\.", "", "", kNow, "2.0.0"},
      {"nothing passes", "1.0.0", "glob:none-*", "", "", kNow, ""},
  };
  RepositoryTags tags = Listed({Tag("1.0.0", absl::Hours(100)), Tag("1.2.0", absl::Hours(10)),
                                Tag("1.3.0", absl::Hours(1)), Tag("2.0.0", absl::Hours(30)),
                                Tag("main-a", absl::Hours(5)), Tag("main-b", absl::Hours(1)),
                                Tag("main-c", -absl::Hours(1)), Tag("latest", absl::Hours(1))});
  const TagLookup lookup = [&](const std::string&) -> const RepositoryTags& { return tags; };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ferry::v1::ManifestWorkload w = Workload(absl::StrCat(kApp, ":", c.running));
    ferry::v1::Policy& p = *w.mutable_policy();
    if (!c.filter.empty()) (*p.mutable_tag_filters())["app"] = c.filter;
    p.set_min_age_all(c.min_age);
    if (!c.rejected.empty()) (*p.mutable_rejected())["app"] = c.rejected;
    const ferry::v1::ContainerExplanation e = ExplainContainer(w, w.containers(0), tags, c.at, 0);
    std::string chosen;
    for (const ferry::v1::TagExplanation& t : e.tags()) {
      if (t.verdict() == ferry::v1::TAG_VERDICT_CHOSEN) chosen = t.tag();
    }
    std::string released;
    for (const AutomationCandidate& a : PlanAutomation({w}, lookup, c.at)) {
      if (!a.to_image.empty()) released = a.to_image.substr(a.to_image.rfind(':') + 1);
    }
    EXPECT_EQ(chosen, released) << e.ShortDebugString();
    EXPECT_EQ(chosen, c.want);
    EXPECT_EQ(absl::StartsWith(e.next(), "release " + chosen + " "), !chosen.empty()) << e.next();
  }
}

}  // namespace
}  // namespace ferry::api
