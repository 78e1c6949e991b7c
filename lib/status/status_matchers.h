// Test helpers for absl::Status, absl::StatusOr<T> and grpc::Status.
//
//   FERRY_ASSERT_OK(repo.Push());                       // prints the status when it fails
//   FERRY_ASSERT_OK_AND_ASSIGN(Index index, Build(files));
//   EXPECT_THAT(Parse(text), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 3")));
//   EXPECT_THAT(Load(path), IsOk());
//   FERRY_ASSERT_OK(stub->GetJob(&context, request, &job));  // a grpc::Status works too
//
// Failures print the code and message, so a broken test says why without a hand-written `<<`.
#pragma once

#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "lib/status/grpc_status.h"
#include "lib/status/status_macros.h"

namespace ferry::testing {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
// A grpc::Status is matched as the absl::Status with the same code and message.
inline absl::Status StatusOf(const grpc::Status& status) { return FromGrpcStatus(status); }

MATCHER(IsOk, negation ? "is not OK" : "is OK") {
  const absl::Status status = ::ferry::testing::StatusOf(arg);
  if (!status.ok()) *result_listener << "whose status is " << status;
  return status.ok();
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string(negation ? "does not have" : "has") + " code " +
               absl::StatusCodeToString(code)) {
  const absl::Status status = ::ferry::testing::StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

// The code alone, whatever the message.
MATCHER_P(StatusIs, code,
          std::string(negation ? "does not have" : "has") + " code " +
              absl::StatusCodeToString(code)) {
  const absl::Status status = ::ferry::testing::StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code;
}

}  // namespace ferry::testing

// Asserts that `expr` (an absl::Status, absl::StatusOr<T> or grpc::Status) is OK, printing it
// otherwise.
#define FERRY_ASSERT_OK(expr) ASSERT_THAT((expr), ::ferry::testing::IsOk())
#define FERRY_EXPECT_OK(expr) EXPECT_THAT((expr), ::ferry::testing::IsOk())

// Asserts that `rexpr` is OK and moves its value into `lhs`, which may declare a variable.
#define FERRY_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  FERRY_ASSERT_OK_AND_ASSIGN_IMPL_(FERRY_STATUS_CONCAT_(ferry_statusor_, __LINE__), lhs, rexpr)

#define FERRY_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  ASSERT_THAT(statusor, ::ferry::testing::IsOk());             \
  lhs = *std::move(statusor)
