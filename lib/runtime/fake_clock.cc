#include "lib/runtime/fake_clock.h"

namespace ferry::runtime {

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

int64_t FakeClock::Begin(const Waiter& waiter) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  waiters_[id] = waiter;
  waiters_[id].seen = generation_.load();
  ++waits_begun_;
  return id;
}

bool FakeClock::LookAtTime(int64_t id, absl::Time deadline, int64_t* generation) {
  absl::MutexLock lock(&mu_);
  *generation = generation_.load();
  waiters_[id].seen = *generation;
  const bool expired = now_ >= deadline;
  if (expired) waiters_.erase(id);
  return expired;
}

void FakeClock::End(int64_t id) {
  absl::MutexLock lock(&mu_);
  waiters_.erase(id);
}

bool FakeClock::WaitUntil(absl::Mutex& mu, absl::Time deadline, const std::function<bool()>& done) {
  const int64_t id = Begin(Waiter{.mu = &mu});
  while (!done()) {
    int64_t generation;
    if (LookAtTime(id, deadline, &generation)) return false;
    // Wakes when done() holds or time moved since it looked: Advance locks and unlocks `mu`
    // after moving it, and that unlock evaluates this condition.
    const std::function<bool()> woken = [&] { return done() || generation_.load() != generation; };
    mu.Await(absl::Condition(&woken));
  }
  End(id);
  return true;
}

void FakeClock::Advance(absl::Duration d) {
  std::map<int64_t, Waiter> waiters;
  int64_t generation;
  {
    absl::MutexLock lock(&mu_);
    now_ += d;
    generation = ++generation_;
    waiters = waiters_;
  }
  for (const auto& [id, w] : waiters) {
    w.mu->Lock();
    w.mu->Unlock();
  }
  // Bounded in real time all the same: a waiter that never looks again is a bug of the test.
  absl::MutexLock lock(&mu_);
  auto all_looked = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, w] : waiters) {
      auto it = waiters_.find(id);
      if (it != waiters_.end() && it->second.seen < generation) return false;
    }
    return true;
  };
  mu_.AwaitWithTimeout(absl::Condition(&all_looked), absl::Seconds(10));
}

int64_t FakeClock::waits_begun() {
  absl::MutexLock lock(&mu_);
  return waits_begun_;
}

int FakeClock::waiting() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiters_.size());
}

bool FakeClock::AwaitWaits(int64_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto begun = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waits_begun_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&begun), timeout);
}

}  // namespace ferry::runtime
