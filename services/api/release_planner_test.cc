#include "services/api/release_planner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_id_test_cases.h"
#include "lib/names/names.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED;
using ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED;
using ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS;
using ::testing::_;
using ::testing::Eq;

constexpr char kApp[] = "registry.test/team/app";
constexpr char kProxy[] = "registry.test/tools/proxy";
constexpr char kWeb[] = "registry.test/team/web";

ferry::v1::ManifestWorkload Workload(const std::string& id,
                                     std::vector<std::pair<std::string, std::string>> containers) {
  ferry::v1::ManifestWorkload w;
  w.set_id(id);
  for (const auto& [name, image] : containers) {
    ferry::v1::Container* c = w.add_containers();
    c->set_name(name);
    c->set_image(image);
  }
  return w;
}

ferry::v1::TagInfo Tag(const std::string& name, int64_t created_seconds) {
  ferry::v1::TagInfo t;
  t.set_tag(name);
  if (created_seconds > 0) {
    *t.mutable_created() = runtime::ToProtoTimestamp(absl::FromUnixSeconds(created_seconds));
  } else {
    t.set_incomplete_reason("config blob has no creation time");
  }
  return t;
}

// The repository contents every test plans against: the scanner's tags, and which
// repositories fail.
class PlannerTest : public ::testing::Test {
 protected:
  PlannerTest() {
    tags_[kApp] = {Tag("1.0.0", 100), Tag("1.1.0", 200), Tag("2.0.0", 300), Tag("master-abc", 400),
                   Tag("latest", 500)};
    tags_[kProxy] = {Tag("v1", 100), Tag("v2", 200)};
    broken_[kWeb] = absl::UnavailableError("registry.test: 503 Service Unavailable");

    auto app = Workload("default:deployment/app", {{"app", std::string(kApp) + ":1.0.0"},
                                                   {"proxy", std::string(kProxy) + ":v1"}});
    (*app.mutable_policy()->mutable_tag_filters())["app"] = "semver:~1";
    git_.push_back(app);
    auto locked = Workload("default:deployment/locked", {{"app", std::string(kApp) + ":1.0.0"}});
    locked.mutable_policy()->set_locked(true);
    git_.push_back(locked);
    auto ignored = Workload("default:deployment/ignored", {{"app", std::string(kApp) + ":1.0.0"}});
    ignored.mutable_policy()->set_ignore(ferry::v1::IGNORE_MODE_ALL);
    git_.push_back(ignored);
    auto sync_only =
        Workload("default:deployment/synconly", {{"app", std::string(kApp) + ":1.0.0"}});
    sync_only.mutable_policy()->set_ignore(ferry::v1::IGNORE_MODE_SYNC_ONLY);
    git_.push_back(sync_only);
    git_.push_back(Workload("default:deployment/web", {{"web", std::string(kWeb) + ":1"}}));
    git_.push_back(Workload("default:deployment/pending", {{"app", std::string(kApp) + ":1.0.0"}}));
    for (const auto& w : git_) {
      if (w.id() != "default:deployment/pending") running_[w.id()] = true;
    }
  }

  TagLookup Lookup() {
    return [this](const std::string& repository) -> const RepositoryTags& {
      lookups_.push_back(repository);
      RepositoryTags& out = answers_[repository];
      if (broken_.count(repository)) {
        out.status = broken_[repository];
      } else if (!tags_.count(repository)) {
        out.status = absl::NotFoundError("repository not found");
      } else {
        out.tags.clear_tags();
        for (const auto& t : tags_[repository]) *out.tags.add_tags() = t;
      }
      return out;
    };
  }

  ReleasePlan Plan(const ferry::v1::ReleaseSpec& spec) {
    FERRY_EXPECT_OK(ValidateReleaseSpec(spec));
    return PlanRelease(spec, git_, running_, Lookup(), now_);
  }

  // "id status reason [container:from->to,...]" per result, for compact expectations.
  static std::map<std::string, std::string> Table(const ReleasePlan& plan) {
    std::map<std::string, std::string> out;
    for (const auto& r : plan.results) {
      std::vector<std::string> updates;
      for (const auto& u : r.updates()) {
        updates.push_back(u.container() + ":" +
                          u.from_image().substr(u.from_image().rfind(':') + 1) + "->" +
                          u.to_image().substr(u.to_image().rfind(':') + 1));
      }
      std::string status = r.status() == WORKLOAD_RESULT_STATUS_SUCCESS   ? "success"
                           : r.status() == WORKLOAD_RESULT_STATUS_SKIPPED ? "skipped"
                           : r.status() == WORKLOAD_RESULT_STATUS_IGNORED ? "ignored"
                                                                          : "other";
      out[r.workload()] =
          status + " " + r.reason() + (updates.empty() ? "" : " ") + absl::StrJoin(updates, ",");
    }
    return out;
  }

