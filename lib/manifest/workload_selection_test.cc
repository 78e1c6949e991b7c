#include "lib/manifest/workload_selection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Item {
  std::string id;
  bool workload = true;
};

// The ids `selection` pages out of `items` (sorted by id), non-workloads skipped, and
// whether it says more follow.
std::pair<std::vector<std::string>, bool> PageOf(const WorkloadSelection& selection,
                                                 const std::vector<Item>& items) {
  std::vector<std::string> out;
  bool more = selection.Page(
      items, [](const Item& i) -> const std::string& { return i.id; },
      [](const Item& i) { return i.workload; },
      [&](const Item& i) {
        out.push_back(i.id);
        return true;
      });
  return {out, more};
}

const std::vector<Item> kItems = {{"a:deployment/a"}, {"a:service/a", false}, {"b:deployment/b"},
                                  {"b:deployment/c"}, {"b:service/c", false}, {"c:deployment/d"}};

WorkloadSelection Make(std::string after, int64_t limit, std::vector<std::string> ids = {}) {
  absl::StatusOr<WorkloadSelection> s = WorkloadSelection::Make(std::move(after), limit, ids);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : WorkloadSelection();
}

TEST(WorkloadSelectionTest, PagesFollowEachOtherWithoutGapsOrRepeats) {
  auto [first, more1] = PageOf(Make("", 2), kItems);
  EXPECT_THAT(first, ElementsAre("a:deployment/a", "b:deployment/b"));
  EXPECT_TRUE(more1);
  auto [second, more2] = PageOf(Make(first.back(), 2), kItems);
  EXPECT_THAT(second, ElementsAre("b:deployment/c", "c:deployment/d"));
  EXPECT_FALSE(more2) << "nothing accepted follows the last workload";
  auto [all, more_all] = PageOf(Make("", 0), kItems);
  EXPECT_EQ(all.size(), 4u);
  EXPECT_FALSE(more_all);
  // A last id that is not in the list (removed since) still continues after it.
  EXPECT_THAT(PageOf(Make("b:deployment/bb", 1), kItems).first, ElementsAre("b:deployment/c"));
}

TEST(WorkloadSelectionTest, IdsAreLookedUpAndPagedToo) {
  auto [named, more] =
      PageOf(Make("", 0, {"c:deployment/d", "a:deployment/a", "z:deployment/missing"}), kItems);
  EXPECT_THAT(named, ElementsAre("a:deployment/a", "c:deployment/d"));
  EXPECT_FALSE(more);
  auto [page, more_page] = PageOf(Make("", 1, {"c:deployment/d", "a:deployment/a"}), kItems);
  EXPECT_THAT(page, ElementsAre("a:deployment/a"));
  EXPECT_TRUE(more_page);
  EXPECT_THAT(PageOf(Make("a:deployment/a", 1, {"c:deployment/d", "a:deployment/a"}), kItems).first,
              ElementsAre("c:deployment/d"));
  // A named object that is not a workload is not answered.
  EXPECT_TRUE(PageOf(Make("", 0, {"a:service/a"}), kItems).first.empty());
}

TEST(WorkloadSelectionTest, BadFieldsAreRefusedByName) {
  EXPECT_THAT(WorkloadSelection::Make("", -1, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
  EXPECT_THAT(WorkloadSelection::Make(std::string(1000, 'x'), 0, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("start_after")));
  EXPECT_THAT(WorkloadSelection::Make("", 0, {"Not An Id"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ids: ")));
  std::vector<std::string> many(WorkloadSelection::kMaxIds + 1, "a:deployment/a");
  EXPECT_THAT(WorkloadSelection::Make("", 0, many),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 1000")));
}

}  // namespace
}  // namespace ferry::manifest
