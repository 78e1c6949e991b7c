#include "services/registry-scanner/rate_limited_http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <thread>

namespace ferry::registry_scanner {
namespace {

// Answers with scripted statuses; a unit-test fake for the transport only.
class ScriptedHttp : public http::HttpClient {
 public:
  std::deque<http::Response> script;
  int calls = 0;
  absl::StatusOr<http::Response> Send(const http::Request&) override {
    ++calls;
    if (script.empty()) return http::Response{200, {}, ""};
    http::Response r = script.front();
    script.pop_front();
    return r;
  }
};

class RateLimitTest : public ::testing::Test {
 protected:
  absl::Time now_ = absl::FromUnixSeconds(1000);
  std::vector<absl::Duration> sleeps_;
  prometheus::Registry registry_;
  ScriptedHttp inner_;

  std::unique_ptr<RateLimitedHttpClient> Client(double rps, double burst) {
    RateLimitedHttpClient::Options o;
    o.requests_per_second = rps;
    o.burst = burst;
    o.max_retry_after = absl::Seconds(30);
    return std::make_unique<RateLimitedHttpClient>(
        inner_, o, registry_, [this] { return now_; },
        [this](absl::Duration d) {
          sleeps_.push_back(d);
          now_ += d;
        });
  }
  http::Request Get() {
    http::Request r;
    r.url = "https://registry.example:5000/v2/a/tags/list";
    return r;
  }
};

TEST_F(RateLimitTest, BurstThenSteadyRate) {
  auto client = Client(2, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send(Get()).ok());
  EXPECT_TRUE(sleeps_.empty());  // the burst
  ASSERT_TRUE(client->Send(Get()).ok());
  ASSERT_EQ(sleeps_.size(), 1u);
  EXPECT_EQ(sleeps_[0], absl::Milliseconds(500));  // 2 per second
  now_ += absl::Seconds(10);                       // idle: the bucket refills up to the burst only
  sleeps_.clear();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send(Get()).ok());
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(RateLimitTest, TooManyRequestsHonoursRetryAfterHalvesTheRateAndRecovers) {
  auto client = Client(8, 100);
  http::Response throttled{429, {{"retry-after", "3"}}, ""};
  inner_.script = {throttled};
  absl::StatusOr<http::Response> r = client->Send(Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);  // retried once after waiting
  EXPECT_EQ(inner_.calls, 2);
  ASSERT_FALSE(sleeps_.empty());
  EXPECT_EQ(sleeps_[0], absl::Seconds(3));
  EXPECT_NEAR(client->RateFor("registry.example:5000"), 8 * 1.1 / 2, 1e-9);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client->Send(Get()).ok());
  EXPECT_DOUBLE_EQ(client->RateFor("registry.example:5000"), 8);  // back, never above
}

TEST_F(RateLimitTest, RepeatedThrottlingIsReturnedAndRetryAfterIsCapped) {
  auto client = Client(8, 100);
  http::Response throttled{429, {{"retry-after", "3600"}}, ""};
  inner_.script = {throttled, throttled};
  absl::StatusOr<http::Response> r = client->Send(Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(inner_.calls, 2);
  EXPECT_EQ(sleeps_[0], absl::Seconds(30));
  // Other hosts keep their own budget.
  http::Request other;
  other.url = "https://other.example/v2/";
  EXPECT_DOUBLE_EQ(client->RateFor("other.example"), 8);
}

// Blocks every request until released, counting how many are inside at once.
class GatedHttp : public http::HttpClient {
 public:
  absl::StatusOr<http::Response> Send(const http::Request& request) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++inside_;
    ++entered_[http::HostOfUrl(request.url)];
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
    --inside_;
    return http::Response{200, {}, ""};
  }
  // Waits until `n` requests to `host` have entered (bounded by 10 s).
  bool WaitEntered(const std::string& host, int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_[host] >= n; });
  }
  int Inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return inside_;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int inside_ = 0;
  std::map<std::string, int> entered_;
  bool open_ = false;
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