  static ferry::v1::ReleaseSpec Spec(const std::string& image, std::vector<std::string> workloads) {
    ferry::v1::ReleaseSpec spec;
    if (image.empty())
      spec.set_all_latest(true);
    else
      spec.set_image(image);
    if (workloads.empty()) spec.set_all_workloads(true);
    for (const auto& w : workloads) spec.add_workloads(w);
    return spec;
  }

  std::vector<ferry::v1::ManifestWorkload> git_;
  std::map<std::string, bool> running_;
  std::map<std::string, std::vector<ferry::v1::TagInfo>> tags_;
  std::map<std::string, absl::Status> broken_;
  std::map<std::string, RepositoryTags> answers_;
  std::vector<std::string> lookups_;
  absl::Time now_ = absl::FromUnixSeconds(1000);  // after every Tag's creation
};

TEST(AutomationAppliesTest, AutomatedNotLockedNotIgnored) {
  struct Case {
    bool automated, locked;
    ferry::v1::IgnoreMode ignore;
    bool applies;
  };
  const Case cases[] = {
      {true, false, ferry::v1::IGNORE_MODE_UNSPECIFIED, true},
      {true, false, ferry::v1::IGNORE_MODE_SYNC_ONLY, true},  // only the sync skips it
      {false, false, ferry::v1::IGNORE_MODE_UNSPECIFIED, false},
      {true, true, ferry::v1::IGNORE_MODE_UNSPECIFIED, false},
      {true, false, ferry::v1::IGNORE_MODE_ALL, false},
  };
  for (const Case& c : cases) {
    ferry::v1::Policy policy;
    policy.set_automated(c.automated);
    policy.set_locked(c.locked);
    policy.set_ignore(c.ignore);
    EXPECT_EQ(AutomationApplies(policy), c.applies)
        << c.automated << " " << c.locked << " " << c.ignore;
  }
}

TEST_F(PlannerTest, ExplicitImageToAllWorkloads) {
  ReleasePlan plan = Plan(Spec(std::string(kApp) + ":1.1.0", {}));
  EXPECT_THAT(
      Table(plan),
      ::testing::ElementsAre(
          ::testing::Pair("default:deployment/app", "success  app:1.0.0->1.1.0"),
          ::testing::Pair("default:deployment/ignored", "skipped ignore"),
          ::testing::Pair("default:deployment/locked", "skipped locked"),
          ::testing::Pair("default:deployment/pending", "skipped not accessible in cluster"),
          ::testing::Pair("default:deployment/synconly", "success  app:1.0.0->1.1.0"),
          ::testing::Pair("default:deployment/web", "ignored a different image")));
  EXPECT_EQ(plan.Count(WORKLOAD_RESULT_STATUS_SUCCESS), 2);
  std::vector<ferry::v1::Edit> edits = plan.Edits();
  ASSERT_EQ(edits.size(), 2u);
  EXPECT_EQ(edits[0].workload(), "default:deployment/app");
  EXPECT_EQ(edits[0].image().container(), "app");
  EXPECT_EQ(edits[0].image().from_image(), std::string(kApp) + ":1.0.0");
  EXPECT_EQ(edits[0].image().to_image(), std::string(kApp) + ":1.1.0");
  EXPECT_TRUE(lookups_.empty()) << "an explicit image needs no tag lists";
}

TEST_F(PlannerTest, ForceReleasesLockedWorkloadsAndIgnoresFilters) {
  ferry::v1::ReleaseSpec spec = Spec(std::string(kApp) + ":2.0.0", {});
  // Unforced: 2.0.0 does not pass app's semver:~1, locked stays locked.
  auto table = Table(Plan(spec));
  EXPECT_EQ(table["default:deployment/app"],
            "skipped cannot find one or more images: tag 2.0.0 does not pass the tag filter "
            "semver:~1 of container app (force releases it anyway)");
  EXPECT_EQ(table["default:deployment/locked"], "skipped locked");
  spec.set_force(true);
  table = Table(Plan(spec));
  EXPECT_EQ(table["default:deployment/app"], "success  app:1.0.0->2.0.0");
  EXPECT_EQ(table["default:deployment/locked"], "success  app:1.0.0->2.0.0");
  EXPECT_EQ(table["default:deployment/ignored"], "skipped ignore")
      << "force does not override ignore";
}

TEST_F(PlannerTest, UpToDateIsSkipped) {
  auto table = Table(Plan(Spec(std::string(kApp) + ":1.0.0", {"default:deployment/app"})));
  EXPECT_EQ(table["default:deployment/app"], "skipped image up to date");
}

