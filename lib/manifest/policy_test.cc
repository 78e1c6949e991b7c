#include "lib/manifest/policy.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::manifest {

std::ostream& operator<<(std::ostream& os, const AnnotationChange& c) {
  return os << c.key << "=" << (c.value ? *c.value : "<remove>");
}

namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

using Annotations = std::map<std::string, std::string>;
using Edits = std::vector<AnnotationChange>;

absl::StatusOr<Edits> Changes(const Annotations& annotations, const PolicyUpdate& update,
                              const std::vector<std::string>& containers = {"web"}) {
  return PolicyAnnotationChanges(annotations, containers, update);
}

TEST(ReadPoliciesTest, ReadsEveryPrefixWithPrecedence) {
  Policies p = ReadPolicies({{"fluxcd.io/automated", "true"},
                             {"flux.weave.works/locked", "true"},
                             {"flux.weave.works/locked_user", "alice"},
                             {"flux.weave.works/locked_msg", "incident 42"},
                             {"ferry.dev/ignore", "sync_only"},
                             {"fluxcd.io/tag.web", "glob:1.*"},
                             {"ferry.dev/tag.web", "semver:~2"},
                             {"filter.fluxcd.io/sidecar", "master-*"},
                             {"flux.weave.works/tag_all", "regexp:^v"},
                             {"unrelated.io/automated", "false"}});
  EXPECT_TRUE(p.automated);
  EXPECT_TRUE(p.locked);
  EXPECT_EQ(p.locked_user, "alice");
  EXPECT_EQ(p.locked_msg, "incident 42");
  EXPECT_EQ(p.ignore, IgnoreMode::kSyncOnly);
  EXPECT_EQ(p.tag_filters, (Annotations{{"web", "semver:~2"}, {"sidecar", "master-*"}}));
  EXPECT_EQ(p.tag_all, "regexp:^v");
  EXPECT_EQ(p.TagFilterFor("web"), "semver:~2");
  EXPECT_EQ(p.TagFilterFor("other"), "regexp:^v");
  EXPECT_FALSE(ReadPolicies({{"ferry.dev/automated", "false"}}).automated);
  EXPECT_EQ(ReadPolicies({{"fluxcd.io/ignore", "true"}}).ignore, IgnoreMode::kAll);
}

TEST(PolicyChangesTest, NewPoliciesUseTheManifestsPrefixOrFerryDev) {
  PolicyUpdate automate;
  automate.automated = true;
  EXPECT_EQ(*Changes({}, automate),
            (std::vector<AnnotationChange>{{"ferry.dev/automated", "true"}}));
  EXPECT_EQ(*Changes({{"fluxcd.io/tag.web", "glob:*"}}, automate),
            (std::vector<AnnotationChange>{{"fluxcd.io/automated", "true"}}));
  EXPECT_EQ(*Changes({{"flux.weave.works/automated", "false"}}, automate),
            (std::vector<AnnotationChange>{{"flux.weave.works/automated", "true"}}));
  // Already so: nothing to do.
  EXPECT_TRUE(Changes({{"ferry.dev/automated", "true"}}, automate)->empty());
}

TEST(PolicyChangesTest, LockAndUnlock) {
  PolicyUpdate lock;
  lock.locked = true;
  lock.locked_user = "bob";
  lock.locked_msg = "freeze";
  EXPECT_EQ(*Changes({{"fluxcd.io/automated", "true"}}, lock),
            (std::vector<AnnotationChange>{{"fluxcd.io/locked", "true"},
                                           {"fluxcd.io/locked_user", "bob"},
                                           {"fluxcd.io/locked_msg", "freeze"}}));
  PolicyUpdate unlock;
  unlock.locked = false;
  EXPECT_EQ(*Changes({{"fluxcd.io/locked", "true"},
                      {"fluxcd.io/locked_user", "bob"},
                      {"ferry.dev/locked", "true"}},
                     unlock),
            (std::vector<AnnotationChange>{{"ferry.dev/locked", std::nullopt},
                                           {"fluxcd.io/locked", std::nullopt},
                                           {"fluxcd.io/locked_user", std::nullopt}}));
}

