#include "lib/manifest/policy.h"

#include <gtest/gtest.h>

namespace ferry::manifest {

std::ostream& operator<<(std::ostream& os, const AnnotationChange& c) {
  return os << c.key << "=" << (c.value ? *c.value : "<remove>");
}

namespace {

using Annotations = std::map<std::string, std::string>;

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
  EXPECT_EQ(*PolicyAnnotationChanges({}, automate),
            (std::vector<AnnotationChange>{{"ferry.dev/automated", "true"}}));
  EXPECT_EQ(*PolicyAnnotationChanges({{"fluxcd.io/tag.web", "glob:*"}}, automate),
            (std::vector<AnnotationChange>{{"fluxcd.io/automated", "true"}}));
  EXPECT_EQ(*PolicyAnnotationChanges({{"flux.weave.works/automated", "false"}}, automate),
            (std::vector<AnnotationChange>{{"flux.weave.works/automated", "true"}}));
  // Already so: nothing to do.
  EXPECT_TRUE(PolicyAnnotationChanges({{"ferry.dev/automated", "true"}}, automate)->empty());
}

TEST(PolicyChangesTest, LockAndUnlock) {
  PolicyUpdate lock;
  lock.locked = true;
  lock.locked_user = "bob";
  lock.locked_msg = "freeze";
  EXPECT_EQ(*PolicyAnnotationChanges({{"fluxcd.io/automated", "true"}}, lock),
            (std::vector<AnnotationChange>{{"fluxcd.io/locked", "true"},
                                           {"fluxcd.io/locked_user", "bob"},
                                           {"fluxcd.io/locked_msg", "freeze"}}));
  PolicyUpdate unlock;
  unlock.locked = false;
  EXPECT_EQ(*PolicyAnnotationChanges({{"fluxcd.io/locked", "true"},
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
  EXPECT_EQ(*PolicyAnnotationChanges({{"filter.fluxcd.io/web", "master-*"},
                                      {"flux.weave.works/tag.web", "x"}},
                                     tag),
            (std::vector<AnnotationChange>{{"filter.fluxcd.io/web", "glob:1.*"},
                                           {"flux.weave.works/tag.web", std::nullopt}}));
  PolicyUpdate bad;
  bad.tag_filters["web"] = "semver:>>1";
  auto status = PolicyAnnotationChanges({}, bad).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("container web: invalid tag filter"), std::string::npos)
      << status.message();
  PolicyUpdate remove_all;
  remove_all.tag_all = std::optional<std::string>();
  remove_all.tag_filters["web"] = std::nullopt;
  EXPECT_EQ(*PolicyAnnotationChanges({{"ferry.dev/tag_all", "glob:*"},
                                      {"fluxcd.io/tag.web", "glob:*"}},
                                     remove_all),
            (std::vector<AnnotationChange>{{"fluxcd.io/tag.web", std::nullopt},
                                           {"ferry.dev/tag_all", std::nullopt}}));
}

}  // namespace
}  // namespace ferry::manifest