TEST_F(PlannerTest, NamedWorkloadsExcludesAndMissingOnes) {
  ferry::v1::ReleaseSpec spec =
      Spec(std::string(kApp) + ":1.1.0",
           {"default:deployment/app", "default:deployment/synconly", "default:deployment/ghost"});
  spec.add_excludes("default:deployment/synconly");
  EXPECT_THAT(Table(Plan(spec)),
              ::testing::ElementsAre(
                  ::testing::Pair("default:deployment/app", "success  app:1.0.0->1.1.0"),
                  ::testing::Pair("default:deployment/ghost", "skipped not found in repository"),
                  ::testing::Pair("default:deployment/ignored", "ignored not included"),
                  ::testing::Pair("default:deployment/locked", "ignored not included"),
                  ::testing::Pair("default:deployment/pending", "ignored not included"),
                  ::testing::Pair("default:deployment/synconly", "ignored excluded"),
                  ::testing::Pair("default:deployment/web", "ignored not included")));
}

TEST_F(PlannerTest, AllLatestUsesEachContainersFilterAndOrdering) {
  ReleasePlan plan = Plan(Spec(
      "", {"default:deployment/app", "default:deployment/web", "default:deployment/synconly"}));
  auto table = Table(plan);
  // app: semver:~1 -> 1.1.0 (not 2.0.0, not master-abc, not latest); proxy: newest by time.
  EXPECT_EQ(table["default:deployment/app"], "success  app:1.0.0->1.1.0,proxy:v1->v2");
  // No filter: the newest tag by creation time, never "latest".
  EXPECT_EQ(table["default:deployment/synconly"], "success  app:1.0.0->master-abc");
  EXPECT_EQ(table["default:deployment/web"],
            "skipped cannot find one or more images: registry.test/team/web: registry.test: 503 "
            "Service Unavailable");
  // One listing per repository serves every filter: ranking is the planner's, not the
  // scanner's.
  EXPECT_THAT(lookups_, ::testing::IsSupersetOf({std::string(kApp), std::string(kProxy)}));
}

// The tag a release picks is the tag automation picks (lib/policy's Choose): numbers and text
// in a capture group, versions with a "v", and by creation time only tags that have one.
TEST_F(PlannerTest, AllLatestPicksWhatAutomationPicks) {
  tags_[kApp] = {Tag("build-12", 100), Tag("build-2", 200), Tag("build-1", 300),
                 Tag("v1.9.0", 400),   Tag("v1.10.0", 100), Tag("v2.0.0", 100),
                 Tag("main-a", 100),   Tag("main-b", 200),  Tag("main-c", 0)};
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"numerical:^build-(\\d+)$", "build-12"},
      {"alphabetical:^build-(\\d+)$", "build-2"},
      {"semver:~1", "v1.10.0"},
      {"glob:main-*", "main-b"},
  };
  for (const auto& [filter, want] : cases) {
    git_ = {Workload("default:deployment/app", {{"app", std::string(kApp) + ":build-1"}})};
    git_[0].mutable_policy()->set_tag_all(filter);
    git_[0].mutable_policy()->set_automated(true);
    EXPECT_EQ(Table(Plan(Spec("", {})))["default:deployment/app"], "success  app:build-1->" + want)
        << filter;
    std::vector<AutomationCandidate> automated = PlanAutomation(git_, Lookup(), now_);
    ASSERT_EQ(automated.size(), 1u) << filter;
    EXPECT_EQ(automated[0].to_image, std::string(kApp) + ":" + want) << filter;
  }
}

TEST_F(PlannerTest, AllLatestPassesOverTagsWithoutCreationTime) {
  tags_[kApp] = {Tag("main-a", 0), Tag("main-b", 0)};
  git_ = {Workload("default:deployment/app", {{"app", std::string(kApp) + ":1.0.0"}})};
  git_[0].mutable_policy()->set_tag_all("glob:main-*");
  EXPECT_EQ(Table(Plan(Spec("", {})))["default:deployment/app"],
            "skipped cannot find one or more images: no tag of registry.test/team/app passes the "
            "tag filter glob:main-* of container app (2 tag(s) of registry.test/team/app passed "
            "over: metadata incomplete (no creation time))");
}

TEST_F(PlannerTest, AllLatestUpToDateAndNoCandidate) {
  git_[0].mutable_containers(0)->set_image(std::string(kApp) + ":1.1.0");
  git_[0].mutable_containers(1)->set_image(std::string(kProxy) + ":v2");
  EXPECT_EQ(Table(Plan(Spec("", {"default:deployment/app"})))["default:deployment/app"],
            "skipped image up to date");
  (*git_[0].mutable_policy()->mutable_tag_filters())["proxy"] = "regexp:^release-";
  EXPECT_EQ(Table(Plan(Spec("", {"default:deployment/app"})))["default:deployment/app"],
            "skipped cannot find one or more images: no tag of registry.test/tools/proxy passes "
            "the tag filter regexp:^release- of container proxy");
}