TEST(PolicyChangesTest, TagFiltersAreValidatedNormalizedAndDeduplicated) {
  PolicyUpdate tag;
  tag.tag_filters["web"] = "1.*";
  EXPECT_EQ(
      *Changes({{"filter.fluxcd.io/web", "master-*"}, {"flux.weave.works/tag.web", "x"}}, tag),
      (std::vector<AnnotationChange>{{"filter.fluxcd.io/web", "glob:1.*"},
                                     {"flux.weave.works/tag.web", std::nullopt}}));
  PolicyUpdate bad;
  bad.tag_filters["web"] = "semver:>>1";
  auto status = Changes({}, bad).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("container web: invalid tag filter")));
  PolicyUpdate remove_all;
  remove_all.tag_all = std::optional<std::string>();
  remove_all.tag_filters["web"] = std::nullopt;
  EXPECT_EQ(
      *Changes({{"ferry.dev/tag_all", "glob:*"}, {"fluxcd.io/tag.web", "glob:*"}}, remove_all),
      (std::vector<AnnotationChange>{{"fluxcd.io/tag.web", std::nullopt},
                                     {"ferry.dev/tag_all", std::nullopt}}));
}

// --tag-all as Flux v1 wrote it: one tag.<container> per container, under the workload's
// Flux prefix, so that Flux v1 and Ferry read the same filters from a shared repository.
TEST(PolicyChangesTest, TagAllExpandsToOneFilterPerContainer) {
  PolicyUpdate tag_all;
  tag_all.tag_all = std::optional<std::string>("semver:~1.2");
  const std::vector<std::string> containers = {"web", "sidecar"};
  struct Case {
    const char* name;
    Annotations annotations;
    Edits want;
  };
  const Case cases[] = {
      {"no policies yet: fluxcd.io/",
       {},
       {{"fluxcd.io/tag.web", "semver:~1.2"}, {"fluxcd.io/tag.sidecar", "semver:~1.2"}}},
      {"only ferry.dev/ policies: still fluxcd.io/",
       {{"ferry.dev/automated", "true"}},
       {{"fluxcd.io/tag.web", "semver:~1.2"}, {"fluxcd.io/tag.sidecar", "semver:~1.2"}}},
      {"flux.weave.works/ policies",
       {{"flux.weave.works/automated", "true"}},
       {{"flux.weave.works/tag.web", "semver:~1.2"},
        {"flux.weave.works/tag.sidecar", "semver:~1.2"}}},
      {"filter.fluxcd.io/ filters win over other fluxcd.io/ policies",
       {{"fluxcd.io/automated", "true"}, {"filter.fluxcd.io/web", "glob:*"}},
       {{"filter.fluxcd.io/web", "semver:~1.2"}, {"filter.fluxcd.io/sidecar", "semver:~1.2"}}},
      {"a container's existing key is kept, a ferry.dev/ copy and tag_all removed",
       {{"flux.weave.works/tag.sidecar", "glob:*"},
        {"ferry.dev/tag.web", "glob:1.*"},
        {"ferry.dev/tag_all", "regexp:^v"}},
       {{"flux.weave.works/tag.web", "semver:~1.2"},
        {"ferry.dev/tag.web", std::nullopt},
        {"flux.weave.works/tag.sidecar", "semver:~1.2"},
        {"ferry.dev/tag_all", std::nullopt}}},
      {"already so: nothing to do",
       {{"fluxcd.io/tag.web", "semver:~1.2"}, {"fluxcd.io/tag.sidecar", "semver:~1.2"}},
       {}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Edits> got = Changes(c.annotations, tag_all, containers);
    FERRY_ASSERT_OK(got) << c.name;
    EXPECT_EQ(*got, c.want) << c.name;
    // What Ferry reads back is the pattern for every container.
    Annotations after = c.annotations;
    for (const AnnotationChange& e : *got) {
      if (e.value)
        after[e.key] = *e.value;
      else
        after.erase(e.key);
    }
    Policies read = ReadPolicies(after);
    EXPECT_EQ(read.TagFilterFor("web"), "semver:~1.2") << c.name;
    EXPECT_EQ(read.TagFilterFor("sidecar"), "semver:~1.2") << c.name;
    EXPECT_EQ(read.tag_all, "") << c.name;
  }

  // '*' removes every container's filter (and a tag_all).
  PolicyUpdate remove;
  remove.tag_all = std::optional<std::string>();
  EXPECT_EQ(*Changes({{"fluxcd.io/tag.web", "glob:1.*"},
                      {"filter.fluxcd.io/sidecar", "glob:*"},
                      {"ferry.dev/tag_all", "glob:2.*"},
                      {"fluxcd.io/tag.gone", "glob:*"}},
                     remove, containers),
            (Edits{{"fluxcd.io/tag.web", std::nullopt},
                   {"filter.fluxcd.io/sidecar", std::nullopt},
                   {"ferry.dev/tag_all", std::nullopt}}));
  // A container's own filter wins over the expansion.
  PolicyUpdate both = tag_all;
  both.tag_filters["web"] = "glob:1.*";
  EXPECT_EQ(*Changes({}, both, containers),
            (Edits{{"ferry.dev/tag.web", "glob:1.*"}, {"fluxcd.io/tag.sidecar", "semver:~1.2"}}));
  // Nothing to expand to; a bad pattern.
  EXPECT_THAT(Changes({}, tag_all, {}), StatusIs(absl::StatusCode::kFailedPrecondition));
  PolicyUpdate bad;
  bad.tag_all = std::optional<std::string>("semver:>>1");
  EXPECT_THAT(Changes({}, bad, containers), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A loaded workload's containers are the expansion's: a HelmRelease's chart-image and maps.
TEST(PolicyChangesTest, TagAllOnALoadedFluxHelmRelease) {
  LoadResult loaded = LoadFile(
      "shop.yaml",
      "apiVersion: flux.weave.works/v1beta1\nkind: FluxHelmRelease\nmetadata:\n  name: shop\n"
      "  annotations:\n    flux.weave.works/automated: \"true\"\nspec:\n  values:\n"
      "    image: example/shop:1.0.0\n    worker:\n      image: example/worker\n"
      "      tag: 1.0.0\n");
  ASSERT_EQ(loaded.resources.size(), 1u);
  PolicyUpdate tag_all;
  tag_all.tag_all = std::optional<std::string>("glob:1.*");
  EXPECT_EQ(*PolicyAnnotationChanges(loaded.resources[0], tag_all),
            (Edits{{"flux.weave.works/tag.chart-image", "glob:1.*"},
                   {"flux.weave.works/tag.worker", "glob:1.*"}}));
}

}  // namespace
}  // namespace ferry::manifest

namespace ferry::manifest {
namespace {

TEST(SafeAutomationPolicyTest, ReadsFerryKeysAndReportsBadValues) {
  Policies p = ReadPolicies({{"ferry.dev/min-age", "2h"},
                             {"ferry.dev/min-age.web", "30m"},
                             {"ferry.dev/rollback", "auto"},
                             {"ferry.dev/rollback-timeout", "5m"},
                             {"ferry.dev/rejected.web", "1.2.3=job-1"}});
  EXPECT_EQ(p.MinAgeFor("web"), "30m");
  EXPECT_EQ(p.MinAgeFor("sidecar"), "2h");
  EXPECT_EQ(p.rollback, "auto");
  EXPECT_EQ(p.rollback_timeout, "5m");
  EXPECT_EQ(p.rejected.at("web"), "1.2.3=job-1");
  EXPECT_TRUE(p.errors.empty());

  Policies bad = ReadPolicies({{"ferry.dev/min-age", "2x"},
                               {"fluxcd.io/min-age.web", "0s"},
                               {"ferry.dev/rollback", "always"},
                               {"ferry.dev/rollback-timeout", "0"},
                               {"ferry.dev/rejected.web", "no good"}});
  ASSERT_EQ(bad.errors.size(), 5u);
  EXPECT_THAT(bad.errors[0], ::testing::StartsWith("ferry.dev/min-age: \"2x\""));
  EXPECT_THAT(bad.errors[1], ::testing::StartsWith("fluxcd.io/min-age.web: "));
  EXPECT_THAT(bad.errors[2], ::testing::StartsWith("ferry.dev/rollback: "));
  EXPECT_THAT(bad.errors[3], ::testing::StartsWith("ferry.dev/rollback-timeout: "));
  EXPECT_THAT(bad.errors[4], ::testing::StartsWith("ferry.dev/rejected.web: "));
}

TEST(SafeAutomationPolicyTest, WritesUnderFerryDevNormalized) {
  PolicyUpdate u;
  u.min_ages[""] = "120m";
  u.min_ages["web"] = "1d";
  u.rollback = std::optional<std::string>("AUTO");
  u.rollback_timeout = std::optional<std::string>("90s");
  EXPECT_EQ(*Changes({{"fluxcd.io/automated", "true"}, {"fluxcd.io/min-age", "1h"}}, u),
            (std::vector<AnnotationChange>{{"ferry.dev/min-age", "2h"},
                                           {"fluxcd.io/min-age", std::nullopt},
                                           {"ferry.dev/min-age.web", "1d"},
                                           {"ferry.dev/rollback", "auto"},
                                           {"ferry.dev/rollback-timeout", "1m30s"}}));
  PolicyUpdate off;
  off.min_ages[""] = std::nullopt;
  off.rollback = std::optional<std::string>();
  EXPECT_EQ(*Changes({{"ferry.dev/min-age", "2h"}, {"ferry.dev/rollback", "auto"}}, off),
            (std::vector<AnnotationChange>{{"ferry.dev/min-age", std::nullopt},
                                           {"ferry.dev/rollback", std::nullopt}}));
}

TEST(SafeAutomationPolicyTest, RefusesBadValuesNamingTheAnnotation) {
  PolicyUpdate u;
  u.min_ages["web"] = "soon";
  EXPECT_THAT(Changes({}, u), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("ferry.dev/min-age.web: \"soon\"")));
  PolicyUpdate r;
  r.rollback = std::optional<std::string>("sometimes");
  EXPECT_THAT(Changes({}, r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ferry.dev/rollback: ")));
  PolicyUpdate t;
  t.rollback_timeout = std::optional<std::string>("0s");
  EXPECT_THAT(Changes({}, t), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("ferry.dev/rollback-timeout: ")));
  PolicyUpdate j;
  j.reject["web"].push_back({"1.0", "job id"});
  EXPECT_THAT(Changes({}, j),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ferry.dev/rejected.web: ")));
  // One entry each: a job or tag that would read back as more entries once written.
  for (const policy::RejectedTag& bad :
       std::vector<policy::RejectedTag>{{"1.0", "j,1.2.3"}, {"1.0", "j=k"}, {"1.0,1.1", ""}}) {
    PolicyUpdate one;
    one.reject["web"].push_back(bad);
    EXPECT_THAT(Changes({}, one),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ferry.dev/rejected.web: ")))
        << bad.tag << " / " << bad.job;
  }
}

TEST(SafeAutomationPolicyTest, RejectAppendsAndClearRemoves) {
  PolicyUpdate u;
  u.reject["web"].push_back({"1.3.0", "job-2"});
  EXPECT_EQ(*Changes({{"ferry.dev/rejected.web", "1.2.0=job-1"}}, u),
            (std::vector<AnnotationChange>{{"ferry.dev/rejected.web", "1.2.0=job-1,1.3.0=job-2"}}));
  PolicyUpdate clear;
  clear.clear_rejected.insert("");
  EXPECT_EQ(
      *Changes({{"ferry.dev/rejected.web", "1.2.0=job-1"}, {"ferry.dev/rejected.db", "9=job-3"}},
               clear),
      (std::vector<AnnotationChange>{{"ferry.dev/rejected.db", std::nullopt},
                                     {"ferry.dev/rejected.web", std::nullopt}}));
}

}  // namespace
}  // namespace ferry::manifest
