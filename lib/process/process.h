// Running a child program to completion with a deadline and bounded output, for the external
// tools Ferry drives (kustomize builds, ssh-keygen signatures). The child gets stdin from
// /dev/null (or the bytes of RunOptions::input), the environment it is given and its own
// process group, so a timeout ends it together with what it started.
//
// Thread-safe: children are started with posix_spawn (no fork of a threaded process), every
// descriptor Ferry opens is close-on-exec, so concurrent calls never leak pipes to each other's
// children.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::process {

struct RunOptions {
  // The program and its arguments. argv[0] is searched on the PATH of `env` (else on Ferry's
  // own PATH) when it holds no '/'; otherwise it is run as named.
  std::vector<std::string> argv;
  // The child's working directory; "" = Ferry's.
  std::string working_dir;
  // "KEY=VALUE" entries: the child's whole environment (empty = an empty environment).
  std::vector<std::string> env;
  // From the start to the child's exit and the end of its output.
  absl::Duration timeout = absl::Seconds(30);
  // Over it, the child's process group is killed and Run fails with ResourceExhausted.
  size_t max_stdout_bytes = 64 << 20;
  // The first bytes of stderr are kept, the rest is read and dropped.
  size_t max_stderr_bytes = 64 << 10;
  // When set, the child's stdin: these bytes, then end of file (written while its output is
  // read, so a child that answers as it reads never deadlocks; a child that exits or closes
  // stdin before reading all of them is not an error). Unset: stdin is /dev/null.
  std::optional<std::string> input;
  // When set and it becomes true, the child's process group is killed and Run fails with
  // Cancelled (looked at every 100 ms at most): for a caller that must end sooner than
  // `timeout` (a service shutting down).
  const std::atomic<bool>* cancel = nullptr;
};

struct RunResult {
  int exit_code = 0;  // -1 when ended by a signal
  int signal = 0;     // the signal that ended it, 0 when it exited
  std::string out;    // stdout
  std::string err;    // stderr (its first max_stderr_bytes)
};

// Runs `options.argv` to completion: until the child has exited and both its stdout and
// stderr are closed. Stdout and stderr are read together, so a child that fills one while
// Ferry waits on the other never deadlocks. Errors:
//   InvalidArgument   empty argv, an env entry without '=', or a working_dir that is not
//                     a directory;
//   NotFound          argv[0] not found on PATH, or not executable (names the program);
//   DeadlineExceeded  not done within `timeout` ("... did not finish within 30s");
//   Cancelled         `cancel` became true first ("... was cancelled");
//   ResourceExhausted stdout over `max_stdout_bytes` (names the limit);
//   Internal          pipes or spawning failed.
// On DeadlineExceeded, Cancelled and ResourceExhausted the child's process group is
// SIGKILLed first.
// In every path the child is reaped (no zombie is left). A non-zero exit or a signal is not an
// error status: the caller reads exit_code, signal and err.
absl::StatusOr<RunResult> Run(const RunOptions& options);

// The file execvp would run for `program` with PATH=`path_env`: `program` itself when it holds
// a '/', else the first "<dir>/<program>" along `path_env` (':'-separated; an empty entry is
// the working directory) that is an executable regular file. "" when there is none.
// Thread-safe.
std::string FindOnPath(absl::string_view program, absl::string_view path_env);

}  // namespace ferry::process