TEST_F(PlannerTest, ChosenContainersOnly) {
  ferry::v1::ReleaseSpec spec = Spec("", {"default:deployment/app", "default:deployment/synconly"});
  spec.add_containers("default:deployment/app/proxy");
  auto table = Table(Plan(spec));
  EXPECT_EQ(table["default:deployment/app"], "success  proxy:v1->v2");
  EXPECT_EQ(table["default:deployment/synconly"], "ignored not included");
  spec = Spec(std::string(kApp) + ":1.1.0", {"default:deployment/app"});
  spec.add_containers("default:deployment/app/proxy");
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "ignored does not use image");
}

TEST_F(PlannerTest, ManifestSpellingIsKept) {
  git_ = {Workload("default:deployment/hub", {{"nginx", "nginx:1.25"}})};
  running_ = {{"default:deployment/hub", true}};
  ReleasePlan plan = Plan(Spec("docker.io/library/nginx:1.26", {}));
  ASSERT_EQ(plan.Edits().size(), 1u);
  EXPECT_EQ(plan.Edits()[0].image().to_image(), "nginx:1.26");
}

TEST(ValidateReleaseSpecTest, SaysWhatToFix) {
  struct Case {
    std::string name;
    std::function<void(ferry::v1::ReleaseSpec&)> change;
    std::string message_part;
  };
  std::vector<Case> cases = {
      {"no workloads", [](auto& s) { s.clear_workloads(); }, "no workloads"},
      {"both", [](auto& s) { s.set_all_workloads(true); }, "not both"},
      {"no image", [](auto& s) { s.clear_image(); }, "no image"},
      {"image and latest", [](auto& s) { s.set_all_latest(true); }, "not both"},
      {"bad id", [](auto& s) { s.add_workloads("default/app"); }, "is not a workload id"},
      {"upper-case kind", [](auto& s) { s.add_workloads("default:Deployment/app"); }, "lower-case"},
      {"bad exclude", [](auto& s) { s.add_excludes("app"); }, "excludes"},
      {"no tag", [](auto& s) { s.set_image("registry.test/team/app"); }, "has no tag"},
      {"digest",
       [](auto& s) { s.set_image("registry.test/team/app:1@sha256:" + std::string(64, 'a')); },
       "has a digest"},
      {"bad image", [](auto& s) { s.set_image("Registry.test/UPPER:1"); }, "image 'Registry"},
      {"bad container", [](auto& s) { s.add_containers("default:deployment/app"); },
       "namespace:kind/name/container"},
      {"timeout", [](auto& s) { s.set_rollout_timeout_seconds(-1); }, "rollout_timeout"},
  };
  for (const Case& c : cases) {
    ferry::v1::ReleaseSpec spec;
    spec.add_workloads("default:deployment/app");
    spec.set_image("registry.test/team/app:1.1.0");
    FERRY_ASSERT_OK(ValidateReleaseSpec(spec));
    c.change(spec);
    absl::Status s = ValidateReleaseSpec(spec);
    EXPECT_THAT(s,
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr(c.message_part)))
        << c.name;
  }
}

// The ids every caller takes or refuses alike (lib/manifest/workload_id_test_cases.h), with
// WorkloadId's message after the field that holds them.
TEST(ValidateReleaseSpecTest, WorkloadIdsAsEveryServiceTakesThem) {
  for (const auto& c : manifest::testing::kWorkloadIdCases) {
    const std::string id(c.text);
    const absl::Status parsed = manifest::WorkloadId::Parse(id).status();
    ASSERT_EQ(parsed.ok(), c.problem.empty()) << id;
    for (const char* field : {"workloads", "excludes", "containers"}) {
      ferry::v1::ReleaseSpec spec;
      spec.set_image("registry.test/team/app:1.1.0");
      spec.add_workloads("default:deployment/app");
      if (std::string(field) == "workloads") spec.set_workloads(0, id);
      if (std::string(field) == "excludes") spec.add_excludes(id);
      if (std::string(field) == "containers") spec.add_containers(id + "/app");
      const absl::Status s = ValidateReleaseSpec(spec);
      if (c.problem.empty()) {
        FERRY_EXPECT_OK(s) << field << " " << id;
        continue;
      }
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument)) << field << " " << id;
      const std::string prefix = std::string(field) == "containers"
                                     ? absl::StrCat("containers: \"", names::Escape(id + "/app"),
                                                    "\" is not namespace:kind/name/container: ")
                                     : absl::StrCat(field, ": ");
      EXPECT_EQ(s.message(), prefix + std::string(parsed.message()));
    }
  }
}

