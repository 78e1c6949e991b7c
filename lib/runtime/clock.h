// Time as Ferry's loops see it: the system's (SystemClock), or a test's
// (FakeClock in fake_clock.h), so that intervals, backoff and the CRD wait can be tested in
// milliseconds without sleeping.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>

#include "absl/time/time.h"

namespace ferry::runtime {

// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() = 0;
  // Blocks the calling thread for `d` of this clock's time.
  virtual void SleepFor(absl::Duration d) = 0;
  // Called with `lock` held on the mutex `cv` waits with: waits (releasing it, as
  // std::condition_variable::wait does) until `done()` holds or this clock reaches
  // `deadline`, whichever comes first; absl::InfiniteFuture() waits for `done()` alone.
  // Returns done(). Whoever makes done() true notifies `cv`, holding the mutex or after.
  virtual bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         absl::Time deadline, const std::function<bool()>& done) = 0;
};

// The system's clock: absl::Now(), absl::SleepFor(), condition-variable timeouts. Lives as
// long as the program.
Clock& SystemClock();

}  // namespace ferry::runtime
