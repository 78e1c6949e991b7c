// Ferry's service binaries as child processes for the cross-process benchmarks
// (e2e_bench, scale_bench): each started on loopback, its ports read from its "listening" log
// line, its memory read from /proc while it runs.
#pragma once

#include <sys/types.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace ferry::bench {

// A running service binary and the ports it logged.
struct Service {
  std::unique_ptr<testing::Subprocess> process;
  int grpc_port = 0;
  int metrics_port = 0;

  // "127.0.0.1:PORT" of its gRPC server.
  std::string target() const { return absl::StrCat("127.0.0.1:", grpc_port); }
};

// Starts `argv` (a service binary with --grpc_address and --metrics_address, port 0 or a
// chosen one) and waits up to `timeout` for its "listening" line. Unavailable with the
// process's output when it exits or stays silent.
inline absl::StatusOr<Service> StartService(const std::vector<std::string>& argv,
                                            absl::Duration timeout = absl::Seconds(30)) {
  absl::StatusOr<std::unique_ptr<testing::Subprocess>> process = testing::Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  std::optional<std::string> line = (*process)->WaitForLine(
      [](const std::string& l) {
        return absl::StrContains(l, " listening ") && absl::StrContains(l, "grpc_port=");
      },
      timeout);
  if (!line) {
    return absl::UnavailableError(
        absl::StrCat(argv[0], " did not start listening: ", (*process)->Output()));
  }
  Service s;
  s.grpc_port = testing::IntField(*line, "grpc_port").value_or(0);
  s.metrics_port = testing::IntField(*line, "metrics_port").value_or(0);
  s.process = *std::move(process);
  return s;
}

// A "Vm...:" figure of /proc/PID/status (VmHWM: peak resident set; VmRSS: now) in MB;
// -1 when the process or the field is gone.
inline double ProcStatusMb(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (!absl::StartsWith(line, field + ":")) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line.substr(field.size() + 1), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    double kb = 0;
    if (!parts.empty() && absl::SimpleAtod(parts[0], &kb)) return kb / 1024;
  }
  return -1;
}

}  // namespace ferry::bench