TEST(ValidatePolicyChangesTest, WorkloadIdsAsEveryServiceTakesThem) {
  for (const auto& c : manifest::testing::kWorkloadIdCases) {
    const std::string id(c.text);
    google::protobuf::RepeatedPtrField<ferry::v1::WorkloadPolicyChanges> changes;
    ferry::v1::WorkloadPolicyChanges* w = changes.Add();
    w->set_workload(id);
    w->add_changes()->set_automate(true);
    const absl::Status s = ValidatePolicyChanges(changes);
    if (c.problem.empty()) {
      FERRY_EXPECT_OK(s) << id;
    } else {
      EXPECT_EQ(s, manifest::WorkloadId::Parse(id).status()) << id;
    }
  }
}

// Automation: which containers move, and why the others do not.
class AutomationPlanTest : public PlannerTest {
 protected:
  std::map<std::string, std::string> Automate() {
    std::map<std::string, std::string> out;
    for (const AutomationCandidate& a : PlanAutomation(git_, Lookup(), now_)) {
      out[a.workload + "/" + a.container] =
          (a.to_image.empty() ? "-" : a.to_image.substr(a.to_image.rfind(':') + 1)) +
          (a.note.empty() ? "" : " (" + a.note + ")");
    }
    return out;
  }
};

TEST_F(AutomationPlanTest, GlobSemverRegexpFilters) {
  for (auto& w : git_) w.mutable_policy()->set_automated(true);
  (*git_[3].mutable_policy()->mutable_tag_filters())["app"] = "regexp:^1\\.";
  git_[5].mutable_policy()->set_tag_all("glob:1.*");
  EXPECT_THAT(
      Automate(),
      ::testing::ElementsAre(
          ::testing::Pair("default:deployment/app/app", "1.1.0"),
          ::testing::Pair("default:deployment/app/proxy", "v2"),
          ::testing::Pair("default:deployment/pending/app", "1.1.0"),
          ::testing::Pair("default:deployment/synconly/app", "1.1.0"),
          ::testing::Pair("default:deployment/web/web",
                          "- (registry.test/team/web: registry.test: 503 Service Unavailable)")));
  // locked and ignored are never touched even though automated.
}

TEST_F(AutomationPlanTest, NeverMovesToALowerRankedTag) {
  git_ = {Workload("default:deployment/app", {{"app", std::string(kApp) + ":1.1.0"}})};
  git_[0].mutable_policy()->set_automated(true);
  git_[0].mutable_policy()->set_tag_all("semver:>=1");
  EXPECT_EQ(Automate()["default:deployment/app/app"], "2.0.0");
  git_[0].mutable_containers(0)->set_image(std::string(kApp) + ":2.0.0");
  EXPECT_TRUE(Automate().empty()) << "at the top of its ordering: nothing to do";
  // By creation time: the running tag is newer than every other candidate.
  git_[0].mutable_policy()->set_tag_all("glob:*");
  git_[0].mutable_containers(0)->set_image(std::string(kApp) + ":master-abc");
  EXPECT_TRUE(Automate().empty());
}

TEST_F(AutomationPlanTest, IncompleteMetadataIsPassedOverAndSaid) {
  tags_[kApp].push_back(Tag("1.9.9", 0));  // no creation time
  git_ = {Workload("default:deployment/app", {{"app", std::string(kApp) + ":1.0.0"}})};
  git_[0].mutable_policy()->set_automated(true);
  git_[0].mutable_policy()->set_tag_all("glob:1.*");
  EXPECT_EQ(Automate()["default:deployment/app/app"],
            "1.1.0 (1 tag(s) of registry.test/team/app passed over: metadata incomplete (no "
            "creation time))");
  // semver ranks without creation times: the tag is a fine candidate.
  git_[0].mutable_policy()->set_tag_all("semver:~1");
  EXPECT_EQ(Automate()["default:deployment/app/app"], "1.9.9");
}

TEST(AutomationCommitMessageTest, OneOrMany) {
  AutomationCandidate a{"ns:deployment/a", "c", "r/a:1", "r/a:2", "", 0};
  AutomationCandidate b{"ns:deployment/b", "c", "r/b:1", "r/b:2", "", 0};
  AutomationCandidate a2{"ns:deployment/a2", "c", "r/a:1", "r/a:2", "", 0};
  EXPECT_EQ(AutomationCommitMessage({a, a2}), "Auto-release r/a:2");
  EXPECT_EQ(AutomationCommitMessage({a, b}),
            "Auto-release multiple (2) images\n\n - r/a:2\n - r/b:2");
}

