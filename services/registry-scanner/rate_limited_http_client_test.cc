#include "services/registry-scanner/rate_limited_http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
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

// Scans that keep a host's budget spent leave its last tokens to interactive requests: a
// release's lookup of its image goes at once, and the scans still get the host's rate.
TEST_F(RateLimitTest, BackgroundRequestsLeaveTheReserveToInteractiveOnes) {
  static_assert(RateLimitedHttpClient::kInteractiveReserve == 4, "the counts below assume 4");
  auto client = Client(8, 20);
  const absl::Time start = clock_.Now();
  for (int i = 0; i < 16; ++i) FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_EQ(clock_.Now(), start);  // the burst but the reserve
  FERRY_ASSERT_OK(client->Send(Get()));
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(125)) << "a scan took a reserved token";
  http::Request lookup = Get();
  lookup.priority = http::Priority::kInteractive;
  const absl::Time scanned = clock_.Now();
  for (int i = 0; i < 4; ++i) FERRY_ASSERT_OK(client->Send(lookup));
  EXPECT_EQ(clock_.Now(), scanned) << "a lookup waited while tokens were reserved for it";
  FERRY_ASSERT_OK(client->Send(lookup));  // the reserve spent: the next token, as anyone
  EXPECT_EQ(clock_.Now() - scanned, absl::Milliseconds(125));
  EXPECT_DOUBLE_EQ(WaitedSeconds(kHost), 0.25);
  EXPECT_EQ(inner_.Count("GET", kUrl), 22);
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

// A clock for ordering tests: each sleep waits until the test allows it, then moves the fake
// time by its length, so the test decides who is waiting when the next token comes.
class HeldSleepClock final : public runtime::Clock {
 public:
  absl::Time Now() override { return fake_.Now(); }
  void SleepFor(absl::Duration d) override {
    {
      absl::MutexLock lock(&mu_);
      ++sleeping_;
      auto allowed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return allowed_ > 0; };
      mu_.Await(absl::Condition(&allowed));
      --allowed_;
      --sleeping_;
    }
    fake_.Advance(d);
  }
  bool WaitUntil(absl::Mutex& mu, absl::Time deadline, const std::function<bool()>& done) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return fake_.WaitUntil(mu, deadline, done);
  }
  // Waits until `n` sleeps are held (bounded by 10 s of real time).
  bool AwaitSleeping(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sleeping_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }
  // Lets `n` more sleeps end.
  void Allow(int n) {
    absl::MutexLock lock(&mu_);
    allowed_ += n;
  }
  runtime::FakeClock& fake() { return fake_; }

 private:
  runtime::FakeClock fake_;
  absl::Mutex mu_;
  int sleeping_ ABSL_GUARDED_BY(mu_) = 0;
  int allowed_ ABSL_GUARDED_BY(mu_) = 0;
};

std::vector<std::string> UrlsInOrder(const http::FakeHttpClient& http) {
  std::vector<std::string> out;
  for (const http::Request& r : http.requests()) out.push_back(r.url);
  return out;
}

// A host's budget of one request a second with a burst of one, on a clock whose sleeps end
// when the test allows them: the test decides who is waiting when the next token comes. The
// registry answers every request and counts them.
class OneTokenTest : public ::testing::Test {
 protected:
  explicit OneTokenTest(double burst = 1) {
    RateLimitedHttpClient::Options o;
    o.requests_per_second = 1;
    o.burst = burst;
    client_ = std::make_unique<RateLimitedHttpClient>(inner_, o, registry_, clock_);
  }
  ~OneTokenTest() override { Release(); }

