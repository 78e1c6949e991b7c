// An HttpClient decorator that is polite to registries: a token bucket per host (rate and
// burst), at most `max_in_flight` requests per host at a time, and on 429 it honours Retry-After
// (capped), halves that host's rate and retries once; the rate then recovers by 10% per successful
// request up to the configured one. Requests sent together that are throttled together halve the
// rate once: a 429 to a request sent before (or at) the last cut says nothing of the lower rate.
//
// Requests wait their turn per host, first come first served within a priority: interactive
// requests (http::Priority, someone waits for the answer now) get the next token and the next
// free slot before the background requests waiting for them, but for every kInteractiveRun
// in a row one background request goes first, so a stream of interactive requests slows the
// scans down and never stops them. Both spend the same budget, but background requests leave
// the last tokens of a host's bucket (kInteractiveReserve, at most a quarter of the burst) to
// interactive ones: scans that keep the budget spent still run at the host's rate, and a
// release's lookup of its image usually takes a token at once instead of waiting for one
// (with the default 10 requests/s, up to 100 ms per request); not after a 429 emptied the
// bucket, nor while a background request is due by the rule above.
//
//   ferry_registry_rate_limit_wait_seconds_total{host}  time spent waiting for a token (and turn)
//   ferry_registry_throttled_total{host}                429 answers received
//   ferry_registry_in_flight_requests{host}             requests being sent now
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/http/http_client.h"
#include "lib/runtime/clock.h"

namespace ferry::registry_scanner {

class RateLimitedHttpClient final : public http::HttpClient {
 public:
  // Tokens (and slots) in a row that interactive requests take while a background one waits,
  // before that one goes.
  static constexpr int kInteractiveRun = 4;
  // Tokens of a host's bucket that only interactive requests take (or a background request
  // whose turn came after a run of interactive ones); at most a quarter of the burst, so 0
  // with a burst under 4.
  static constexpr double kInteractiveReserve = 4;

  struct Options {
    double requests_per_second = 10;
    double burst = 20;
    absl::Duration max_retry_after = absl::Seconds(60);
    double min_requests_per_second = 0.1;
    // Concurrent requests per host; one slow registry holds only its own slots.
    int max_in_flight = 8;
  };
  // `clock` refills the buckets and times the waits (for a token, after a 429); a request
  // waiting for another's turn waits on it too (Clock::WaitUntil). Thread-safe: Send may be
  // called from any number of threads; a call beyond a host's `max_in_flight` blocks until one
  // of that host's requests has been answered.
  RateLimitedHttpClient(http::HttpClient& inner, Options options, prometheus::Registry& registry,
                        runtime::Clock& clock = runtime::SystemClock());

  absl::StatusOr<http::Response> Send(const http::Request& request) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // The current rate for `host` (for tests and status).
  double RateFor(const std::string& host) ABSL_LOCKS_EXCLUDED(mu_);
  // The most requests that were in flight to `host` at once (for tests).
  int PeakInFlight(const std::string& host) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Requests of one priority waiting for a token, in order of arrival: tickets are numbered,
  // and the one numbered `serving` is next.
  struct Queue {
    uint64_t next_ticket = 0;
    uint64_t serving = 0;
    bool empty() const { return next_ticket == serving; }
  };
  struct Bucket {
    double tokens = 0;
    double rate = 0;
    absl::Time updated;
    Queue background;
    Queue interactive;
    int token_run = 0;  // tokens taken in a row by interactive requests, background waiting
    int in_flight = 0;
    int interactive_waiting_for_slot = 0;
    int background_waiting_for_slot = 0;
    int slot_run = 0;  // slots taken in a row by interactive requests, background waiting
    int peak_in_flight = 0;
    absl::Time last_cut = absl::InfinitePast();  // when a 429 last halved the rate
  };
  // Holds one of the host's in-flight slots while a request is sent.
  class Slot;
  // Waits for the request's turn and a token of `host`'s; returns how long it waited (zero
  // when it took one at once).
  absl::Duration Acquire(const std::string& host, http::Priority priority) ABSL_LOCKS_EXCLUDED(mu_);
  // After an answer to a request sent at `sent`: a 429 halves the rate (unless the request was
  // sent at or before the last cut), a success raises it by 10%.
  void Adjust(const std::string& host, bool throttled, absl::Time sent) ABSL_LOCKS_EXCLUDED(mu_);

  http::HttpClient& inner_;
  const Options options_;
  const double reserve_;  // kInteractiveReserve, at most a quarter of the burst
  runtime::Clock& clock_;
  prometheus::Family<prometheus::Counter>& waited_;
  prometheus::Family<prometheus::Counter>& throttled_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  absl::Mutex mu_;
  // std::map: a Bucket's address is stable, so a Slot may keep a pointer to it.
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::registry_scanner
