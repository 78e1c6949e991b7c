// ferry-git-writer's flags: the per-document manifest limits its load errors name
// (--max_manifest_depth, --max_manifest_nodes, --max_manifest_expanded_bytes) are its own
// flags, registered by the helper cluster-syncer uses, and reach every load.
#include "services/git-writer/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "lib/status/status_matchers.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<Config> Parse(std::vector<std::string> args) {
  CLI::App app("ferry-git-writer");
  Flags flags;
  AddFlags(app, flags);
  args.insert(args.begin(), {"--git_url=file:///srv/config.git", "--state_dir=/tmp/x"});
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  app.parse(reversed);
  return ToConfig(flags);
}

TEST(GitWriterConfigTest, DocumentLimitFlagsReachTheLoadOptions) {
  absl::StatusOr<Config> config = Parse({});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->writer.load.limits.max_depth, limits::kManifestDepth.default_value);
  EXPECT_EQ(config->writer.load.limits.max_nodes, limits::kManifestNodes.default_value);
  EXPECT_EQ(config->writer.load.limits.max_expanded_bytes,
            limits::kManifestExpandedBytes.default_value);

  config = Parse({"--max_manifest_depth=7", "--max_manifest_nodes=1000",
                  "--max_manifest_expanded_bytes=5000"});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->writer.load.limits.max_depth, 7u);
  EXPECT_EQ(config->writer.load.limits.max_nodes, 1000u);
  EXPECT_EQ(config->writer.load.limits.max_expanded_bytes, 5000u);
}

TEST(GitWriterConfigTest, DocumentLimitFlagsAreValidatedNamingTheFlag) {
  for (const auto& [arg, flag] :
       {std::pair<std::string, std::string>{"--max_manifest_depth=0", "--max_manifest_depth"},
        {"--max_manifest_depth=401", "--max_manifest_depth"},
        {"--max_manifest_nodes=0", "--max_manifest_nodes"},
        {"--max_manifest_expanded_bytes=0", "--max_manifest_expanded_bytes"}}) {
    absl::StatusOr<Config> config = Parse({arg});
    EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(flag))) << arg;
  }
}

}  // namespace
}  // namespace ferry::git_writer
