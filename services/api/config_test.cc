#include "services/api/config.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::StartsWith;

absl::StatusOr<Config> Parse(std::vector<std::string> args) {
  CLI::App app;
  Flags flags;
  AddFlags(app, flags);
  args.insert(args.begin(), {"ferry-api", "--grpc_address=127.0.0.1:0"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return ToConfig(flags);
}

TEST(ConfigTest, JobDeadlinesAndPeerWaitDefaultToTheirLimits) {
  absl::StatusOr<Config> config = Parse({});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->timeouts.peer_wait, absl::Seconds(10));
  EXPECT_EQ(config->timeouts.planning, absl::Seconds(limits::kJobPlanningTimeout.default_value));
  EXPECT_EQ(config->timeouts.commit, absl::Seconds(limits::kJobCommitTimeout.default_value));
  EXPECT_EQ(config->timeouts.apply, absl::Seconds(limits::kJobApplyTimeout.default_value));
  EXPECT_EQ(config->timeouts.rollout, absl::Seconds(limits::kJobRolloutTimeout.default_value));

  config = Parse({"--peer_wait=0", "--job_planning_timeout=5", "--job_commit_timeout=6",
                  "--job_apply_timeout=7", "--job_rollout_timeout=8"});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->timeouts.peer_wait, absl::ZeroDuration());
  EXPECT_EQ(config->timeouts.planning, absl::Seconds(5));
  EXPECT_EQ(config->timeouts.commit, absl::Seconds(6));
  EXPECT_EQ(config->timeouts.apply, absl::Seconds(7));
  EXPECT_EQ(config->timeouts.rollout, absl::Seconds(8));
}

TEST(ConfigTest, OutOfRangeDeadlinesNameTheirFlag) {
  for (const auto& [arg, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--peer_wait=-1", "--peer_wait"},
           {"--peer_wait=3601", "--peer_wait"},
           {"--job_planning_timeout=0", "--job_planning_timeout"},
           {"--job_apply_timeout=86401", "--job_apply_timeout"}}) {
    absl::StatusOr<Config> config = Parse({arg});
    EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(flag + ":")))
        << arg;
  }
}

}  // namespace
}  // namespace ferry::api
