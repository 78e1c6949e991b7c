// Scanner and cache against a real registry: first scan, new and moved tags as events,
// unchanged re-scans costing one request, and restarts answered from the cache.
#include "services/registry-scanner/scanner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lib/http/curl_http_client.h"
#include "lib/status/status_matchers.h"
#include "services/registry-scanner/metered_http_client.h"
#include "services/registry-scanner/rate_limited_http_client.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/metrics.h"
#include "tests/support/registry.h"

namespace ferry::registry_scanner {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

std::string Config(const std::string& created, const std::string& marker = "") {
  return nlohmann::json{{"architecture", "amd64"},
                        {"os", "linux"},
                        {"created", created},
                        {"config", {{"Labels", {{"marker", marker}}}}}}
      .dump();
}

class ScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-scanner-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto server = testing::RegistryServer::Start(dir_ + "/registry");
    FERRY_ASSERT_OK(server);
    server_ = *std::move(server);
    repo_ = server_->host() + "/team/app";
    http::CurlOptions options;
    options.insecure_hosts = {server_->host()};
    curl_ = std::make_unique<http::CurlHttpClient>(options);
    Restart(absl::Minutes(5));
  }
  void TearDown() override {
    scanner_.reset();
    cache_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A fresh process's worth of objects on the same cache file.
  void Restart(absl::Duration min_recheck) {
    scanner_.reset();
    client_.reset();
    metered_.reset();
    cache_.reset();
    registry_ = std::make_unique<prometheus::Registry>();
    metered_ = std::make_unique<MeteredHttpClient>(*curl_, *registry_);
    RegistryClient::Options o;
    o.insecure_hosts = {server_->host()};
    client_ = std::make_unique<RegistryClient>(*metered_, CredentialStore(), o);
    auto cache = Cache::Open(dir_ + "/state/cache.db");
    FERRY_ASSERT_OK(cache);
    cache_ = *std::move(cache);
    metrics_ = std::make_unique<ScannerMetrics>(*registry_);
    ScannerOptions so;
    so.min_recheck = min_recheck;
    scanner_ = std::make_unique<Scanner>(*client_, *cache_, so, *metrics_);
  }

  // Requests of `kind` sent so far (all status codes).
  double Requests(const std::string& kind) {
    return testing::MetricSum(*registry_, "ferry_registry_requests_total", {{"kind", kind}});
  }
  double AllRequests() {
    return Requests("tags") + Requests("manifest") + Requests("manifest_head") + Requests("blob") +
           Requests("token");
  }

  std::string dir_;
  std::string repo_;
  std::unique_ptr<testing::RegistryServer> server_;
  std::unique_ptr<http::CurlHttpClient> curl_;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MeteredHttpClient> metered_;
  std::unique_ptr<RegistryClient> client_;
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<ScannerMetrics> metrics_;
  std::unique_ptr<Scanner> scanner_;
};

TEST_F(ScannerTest, FirstScanIsSilentThenNewTagsAreEvents) {
  FERRY_ASSERT_OK(server_->PushImage("team/app", "1.0.0", Config("2023-01-01T00:00:00Z")));
  FERRY_ASSERT_OK(server_->PushImage("team/app", "1.1.0", Config("2023-02-01T00:00:00Z")));
  auto watched = scanner_->Watch({repo_});
  FERRY_ASSERT_OK(watched);
  EXPECT_EQ(watched->first, std::vector<std::string>{repo_});
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  EXPECT_EQ(scanner_->LastSequence(), 0u);
  auto tags = scanner_->Tags(repo_);
  FERRY_ASSERT_OK(tags);
  ASSERT_EQ(tags->size(), 2u);
  EXPECT_TRUE((*tags)[1].metadata.created.has_value());

  auto pushed = server_->PushImage("team/app", "1.2.0", Config("2023-03-01T00:00:00Z"));
  FERRY_ASSERT_OK(pushed);
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kNewTag);
  EXPECT_EQ(events[0].tag.tag, "1.2.0");
  EXPECT_EQ(events[0].tag.metadata.digest, *pushed);
}

