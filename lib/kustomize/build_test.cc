#include "lib/kustomize/build.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "lib/status/status_matchers.h"

namespace ferry::kustomize {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

class BuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-kustomize-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tree_ = tmpl;
    const char* path = getenv("PATH");
    options_.path_env = path != nullptr ? path : "/usr/bin:/bin";
  }
  void TearDown() override { fs::remove_all(tree_); }
  void Write(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(tree_ + "/" + path).parent_path());
    std::ofstream(tree_ + "/" + path) << content;
  }
  // The kustomize on PATH, or a skip (a failure in CI, which has one).
  bool UseRealKustomize() {
    absl::StatusOr<std::vector<std::string>> command = ResolveCommand("", options_.path_env);
    if (!command.ok() && getenv("CI") != nullptr) {
      ADD_FAILURE() << "CI has kubectl on PATH: " << command.status();
    }
    if (!command.ok()) return false;
    options_.command = *command;
    return true;
  }

  std::string tree_;
  BuildOptions options_;
};

TEST_F(BuildTest, ResolveCommand) {
  EXPECT_THAT(ResolveCommand("", "/nonexistent"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("--kustomize_command")));
  EXPECT_THAT(ResolveCommand("no-such-kustomize build", "/usr/bin:/bin"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-kustomize")));
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<std::string> c, ResolveCommand("sh  -c", "/usr/bin:/bin"));
  EXPECT_EQ(c, (std::vector<std::string>{"sh", "-c"}));
}

TEST_F(BuildTest, BuildsARootWithARealKustomize) {
  if (!UseRealKustomize()) GTEST_SKIP() << "no kustomize or kubectl on PATH";
  Write("base/kustomization.yaml", "resources:\n- cm.yaml\n");
  Write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n");
  Write("overlays/a/kustomization.yaml", "namespace: a\nnamePrefix: a-\nbases:\n- ../../base\n");
  FERRY_ASSERT_OK_AND_ASSIGN(std::string out, Build(options_, tree_, "overlays/a"));
  EXPECT_THAT(out, HasSubstr("name: a-c"));
  EXPECT_THAT(out, HasSubstr("namespace: a"));
}

TEST_F(BuildTest, AFailedBuildSaysWhyWithoutTheExportFolder) {
  if (!UseRealKustomize()) GTEST_SKIP() << "no kustomize or kubectl on PATH";
  Write("a/kustomization.yaml", "resources:\n- missing.yaml\n");
  absl::StatusOr<std::string> out = Build(options_, tree_, "a");
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kFailedPrecondition,
                            HasSubstr("kustomize build of \"a\" failed")));
  EXPECT_THAT(out.status().message(), Not(HasSubstr(tree_)));
}

TEST_F(BuildTest, TheLoadRestrictorKeepsABuildInItsFolder) {
  if (!UseRealKustomize()) GTEST_SKIP() << "no kustomize or kubectl on PATH";
  Write("secret.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: outside\n");
  Write("a/kustomization.yaml", "resources:\n- ../secret.yaml\n");
  EXPECT_THAT(Build(options_, tree_, "a"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(BuildTest, DeadlineAndOutputLimit) {
  options_.command = {"sh", "-c", "sleep 30", "sh"};
  options_.timeout = absl::Milliseconds(200);
  EXPECT_THAT(Build(options_, tree_, "a"), StatusIs(absl::StatusCode::kDeadlineExceeded));
  options_.command = {"sh", "-c", "head -c 100000 /dev/zero", "sh"};
  options_.timeout = absl::Seconds(30);
  options_.max_output_bytes = 1000;
  EXPECT_THAT(Build(options_, tree_, "a"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("over the limit of 1000 bytes (raise it with "
                                 "--max_manifest_file_bytes)")));
}

TEST_F(BuildTest, TheEnvironmentIsClean) {
  setenv("KUBECONFIG", "/etc/secret-kubeconfig", 1);
  options_.command = {"sh", "-c", "env", "sh"};
  FERRY_ASSERT_OK_AND_ASSIGN(std::string out, Build(options_, tree_, "a"));
  unsetenv("KUBECONFIG");
  EXPECT_THAT(out, Not(HasSubstr("KUBECONFIG")));
  // A HOME of its own, outside the tree (which the repository provides), gone afterwards.
  EXPECT_THAT(out, HasSubstr("HOME=/"));
  EXPECT_THAT(out, Not(HasSubstr("HOME=" + tree_)));
  EXPECT_FALSE(fs::exists(tree_ + "/.ferry-home"));
  EXPECT_THAT(out, HasSubstr("GIT_CONFIG_GLOBAL=/dev/null"));
  EXPECT_THAT(out, HasSubstr("HTTPS_PROXY=http://127.0.0.1:9"));
  options_.allow_remote = true;
  FERRY_ASSERT_OK_AND_ASSIGN(out, Build(options_, tree_, "a"));
  EXPECT_THAT(out, Not(HasSubstr("HTTPS_PROXY")));
}

}  // namespace
}  // namespace ferry::kustomize
