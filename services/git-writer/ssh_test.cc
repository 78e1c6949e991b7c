// git over ssh against a real OpenSSH server on a loopback port: deploy key, known_hosts,
// refusal of unknown and changed host keys.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lib/status/status_matchers.h"
#include "services/git-writer/identity.h"
#include "services/git-writer/libgit2_repository.h"
#include "tests/support/git_repo.h"
#include "tests/support/sshd.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

class SshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto upstream = testing::GitRepo::Create(
        {{"app.yaml",
          "kind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n"
          "      containers:\n      - name: app\n        image: nginx:1.25\n"}});
    FERRY_ASSERT_OK(upstream);
    upstream_ = *std::move(upstream);
    auto sshd = testing::Sshd::Start(upstream_->dir() + "/sshd");
    FERRY_ASSERT_OK(sshd);
    sshd_ = *std::move(sshd);
  }

  absl::StatusOr<std::unique_ptr<Libgit2Repository>> Open(const std::string& known_hosts,
                                                          const std::string& mirror) {
    std::string path = upstream_->dir() + "/known_hosts-" + mirror;
    std::ofstream(path) << known_hosts;
    Libgit2Options o;
    o.url = sshd_->Url(upstream_->dir() + "/upstream.git");
    o.mirror_dir = upstream_->dir() + "/" + mirror;
    o.ssh_key_path = sshd_->client_key_path();
    o.known_hosts_path = path;
    return Libgit2Repository::Open(o);
  }

  std::unique_ptr<testing::GitRepo> upstream_;
  std::unique_ptr<testing::Sshd> sshd_;
};

TEST_F(SshTest, FetchesAndPushesWithTheDeployKey) {
  auto repo = Open(sshd_->KnownHostsLine() + "\n", "m1.git");
  FERRY_ASSERT_OK(repo);
  absl::StatusOr<std::string> head = (*repo)->Fetch();
  FERRY_ASSERT_OK(head);
  EXPECT_EQ(*head, upstream_->Head());
  CommitSpec spec;
  spec.parent = *head;
  spec.files["app.yaml"] = "changed: true\n";
  spec.message = "Over ssh";
  spec.author = spec.committer = {"Ferry", "ferry@example.com"};
  absl::StatusOr<std::string> commit = (*repo)->CreateCommit(spec);
  FERRY_ASSERT_OK(commit);
  absl::Status pushed = (*repo)->PushBranch(*commit);
  FERRY_ASSERT_OK(pushed);
  EXPECT_EQ(upstream_->Head(), *commit);
  EXPECT_EQ(upstream_->Show(*commit, "app.yaml"), "changed: true\n");
}

TEST_F(SshTest, UnknownHostIsRefused) {
  auto repo = Open("# nothing known\n", "m2.git");
  FERRY_ASSERT_OK(repo);
  absl::StatusOr<std::string> head = (*repo)->Fetch();
  EXPECT_THAT(head,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not in known_hosts")));
}

TEST_F(SshTest, ChangedHostKeyIsRefused) {
  auto other = testing::MakeKeyPair(upstream_->dir() + "/impostor");
  FERRY_ASSERT_OK(other);
  std::string line = sshd_->KnownHostsLine();
  std::string impostor = line.substr(0, line.find(' ')) + " " + other->substr(0, other->rfind(' '));
  auto repo = Open(impostor + "\n", "m3.git");
  FERRY_ASSERT_OK(repo);
  absl::StatusOr<std::string> head = (*repo)->Fetch();
  EXPECT_THAT(head, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("is not the one in known_hosts")));
}

TEST(IdentityTest, GeneratesAKeyOnceAndFingerprintsItLikeSshKeygen) {
  char tmpl[] = "/tmp/ferry-identity-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string key = std::string(tmpl) + "/keys/identity";
  FERRY_ASSERT_OK(EnsureDeployKey(key));
  absl::StatusOr<DeployKey> first = ReadDeployKey(key);
  FERRY_ASSERT_OK(first);
  EXPECT_EQ(first->public_key.rfind("ssh-ed25519 ", 0), 0u);
  FERRY_ASSERT_OK(EnsureDeployKey(key));  // exists: kept
  EXPECT_EQ(ReadDeployKey(key)->public_key, first->public_key);
  // ssh-keygen -l prints "256 SHA256:... comment (ED25519)".
  std::string listed = testing::RunCommand("ssh-keygen -l -f " + key + ".pub");
  EXPECT_NE(listed.find(first->fingerprint + " "), std::string::npos) << listed;
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace ferry::git_writer