TEST(ListWithinTest, ListsWhatFitsAndCountsTheRest) {
  EXPECT_EQ(ListWithin({"a", "b"}, " - "), " - a\n - b");
  EXPECT_EQ(ListWithin({}, " - "), "");
  EXPECT_EQ(ListWithin({"aaaa", "bbbb", "cccc"}, "- ", 13),
            "- aaaa\n- bbbb\n- and 1 more, listed in the job's record");
  // A release of 5,000 workloads stays far under the commit message limit.
  std::vector<std::string> many(5000, std::string(200, 'x'));
  const std::string listed = ListWithin(many, " - ");
  EXPECT_LT(listed.size(), kCommitListBytes + 100);
  EXPECT_TRUE(absl::EndsWith(listed, "more, listed in the job's record")) << listed.substr(0, 100);
}

}  // namespace
}  // namespace ferry::api

namespace ferry::api {
namespace {

// Soak times and rejected tags (issue 19): automation takes the best tag that is old enough
// and not rejected, says which better one waits and until when, and skips a workload whose
// policy does not parse.
TEST_F(AutomationPlanTest, SoakTimesAndRejectionsHoldTagsBack) {
  ferry::v1::TagInfo unseen = Tag("1.3.0", 0);  // no creation time: its first sighting counts
  *unseen.mutable_first_seen() = runtime::ToProtoTimestamp(absl::FromUnixSeconds(950));
  struct Case {
    std::string name, min_age, rejected;
    int64_t now;
    std::vector<std::string> errors;
    std::string want;
    int64_t wake_at;  // 0: none
  };
  const Case cases[] = {
      {"no holds", "", "", 1000, {}, "1.2.0", 0},
      {"the newest soaks",
       "5m",
       "",
       1000,
       {},
       "1.1.0 (1.2.0 is soaking until 1970-01-01T00:20:00Z (min-age 5m))",
       1200},
      {"and once aged moves", "5m", "", 1200, {}, "1.2.0", 0},
      {"every better tag soaks",
       "1h",
       "",
       1000,
       {},
       "- (1.2.0 is soaking until 1970-01-01T01:15:00Z (min-age 1h) (1 more held back))",
       3800},
      {"rejected",
       "",
       "1.2.0=job-9",
       1000,
       {},
       "1.1.0 (1.2.0 was rejected by job job-9 (an automatic revert))",
       0},
      {"rejected and soaking",
       "1h",
       "1.1.0=job-8,1.2.0=job-9",
       1000,
       {},
       "- (1.2.0 was rejected by job job-9 (an automatic revert) (1 more held back))",
       0},
      {"a bad soak time", "2x", "", 1000, {}, "- (policy error: ferry.dev/min-age: ", 0},
      {"policy errors stop the workload",
       "5m",
       "",
       1000,
       {"ferry.dev/rollback: \"maybe\" is not auto or off"},
       "- (policy error: ferry.dev/rollback: \"maybe\" is not auto or off)",
       0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    tags_[kApp] = {Tag("1.0.0", 100), Tag("1.1.0", 200), Tag("1.2.0", 900), Tag("2.0.0", 300)};
    git_ = {Workload("default:deployment/app", {{"app", std::string(kApp) + ":1.0.0"}})};
    ferry::v1::Policy& p = *git_[0].mutable_policy();
    p.set_automated(true);
    p.set_tag_all("semver:~1");
    p.set_min_age_all(c.min_age);
    if (!c.rejected.empty()) (*p.mutable_rejected())["app"] = c.rejected;
    for (const std::string& e : c.errors) p.add_errors(e);
    now_ = absl::FromUnixSeconds(c.now);
    std::vector<AutomationCandidate> planned = PlanAutomation(git_, Lookup(), now_);
    ASSERT_EQ(planned.size(), 1u);
    const AutomationCandidate& a = planned[0];
    const std::string got =
        (a.to_image.empty() ? "-" : a.to_image.substr(a.to_image.rfind(':') + 1)) +
        (a.note.empty() ? "" : " (" + a.note + ")");
    EXPECT_THAT(got, ::testing::StartsWith(c.want));
    EXPECT_EQ(a.container, c.errors.empty() ? "app" : "");
    EXPECT_EQ(a.wake_at,
              c.wake_at == 0 ? absl::InfiniteFuture() : absl::FromUnixSeconds(c.wake_at));
  }

  // A tag without creation time soaks from when the scanner first saw it.
  tags_[kApp] = {Tag("1.0.0", 100), Tag("1.1.0", 200), unseen};
  git_[0].mutable_policy()->clear_errors();
  git_[0].mutable_policy()->set_min_age_all("5m");
  now_ = absl::FromUnixSeconds(1000);
  std::vector<AutomationCandidate> planned = PlanAutomation(git_, Lookup(), now_);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].to_image, std::string(kApp) + ":1.1.0");
  EXPECT_EQ(planned[0].note, "1.3.0 is soaking until 1970-01-01T00:20:50Z (min-age 5m)");
  EXPECT_TRUE(planned[0].held);
  EXPECT_EQ(planned[0].wake_at, absl::FromUnixSeconds(1250));
  // A container's own soak time wins over the workload's.
  (*git_[0].mutable_policy()->mutable_min_ages())["app"] = "1m";
  planned = PlanAutomation(git_, Lookup(), now_);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].to_image, std::string(kApp) + ":1.1.0") << "1.3.0 soaks until 1010";
  now_ = absl::FromUnixSeconds(1010);
  planned = PlanAutomation(git_, Lookup(), now_);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].to_image, std::string(kApp) + ":1.3.0");
  EXPECT_FALSE(planned[0].held);
}