  static std::string Url(const std::string& name) { return absl::StrCat(kUrl, "?", name); }
  // Sends request `name` and returns whether it was answered.
  bool Send(const std::string& name, http::Priority priority) {
    inner_.Set("GET", Url(name), [this](const http::Request&) -> absl::StatusOr<http::Response> {
      absl::MutexLock lock(&mu_);
      ++sent_;
      return http::Response{200, {}, ""};
    });
    http::Request r;
    r.url = Url(name);
    r.priority = priority;
    return client_->Send(r).ok();
  }
  // Sends request `name` from a thread of its own (counted in ok_ once answered).
  void Start(const std::string& name, http::Priority priority) {
    threads_.emplace_back([this, name, priority] { ok_ += Send(name, priority) ? 1 : 0; });
  }
  // Waits until the registry has got `n` requests (bounded by 10 s).
  bool AwaitSent(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sent_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }
  // Lets every sleep end and waits for every request to be answered.
  void Release() {
    clock_.Allow(1000);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  HeldSleepClock clock_;
  http::FakeHttpClient inner_;
  std::atomic<int> ok_{0};

 private:
  prometheus::Registry registry_;
  std::unique_ptr<RateLimitedHttpClient> client_;
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  int sent_ ABSL_GUARDED_BY(mu_) = 0;
};

// A release's image lookup must not wait behind a cold scan's queue: it takes the host's next
// token ahead of the scan's requests already waiting, in both orders of their wake-ups.
TEST_F(OneTokenTest, AnInteractiveRequestTakesTheNextTokenAheadOfWaitingBackgroundOnes) {
  ASSERT_TRUE(Send("scan-1", http::Priority::kBackground));  // the burst, spent
  // scan-2 is first in line and sleeps until the next token; scan-3 waits for its turn.
  Start("scan-2", http::Priority::kBackground);
  ASSERT_TRUE(clock_.AwaitSleeping(1));
  Start("scan-3", http::Priority::kBackground);
  ASSERT_TRUE(clock_.fake().AwaitWaits(1));
  Start("lookup", http::Priority::kInteractive);
  // The lookup sleeps until the next token too (it does not wait for the scans' turns).
  EXPECT_TRUE(clock_.AwaitSleeping(2));
  // Both sleeps end: one token (the burst is 1). Any further sleep (the scans' next tokens)
  // stays held until the second request has been sent: the one that took this token.
  clock_.Allow(2);
  EXPECT_TRUE(AwaitSent(2));
  EXPECT_EQ(UrlsInOrder(inner_).back(), Url("lookup")) << "the lookup waited for a scan's token";
  Release();
  EXPECT_EQ(ok_.load(), 3);
  // The scans then go in turn, but each sends once it has its token: in either order.
  const std::vector<std::string> order = UrlsInOrder(inner_);
  ASSERT_EQ(order.size(), 4u);
  EXPECT_THAT(std::vector<std::string>(order.begin(), order.begin() + 2),
              ::testing::ElementsAre(Url("scan-1"), Url("lookup")));
  EXPECT_THAT(std::vector<std::string>(order.begin() + 2, order.end()),
              ::testing::UnorderedElementsAre(Url("scan-2"), Url("scan-3")));
}

// One slot per host, taken by a first request the registry holds; the test queues others
// behind it (each waits on the fake clock: AwaitWaits counts them), then lets the first one
// go and reads the order in which the registry got them. No token waits (budget lifted).
class OneSlotTest : public ::testing::Test {
 protected:
  OneSlotTest() {
    inner_.Set("GET", Url("first"), [this](const http::Request&) -> absl::StatusOr<http::Response> {
      first_inside_.Notify();
      let_first_go_.WaitForNotification();
      return http::Response{200, {}, ""};
    });
    RateLimitedHttpClient::Options o;
    o.requests_per_second = 1000;
    o.burst = 1000;
    o.max_in_flight = 1;
    client_ = std::make_unique<RateLimitedHttpClient>(inner_, o, registry_, clock_);
  }
  ~OneSlotTest() override { Release(); }

