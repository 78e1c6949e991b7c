// A Clock for tests: time stands still until the test (or SleepFor) moves it; a test can wait
// until the code under test is blocked on the clock before moving it, and when Advance
// returns, every waiter has looked at the new time.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/runtime/clock.h"

namespace ferry::runtime {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000));

  absl::Time Now() override;
  // Moves time on by `d` at once: sleeping is what moves time for a single thread.
  void SleepFor(absl::Duration d) override { Advance(d); }
  bool WaitUntil(absl::Mutex& mu, absl::Time deadline, const std::function<bool()>& done) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Moves time on by `d`, and returns once every WaitUntil in progress has looked at the new
  // time: each has either returned (its deadline passed) or waits on.
  void Advance(absl::Duration d);
  // How many WaitUntil calls have begun so far.
  int64_t waits_begun();
  // How many WaitUntil calls are in progress.
  int waiting();
  // Blocks until `n` WaitUntil calls have begun (the n-th caller then holds or has released
  // its lock in its wait, so what the test does next under that lock happens while it
  // waits), or until `timeout` of real time has passed (a bug's safety net). Returns whether
  // they had.
  bool AwaitWaits(int64_t n, absl::Duration timeout = absl::Seconds(10));

 private:
  struct Waiter {
    // Woken to look at the time again by a lock and unlock of its mutex (the unlock
    // evaluates its condition).
    absl::Mutex* mu = nullptr;
    int64_t seen = 0;  // the last generation of the time it compared with its deadline
  };
  // Registers a wait; returns its id.
  int64_t Begin(const Waiter& waiter) ABSL_LOCKS_EXCLUDED(mu_);
  // Records that wait `id` looked at the time; returns whether `deadline` has passed (the
  // wait is then over) and, in `generation`, the time's generation it looked at.
  bool LookAtTime(int64_t id, absl::Time deadline, int64_t* generation) ABSL_LOCKS_EXCLUDED(mu_);
  void End(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  // Advance calls; read without mu_ by the conditions of waiters on an absl::Mutex.
  std::atomic<int64_t> generation_{0};
  int64_t waits_begun_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);  // WaitUntil calls in progress
};

}  // namespace ferry::runtime
