#include "cli/workload_id.h"

#include <gtest/gtest.h>

#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_id_test_cases.h"
#include "lib/status/status_matchers.h"

namespace ferry::cli {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Eq;
using ::testing::HasSubstr;

TEST(ParseWorkloadIdTest, AcceptsFullAndShortForms) {
  EXPECT_EQ(*ParseWorkloadId("default:deployment/helloworld", "x"),
            "default:deployment/helloworld");
  EXPECT_EQ(*ParseWorkloadId("sock-shop:Deployment/front-end", "x"),
            "sock-shop:deployment/front-end");
  EXPECT_EQ(*ParseWorkloadId("deployment/web", "team"), "team:deployment/web");
  EXPECT_EQ(*ParseWorkloadId("<cluster>:namespace/team", "x"), "<cluster>:namespace/team");
}

TEST(ParseWorkloadIdTest, RejectsWithExample) {
  for (const char* bad : {"", "web", ":deployment/web", "default:web", "default:/web",
                          "default:deployment/", "a:b/c/d", "default:deployment/my web"}) {
    absl::StatusOr<std::string> id = ParseWorkloadId(bad, "default");
    EXPECT_THAT(id, StatusIs(absl::StatusCode::kInvalidArgument,
                             AllOf(HasSubstr("is not a workload id: "),
                                   HasSubstr("e.g. default:deployment/helloworld"))))
        << bad;
  }
}

// ferryctl refuses what the services refuse, with their message, and what it takes it
// sends in the form they take.
TEST(ParseWorkloadIdTest, AgreesWithTheServices) {
  for (const auto& c : manifest::testing::kWorkloadIdCases) {
    const std::string text(c.text);
    absl::StatusOr<std::string> id = ParseWorkloadId(text, "default");
    if (c.loose.empty()) {
      EXPECT_EQ(id.status(), manifest::WorkloadId::Parse(text).status()) << text;
      continue;
    }
    FERRY_ASSERT_OK(id) << text;
    EXPECT_EQ(*id, c.loose);
    FERRY_EXPECT_OK(manifest::WorkloadId::Parse(*id)) << *id;
  }
}

TEST(LegacyWorkloadIdTest, NamespaceSlashNameUnlessTheFirstPartIsAKind) {
  EXPECT_TRUE(IsLegacyWorkloadId("sock-shop/front-end"));
  EXPECT_TRUE(IsLegacyWorkloadId("default/helloworld"));
  for (const char* not_legacy : {"deployment/web", "HelmRelease/podinfo", "fluxhelmrelease/db",
                                 "default:deployment/helloworld", "web", "a/b/c", "/web", "ns/"}) {
    EXPECT_FALSE(IsLegacyWorkloadId(not_legacy)) << not_legacy;
  }
}

TEST(LegacyWorkloadIdTest, ResolvesToTheOneWorkloadOrSaysWhatToFix) {
  const std::vector<std::string> ids = {
      "sock-shop:deployment/front-end", "sock-shop:deployment/cart",
      "default:deployment/helloworld", "default:statefulset/db", "default:deployment/db"};
  EXPECT_EQ(*ResolveLegacyWorkloadId("sock-shop/front-end", ids), "sock-shop:deployment/front-end");
  EXPECT_EQ(*ResolveLegacyWorkloadId("default/helloworld", ids), "default:deployment/helloworld");

  absl::StatusOr<std::string> several = ResolveLegacyWorkloadId("default/db", ids);
  EXPECT_THAT(
      several,
      StatusIs(absl::StatusCode::kInvalidArgument,
               Eq("workload \"default/db\" is ambiguous: name one of default:statefulset/db, "
                  "default:deployment/db (namespace:kind/name)")));

  absl::StatusOr<std::string> none = ResolveLegacyWorkloadId("sock-shop/frontend", ids);
  EXPECT_THAT(
      none,
      StatusIs(
          absl::StatusCode::kNotFound,
          Eq("workload \"sock-shop/frontend\" not found; closest: sock-shop:deployment/front-end, "
             "sock-shop:deployment/cart, default:deployment/db")));

  absl::StatusOr<std::string> no_namespace = ResolveLegacyWorkloadId("sockshop/front-end", ids);
  EXPECT_THAT(
      no_namespace,
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          Eq("workload \"sockshop/front-end\": no workload in namespace \"sockshop\"; namespaces "
             "with workloads: default, sock-shop")));

  // What is not a workload id names nothing, even when it is spelled like the legacy id.
  const std::vector<std::string> with_junk = {"sock-shop/front-end", "sock-shop:deployment/Front",
                                              "sock-shop:deployment/front-end"};
  EXPECT_EQ(*ResolveLegacyWorkloadId("sock-shop/front-end", with_junk),
            "sock-shop:deployment/front-end");
}

}  // namespace
}  // namespace ferry::cli
