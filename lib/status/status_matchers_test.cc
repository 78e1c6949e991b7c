#include "lib/status/status_matchers.h"

#include <gtest/gtest-spi.h>

#include <memory>
#include <string>

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<std::unique_ptr<int>> Boxed(int value) { return std::make_unique<int>(value); }

TEST(StatusMatchersTest, IsOkMatchesOkStatusAndValue) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::NotFoundError("gone"), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::InternalError("x")), Not(IsOk()));
}

TEST(StatusMatchersTest, StatusIsChecksCodeAndMessage) {
  const absl::Status status = absl::InvalidArgumentError("line 3: tab in indentation");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 3")));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kNotFound, HasSubstr("line 3"))));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 4"))));
  EXPECT_THAT(absl::StatusOr<int>(status),
              StatusIs(absl::StatusCode::kInvalidArgument, "line 3: tab in indentation"));
}

TEST(StatusMatchersTest, AssertOkFailsAndPrintsTheStatus) {
  EXPECT_FATAL_FAILURE(FERRY_ASSERT_OK(absl::UnavailableError("peer git-writer down")),
                       "peer git-writer down");
  EXPECT_NONFATAL_FAILURE(FERRY_EXPECT_OK(absl::StatusOr<int>(absl::AbortedError("raced"))),
                          "raced");
}

TEST(StatusMatchersTest, AssertOkAndAssignMovesTheValue) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<int> boxed, Boxed(7));
  ASSERT_NE(boxed, nullptr);
  EXPECT_EQ(*boxed, 7);
}

TEST(StatusMatchersTest, GrpcStatusIsMatchedByCodeAndMessage) {
  EXPECT_THAT(grpc::Status::OK, IsOk());
  FERRY_EXPECT_OK(grpc::Status());
  const grpc::Status denied(grpc::StatusCode::PERMISSION_DENIED, "token lacks release scope");
  EXPECT_THAT(denied, Not(IsOk()));
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("release scope")));
  EXPECT_THAT(denied, Not(StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("release"))));
  EXPECT_FATAL_FAILURE(
      FERRY_ASSERT_OK(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connect refused")),
      "connect refused");
}

void AssignFromError() {
  FERRY_ASSERT_OK_AND_ASSIGN(int value, absl::StatusOr<int>(absl::DataLossError("torn pack")));
  (void)value;
}

TEST(StatusMatchersTest, AssertOkAndAssignFailsOnError) {
  EXPECT_FATAL_FAILURE(AssignFromError(), "torn pack");
}

}  // namespace
}  // namespace ferry::testing
