// Command-line helpers of the benchmark programs that are not Google Benchmark binaries
// (git_writer_soak, git_writer_memory).
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace ferry::bench {

// The value of --`name`=N among `argv`, a number >= 0; `fallback` when absent or not such a
// number.
inline int IntFlag(int argc, char** argv, absl::string_view name, int fallback) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (int i = 1; i < argc; ++i) {
    int value = 0;
    if (absl::StartsWith(argv[i], prefix) &&
        absl::SimpleAtoi(absl::string_view(argv[i]).substr(prefix.size()), &value) && value >= 0) {
      return value;
    }
  }
  return fallback;
}

// The command in environment variable `variable` (a program with its options, split on
// spaces, e.g. "/usr/bin/heaptrack -o /tmp/gw"), to run a service under; empty when unset.
// The program needs its full path.
inline std::vector<std::string> WrapperCommand(const char* variable) {
  std::vector<std::string> command;
  if (const char* wrapper = std::getenv(variable); wrapper != nullptr) {
    for (absl::string_view word : absl::StrSplit(wrapper, ' ', absl::SkipEmpty())) {
      command.emplace_back(word);
    }
  }
  return command;
}

}  // namespace ferry::bench
