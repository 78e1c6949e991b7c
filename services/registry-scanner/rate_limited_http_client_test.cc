#include "services/registry-scanner/rate_limited_http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/http/fake_http_client.h"
#include "lib/runtime/fake_clock.h"
#include "lib/status/status_matchers.h"
#include "tests/support/metrics.h"

namespace ferry::registry_scanner {
namespace {

constexpr char kUrl[] = "https://registry.example:5000/v2/a/tags/list";
constexpr char kHost[] = "registry.example:5000";
constexpr char kOtherUrl[] = "https://other.example/v2/b/tags/list";
constexpr char kOtherHost[] = "other.example";

// The client's waits move the fake clock: the time it has moved is the time waited.
class RateLimitTest : public ::testing::Test {
 protected:
  RateLimitTest() {
    for (const char* url : {kUrl, kOtherUrl}) inner_.Set("GET", url, http::Response{200, {}, ""});
  }

  std::unique_ptr<RateLimitedHttpClient> Client(double rps, double burst) {
    RateLimitedHttpClient::Options o;
    o.requests_per_second = rps;
    o.burst = burst;
    o.max_retry_after = absl::Seconds(30);
    return std::make_unique<RateLimitedHttpClient>(inner_, o, registry_, clock_);
  }
  static http::Request Get(const std::string& url = kUrl) {
    http::Request r;
    r.url = url;
    return r;
  }
  double WaitedSeconds(const std::string& host) {
    return testing::MetricSum(registry_, "ferry_registry_rate_limit_wait_seconds_total",
                              {{"host", host}});
  }

  runtime::FakeClock clock_;
  prometheus::Registry registry_;
  http::FakeHttpClient inner_;
};

TEST_F(RateLimitTest, BurstThenSteadyRate) {
  auto client = Client(2, 3);
  const absl::Time start = clock_.Now();
  for (int i = 0; i < 3; ++i) FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_EQ(clock_.Now(), start);  // the burst
  FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(500));  // 2 per second
  EXPECT_DOUBLE_EQ(WaitedSeconds(kHost), 0.5);
  clock_.Advance(absl::Seconds(10));  // idle: the bucket refills up to the burst only
  const absl::Time idle = clock_.Now();
  for (int i = 0; i < 3; ++i) FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_EQ(clock_.Now(), idle);
  FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_EQ(clock_.Now() - idle, absl::Milliseconds(500));
  EXPECT_EQ(inner_.Count("GET", kUrl), 8);
}

TEST_F(RateLimitTest, OtherHostsKeepTheirOwnBudget) {
  auto client = Client(2, 3);
  const absl::Time start = clock_.Now();
  for (int i = 0; i < 3; ++i) FERRY_ASSERT_OK(client->Send(Get(kUrl)));  // kHost's burst, spent
  // A budget shared between hosts would make these wait.
  for (int i = 0; i < 3; ++i) FERRY_ASSERT_OK(client->Send(Get(kOtherUrl)));
  EXPECT_EQ(clock_.Now(), start) << kOtherHost << " has a burst of its own";
  EXPECT_EQ(WaitedSeconds(kOtherHost), 0);
  // kHost's budget is still the one that was spent.
  FERRY_ASSERT_OK(client->Send(Get(kUrl)));
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(500));
  EXPECT_DOUBLE_EQ(WaitedSeconds(kHost), 0.5);
}

TEST_F(RateLimitTest, TooManyRequestsHonoursRetryAfterHalvesTheRateAndRecovers) {
  auto client = Client(8, 100);
  inner_.Enqueue("GET", kUrl, http::Response{429, {{"retry-after", "3"}}, ""});
  const absl::Time start = clock_.Now();
  absl::StatusOr<http::Response> r = client->Send(Get());
  FERRY_ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);  // retried once after waiting
  EXPECT_EQ(inner_.Count("GET", kUrl), 2);
  EXPECT_EQ(clock_.Now() - start, absl::Seconds(3));
  EXPECT_NEAR(client->RateFor(kHost), 8 * 1.1 / 2, 1e-9);
  EXPECT_EQ(testing::MetricSum(registry_, "ferry_registry_throttled_total", {{"host", kHost}}), 1);
  for (int i = 0; i < 20; ++i) FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_DOUBLE_EQ(client->RateFor(kHost), 8);  // back, never above
}

