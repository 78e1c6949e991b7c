// git over https against a real smart-HTTP server (git http-backend behind TLS and Basic
// auth, tests/support/git_https_server.py) on a loopback port, reached as "localhost"
// (libgit2 with mbedTLS matches certificate names, not IP addresses).
#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/libgit2_repository.h"
#include "tests/support/git_repo.h"
#include "tests/support/subprocess.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto upstream =
        testing::GitRepo::Create({{"app.yaml", "kind: ConfigMap\nmetadata:\n  name: a\n"}});
    FERRY_ASSERT_OK(upstream);
    upstream_ = *std::move(upstream);
    const std::string d = upstream_->dir();
    int status = 0;
    std::string out = testing::RunCommand(
        absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                     "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
                     d, "/key.pem -out ", d, "/cert.pem 2>&1"),
        &status);
    ASSERT_EQ(status, 0) << out;
    auto server = testing::Subprocess::Start(
        {"/usr/bin/env", "python3",
         std::string(FERRY_SOURCE_DIR) + "/tests/support/git_https_server.py", "--root", d,
         "--cert", d + "/cert.pem", "--key", d + "/key.pem", "--user", "ferry", "--password",
         "s3cret-pass"});
    FERRY_ASSERT_OK(server);
    server_ = *std::move(server);
    auto line = server_->WaitForLine(
        [](const std::string& l) { return absl::StartsWith(l, "listening "); }, absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << server_->Output();
    port_ = std::stoi(line->substr(10));
  }

  absl::StatusOr<std::unique_ptr<Libgit2Repository>> Open(const std::string& credentials,
                                                          bool trust_ca,
                                                          const std::string& mirror) {
    const std::string cred_path = upstream_->dir() + "/credentials-" + mirror;
    std::ofstream(cred_path) << credentials << "\n";
    Libgit2Options o;
    o.url = absl::StrCat("https://localhost:", port_, "/upstream.git");
    o.mirror_dir = upstream_->dir() + "/" + mirror;
    o.https_credentials_path = cred_path;
    if (trust_ca) o.ca_path = upstream_->dir() + "/cert.pem";
    return Libgit2Repository::Open(o);
  }

  std::unique_ptr<testing::GitRepo> upstream_;
  std::unique_ptr<testing::Subprocess> server_;
  int port_ = 0;
};

TEST_F(HttpsTest, FetchesAndPushesWithCredentialsFromAFile) {
  auto repo = Open("ferry:s3cret-pass", true, "m1.git");
  FERRY_ASSERT_OK(repo);
  absl::StatusOr<std::string> head = (*repo)->Fetch();
  FERRY_ASSERT_OK(head);
  EXPECT_EQ(*head, upstream_->Head());
  CommitSpec spec;
  spec.parent = *head;
  spec.files["app.yaml"] = "kind: ConfigMap\nmetadata:\n  name: b\n";
  spec.message = "Over https";
  spec.author = spec.committer = {"Ferry", "ferry@example.com"};
  absl::StatusOr<std::string> commit = (*repo)->CreateCommit(spec);
  FERRY_ASSERT_OK(commit);
  absl::Status pushed = (*repo)->PushBranch(*commit);
  FERRY_ASSERT_OK(pushed);
  EXPECT_EQ(upstream_->Head(), *commit);
}

TEST_F(HttpsTest, WrongPasswordIsRefusedWithoutShowingIt) {
  auto repo = Open("ferry:wrong-password", true, "m2.git");
  FERRY_ASSERT_OK(repo);
  absl::StatusOr<std::string> head = (*repo)->Fetch();
  EXPECT_THAT(head, StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("wrong-password"))));
}

TEST_F(HttpsTest, UntrustedCertificateIsRefused) {
  auto repo = Open("ferry:s3cret-pass", false, "m3.git");
  FERRY_ASSERT_OK(repo);
  absl::StatusOr<std::string> head = (*repo)->Fetch();
  ASSERT_THAT(head, Not(IsOk()));
  EXPECT_THAT(head.status().message(), HasSubstr("certificate"));
}

}  // namespace
}  // namespace ferry::git_writer