// A release of every container's latest tag always passes over rejected tags (a tag an
// automatic revert took back is nobody's latest) and soak times only when asked
// (respect_min_age); an explicit image ignores both.
TEST_F(PlannerTest, AllLatestHonoursRejectedTagsAlwaysAndSoakTimesWhenAsked) {
  tags_[kApp] = {Tag("1.0.0", 100), Tag("1.1.0", 200), Tag("1.2.0", 300), Tag("1.3.0", 900)};
  git_ = {Workload("default:deployment/app", {{"app", std::string(kApp) + ":1.0.0"}})};
  git_[0].mutable_policy()->set_tag_all("semver:~1");
  git_[0].mutable_policy()->set_min_age_all("5m");
  (*git_[0].mutable_policy()->mutable_rejected())["app"] = "1.2.0=job-3";
  running_ = {{"default:deployment/app", true}};
  now_ = absl::FromUnixSeconds(1000);
  ferry::v1::ReleaseSpec spec = Spec("", {});
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "success  app:1.0.0->1.3.0")
      << "the newest tag, soaking but not rejected";
  (*git_[0].mutable_policy()->mutable_rejected())["app"] = "1.2.0=job-3,1.3.0";
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "success  app:1.0.0->1.1.0")
      << "1.3.0 and 1.2.0 are rejected, without respect_min_age too";
  (*git_[0].mutable_policy()->mutable_rejected())["app"] = "1.2.0=job-3";
  spec.set_respect_min_age(true);
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "success  app:1.0.0->1.1.0")
      << "1.3.0 soaks, 1.2.0 is rejected";
  now_ = absl::FromUnixSeconds(1200);
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "success  app:1.0.0->1.3.0");
  spec = Spec(std::string(kApp) + ":1.2.0", {});
  spec.set_respect_min_age(true);
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "success  app:1.0.0->1.2.0")
      << "an explicit image is what the person asked for";
  // A soak time that does not parse matters only when respected; rejected tags that do not
  // parse always.
  git_[0].mutable_policy()->set_min_age_all("soon");
  spec = Spec("", {});
  EXPECT_EQ(Table(Plan(spec))["default:deployment/app"], "success  app:1.0.0->1.3.0");
  spec.set_respect_min_age(true);
  EXPECT_THAT(Table(Plan(spec))["default:deployment/app"],
              ::testing::StartsWith("skipped cannot find one or more images: container app: "
                                    "policy error: ferry.dev/min-age: "));
  git_[0].mutable_policy()->set_min_age_all("");
  (*git_[0].mutable_policy()->mutable_rejected())["app"] = "no good";
  spec = Spec("", {});
  EXPECT_THAT(Table(Plan(spec))["default:deployment/app"],
              ::testing::StartsWith("skipped cannot find one or more images: container app: "
                                    "policy error: ferry.dev/rejected.app: "));
}

// A hold that does not parse is named as Policy::errors names it: by the key it was read
// from (fluxcd.io/...), else under ferry.dev/.
TEST(HoldsOfTest, ErrorsNameTheAnnotationAsWritten) {
  ferry::v1::Policy p;
  p.set_min_age_all("soon");
  (*p.mutable_min_ages())["web"] = "later";
  EXPECT_THAT(HoldsOf(p, "app"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          ::testing::StartsWith("ferry.dev/min-age: ")));
  p.add_errors("fluxcd.io/min-age.web: \"later\" is not a duration");
  p.add_errors("fluxcd.io/min-age: \"soon\" is not a duration");
  EXPECT_THAT(HoldsOf(p, "app"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          Eq("fluxcd.io/min-age: \"soon\" is not a duration")));
  EXPECT_THAT(HoldsOf(p, "web"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq("fluxcd.io/min-age.web: \"later\" is not a duration")));
  (*p.mutable_rejected())["web"] = "a b";
  EXPECT_THAT(RejectedOnlyOf(p, "web"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::StartsWith("ferry.dev/rejected.web: ")));
  FERRY_EXPECT_OK(RejectedOnlyOf(p, "app"));
}