TEST_F(RateLimitTest, RepeatedThrottlingIsReturnedAndRetryAfterIsCapped) {
  auto client = Client(8, 100);
  http::Response throttled{429, {{"retry-after", "3600"}}, ""};
  inner_.Enqueue("GET", kUrl, throttled);
  inner_.Enqueue("GET", kUrl, throttled);
  const absl::Time start = clock_.Now();
  absl::StatusOr<http::Response> r = client->Send(Get());
  FERRY_ASSERT_OK(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(inner_.Count("GET", kUrl), 2);
  EXPECT_EQ(clock_.Now() - start, absl::Seconds(30));
  EXPECT_DOUBLE_EQ(client->RateFor(kHost), 2);  // halved twice
  // The throttled host's lowered rate and emptied bucket are its own: another host is sent
  // to at once and keeps the configured rate.
  const absl::Time throttled_at = clock_.Now();
  FERRY_ASSERT_OK(client->Send(Get(kOtherUrl)));
  EXPECT_EQ(clock_.Now(), throttled_at);
  EXPECT_DOUBLE_EQ(client->RateFor(kOtherHost), 8);
}

// With several requests in flight (a scan fetches many tags at once), the 429s answering the
// requests sent before the rate was halved do not halve it again: one cut per throttling.
TEST_F(RateLimitTest, RequestsThrottledTogetherHalveTheRateOnce) {
  auto client = Client(8, 100);
  absl::Mutex mu;
  int entered = 0;
  inner_.Set("GET", kUrl, [&](const http::Request&) -> absl::StatusOr<http::Response> {
    absl::MutexLock lock(&mu);
    // The first three are all sent before any is answered, then answered 429; the retries
    // succeed.
    if (++entered > 3) return http::Response{200, {}, ""};
    auto together = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return entered >= 3; };
    mu.AwaitWithTimeout(absl::Condition(&together), absl::Seconds(10));
    return http::Response{429, {{"retry-after", "1"}}, ""};
  });
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      absl::StatusOr<http::Response> r = client->Send(Get());
      if (r.ok() && r->status == 200) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3) << "each retried once after Retry-After";
  EXPECT_EQ(testing::MetricSum(registry_, "ferry_registry_throttled_total", {{"host", kHost}}), 3);
  // Halved once (8 -> 4), then raised by 10% by each of the three successful retries.
  EXPECT_NEAR(client->RateFor(kHost), 4 * 1.1 * 1.1 * 1.1, 1e-9);
}

// Blocks every request until released, counting how many are inside at once.
class GatedHttp : public http::HttpClient {
 public:
  absl::StatusOr<http::Response> Send(const http::Request& request) override {
    absl::MutexLock lock(&mu_);
    ++inside_;
    ++entered_[http::HostOfUrl(request.url)];
    mu_.Await(absl::Condition(&open_));
    --inside_;
    return http::Response{200, {}, ""};
  }
  // Waits until `n` requests to `host` have entered (bounded by 10 s).
  bool WaitEntered(const std::string& host, int n) {
    absl::MutexLock lock(&mu_);
    int& entered = entered_[host];
    auto reached = [&entered, n] { return entered >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }
  int Inside() {
    absl::MutexLock lock(&mu_);
    return inside_;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }

 private:
  absl::Mutex mu_;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> entered_ ABSL_GUARDED_BY(mu_);
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

TEST(RateLimitConcurrency, AtMostMaxInFlightPerHostAndOtherHostsUnaffected) {
  prometheus::Registry registry;
  GatedHttp inner;
  RateLimitedHttpClient::Options o;
  o.requests_per_second = 1000;
  o.burst = 1000;
  o.max_in_flight = 2;
  RateLimitedHttpClient client(inner, o, registry);
  auto get = [&](const std::string& host) {
    http::Request r;
    r.url = "https://" + host + "/v2/a/tags/list";
    return client.Send(r).ok();
  };
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) threads.emplace_back([&] { ok += get("slow.example") ? 1 : 0; });
  ASSERT_TRUE(inner.WaitEntered("slow.example", 2));
  // A second host still gets its own slots while the first one's are all taken.
  threads.emplace_back([&] { ok += get("other.example") ? 1 : 0; });
  ASSERT_TRUE(inner.WaitEntered("other.example", 1));
  EXPECT_EQ(inner.Inside(), 3);  // 2 for slow.example + 1 for other.example, not 7
  inner.Open();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 7);
  EXPECT_EQ(client.PeakInFlight("slow.example"), 2);
  EXPECT_EQ(client.PeakInFlight("other.example"), 1);
}

}  // namespace
}  // namespace ferry::registry_scanner