TEST_F(ScannerTest, UnchangedRescanCostsOneRequest) {
  for (const char* tag : {"a", "b", "c", "d"}) {
    FERRY_ASSERT_OK(server_->PushImage("team/app", tag, Config("2023-01-01T00:00:00Z", tag)));
  }
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  const double before = AllRequests();
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  EXPECT_EQ(AllRequests() - before, 1);  // the tag list, nothing else
  EXPECT_EQ(Requests("tags"), 2);
}

TEST_F(ScannerTest, MovedTagIsAnEventWithThePreviousDigest) {
  Restart(absl::ZeroDuration());  // re-check known tags on every scan
  auto first = server_->PushImage("team/app", "stable", Config("2023-01-01T00:00:00Z", "one"));
  FERRY_ASSERT_OK(first);
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  auto second = server_->PushImage("team/app", "stable", Config("2023-06-01T00:00:00Z", "two"));
  FERRY_ASSERT_OK(second);
  ASSERT_NE(*first, *second);
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kTagMoved);
  EXPECT_EQ(events[0].previous_digest, *first);
  EXPECT_EQ(events[0].tag.metadata.digest, *second);
  EXPECT_EQ(events[0].tag.metadata.labels.at("marker"), "two");
}

TEST_F(ScannerTest, RestartAnswersFromTheCacheWithoutManifestFetches) {
  for (const char* tag : {"1", "2", "3"}) {
    FERRY_ASSERT_OK(server_->PushImage("team/app", tag, Config("2023-01-01T00:00:00Z", tag)));
  }
  FERRY_ASSERT_OK(scanner_->Watch({repo_}));
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  Restart(absl::Minutes(5));
  auto tags = scanner_->Tags(repo_);
  FERRY_ASSERT_OK(tags);
  EXPECT_EQ(tags->size(), 3u);
  EXPECT_EQ(AllRequests(), 0);  // answered at once, from the cache
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  EXPECT_EQ(Requests("manifest") + Requests("blob") + Requests("manifest_head"), 0);
  EXPECT_EQ(Requests("tags"), 1);
}

TEST_F(ScannerTest, CorruptCacheIsRebuiltNotFatal) {
  scanner_.reset();
  cache_.reset();
  std::ofstream(dir_ + "/state/cache.db", std::ios::trunc) << "this is not a database";
  std::filesystem::remove(dir_ + "/state/cache.db-wal");
  std::filesystem::remove(dir_ + "/state/cache.db-shm");
  auto cache = Cache::Open(dir_ + "/state/cache.db");
  FERRY_ASSERT_OK(cache);
  EXPECT_TRUE((*cache)->rebuilt());
  EXPECT_TRUE((*cache)->Repositories()->empty());
}

TEST_F(ScannerTest, RegistryErrorsAreRecordedAndEmitted) {
  FERRY_ASSERT_OK(scanner_->Watch({repo_ + "-missing"}));
  absl::Status s = scanner_->Scan(repo_ + "-missing");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
  auto record = cache_->Repository(repo_ + "-missing");
  FERRY_ASSERT_OK(record);
  ASSERT_TRUE(record->has_value());
  EXPECT_NE((*record)->last_error.find("NAME_UNKNOWN"), std::string::npos) << (*record)->last_error;
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kRepositoryError);
  EXPECT_THAT(scanner_->Watch({"no-slash"}), StatusIs(absl::StatusCode::kInvalidArgument));
  // A failing repository backs off instead of being rescanned at once.
  const absl::Time next = scanner_->NextScan(**record);
  EXPECT_GT(next, absl::Now() + absl::Seconds(3));
  EXPECT_LE(next, absl::Now() + absl::Minutes(5));
  EXPECT_TRUE(scanner_->DueRepositories().empty());
  // A repository that scans fine is due again only after the scan interval.
  FERRY_ASSERT_OK(server_->PushImage("team/app", "1", Config("2023-01-01T00:00:00Z")));
  FERRY_ASSERT_OK(scanner_->Watch({repo_}));
  EXPECT_EQ(scanner_->DueRepositories(), std::vector<std::string>{repo_});
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  EXPECT_TRUE(scanner_->DueRepositories().empty());
}

