#include "lib/runtime/fake_clock.h"

#include <chrono>

namespace ferry::runtime {

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

bool FakeClock::WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          absl::Time deadline, const std::function<bool()>& done) {
  int64_t id;
  {
    std::lock_guard<std::mutex> guard(mu_);
    id = next_id_++;
    waiters_[id] = {&cv, lock.mutex(), generation_};
    ++waits_begun_;
  }
  changed_.notify_all();
  // The caller holds `lock` from each check until cv.wait releases it, and Advance takes that
  // mutex before notifying: no wake-up is lost between the check and the wait.
  while (!done()) {
    bool expired;
    {
      std::lock_guard<std::mutex> guard(mu_);
      waiters_[id].seen = generation_;
      expired = now_ >= deadline;
      if (expired) waiters_.erase(id);
    }
    changed_.notify_all();
    if (expired) return false;
    cv.wait(lock);
  }
  {
    std::lock_guard<std::mutex> guard(mu_);
    waiters_.erase(id);
  }
  changed_.notify_all();
  return true;
}

void FakeClock::Advance(absl::Duration d) {
  std::map<int64_t, Waiter> waiters;
  int64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
    generation = ++generation_;
    waiters = waiters_;
  }
  for (const auto& [id, w] : waiters) {
    std::lock_guard<std::mutex> lock(*w.mu);
    w.cv->notify_all();
  }
  // Bounded in real time all the same: a waiter that never looks again is a bug of the test.
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, std::chrono::seconds(10), [&] {
    for (const auto& [id, w] : waiters) {
      auto it = waiters_.find(id);
      if (it != waiters_.end() && it->second.seen < generation) return false;
    }
    return true;
  });
}

int64_t FakeClock::waits_begun() {
  std::lock_guard<std::mutex> lock(mu_);
  return waits_begun_;
}

int FakeClock::waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(waiters_.size());
}

bool FakeClock::AwaitWaits(int64_t n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return waits_begun_ >= n; });
}

}  // namespace ferry::runtime
