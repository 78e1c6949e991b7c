#include "cli/workload_id.h"

#include <gtest/gtest.h>

namespace ferry::cli {
namespace {

TEST(ParseWorkloadIdTest, AcceptsFullAndShortForms) {
  EXPECT_EQ(*ParseWorkloadId("default:deployment/helloworld", "x"), "default:deployment/helloworld");
  EXPECT_EQ(*ParseWorkloadId("sock-shop:Deployment/front-end", "x"), "sock-shop:deployment/front-end");
  EXPECT_EQ(*ParseWorkloadId("deployment/web", "team"), "team:deployment/web");
  EXPECT_EQ(*ParseWorkloadId("<cluster>:namespace/team", "x"), "<cluster>:namespace/team");
}

TEST(ParseWorkloadIdTest, RejectsWithExample) {
  for (const char* bad : {"", "web", ":deployment/web", "default:web", "default:/web",
                          "default:deployment/", "a:b/c/d", "default:deployment/my web"}) {
    absl::StatusOr<std::string> id = ParseWorkloadId(bad, "default");
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(id.status().message().find("e.g. default:deployment/helloworld"), std::string::npos);
  }
}

}  // namespace
}  // namespace ferry::cli