// Registries may notify about a manifest before its tag is listed: a webhook's tag is looked
// for again until it shows.
TEST_F(ScannerTest, AnnouncedTagIsRescannedUntilItIsListed) {
  FERRY_ASSERT_OK(server_->PushImage("team/app", "1", Config("2023-01-01T00:00:00Z")));
  FERRY_ASSERT_OK(scanner_->Watch({repo_}));
  FERRY_ASSERT_OK(scanner_->Scan(repo_));
  const uint64_t before = scanner_->LastSequence();
  ScanQueue queue(*scanner_, 2);
  const double lists_before = Requests("tags");
  ASSERT_TRUE(queue.Request(repo_, "2"));  // announced, not pushed yet
  // The announced tag is not there: the queue lists the repository again (wait for the
  // first two listings), then the push lands and a retry finds it.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Requests("tags") < lists_before + 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(Requests("tags"), lists_before + 2);
  FERRY_ASSERT_OK(server_->PushImage("team/app", "2", Config("2023-02-01T00:00:00Z")));
  std::vector<TagEvent> events;
  while (events.empty() && absl::Now() < deadline) {
    events = scanner_->WaitForEvents(before, absl::Seconds(1));
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kNewTag);
  EXPECT_EQ(events[0].tag.tag, "2");
}

}  // namespace
}  // namespace ferry::registry_scanner

namespace ferry::registry_scanner {
namespace {

// Faults injected between the scanner and a real registry. Repositories reached through
// the proxy are "PROXY/team/..."; the same registry reached directly is another host.
class ScannerFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-scanner-fault-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto registry = testing::RegistryServer::Start(dir_ + "/registry");
    FERRY_ASSERT_OK(registry);
    registry_ = *std::move(registry);
    for (const char* tag : {"1", "2"}) {
      FERRY_ASSERT_OK(registry_->PushImage("team/app", tag, Config("2023-01-01T00:00:00Z", tag)));
    }
    auto proxy = testing::FaultProxy::Start(registry_->host());
    FERRY_ASSERT_OK(proxy);
    proxy_ = *std::move(proxy);
    http::CurlOptions curl_options;
    curl_options.insecure_hosts = {proxy_->host(), registry_->host()};
    curl_ = std::make_unique<http::CurlHttpClient>(curl_options);
    metered_ = std::make_unique<MeteredHttpClient>(*curl_, metrics_registry_);
    RateLimitedHttpClient::Options limits;
    limits.requests_per_second = 100;
    limits.burst = 100;
    limited_ = std::make_unique<RateLimitedHttpClient>(*metered_, limits, metrics_registry_);
    RegistryClient::Options o;
    o.insecure_hosts = {proxy_->host(), registry_->host()};
    // Long enough for the other host's whole scan while one request is held (a loaded
    // machine), short enough to wait out in SlowRegistryTimesOutAndDoesNotDelayOthers.
    o.request_timeout = absl::Seconds(6);
    client_ = std::make_unique<RegistryClient>(*limited_, CredentialStore(), o);
    auto cache = Cache::Open(dir_ + "/cache.db");
    FERRY_ASSERT_OK(cache);
    cache_ = *std::move(cache);
    metrics_ = std::make_unique<ScannerMetrics>(metrics_registry_);
    scanner_ = std::make_unique<Scanner>(*client_, *cache_, ScannerOptions{}, *metrics_);
    repo_ = proxy_->host() + "/team/app";
    FERRY_ASSERT_OK(scanner_->Watch({repo_}));
  }
  void TearDown() override {
    scanner_.reset();
    proxy_.reset();
    registry_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string LastError(const std::string& repo) {
    auto record = cache_->Repository(repo);
    return record.ok() && record->has_value() ? (*record)->last_error : "<no record>";
  }

  std::string dir_;
  std::unique_ptr<testing::RegistryServer> registry_;
  std::unique_ptr<testing::FaultProxy> proxy_;
  prometheus::Registry metrics_registry_;
  std::unique_ptr<http::CurlHttpClient> curl_;
  std::unique_ptr<MeteredHttpClient> metered_;
  std::unique_ptr<RateLimitedHttpClient> limited_;
  std::unique_ptr<RegistryClient> client_;
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<ScannerMetrics> metrics_;
  std::unique_ptr<Scanner> scanner_;
  std::string repo_;
};

TEST_F(ScannerFaultTest, ServerErrorsBackOffAndThrottlingIsWaitedOut) {
  proxy_->Fail(1, 500, "/tags/list");
  absl::Status failed = scanner_->Scan(repo_);
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_NE(LastError(repo_).find("HTTP 500"), std::string::npos) << LastError(repo_);
  auto record = cache_->Repository(repo_);
  FERRY_ASSERT_OK(record);
  ASSERT_TRUE(record->has_value());
  EXPECT_GT(scanner_->NextScan(**record), absl::Now());  // backing off

  proxy_->Fail(1, 429, "/tags/list", "1");
  const absl::Time start = absl::Now();
  absl::Status throttled = scanner_->Scan(repo_);
  FERRY_EXPECT_OK(throttled);
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));  // Retry-After was honoured
  auto tags = cache_->Tags(repo_);
  FERRY_ASSERT_OK(tags);
  EXPECT_EQ(tags->size(), 2u);
  EXPECT_TRUE(LastError(repo_).empty()) << LastError(repo_);
  EXPECT_EQ(testing::MetricSum(metrics_registry_, "ferry_registry_throttled_total"), 1);
}

