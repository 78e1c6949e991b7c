// ferryctl's exit codes, so scripts and CI steps can tell failures apart.
#pragma once

#include <ostream>

#include "absl/status/status.h"

namespace ferry::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // anything not listed below
  kExitUsage = 2,        // bad flags or arguments (INVALID_ARGUMENT)
  kExitNotFound = 3,     // workload, container, job or file not found
  kExitDenied = 4,       // UNAUTHENTICATED or PERMISSION_DENIED
  kExitUnavailable = 5,  // the server cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED)
  kExitConflict = 6,     // ABORTED / FAILED_PRECONDITION: state changed or forbids it
  kExitJobFailed = 7,    // a release/policy/sync job failed, or a workload in it failed
};

// The exit code for a failed status.
inline int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitDenied;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return kExitConflict;
    default:
      return kExitError;
  }
}

// Prints "ferryctl: <message>" to `err` and returns the exit code for `status`.
inline int ReportError(std::ostream& err, const absl::Status& status) {
  err << "ferryctl: " << status.message() << "\n";
  return ExitCodeFor(status);
}

}  // namespace ferry::cli
