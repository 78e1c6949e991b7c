#include "lib/kube/election.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::kube {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

absl::StatusOr<LeaderElectionConfig> Parse(std::vector<std::string> args) {
  CLI::App app;
  LeaderElectionFlags flags;
  AddLeaderElectionFlags(app, flags, "writes");
  std::vector<std::string> argv = {"x"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> ptrs;
  for (std::string& a : argv) ptrs.push_back(a.data());
  app.parse(static_cast<int>(ptrs.size()), ptrs.data());
  return ParseLeaderElection(flags, "ferry-x-0123456789");
}

TEST(ElectionConfigTest, DefaultsAreClientGosAndTheComponentsLeaseName) {
  absl::StatusOr<LeaderElectionConfig> config = Parse({});
  FERRY_ASSERT_OK(config.status());
  EXPECT_FALSE(config->enabled);
  EXPECT_EQ(config->lease_name, "ferry-x-0123456789");
  EXPECT_EQ(config->lease_duration, absl::Seconds(15));
  EXPECT_EQ(config->renew_deadline, absl::Seconds(10));
  EXPECT_EQ(config->retry_period, absl::Seconds(2));
  config = Parse({"--leader_elect", "--leader_elect_lease_name=mine", "--leader_elect_namespace=ns",
                  "--leader_elect_lease_duration=8s", "--leader_elect_renew_deadline=5s",
                  "--leader_elect_retry_period=1s"});
  FERRY_ASSERT_OK(config.status());
  EXPECT_TRUE(config->enabled);
  EXPECT_EQ(config->lease_name, "mine");
  EXPECT_EQ(config->lease_namespace, "ns");
  EXPECT_EQ(config->renew_deadline, absl::Seconds(5));
}

TEST(ElectionConfigTest, BadValuesNameTheFlag) {
  EXPECT_THAT(Parse({"--leader_elect_renew_deadline=15s"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--leader_elect_renew_deadline (15s) must be shorter than "
                                 "--leader_elect_lease_duration")));
  EXPECT_THAT(
      Parse({"--leader_elect_retry_period=10s"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--leader_elect_retry_period")));
  EXPECT_THAT(
      Parse({"--leader_elect_lease_duration=soon"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--leader_elect_lease_duration")));
  EXPECT_THAT(Parse({"--leader_elect_lease_duration=500ms", "--leader_elect_renew_deadline=300ms",
                     "--leader_elect_retry_period=100ms"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("whole seconds")));
  EXPECT_THAT(Parse({"--leader_elect_lease_name=Not_A_Name"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--leader_elect_lease_name")));
  EXPECT_THAT(Parse({"--leader_elect_namespace=a.b"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--leader_elect_namespace")));
}

TEST(ElectionConfigTest, DefaultLeaseNamesDependOnTheComponentAndKey) {
  const std::string a = DefaultLeaseName("git-writer", "repo\nmain");
  EXPECT_THAT(a, MatchesRegex("ferry-git-writer-[0-9a-f]{10}"));
  EXPECT_EQ(a, DefaultLeaseName("git-writer", "repo\nmain"));
  EXPECT_NE(a, DefaultLeaseName("git-writer", "repo\nrelease"));
  EXPECT_THAT(DefaultLeaseName("api", "repo\nmain"), MatchesRegex("ferry-api-[0-9a-f]{10}"));
}

}  // namespace
}  // namespace ferry::kube
