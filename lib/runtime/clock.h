// Time as Ferry's loops see it: the system's (SystemClock), or a test's
// (FakeClock in fake_clock.h), so that intervals, backoff and the CRD wait can be tested in
// milliseconds without sleeping.
#pragma once

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ferry::runtime {

// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // Wall-clock time: what to show people and write into records other machines read. It may
  // jump (NTP steps, an operator's `date -s`), so never measure an interval with it.
  virtual absl::Time Now() = 0;
  // A steady (monotonic) reading, for measuring intervals and deadlines: it never goes back
  // and ignores steps of the wall clock. Its epoch is arbitrary (compare two readings, never
  // a reading with Now()). The default is Now(), for clocks that never step (FakeClock, whose
  // Advance thus moves both); SystemClock reads std::chrono::steady_clock.
  virtual absl::Time SteadyNow() { return Now(); }
  // Blocks the calling thread for `d` of this clock's time.
  virtual void SleepFor(absl::Duration d) = 0;
  // Called with `mu` held: waits (releasing it, as absl::Mutex::Await does) until `done()`
  // holds or this clock reaches `deadline`, whichever comes first; absl::InfiniteFuture()
  // waits for `done()` alone. `done` is evaluated with `mu` held, by any thread, and must
  // neither block nor lock; whoever makes it true does so holding `mu` (its unlock wakes the
  // waiter, no notification needed). Returns done().
  virtual bool WaitUntil(absl::Mutex& mu, absl::Time deadline, const std::function<bool()>& done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// The system's clock: absl::Now(), absl::SleepFor(), absl::Mutex's timed waits. Lives as
// long as the program.
Clock& SystemClock();

}  // namespace ferry::runtime
