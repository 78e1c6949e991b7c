// Runs a program as a child process for cross-process tests, capturing its stderr (and
// stdout) line by line so tests can wait for a log line instead of sleeping.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::testing {

class Subprocess {
 public:
  // Starts `argv[0]` with `argv`, in the current environment plus `env` ("NAME=value").
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  // Kills the process (SIGKILL) if it is still running and reaps it.
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // Waits until an output line satisfies `match` or the process exits or `timeout` passes.
  // Returns the line, or nullopt.
  std::optional<std::string> WaitForLine(const std::function<bool(const std::string&)>& match,
                                         absl::Duration timeout);

  // Sends `signal`.
  void Signal(int signal);

  // Waits for the process to exit; returns its exit code (128 + signal when killed by one),
  // or nullopt after `timeout`.
  std::optional<int> Wait(absl::Duration timeout);

  // All output lines so far, joined with newlines.
  std::string Output();

 private:
  Subprocess() = default;
  void ReadLoop(int fd);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

// Extracts the integer value of `key=N` (text logs) from a line; nullopt if absent.
std::optional<int> IntField(const std::string& line, const std::string& key);

}  // namespace ferry::testing
