#include "services/registry-scanner/rate_limited_http_client.h"

#include <gtest/gtest.h>

#include <deque>

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
  now_ += absl::Seconds(10);  // idle: the bucket refills up to the burst only
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

}  // namespace
}  // namespace ferry::registry_scanner
