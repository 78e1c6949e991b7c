#include "services/api/access.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "lib/status/status_matchers.h"
#include "services/api/config.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-access-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string File(const std::string& content) {
    const std::string path = dir_ + "/tokens";
    std::ofstream(path) << content;
    return path;
  }
  static grpc::Status Call(const Access& a, const std::string& authorization, Role role) {
    std::multimap<grpc::string_ref, grpc::string_ref> metadata;
    if (!authorization.empty()) metadata.emplace("authorization", authorization);
    return a.Check(metadata, role);
  }
  std::string dir_;
};

TEST_F(AccessTest, RolesFromTheTokensFile) {
  auto access =
      Access::LoadTokens(File("# Ferry tokens\n\nread  r3ad-0123456789abcdef  dashboards\n"
                              "write wr1te-0123456789abcdef ci-pipeline\n"));
  FERRY_ASSERT_OK(access);
  FERRY_EXPECT_OK(Call(*access, "Bearer r3ad-0123456789abcdef", Role::kRead));
  FERRY_EXPECT_OK(Call(*access, "Bearer wr1te-0123456789abcdef", Role::kWrite));
  FERRY_EXPECT_OK(Call(*access, "Bearer wr1te-0123456789abcdef", Role::kRead));
  grpc::Status denied = Call(*access, "Bearer r3ad-0123456789abcdef", Role::kWrite);
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied,
                               AllOf(HasSubstr("dashboards"), Not(HasSubstr("r3ad-0123")))))
      << "the message names the caller and never shows the token";
  EXPECT_THAT(Call(*access, "", Role::kRead), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Call(*access, "Bearer nope-0123456789abcdef", Role::kRead),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Call(*access, "r3ad-0123456789abcdef", Role::kRead),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AccessTest, MalformedFilesAreRefusedNamingTheLine) {
  auto bad_role = Access::LoadTokens(File("admin 0123456789abcdef0\n"));
  EXPECT_THAT(bad_role, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  auto short_token = Access::LoadTokens(File("read\nread abc\n"));
  EXPECT_THAT(short_token, StatusIs(absl::StatusCode::kInvalidArgument));
  auto empty = Access::LoadTokens(File("# nothing\n"));
  EXPECT_THAT(empty, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Access::LoadTokens(dir_ + "/absent"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AccessTest, TheSameTokenOnTwoLinesIsRefusedNamingBothLines) {
  auto twice =
      Access::LoadTokens(File("read dupl1cate-0123456789 dashboards\n"
                              "# a comment\n"
                              "write dupl1cate-0123456789 ci\n"));
  EXPECT_THAT(twice, StatusIs(absl::StatusCode::kInvalidArgument,
                              AllOf(HasSubstr("lines 1 and 3"), Not(HasSubstr("dupl1cate")))));
}

TEST_F(AccessTest, ATokensFileReadableByOthersIsWarnedAboutWithoutTheTokens) {
  const std::string path = File("write s3cret-0123456789abcdef ci\n");
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  ::testing::internal::CaptureStderr();
  FERRY_ASSERT_OK(Access::LoadTokens(path));
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(absl::StrContains(log, "readable by group or others")) << log;
  EXPECT_TRUE(absl::StrContains(log, path)) << log;
  EXPECT_TRUE(absl::StrContains(log, "0644")) << log;
  EXPECT_FALSE(absl::StrContains(log, "s3cret")) << log;

  std::filesystem::permissions(path, std::filesystem::perms::owner_read);
  ::testing::internal::CaptureStderr();
  FERRY_ASSERT_OK(Access::LoadTokens(path));
  log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(absl::StrContains(log, "readable by group or others")) << log;
}

TEST_F(AccessTest, OpenAccessOnlyOnLoopback) {
  FERRY_EXPECT_OK(Call(Access::Open(), "", Role::kWrite));
  Flags flags;
  flags.server.metrics_address = "127.0.0.1:0";
  flags.server.grpc_address = "0.0.0.0:3030";
  auto refused = ToConfig(flags);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tokens_path")));
  flags.server.grpc_address = "127.0.0.1:3030";
  FERRY_EXPECT_OK(ToConfig(flags));
  flags.server.grpc_address = "0.0.0.0:3030";
  flags.tokens_path = File("read 0123456789abcdef0\n");
  FERRY_EXPECT_OK(ToConfig(flags));
  flags.server.tls_cert_path = dir_ + "/cert.pem";
  auto half_tls = ToConfig(flags);
  EXPECT_THAT(half_tls, StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ferry::api
