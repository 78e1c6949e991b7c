// Early-return helpers for absl::Status / absl::StatusOr<T>.
//
// Abseil 20220623 ships no such macros. Use them in functions that return absl::Status or
// absl::StatusOr<U>:
//
//   FERRY_RETURN_IF_ERROR(WriteFile(path, bytes));
//   FERRY_ASSIGN_OR_RETURN(Config config, LoadConfig(path));
//
// The error is returned unchanged; add context at the call site that knows it.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FERRY_STATUS_CONCAT_INNER_(a, b) a##b
#define FERRY_STATUS_CONCAT_(a, b) FERRY_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define FERRY_RETURN_IF_ERROR(expr)                \
  do {                                             \
    const ::absl::Status ferry_status_ = (expr);   \
    if (!ferry_status_.ok()) return ferry_status_; \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from the enclosing
// function, otherwise moves the value into `lhs`, which may declare a variable.
#define FERRY_ASSIGN_OR_RETURN(lhs, rexpr) \
  FERRY_ASSIGN_OR_RETURN_IMPL_(FERRY_STATUS_CONCAT_(ferry_statusor_, __LINE__), lhs, rexpr)

#define FERRY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)
