// Laps: where an operation's time went, for the timing fields of a log line ("fetch_ms",
// "edit_ms", ...).
#pragma once

#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ferry::log {

// Milliseconds between marks. Not thread-safe: one per operation.
class Laps {
 public:
  Laps() : mark_(absl::Now()) {}

  // Whole milliseconds since the previous call (the first: since construction).
  int64_t Next() {
    const absl::Time now = absl::Now();
    const int64_t ms = absl::ToInt64Milliseconds(now - mark_);
    mark_ = now;
    return ms;
  }

 private:
  absl::Time mark_;
};

}  // namespace ferry::log