// Rejected tags given in a policy change: each entry checked as it stands (a ',' or '=' in
// its job or tag would read back as other entries once written).
TEST(ValidatePolicyChangesTest, ARejectedTagIsOneEntry) {
  auto validate = [](const std::string& tag, const std::string& job) {
    google::protobuf::RepeatedPtrField<ferry::v1::WorkloadPolicyChanges> changes;
    ferry::v1::WorkloadPolicyChanges* w = changes.Add();
    w->set_workload("default:deployment/app");
    ferry::v1::RejectTag* r = w->add_changes()->mutable_reject_tag();
    r->set_container("app");
    r->set_tag(tag);
    r->set_job(job);
    return ValidatePolicyChanges(changes);
  };
  FERRY_EXPECT_OK(validate("1.2.3", "job-1"));
  FERRY_EXPECT_OK(validate("1.2.3", ""));
  for (const auto& [tag, job] : std::vector<std::pair<std::string, std::string>>{
           {"1.2.3", "j,1.2.4"}, {"1.2.3", "j=k"}, {"1.2.3,1.2.4", ""}, {"", "j"}}) {
    EXPECT_THAT(validate(tag, job), StatusIs(absl::StatusCode::kInvalidArgument,
                                             ::testing::HasSubstr("ferry.dev/rejected.app: ")))
        << tag << " / " << job;
  }
}

// The safe-automation changes: values checked, contradictions found.
TEST(ValidatePolicyChangesTest, SafeAutomationChanges) {
  auto validate = [](const std::function<void(ferry::v1::WorkloadPolicyChanges&)>& fill) {
    google::protobuf::RepeatedPtrField<ferry::v1::WorkloadPolicyChanges> changes;
    ferry::v1::WorkloadPolicyChanges* w = changes.Add();
    w->set_workload("default:deployment/app");
    fill(*w);
    return ValidatePolicyChanges(changes);
  };
  FERRY_EXPECT_OK(validate([](auto& w) {
    w.add_changes()->mutable_set_min_age()->set_duration("2h");
    w.add_changes()->set_set_rollback("auto");
    w.add_changes()->set_set_rollback_timeout("5m");
  }));
  EXPECT_THAT(validate([](auto& w) { w.add_changes()->mutable_set_min_age()->set_duration("x"); }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("default:deployment/app: ferry.dev/min-age: ")));
  EXPECT_THAT(
      validate([](auto& w) { w.add_changes()->set_set_rollback("maybe"); }),
      StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("ferry.dev/rollback: ")));
  EXPECT_THAT(validate([](auto& w) { w.add_changes()->set_set_rollback_timeout("0s"); }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("ferry.dev/rollback-timeout: ")));
  EXPECT_THAT(
      validate([](auto& w) {
        ferry::v1::MinAgeChange* m = w.add_changes()->mutable_set_min_age();
        m->set_container("web");
        m->set_duration("1h");
        w.add_changes()->set_remove_min_age("web");
      }),
      StatusIs(absl::StatusCode::kInvalidArgument,
               Eq("default:deployment/app: the min-age.web changes contradict each other")));
  EXPECT_THAT(validate([](auto& w) {
                w.add_changes()->set_set_rollback("auto");
                w.add_changes()->set_remove_rollback(true);
              }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("setting and removing rollback contradict")));
}

TEST(DescribeHoldTest, SaysWhyAndUntilWhen) {
  policy::Hold young{policy::Hold::Kind::kTooYoung, absl::FromUnixSeconds(1796140800), ""};
  EXPECT_EQ(DescribeHold("1.5.0", young, absl::Hours(2)),
            "1.5.0 is soaking until 2026-12-01T16:00:00Z (min-age 2h)");
  policy::Hold unknown{policy::Hold::Kind::kTooYoung, absl::InfiniteFuture(), ""};
  EXPECT_EQ(DescribeHold("1.5.0", unknown, absl::Minutes(90)),
            "1.5.0 is soaking: its age is unknown yet (min-age 1h30m)");
  policy::Hold rejected{policy::Hold::Kind::kRejected, absl::InfinitePast(), "job-1"};
  EXPECT_EQ(DescribeHold("1.5.0", rejected, absl::ZeroDuration()),
            "1.5.0 was rejected by job job-1 (an automatic revert)");
  EXPECT_EQ(DescribeHold("1.5.0", policy::Hold{}, absl::Hours(1)), "");
}

}  // namespace
}  // namespace ferry::api