TEST_F(ScannerFaultTest, ConnectionCutMidResponseFailsTheScanAndTheNextOneRecovers) {
  proxy_->Cut(1, "/manifests/");
  absl::Status cut = scanner_->Scan(repo_);
  EXPECT_THAT(cut, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(LastError(repo_).empty());
  // Nothing half-known was stored: the tags of the failed scan are fetched again in full.
  auto tags = cache_->Tags(repo_);
  FERRY_ASSERT_OK(tags);
  for (const auto& t : *tags) EXPECT_FALSE(t.metadata.digest.empty()) << t.tag;

  FERRY_ASSERT_OK(scanner_->Scan(repo_)) << LastError(repo_);
  tags = cache_->Tags(repo_);
  FERRY_ASSERT_OK(tags);
  EXPECT_EQ(tags->size(), 2u);
  EXPECT_TRUE(LastError(repo_).empty()) << LastError(repo_);
}

TEST_F(ScannerFaultTest, SlowRegistryTimesOutAndDoesNotDelayOthers) {
  // Held far beyond the 6 s request timeout.
  proxy_->Hold(1, absl::Seconds(60), "/tags/list");
  const std::string direct = registry_->host() + "/team/app";
  FERRY_ASSERT_OK(scanner_->Watch({repo_, direct}));
  ScanQueue queue(*scanner_, 2);
  ASSERT_TRUE(queue.Request(repo_));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (proxy_->held() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(proxy_->held(), 1) << "the slow request never reached the proxy";
  // The other registry host is scanned while the slow one is stuck.
  ASSERT_TRUE(queue.Request(direct));
  auto scanned = [&](const std::string& repo) {
    auto r = cache_->Repository(repo);
    return r.ok() && r->has_value() && ((*r)->last_scan.has_value() || !(*r)->last_error.empty());
  };
  while (!scanned(direct) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(scanned(direct));
  EXPECT_TRUE(LastError(direct).empty()) << LastError(direct);
  EXPECT_FALSE(scanned(repo_)) << "the slow scan should still be waiting";
  // Then the slow request times out: an error, recorded, with the reason.
  while (!scanned(repo_) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(scanned(repo_));
  EXPECT_NE(LastError(repo_).find("imed out"), std::string::npos) << LastError(repo_);
  proxy_->Release();
}

}  // namespace
}  // namespace ferry::registry_scanner
