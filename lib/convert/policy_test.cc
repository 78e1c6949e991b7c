#include "lib/convert/policy.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::convert {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

// Folds the updates of `changes` into one, as git-writer applies them one edit at a time.
manifest::PolicyUpdate Merge(const std::vector<ferry::v1::PolicyChange>& changes) {
  manifest::PolicyUpdate merged;
  for (const ferry::v1::PolicyChange& change : changes) {
    absl::StatusOr<manifest::PolicyUpdate> one = ToPolicyUpdate(change);
    FERRY_EXPECT_OK(one);
    if (!one.ok()) continue;
    if (one->automated) merged.automated = one->automated;
    if (one->locked) {
      merged.locked = one->locked;
      merged.locked_user = one->locked_user;
      merged.locked_msg = one->locked_msg;
    }
    for (const auto& [container, pattern] : one->tag_filters)
      merged.tag_filters[container] = pattern;
    if (one->tag_all) merged.tag_all = one->tag_all;
  }
  return merged;
}

TEST(PolicyConvertTest, EveryUpdateSurvivesTheContract) {
  manifest::PolicyUpdate update;
  update.automated = false;
  update.locked = true;
  update.locked_user = "Alice";
  update.locked_msg = "freeze";
  update.tag_filters = {{"web", "semver:~1.2"}, {"sidecar", std::nullopt}};
  update.tag_all = std::optional<std::string>();
  const std::vector<ferry::v1::PolicyChange> changes = ToPolicyChanges(update);
  ASSERT_EQ(changes.size(), 5u);
  EXPECT_TRUE(changes[0].deautomate());
  EXPECT_EQ(changes[1].lock().user(), "Alice");
  EXPECT_EQ(changes[2].remove_tag_filter(), "sidecar");  // by container name
  EXPECT_EQ(changes[3].set_tag_filter().pattern(), "semver:~1.2");
  EXPECT_TRUE(changes[4].remove_tag_all());
  const manifest::PolicyUpdate back = Merge(changes);
  EXPECT_EQ(back.automated, update.automated);
  EXPECT_EQ(back.locked, update.locked);
  EXPECT_EQ(back.locked_user, "Alice");
  EXPECT_EQ(back.locked_msg, "freeze");
  EXPECT_EQ(back.tag_filters, update.tag_filters);
  EXPECT_EQ(back.tag_all, update.tag_all);

  manifest::PolicyUpdate other;
  other.automated = true;
  other.locked = false;
  other.tag_all = std::optional<std::string>("glob:main-*");
  const manifest::PolicyUpdate other_back = Merge(ToPolicyChanges(other));
  EXPECT_EQ(other_back.automated, other.automated);
  EXPECT_EQ(other_back.locked, other.locked);
  EXPECT_EQ(other_back.tag_all, other.tag_all);
  EXPECT_TRUE(ToPolicyChanges(manifest::PolicyUpdate{}).empty());
}

TEST(PolicyConvertTest, EmptyChangesAndFiltersWithoutAContainerAreRefused) {
  EXPECT_THAT(ToPolicyUpdate(ferry::v1::PolicyChange()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ferry::v1::PolicyChange no_container;
  no_container.mutable_set_tag_filter()->set_pattern("glob:*");
  EXPECT_EQ(ToPolicyUpdate(no_container).status().message(), "set_tag_filter needs a container");
}

TEST(PolicyConvertTest, FillPolicyReportsEveryField) {
  manifest::Policies policies;
  policies.automated = true;
  policies.locked = true;
  policies.locked_user = "Bob";
  policies.locked_msg = "incident";
  policies.ignore = manifest::IgnoreMode::kSyncOnly;
  policies.tag_filters = {{"web", "glob:1.*"}};
  policies.tag_all = "semver:*";
  ferry::v1::Policy out;
  FillPolicy(policies, &out);
  EXPECT_TRUE(out.automated());
  EXPECT_TRUE(out.locked());
  EXPECT_EQ(out.locked_user(), "Bob");
  EXPECT_EQ(out.locked_msg(), "incident");
  EXPECT_EQ(out.ignore(), ferry::v1::IGNORE_MODE_SYNC_ONLY);
  EXPECT_EQ(out.tag_filters().at("web"), "glob:1.*");
  EXPECT_EQ(out.tag_all(), "semver:*");
}

}  // namespace
}  // namespace ferry::convert
