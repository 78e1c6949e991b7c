#include "lib/runtime/clock.h"

#include <algorithm>
#include <chrono>

#include "absl/time/clock.h"

namespace ferry::runtime {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  absl::Time SteadyNow() override {
    return absl::UnixEpoch() +
           absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }
  bool WaitUntil(absl::Mutex& mu, absl::Time deadline, const std::function<bool()>& done) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deadline == absl::InfiniteFuture()) {
      mu.Await(absl::Condition(&done));
      return true;
    }
    return mu.AwaitWithDeadline(absl::Condition(&done), deadline);
  }
};

}  // namespace

Clock& SystemClock() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace ferry::runtime