  static std::string Url(const std::string& name) {
    return absl::StrCat("https://registry.example:5000/v2/a/manifests/", name);
  }
  // Sends the first request, which holds the slot; true once it does.
  bool HoldTheSlot() {
    Start("first", http::Priority::kBackground);
    return first_inside_.WaitForNotificationWithTimeout(absl::Seconds(10));
  }
  // Sends request `name` from a thread of its own; true once it waits for the slot (the
  // `waits`-th wait on the clock).
  bool Queue(const std::string& name, http::Priority priority, int waits) {
    Start(name, priority);
    return clock_.AwaitWaits(waits);
  }
  // Lets the first request go and waits for every request to be answered.
  void Release() {
    if (!let_first_go_.HasBeenNotified()) let_first_go_.Notify();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  runtime::FakeClock clock_;
  std::atomic<int> ok_{0};
  http::FakeHttpClient inner_;

 private:
  void Start(const std::string& name, http::Priority priority) {
    if (name != "first") inner_.Set("GET", Url(name), http::Response{200, {}, ""});
    threads_.emplace_back([this, name, priority] {
      http::Request r;
      r.url = Url(name);
      r.priority = priority;
      ok_ += client_->Send(r).ok() ? 1 : 0;
    });
  }

  prometheus::Registry registry_;
  absl::Notification first_inside_;
  absl::Notification let_first_go_;
  std::unique_ptr<RateLimitedHttpClient> client_;
  std::vector<std::thread> threads_;
};

// Slots too: with every slot taken, the first one freed goes to the interactive request, also
// when a background one waited for it first.
TEST_F(OneSlotTest, AnInteractiveRequestTakesTheNextFreeSlotAheadOfWaitingBackgroundOnes) {
  ASSERT_TRUE(HoldTheSlot());
  ASSERT_TRUE(Queue("b", http::Priority::kBackground, 1));
  ASSERT_TRUE(Queue("i", http::Priority::kInteractive, 2));
  Release();
  EXPECT_EQ(ok_.load(), 3);
  EXPECT_THAT(UrlsInOrder(inner_), ::testing::ElementsAre(Url("first"), Url("i"), Url("b")));
}

// A stream of interactive requests slows a scan down but never stops it: after
// kInteractiveRun tokens in a row go to interactive requests while a background one waits,
// that one takes the next.
TEST_F(OneTokenTest, AfterARunOfInteractiveTokensTheWaitingBackgroundRequestGoes) {
  static_assert(RateLimitedHttpClient::kInteractiveRun == 4, "the order below assumes 4");
  ASSERT_TRUE(Send("scan-0", http::Priority::kBackground));  // the burst, spent
  // scan-1 sleeps until the next token; i1 too; i2..i5 wait for their turns, in this order.
  Start("scan-1", http::Priority::kBackground);
  ASSERT_TRUE(clock_.AwaitSleeping(1));
  Start("i1", http::Priority::kInteractive);
  ASSERT_TRUE(clock_.AwaitSleeping(2));
  for (int i = 2; i <= 5; ++i) {
    Start(absl::StrCat("i", i), http::Priority::kInteractive);
    ASSERT_TRUE(clock_.fake().AwaitWaits(i - 1));
  }
  // One token at a time, each once the one before it was sent.
  clock_.Allow(2);
  for (int sent = 2; sent <= 7; ++sent) {
    ASSERT_TRUE(AwaitSent(sent)) << sent;
    clock_.Allow(1);
  }
  Release();
  EXPECT_EQ(ok_.load(), 6);
  EXPECT_THAT(UrlsInOrder(inner_),
              ::testing::ElementsAre(Url("scan-0"), Url("i1"), Url("i2"), Url("i3"), Url("i4"),
                                     Url("scan-1"), Url("i5")));
}

// One request a second with a burst of 16: a reserve of 4 tokens for interactive requests.
class SixteenTokenTest : public OneTokenTest {
 protected:
  SixteenTokenTest() : OneTokenTest(16) {}
};

// Aging beats the reserve: a background request whose turn came after a run of interactive
// ones takes the next token, not the next token plus the reserve (which the interactive
// requests it lets through would keep spending, so it would wait for good).
TEST_F(SixteenTokenTest, ABackgroundRequestDueByAgingNeedsNoReserve) {
  static_assert(RateLimitedHttpClient::kInteractiveReserve == 4, "the counts below assume 4");
  static_assert(RateLimitedHttpClient::kInteractiveRun == 4, "the order below assumes 4");
  for (int i = 0; i < 12; ++i) {  // the burst but the reserve
    ASSERT_TRUE(Send(absl::StrCat("s", i), http::Priority::kBackground));
  }
  const absl::Time start = clock_.Now();
  Start("scan", http::Priority::kBackground);  // sleeps: 4 tokens left, all reserved
  ASSERT_TRUE(clock_.AwaitSleeping(1));
  for (int i = 1; i <= 4; ++i) {  // the reserve, spent at once; a run of 4 while scan waits
    ASSERT_TRUE(Send(absl::StrCat("i", i), http::Priority::kInteractive));
  }
  EXPECT_EQ(clock_.Now(), start);
  Start("i5", http::Priority::kInteractive);  // waits: the scan is due
  ASSERT_TRUE(clock_.fake().AwaitWaits(1));
  clock_.Allow(1);  // one token: the scan's
  ASSERT_TRUE(AwaitSent(17)) << "the scan waited for the reserve although it was due";
  EXPECT_EQ(clock_.Now() - start, absl::Seconds(1));
  Release();
  EXPECT_EQ(ok_.load(), 2);
  const std::vector<std::string> order = UrlsInOrder(inner_);
  ASSERT_EQ(order.size(), 18u);
  EXPECT_THAT(std::vector<std::string>(order.end() - 3, order.end()),
              ::testing::ElementsAre(Url("i4"), Url("scan"), Url("i5")));
}

// The same for slots: with one slot, a background request waiting for it gets it after four
// interactive ones in a row.
TEST_F(OneSlotTest, AfterARunOfInteractiveSlotsTheWaitingBackgroundRequestGoes) {
  static_assert(RateLimitedHttpClient::kInteractiveRun == 4, "the order below assumes 4");
  ASSERT_TRUE(HoldTheSlot());
  ASSERT_TRUE(Queue("b", http::Priority::kBackground, 1));
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(Queue(absl::StrCat("i", i), http::Priority::kInteractive, 1 + i));
  }
  Release();
  EXPECT_EQ(ok_.load(), 7);
  const std::vector<std::string> order = UrlsInOrder(inner_);
  ASSERT_EQ(order.size(), 7u);
  EXPECT_EQ(order[5], Url("b")) << "the interactive ones take the slot in any order among "
                                   "themselves, four of them before the background one";
}
}  // namespace
}  // namespace ferry::registry_scanner
