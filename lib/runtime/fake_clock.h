// A Clock for tests: time stands still until the test (or SleepFor) moves it; a test can wait
// until the code under test is blocked on the clock before moving it, and when Advance
// returns, every waiter has looked at the new time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>

#include "lib/runtime/clock.h"

namespace ferry::runtime {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000));

  absl::Time Now() override;
  // Moves time on by `d` at once: sleeping is what moves time for a single thread.
  void SleepFor(absl::Duration d) override { Advance(d); }
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 absl::Time deadline, const std::function<bool()>& done) override;

  // Moves time on by `d`, and returns once every WaitUntil in progress has looked at the new
  // time: each has either returned (its deadline passed) or waits on.
  void Advance(absl::Duration d);
  // How many WaitUntil calls have begun so far.
  int64_t waits_begun();
  // How many WaitUntil calls are in progress.
  int waiting();
  // Blocks until `n` WaitUntil calls have begun (the n-th caller then holds or has released
  // its lock in cv.wait, so what the test does next under that lock happens while it
  // waits), or until `timeout` of real time has passed (a bug's safety net). Returns whether
  // they had.
  bool AwaitWaits(int64_t n, absl::Duration timeout = absl::Seconds(10));

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mu;
    int64_t seen;  // the last generation of the time it compared with its deadline
  };

  std::mutex mu_;
  std::condition_variable changed_;  // a wait began, looked at the time or ended
  absl::Time now_;
  int64_t generation_ = 0;  // Advance calls
  int64_t waits_begun_ = 0;
  int64_t next_id_ = 0;
  std::map<int64_t, Waiter> waiters_;  // WaitUntil calls in progress, by id
};

}  // namespace ferry::runtime
