#include "services/registry-scanner/rate_limited_http_client.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/numbers.h"

namespace ferry::registry_scanner {
RateLimitedHttpClient::RateLimitedHttpClient(http::HttpClient& inner, Options options,
                                             prometheus::Registry& registry, runtime::Clock& clock)
    : inner_(inner),
      options_(options),
      reserve_(std::min<double>(kInteractiveReserve, std::floor(options.burst / 4))),
      clock_(clock),
      waited_(prometheus::BuildCounter()
                  .Name("ferry_registry_rate_limit_wait_seconds_total")
                  .Help("Time spent waiting for the per-host request budget.")
                  .Register(registry)),
      throttled_(prometheus::BuildCounter()
                     .Name("ferry_registry_throttled_total")
                     .Help("429 Too Many Requests answers from registries.")
                     .Register(registry)),
      in_flight_(prometheus::BuildGauge()
                     .Name("ferry_registry_in_flight_requests")
                     .Help("Requests to a registry host being sent now.")
                     .Register(registry)) {}

// Waits for a free slot of the host's (an interactive request before a background one, but
// for every kInteractiveRun slots in a row); the slot is given back when destroyed, and
// releasing mu_ then wakes a waiter whose condition now holds (absl::Mutex needs no
// notification).
class RateLimitedHttpClient::Slot {
 public:
  Slot(RateLimitedHttpClient& owner, const std::string& host, http::Priority priority)
      : owner_(owner), gauge_(owner.in_flight_.Add({{"host", host}})) {
    absl::MutexLock lock(&owner_.mu_);
    Bucket* bucket = &owner_.buckets_[host];
    const int max_in_flight = owner_.options_.max_in_flight;
    const bool interactive = priority == http::Priority::kInteractive;
    const std::function<bool()> free = [bucket, max_in_flight, interactive] {
      if (bucket->in_flight >= max_in_flight) return false;
      const bool background_due =
          bucket->slot_run >= kInteractiveRun && bucket->background_waiting_for_slot > 0;
      return interactive ? !background_due
                         : bucket->interactive_waiting_for_slot == 0 || background_due;
    };
    int& waiting =
        interactive ? bucket->interactive_waiting_for_slot : bucket->background_waiting_for_slot;
    ++waiting;
    if (!free()) owner_.clock_.WaitUntil(owner_.mu_, absl::InfiniteFuture(), free);
    --waiting;
    bucket->slot_run =
        interactive && bucket->background_waiting_for_slot > 0 ? bucket->slot_run + 1 : 0;
    ++bucket->in_flight;
    bucket->peak_in_flight = std::max(bucket->peak_in_flight, bucket->in_flight);
    gauge_.Increment();
    bucket_ = bucket;
  }
  ~Slot() {
    absl::MutexLock lock(&owner_.mu_);
    --bucket_->in_flight;
    gauge_.Decrement();
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  RateLimitedHttpClient& owner_;
  prometheus::Gauge& gauge_;
  Bucket* bucket_ = nullptr;  // in owner_.buckets_; read and written with owner_.mu_ held
};

absl::Duration RateLimitedHttpClient::Acquire(const std::string& host, http::Priority priority) {
  const bool interactive = priority == http::Priority::kInteractive;
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = buckets_.try_emplace(host);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = options_.burst;
    b.rate = options_.requests_per_second;
    b.updated = clock_.SteadyNow();
  }
  Queue& queue = interactive ? b.interactive : b.background;
  const uint64_t ticket = queue.next_ticket;
  // This request's turn: the first of its queue; an interactive one goes before a background
  // one, but for every kInteractiveRun tokens in a row the first background one goes.
  const auto background_due = [&b] {
    return b.token_run >= kInteractiveRun && !b.background.empty();
  };
  const std::function<bool()> turn = [&queue, ticket, interactive, &b, &background_due] {
    if (queue.serving != ticket) return false;
    return interactive ? !background_due() : b.interactive.empty() || background_due();
  };
  ++queue.next_ticket;  // taken: from here on, it is served before this function returns
  absl::Time start;
  bool waited = false;
  for (;;) {
    const absl::Time now = clock_.SteadyNow();
    if (!waited) start = now;
    if (!turn()) {
      waited = true;
      clock_.WaitUntil(mu_, absl::InfiniteFuture(), turn);
      continue;
    }
    b.tokens = std::min(options_.burst, b.tokens + absl::ToDoubleSeconds(now - b.updated) * b.rate);
    b.updated = now;
    // A background request leaves the reserve to interactive ones, unless its turn came by
    // aging (then it takes the next token, or interactive requests would stop it for good).
    const double needed = interactive || background_due() ? 1 : 1 + reserve_;
    if (b.tokens >= needed) break;
    // Until the next token, one at a time: whoever's turn it is then takes it (an interactive
    // request that came meanwhile, else this one), and a background request that became due
    // meanwhile no longer needs the reserve (it holds the interactive ones back while it
    // sleeps). At least a nanosecond: a deficit of a rounding error's size would make a sleep
    // of zero, which on a clock that only moves by sleeps would never end the wait.
    const double deficit = std::min(1.0, needed - b.tokens);
    const absl::Duration until_token =
        std::max(absl::Nanoseconds(1), absl::Seconds(deficit / b.rate));
    waited = true;
    mu_.Unlock();
    clock_.SleepFor(until_token);
    mu_.Lock();
  }
  b.tokens -= 1;
  ++queue.serving;  // the next in line may go once its token is there
  b.token_run = interactive && !b.background.empty() ? b.token_run + 1 : 0;
  return waited ? clock_.SteadyNow() - start : absl::ZeroDuration();
}

void RateLimitedHttpClient::Adjust(const std::string& host, bool throttled, absl::Time sent) {
  absl::MutexLock lock(&mu_);
  Bucket& b = buckets_[host];
  if (throttled) {
    if (sent > b.last_cut) {  // sent after the last cut: the lowered rate is still too high
      b.rate = std::max(options_.min_requests_per_second, b.rate / 2);
      b.last_cut = clock_.Now();
    }
    b.tokens = std::min(b.tokens, 0.0);
  } else {
    b.rate = std::min(options_.requests_per_second, b.rate * 1.1);
  }
}

int RateLimitedHttpClient::PeakInFlight(const std::string& host) {
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(host);
  return it == buckets_.end() ? 0 : it->second.peak_in_flight;
}

double RateLimitedHttpClient::RateFor(const std::string& host) {
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(host);
  return it == buckets_.end() ? options_.requests_per_second : it->second.rate;
}

absl::StatusOr<http::Response> RateLimitedHttpClient::Send(const http::Request& request) {
  const std::string host = http::HostOfUrl(request.url);
  for (int attempt = 0;; ++attempt) {
    const absl::Duration waited = Acquire(host, request.priority);
    if (waited > absl::ZeroDuration()) {
      waited_.Add({{"host", host}}).Increment(absl::ToDoubleSeconds(waited));
    }
    absl::Time sent;
    absl::StatusOr<http::Response> response = [&] {
      Slot slot(*this, host, request.priority);
      sent = clock_.Now();
      return inner_.Send(request);
    }();
    if (!response.ok() || response->status != 429) {
      if (response.ok()) Adjust(host, false, sent);
      return response;
    }
    throttled_.Add({{"host", host}}).Increment();
    Adjust(host, true, sent);
    if (attempt >= 1) return response;  // retried once already: let the caller back off
    int64_t seconds = 1;
    (void)absl::SimpleAtoi(response->Header("retry-after"), &seconds);
    clock_.SleepFor(
        std::min(absl::Seconds(std::max<int64_t>(seconds, 0)), options_.max_retry_after));
  }
}

}  // namespace ferry::registry_scanner
