// ferry-git-writer's flags: the per-document manifest limits its load errors name
// (--max_manifest_depth, --max_manifest_nodes, --max_manifest_expanded_bytes) are its own
// flags, registered by the helper cluster-syncer uses, and reach every load.
#include "services/git-writer/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/status/status_matchers.h"
#include "tests/support/git_repo.h"

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

// A temporary directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "ferry-commit-template-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::string path_;
};

TEST(GitWriterConfigTest, CommitTemplateFromTextOrFile) {
  absl::StatusOr<Config> config = Parse({});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->writer.commit_template, nullptr);

  config = Parse(
      {"--git_commit_template={{kind}} {{job}}: {{subject}}", "--max_commit_message_bytes=1000"});
  FERRY_ASSERT_OK(config);
  ASSERT_NE(config->writer.commit_template, nullptr);
  EXPECT_EQ(config->writer.max_commit_message_bytes, 1000u);
  CommitFields fields;
  fields.job = "j1";
  fields.kind = "release";
  fields.default_message = "Release x\n\n- a";
  EXPECT_EQ(config->writer.commit_template->Render(fields, 1000), "release j1: Release x");

  TempDir dir;
  const std::string file = dir.Write("template", "{{user}}\n{{#changes}}\n{{to}}\n{{/changes}}\n");
  config = Parse({"--git_commit_template_path=" + file});
  FERRY_ASSERT_OK(config);
  ASSERT_NE(config->writer.commit_template, nullptr);
  fields.user = "alice";
  fields.changes = {{"w", "c", "a:1", "a:2", ""}};
  EXPECT_EQ(config->writer.commit_template->Render(fields, 1000), "alice\na:2\n");
}

TEST(GitWriterConfigTest, BadCommitTemplatesNameTheFlagLineAndColumn) {
  TempDir dir;
  const std::string bad = dir.Write("bad", "{{subject}}\n\n  - {{workloads}}\n");
  const std::string big = dir.Write("big", std::string(kMaxCommitTemplateBytes + 1, 'x'));
  const std::pair<std::string, std::string> cases[] = {
      {"--git_commit_template={{#changes}}",
       "--git_commit_template: line 1, column 1: "
       "{{#changes}} is never closed"},
      {"--git_commit_template_path=" + bad,
       "--git_commit_template_path: line 3, column 5: unknown field {{workloads}}"},
      {"--git_commit_template_path=" + big, "--git_commit_template_path: the template is 16385"},
      {"--git_commit_template_path=" + dir.path() + "/missing",
       "--git_commit_template_path: cannot read"},
  };
  for (const auto& [arg, error] : cases) {
    EXPECT_THAT(Parse({arg}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(error)))
        << arg;
  }
  EXPECT_THAT(Parse({"--git_commit_template=x", "--git_commit_template_path=" + bad}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("give one of them")));
}

// The binary itself: a template that does not parse stops it at start with exit code 2 and
// the flag, line and column on stderr.
TEST(GitWriterConfigTest, TheBinaryExitsWithTwoOnABadCommitTemplate) {
  TempDir dir;
  const std::string bad = dir.Write("bad", "{{subject}}\n{{#images}}\n- {{to}}\n{{/changes}}\n");
  int status = 0;
  const std::string out = testing::RunCommand(
      absl::StrCat(FERRY_GIT_WRITER_BIN,
                   " --grpc_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 --git_url=file://",
                   dir.path(), "/none.git --state_dir=", dir.path(),
                   "/state --git_commit_template_path=", bad, " 2>&1"),
      &status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_THAT(out, HasSubstr("--git_commit_template_path: line 4, column 1: {{/changes}} closes "
                             "{{#images}} of line 2, column 1"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/state")) << "stopped before any work";
}

TEST(GitWriterConfigTest, LeaderElectionIsOffByDefaultAndLeasesAreNamedByRepoAndBranch) {
  absl::StatusOr<Config> off = Parse({});
  FERRY_ASSERT_OK(off);
  EXPECT_FALSE(off->leader.enabled);

  absl::StatusOr<Config> on = Parse({"--leader_elect", "--git_branch=release",
                                     "--kubeconfig=/etc/kube/config", "--context=prod"});
  FERRY_ASSERT_OK(on);
  EXPECT_TRUE(on->leader.enabled);
  EXPECT_EQ(on->leader.lease_name, LeaseNameFor("file:///srv/config.git", "release"));
  EXPECT_EQ(on->leader.lease_duration, absl::Seconds(15));
  EXPECT_EQ(on->leader.renew_deadline, absl::Seconds(10));
  EXPECT_EQ(on->leader.retry_period, absl::Seconds(2));
  EXPECT_EQ(on->kubeconfig, "/etc/kube/config");
  EXPECT_EQ(on->context, "prod");

  // Replicas of one repo and branch share a Lease; other repos and branches never do, and
  // the name holds no part of the URL (an https URL may carry a token).
  const std::string url = "https://x-access-token:s3cret@git.example.com/org/config.git";
  EXPECT_EQ(LeaseNameFor(url, "main"), LeaseNameFor(url, "main"));
  EXPECT_NE(LeaseNameFor(url, "main"), LeaseNameFor(url, "release"));
  EXPECT_NE(LeaseNameFor(url, "main"),
            LeaseNameFor("https://git.example.com/org/other.git", "main"));
  EXPECT_TRUE(absl::StartsWith(LeaseNameFor(url, "main"), "ferry-git-writer-"));
  EXPECT_FALSE(absl::StrContains(LeaseNameFor(url, "main"), "s3cret"));
  EXPECT_FALSE(absl::StrContains(LeaseNameFor(url, "main"), "example"));
  // A rotated token keeps the Lease: the replicas of a rolling update still share it.
  EXPECT_EQ(LeaseNameFor(url, "main"),
            LeaseNameFor("https://x-access-token:n3w@git.example.com/org/config.git", "main"));
  EXPECT_EQ(LeaseNameFor(url, "main"),
            LeaseNameFor("https://git.example.com/org/config.git", "main"));
}

TEST(GitWriterConfigTest, BadLeaderElectionFlagsNameTheFlag) {
  EXPECT_THAT(
      Parse({"--leader_elect", "--leader_elect_lease_duration=10s",
             "--leader_elect_renew_deadline=10s"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--leader_elect_renew_deadline")));
  EXPECT_THAT(Parse({"--leader_elect", "--leader_elect_lease_name=Not_A_Name"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--leader_elect_lease_name")));
}

TEST(GitWriterConfigTest, LeaderElectionWithoutAKubernetesApiExitsWithTwo) {
  TempDir dir;
  int status = 0;
  const std::string out = testing::RunCommand(
      absl::StrCat("env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT ",
                   FERRY_GIT_WRITER_BIN,
                   " --grpc_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 --git_url=file://",
                   dir.path(), "/none.git --state_dir=", dir.path(), "/state --leader_elect 2>&1"),
      &status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_THAT(out, HasSubstr("--leader_elect needs the Kubernetes API (--kubeconfig"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/state")) << "stopped before any work";
}

}  // namespace
}  // namespace ferry::git_writer
