// Runs a task now and then every interval on its own thread until destroyed.
#pragma once

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ferry::runtime {

class Poller {
 public:
  Poller(absl::Duration interval, std::function<void()> task)
      : interval_(interval), task_(std::move(task)), thread_([this] { Run(); }) {}
  ~Poller() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;  // wakes Run's wait when the lock is released
    }
    thread_.join();
  }
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

 private:
  void Run() {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;  // destroyed before the first run
      }
      task_();
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) return;
    }
  }

  const absl::Duration interval_;
  const std::function<void()> task_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace ferry::runtime
