// The scanner's rules over an in-memory registry (a FakeHttpClient) and a FakeClock: when a
// repository is due, the backoff after errors, paged tag lists, the Bearer challenge and its
// token's expiry, adaptive re-checks, watch list changes and the webhook queue's retries.
// Milliseconds, no registry, no sleeping; scanner_test.cc runs the scanner against a real
// registry.
#include <grpcpp/server_context.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "lib/http/fake_http_client.h"
#include "lib/runtime/fake_clock.h"
#include "lib/status/status_matchers.h"
#include "services/registry-scanner/rate_limited_http_client.h"
#include "services/registry-scanner/registry_scanner_service.h"
#include "services/registry-scanner/scanner.h"
#include "tests/support/metrics.h"

namespace ferry::registry_scanner {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kRegistry[] = "reg.test";
constexpr char kRepo[] = "reg.test/team/app";
constexpr char kBase[] = "http://reg.test/v2/team/app";
constexpr char kSchema2[] = "application/vnd.docker.distribution.manifest.v2+json";
constexpr char kCreated[] = "2023-01-01T00:00:00Z";

// One repository served by a FakeHttpClient as Docker Distribution serves it: tag lists in
// pages linked by Link headers, manifests (GET and HEAD) and config blobs.
class FakeRepository {
 public:
  // `path` in kRegistry (team/app: kRepo).
  FakeRepository(http::FakeHttpClient& http, int page_size, std::string path = "team/app")
      : http_(http),
        page_size_(page_size),
        path_(std::move(path)),
        base_(absl::StrCat("http://", kRegistry, "/v2/", path_)) {
    Publish();
  }

  // Points `tag` at a new single-platform image; returns the image's digest.
  std::string Push(const std::string& tag) {
    const std::string config_digest = NextDigest();
    const std::string digest = NextDigest();
    http_.Set(
        "GET", absl::StrCat(base_, "/blobs/", config_digest),
        http::Response{200, {}, nlohmann::json{{"os", "linux"}, {"created", kCreated}}.dump()});
    const nlohmann::json manifest = {
        {"schemaVersion", 2}, {"mediaType", kSchema2}, {"config", {{"digest", config_digest}}}};
    const std::multimap<std::string, std::string> headers = {{"content-type", kSchema2},
                                                             {"docker-content-digest", digest}};
    http_.Set("GET", Manifest(tag), http::Response{200, headers, manifest.dump()});
    http_.Set("HEAD", Manifest(tag), http::Response{200, headers, ""});
    if (std::find(tags_.begin(), tags_.end(), tag) == tags_.end()) tags_.push_back(tag);
    Publish();
    return digest;
  }

  // Deletes `tag` from the registry.
  void Delete(const std::string& tag) {
    http_.Set("GET", Manifest(tag), http::Response{404, {}, ""});
    http_.Set("HEAD", Manifest(tag), http::Response{404, {}, ""});
    tags_.erase(std::remove(tags_.begin(), tags_.end(), tag), tags_.end());
    Publish();
  }

  // The tags in the order the registry lists them.
  const std::vector<std::string>& tags() const { return tags_; }

  std::string FirstPageUrl() const { return absl::StrCat(base_, "/tags/list?n=", page_size_); }
  // The manifest URL of `tag` in kRepo, and in this repository.
  static std::string ManifestUrl(const std::string& tag) {
    return absl::StrCat(kBase, "/manifests/", tag);
  }
  std::string Manifest(const std::string& tag) const {
    return absl::StrCat(base_, "/manifests/", tag);
  }

 private:
  std::string NextDigest() { return absl::StrFormat("sha256:%064d", ++digests_); }

  // Answers the tag list's pages, each naming the next one.
  void Publish() {
    std::string url = FirstPageUrl();
    for (size_t start = 0;; start += page_size_) {
      const size_t end = std::min(tags_.size(), start + page_size_);
      const std::vector<std::string> page(tags_.begin() + start, tags_.begin() + end);
      http::Response response{200, {}, nlohmann::json{{"tags", page}}.dump()};
      std::string next;
      if (end < tags_.size()) {
        next = absl::StrCat("/v2/", path_, "/tags/list?last=", tags_[end - 1], "&n=", page_size_);
        response.headers.emplace("link", absl::StrCat("<", next, ">; rel=\"next\""));
      }
      http_.Set("GET", url, response);
      if (next.empty()) return;
      url = absl::StrCat("http://", kRegistry, next);
    }
  }

  http::FakeHttpClient& http_;
  const size_t page_size_;
  const std::string path_;
  const std::string base_;
  std::vector<std::string> tags_;
  int digests_ = 0;
};

class ScannerUnitTest : public ::testing::Test {
 protected:
  explicit ScannerUnitTest(int page_size = 1000) : repo_(http_, page_size) {
    RegistryClient::Options options;
    options.insecure_hosts = {kRegistry};
    options.page_size = page_size;
    client_ = std::make_unique<RegistryClient>(http_, CredentialStore(), options, clock_);
  }
  void SetUp() override {
    FERRY_ASSERT_OK_AND_ASSIGN(cache_, Cache::Open(":memory:"));
    scanner_ = std::make_unique<Scanner>(*client_, *cache_, ScannerOptions{}, metrics_, clock_);
  }

  // How long until the scanner scans kRepo again.
  absl::Duration UntilNextScan() {
    absl::StatusOr<std::optional<RepositoryRecord>> record = cache_->Repository(kRepo);
    if (!record.ok() || !record->has_value()) return absl::InfiniteDuration();
    return scanner_->NextScan(**record) - clock_.Now();
  }
  double Scans(const std::string& outcome) {
    return testing::MetricSum(registry_, "ferry_registry_scans_total", {{"outcome", outcome}});
  }

  runtime::FakeClock clock_;
  http::FakeHttpClient http_;
  FakeRepository repo_;
  prometheus::Registry registry_;
  ScannerMetrics metrics_{registry_};
  std::unique_ptr<RegistryClient> client_;
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<Scanner> scanner_;
};

TEST_F(ScannerUnitTest, FirstScanIsSilentThenANewTagIsAnEvent) {
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(scanner_->LastSequence(), 0u);
  const std::string digest = repo_.Push("2");
  clock_.Advance(absl::Minutes(1));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::ZeroDuration());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kNewTag);
  EXPECT_EQ(events[0].tag.tag, "2");
  EXPECT_EQ(events[0].tag.metadata.digest, digest);
  EXPECT_EQ(events[0].time, clock_.Now());
  EXPECT_EQ(testing::MetricSum(registry_, "ferry_registry_cache_misses_total"), 2);
}

// A manifest whose Docker-Content-Digest header is no digest (here not even UTF-8, which the
// cache's JSON could not hold) fails that tag alone: the others are stored.
TEST_F(ScannerUnitTest, ATagWhoseDigestHeaderIsNoDigestFailsAlone) {
  const std::string good = repo_.Push("1");
  repo_.Push("2");
  const std::multimap<std::string, std::string> headers = {
      {"content-type", kSchema2}, {"docker-content-digest", "sha256:\xff\xfe not a digest"}};
  const nlohmann::json manifest = {{"schemaVersion", 2},
                                   {"mediaType", kSchema2},
                                   {"config", {{"digest", "sha256:" + std::string(64, '0')}}}};
  http_.Set("GET", FakeRepository::ManifestUrl("2"), http::Response{200, headers, manifest.dump()});
  http_.Set("HEAD", FakeRepository::ManifestUrl("2"), http::Response{200, headers, ""});
  http_.Set("GET", absl::StrCat(kBase, "/blobs/sha256:", std::string(64, '0')),
            http::Response{200, {}, nlohmann::json{{"os", "linux"}}.dump()});
  (void)scanner_->Scan(kRepo);  // reports the failed tag, or not: the others are what matters
  absl::StatusOr<std::vector<TagRecord>> known = scanner_->KnownTags(kRepo);
  FERRY_ASSERT_OK(known);
  std::map<std::string, std::string> digests;
  for (const TagRecord& t : *known) digests[t.tag] = t.metadata.digest;
  EXPECT_EQ(digests["1"], good);
  EXPECT_TRUE(digests.count("2") == 0 || digests["2"].empty()) << digests["2"];
}

// Waits until `n` readers queue behind the scan of kRepo in progress (fails after 10 s).
void WaitUntilQueued(Scanner& scanner, int n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (scanner.ScansWaiting(kRepo) < n && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(scanner.ScansWaiting(kRepo), n) << "readers never queued behind the first scan";
}

// ListTags of a repository never scanned scans it; the readers that came meanwhile wait for
// that scan and answer from it instead of each scanning again.
TEST_F(ScannerUnitTest, ReadersOfARepositoryNeverScannedShareItsFirstScan) {
  repo_.Push("1.0.0");
  const std::string body = nlohmann::json{{"tags", {"1.0.0"}}}.dump();
  absl::Notification entered, go;
  http_.Set("GET", repo_.FirstPageUrl(),
            [&](const http::Request&) -> absl::StatusOr<http::Response> {
              if (!entered.HasBeenNotified()) entered.Notify();
              go.WaitForNotification();
              return http::Response{200, {}, body};
            });
  std::vector<std::thread> readers;
  std::atomic<int> answered{0};
  auto read = [&] {
    auto tags = scanner_->Tags(kRepo);
    if (tags.ok() && tags->size() == 1) ++answered;
  };
  readers.emplace_back(read);
  entered.WaitForNotification();  // the first reader's scan is listing the tags
  for (int i = 0; i < 3; ++i) readers.emplace_back(read);
  WaitUntilQueued(*scanner_, 3);
  go.Notify();
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(answered, 4);
  EXPECT_EQ(http_.CountContaining("/tags/list"), 1) << "one scan for the four readers";
  EXPECT_EQ(Scans("ok"), 1);
}

// A first scan that fails is the answer of the readers that waited for it too: they do not
// each scan again (a registry that is down would cost each of them its timeout in turn).
TEST_F(ScannerUnitTest, ReadersWaitingForAFailedFirstScanShareItsFailure) {
  absl::Notification entered, go;
  http_.Set("GET", repo_.FirstPageUrl(),
            [&](const http::Request&) -> absl::StatusOr<http::Response> {
              if (!entered.HasBeenNotified()) entered.Notify();
              go.WaitForNotification();
              return http::Response{503, {}, "down for maintenance"};
            });
  std::vector<std::thread> readers;
  std::atomic<int> failed{0};
  auto read = [&] {
    if (!scanner_->Tags(kRepo).ok()) ++failed;
  };
  readers.emplace_back(read);
  entered.WaitForNotification();
  for (int i = 0; i < 3; ++i) readers.emplace_back(read);
  WaitUntilQueued(*scanner_, 3);
  go.Notify();
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(failed, 4);
  EXPECT_EQ(http_.CountContaining("/tags/list"), 1) << "one failed scan for the four readers";
  EXPECT_EQ(Scans("error"), 1);
  // A reader that comes afterwards scans again.
  EXPECT_FALSE(scanner_->Tags(kRepo).ok());
  EXPECT_EQ(http_.CountContaining("/tags/list"), 2);
}

TEST_F(ScannerUnitTest, AWatchedRepositoryIsDueAtOnceThenEveryScanInterval) {
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Watch({kRepo}).status());
  EXPECT_THAT(scanner_->DueRepositories(), ElementsAre(kRepo));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_THAT(scanner_->DueRepositories(), IsEmpty());
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_THAT(scanner_->DueRepositories(), IsEmpty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(scanner_->DueRepositories(), ElementsAre(kRepo));
  FERRY_ASSERT_OK(scanner_->Watch({}).status());
  EXPECT_THAT(scanner_->DueRepositories(), IsEmpty()) << "an unwatched repository is never due";
}

TEST_F(ScannerUnitTest, FailingScansBackOffDoublingUpToTheScanInterval) {
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Watch({kRepo}).status());
  const std::vector<absl::Duration> backoffs = {
      absl::Seconds(5),  absl::Seconds(10),  absl::Seconds(20), absl::Seconds(40),
      absl::Seconds(80), absl::Seconds(160), absl::Minutes(5),  absl::Minutes(5)};
  for (size_t i = 0; i < backoffs.size(); ++i) {
    http_.Enqueue("GET", repo_.FirstPageUrl(), http::Response{500, {}, ""});
  }
  for (absl::Duration backoff : backoffs) {
    ASSERT_THAT(scanner_->DueRepositories(), ElementsAre(kRepo));
    EXPECT_THAT(scanner_->Scan(kRepo),
                StatusIs(absl::StatusCode::kUnavailable, HasSubstr("HTTP 500")));
    EXPECT_EQ(UntilNextScan(), backoff);
    clock_.Advance(backoff - absl::Seconds(1));
    EXPECT_THAT(scanner_->DueRepositories(), IsEmpty()) << "still backing off from " << backoff;
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(Scans("error"), backoffs.size());
  EXPECT_EQ(scanner_->LastSequence(), backoffs.size()) << "one error event per failed scan";
  // The registry answers again: the backoff is over and the interval applies.
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(UntilNextScan(), absl::Minutes(5));
  EXPECT_EQ(Scans("ok"), 1);
}

class PagedScannerUnitTest : public ScannerUnitTest {
 protected:
  PagedScannerUnitTest() : ScannerUnitTest(/*page_size=*/2) {}
};

TEST_F(PagedScannerUnitTest, TagListIsFollowedAcrossPages) {
  for (const char* tag : {"a", "b", "c", "d", "e"}) repo_.Push(tag);
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> tags, scanner_->Tags(kRepo));
  std::vector<std::string> names;
  for (const TagRecord& t : tags) names.push_back(t.tag);
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ElementsAre("a", "b", "c", "d", "e"));
  EXPECT_EQ(http_.CountContaining("/tags/list"), 3);
  EXPECT_EQ(http_.Count("GET", absl::StrCat(kBase, "/tags/list?last=d&n=2")), 1);
}

// The repository behind a Bearer challenge, whose token service gives tokens valid for
// `expires_in` (as the token answer has it); counts the tokens issued.
class BearerScannerUnitTest : public ScannerUnitTest {
 protected:
  static constexpr char kTokenUrl[] =
      "http://reg.test/token?service=reg.test&scope=repository%3Ateam%2Fapp%3Apull";

  void ServeBearer(nlohmann::json expires_in) {
    http_.Set("GET", kTokenUrl, [this, expires_in](const http::Request&) {
      current_ = absl::StrCat("token-", ++issued_);
      return absl::StatusOr<http::Response>(http::Response{
          200, {}, nlohmann::json{{"token", current_}, {"expires_in", expires_in}}.dump()});
    });
    http_.Set("GET", repo_.FirstPageUrl(),
              [this](const http::Request& r) -> absl::StatusOr<http::Response> {
                for (const auto& [name, value] : r.headers) {
                  if (name == "Authorization" && value == "Bearer " + current_) {
                    return http::Response{200, {}, R"({"tags": []})"};
                  }
                }
                return http::Response{
                    401,
                    {{"www-authenticate",
                      "Bearer realm=\"http://reg.test/token\",service=\"reg.test\","
                      "scope=\"repository:team/app:pull\""}},
                    ""};
              });
  }

  int issued_ = 0;
  std::string current_;
};

TEST_F(BearerScannerUnitTest, BearerChallengeIsAnsweredAndTheTokenKeptUntilItExpires) {
  ServeBearer(60);
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(issued_, 1);
  // Kept until 10 s before the registry's 60 s are up.
  clock_.Advance(absl::Seconds(49));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(issued_, 1);
  clock_.Advance(absl::Seconds(1));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(issued_, 2);
  EXPECT_EQ(http_.Count("GET", kTokenUrl), 2);
}

// A token's lifetime is taken between a second and a day, whatever the registry says: a huge
// or negative number (which overflowed an int before) or one that is no number (60 s).
TEST_F(BearerScannerUnitTest, ATokensLifetimeIsTakenBetweenASecondAndADay) {
  struct Case {
    nlohmann::json expires_in;
    absl::Duration kept;  // still used this long after it was issued, renewed 1 s later
  };
  for (const Case& c :
       {Case{1e300, absl::Hours(24) - absl::Seconds(1)}, Case{-2147483648LL, absl::ZeroDuration()},
        Case{"soon", absl::Seconds(49)}}) {
    clock_.Advance(absl::Hours(25));  // the last case's token is gone
    ServeBearer(c.expires_in);
    FERRY_ASSERT_OK(scanner_->Scan(kRepo)) << c.expires_in;
    const int issued = issued_;
    clock_.Advance(c.kept);
    FERRY_ASSERT_OK(scanner_->Scan(kRepo)) << c.expires_in;
    EXPECT_EQ(issued_, issued) << c.expires_in << ": renewed too soon";
    clock_.Advance(absl::Seconds(1) + absl::Milliseconds(1));
    FERRY_ASSERT_OK(scanner_->Scan(kRepo)) << c.expires_in;
    EXPECT_EQ(issued_, issued + 1) << c.expires_in << ": kept too long";
  }
}

// A release waits for GetImage. A tag the scanner has not learned yet is asked of the registry
// alone (not a scan of its repository) with interactive priority, so the rate limiter serves
// it ahead of the scans waiting there (rate_limited_http_client_test.cc); the scans' own
// requests stay in the background, and a known tag costs no request.
TEST_F(ScannerUnitTest, GetImageOfATagNotScannedYetAsksTheRegistryForItAheadOfScans) {
  RegistryScannerService service(*scanner_, *client_, MetadataOptions{});
  size_t sent_before = 0;
  // The requests `reference`'s GetImage sent; its answer's digest in `digest`.
  const auto get_image = [&](const std::string& reference, std::string* digest) {
    sent_before = http_.requests().size();
    grpc::ServerContext context;
    ferry::v1::GetImageRequest request;
    request.set_reference(absl::StrCat(kRepo, ":", reference));
    ferry::v1::TagInfo info;
    const grpc::Status status = service.GetImage(&context, &request, &info);
    EXPECT_TRUE(status.ok()) << status.error_message();
    *digest = info.digest();
    const std::vector<http::Request> all = http_.requests();
    return std::vector<http::Request>(all.begin() + sent_before, all.end());
  };
  const auto expect_interactive = [](const std::vector<http::Request>& sent) {
    for (const http::Request& r : sent) {
      EXPECT_EQ(r.priority, http::Priority::kInteractive) << r.url;
      EXPECT_FALSE(absl::StrContains(r.url, "/tags/list")) << "scanned for one tag: " << r.url;
    }
  };
  std::string digest;
  const std::string first = repo_.Push("1.0");
  std::vector<http::Request> sent = get_image("1.0", &digest);  // never scanned
  EXPECT_EQ(digest, first);
  EXPECT_EQ(sent.size(), 2u) << "the manifest and its config";
  expect_interactive(sent);

  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  const std::vector<http::Request> all = http_.requests();
  ASSERT_GT(all.size(), sent_before + 2);
  for (size_t i = sent_before + 2; i < all.size(); ++i) {
    EXPECT_EQ(all[i].priority, http::Priority::kBackground) << all[i].url;
  }
  const std::string second = repo_.Push("2.0");  // since the scan
  sent = get_image("2.0", &digest);
  EXPECT_EQ(digest, second);
  EXPECT_EQ(sent.size(), 2u);
  expect_interactive(sent);
  EXPECT_THAT(get_image("1.0", &digest), IsEmpty()) << "known since the scan";
  EXPECT_EQ(digest, first);
}

// The api's Release only asks whether its image exists: a reference the cache does not know
// costs one HEAD (not the manifest and its config); one the registry does not have is
// NOT_FOUND, a HEAD the registry fails is its error; a HEAD without the digest header gets
// the full read.
TEST_F(ScannerUnitTest, GetImageOfADigestOnlyIsOneHeadOfTheManifest) {
  RegistryScannerService service(*scanner_, *client_, MetadataOptions{});
  const auto get_digest = [&](const std::string& tag, grpc::Status* status) {
    const size_t sent_before = http_.requests().size();
    grpc::ServerContext context;
    ferry::v1::GetImageRequest request;
    request.set_reference(absl::StrCat(kRepo, ":", tag));
    request.set_digest_only(true);
    ferry::v1::TagInfo info;
    *status = service.GetImage(&context, &request, &info);
    const std::vector<http::Request> all = http_.requests();
    return std::make_pair(info, std::vector<http::Request>(all.begin() + sent_before, all.end()));
  };
  grpc::Status status;
  const std::string digest = repo_.Push("1.0");
  auto [info, sent] = get_digest("1.0", &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.tag(), "1.0");
  EXPECT_EQ(info.digest(), digest);
  ASSERT_EQ(sent.size(), 1u) << "more than the manifest's HEAD";
  EXPECT_EQ(sent[0].method, "HEAD");
  EXPECT_EQ(sent[0].priority, http::Priority::kInteractive);

  repo_.Push("gone");
  repo_.Delete("gone");
  std::tie(info, sent) = get_digest("gone", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_EQ(sent.size(), 1u);

  repo_.Push("busy");
  http_.Set("HEAD", FakeRepository::ManifestUrl("busy"), http::Response{503, {}, ""});
  std::tie(info, sent) = get_digest("busy", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  for (const http::Request& r : sent) EXPECT_EQ(r.method, "HEAD") << "read in full: " << r.url;

  const std::string bare = repo_.Push("bare");
  http_.Set("HEAD", FakeRepository::ManifestUrl("bare"), http::Response{200, {}, ""});
  std::tie(info, sent) = get_digest("bare", &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.digest(), bare);
  EXPECT_EQ(sent.size(), 3u) << "the HEAD, then the manifest and its config";
}

// ListTags of a repository never scanned scans it for the api, which answers someone
// (ListImages, a release's planning): that scan's requests go ahead of the due scans'.
TEST_F(ScannerUnitTest, ListTagsOfARepositoryNeverScannedScansItAheadOfScans) {
  repo_.Push("1.0");
  RegistryScannerService service(*scanner_, *client_, MetadataOptions{});
  grpc::ServerContext context;
  ferry::v1::ListTagsRequest request;
  request.set_repository(kRepo);
  ferry::v1::ListTagsResponse response;
  const grpc::Status status = service.ListTags(&context, &request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.tags_size(), 1);
  const std::vector<http::Request> sent = http_.requests();
  EXPECT_EQ(sent.size(), 3u) << "the tag list, the manifest and its config";
  for (const http::Request& r : sent) {
    EXPECT_EQ(r.priority, http::Priority::kInteractive) << r.url;
  }
}

// The token a challenged request needs is fetched with that request's priority: an
// interactive lookup does not wait behind the scans for its token either.
TEST_F(ScannerUnitTest, ATokenIsFetchedWithThePriorityOfTheRequestThatNeedsIt) {
  const std::string token_url =
      "http://reg.test/token?service=reg.test&scope=repository%3Ateam%2Fapp%3Apull";
  http_.Set("GET", token_url,
            http::Response{200, {}, nlohmann::json{{"token", "t"}, {"expires_in", 60}}.dump()});
  http_.Set("GET", repo_.FirstPageUrl(),
            [&](const http::Request& r) -> absl::StatusOr<http::Response> {
              for (const auto& [name, value] : r.headers) {
                if (name == "Authorization" && value == "Bearer t") {
                  return http::Response{200, {}, R"({"tags": ["1.0"]})"};
                }
              }
              return http::Response{401,
                                    {{"www-authenticate",
                                      "Bearer realm=\"http://reg.test/token\",service=\"reg.test\","
                                      "scope=\"repository:team/app:pull\""}},
                                    ""};
            });
  FERRY_ASSERT_OK_AND_ASSIGN(
      std::vector<std::string> tags,
      client_->ListTags(kRegistry, "team/app", http::Priority::kInteractive));
  EXPECT_THAT(tags, ElementsAre("1.0"));
  const std::vector<http::Request> sent = http_.requests();
  ASSERT_EQ(sent.size(), 3u) << "challenged, token, answered";
  EXPECT_EQ(sent[1].url, token_url);
  for (const http::Request& r : sent) {
    EXPECT_EQ(r.priority, http::Priority::kInteractive) << r.url;
  }
}

TEST_F(ScannerUnitTest, KnownTagsAreRecheckedOnAnAdaptiveInterval) {
  const std::string first = repo_.Push("stable");
  const std::string head = FakeRepository::ManifestUrl("stable");
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  // Re-checked after min_recheck (5 min), then after twice as long while the digest stays.
  for (absl::Duration interval : {absl::Minutes(5), absl::Minutes(10), absl::Minutes(20)}) {
    const int heads = http_.Count("HEAD", head);
    clock_.Advance(interval - absl::Minutes(1));
    FERRY_ASSERT_OK(scanner_->Scan(kRepo));
    EXPECT_EQ(http_.Count("HEAD", head), heads) << "re-checked before " << interval;
    clock_.Advance(absl::Minutes(1));
    FERRY_ASSERT_OK(scanner_->Scan(kRepo));
    EXPECT_EQ(http_.Count("HEAD", head), heads + 1) << "not re-checked after " << interval;
  }
  EXPECT_EQ(scanner_->LastSequence(), 0u);
  // The tag moves: the next re-check sees it, emits it and starts again from min_recheck.
  const std::string second = repo_.Push("stable");
  clock_.Advance(absl::Minutes(40));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::ZeroDuration());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kTagMoved);
  EXPECT_EQ(events[0].previous_digest, first);
  EXPECT_EQ(events[0].tag.metadata.digest, second);
  EXPECT_EQ(events[0].tag.recheck_interval, absl::Minutes(5));
}

// When the scanner first saw each tag's image (a soak time counts from it when the image has
// no creation time): set once, kept by re-checks, reset when the tag moves to another digest
// (a re-pushed tag soaks again) and for a tag deleted and pushed again.
TEST_F(ScannerUnitTest, FirstSeenIsKeptAcrossRechecksAndResetByAMove) {
  auto first_seen = [&](const std::string& tag) -> std::optional<absl::Time> {
    absl::StatusOr<std::vector<TagRecord>> tags = cache_->Tags(kRepo);
    if (!tags.ok()) return std::nullopt;
    for (const TagRecord& t : *tags) {
      if (t.tag == tag) return t.first_seen;
    }
    return std::nullopt;
  };
  repo_.Push("1");
  const absl::Time t0 = clock_.Now();
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(first_seen("1"), t0);
  clock_.Advance(absl::Minutes(10));  // past min_recheck: a HEAD re-check stores the tag again
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(first_seen("1"), t0) << "a re-check of the same digest keeps it";
  repo_.Push("1");  // moved
  repo_.Push("2");
  clock_.Advance(absl::Hours(1));
  const absl::Time t1 = clock_.Now();
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  ASSERT_EQ(scanner_->WaitForEvents(0, absl::ZeroDuration()).size(), 2u);  // moved, new
  EXPECT_EQ(first_seen("1"), t1) << "a moved tag is a new image: seen anew";
  EXPECT_EQ(first_seen("2"), t1);
  // A put of the same digest saying otherwise does not move it.
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> stored, cache_->Tags(kRepo));
  stored[0].first_seen = t1 + absl::Hours(5);
  FERRY_ASSERT_OK(cache_->PutTag(kRepo, stored[0]));
  EXPECT_EQ(first_seen(stored[0].tag), t1);
  // A put whose digest is unknown (metadata not read) keeps it too.
  stored[0].metadata.digest.clear();
  FERRY_ASSERT_OK(cache_->PutTag(kRepo, stored[0]));
  EXPECT_EQ(first_seen(stored[0].tag), t1);
  // Deleted and pushed again: a new tag, seen anew.
  repo_.Delete("1");
  clock_.Advance(absl::Minutes(1));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(first_seen("1"), std::nullopt);
  repo_.Push("1");
  clock_.Advance(absl::Minutes(1));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(first_seen("1"), clock_.Now());
}

// A scan that read its repository's record before a Watch changed it stores only its own
// outcome: the repository stays watched (a read-started first scan racing the api's first
// Watch had left it unwatched, and never scanned again).
TEST(CacheTest, AScanOutcomeKeepsTheWatchState) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(":memory:"));
  RepositoryRecord before_watch;  // what the scan read: not watched
  before_watch.name = kRepo;
  FERRY_ASSERT_OK(cache->PutScanOutcome(before_watch));  // stored as is when new
  RepositoryRecord watched = before_watch;
  watched.watched = true;
  watched.last_watched = absl::FromUnixSeconds(100);
  FERRY_ASSERT_OK(cache->PutRepository(watched));  // the Watch meanwhile
  RepositoryRecord scanned = before_watch;
  scanned.last_scan = absl::FromUnixSeconds(200);
  scanned.last_error = "";
  FERRY_ASSERT_OK(cache->PutScanOutcome(scanned));
  FERRY_ASSERT_OK_AND_ASSIGN(std::optional<RepositoryRecord> stored, cache->Repository(kRepo));
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(stored->watched);
  EXPECT_EQ(stored->last_watched, absl::FromUnixSeconds(100));
  EXPECT_EQ(stored->last_scan, absl::FromUnixSeconds(200));
  scanned.last_error = "503";
  FERRY_ASSERT_OK(cache->PutScanOutcome(scanned));
  FERRY_ASSERT_OK_AND_ASSIGN(stored, cache->Repository(kRepo));
  EXPECT_EQ(stored->last_error, "503");
  EXPECT_TRUE(stored->watched);
}

// A cache of schema 1 (before first_seen) is migrated in place, not rebuilt: its tags stay,
// first seen at the migration.
TEST(CacheTest, SchemaOneIsMigratedKeepingItsTags) {
  char tmpl[] = "/tmp/ferry-cache-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/cache.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES('schema','1');"
                         "CREATE TABLE repositories(name TEXT PRIMARY KEY, watched INTEGER NOT "
                         "NULL, last_scan INTEGER, last_error TEXT NOT NULL, last_watched INTEGER "
                         "NOT NULL);"
                         "CREATE TABLE tags(repository TEXT NOT NULL, tag TEXT NOT NULL, digest "
                         "TEXT NOT NULL, media_type TEXT NOT NULL, created INTEGER, "
                         "created_source INTEGER NOT NULL, platforms TEXT NOT NULL, labels TEXT "
                         "NOT NULL, incomplete TEXT NOT NULL, checked INTEGER NOT NULL, "
                         "recheck_seconds INTEGER NOT NULL, PRIMARY KEY(repository, tag));"
                         "INSERT INTO tags VALUES('reg.test/team/app','1.0','sha256:a','m',NULL,0,"
                         "'[]','{}','no creation time',0,300);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  const absl::Time before = absl::Now();
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(path));
  EXPECT_FALSE(cache->rebuilt());
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> tags, cache->Tags(kRepo));
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_EQ(tags[0].metadata.digest, "sha256:a");
  ASSERT_TRUE(tags[0].first_seen.has_value());
  EXPECT_GE(*tags[0].first_seen, before);
  EXPECT_LE(*tags[0].first_seen, absl::Now());
  // Opened again: schema 2 now, nothing changes.
  const absl::Time migrated = *tags[0].first_seen;
  cache.reset();
  FERRY_ASSERT_OK_AND_ASSIGN(cache, Cache::Open(path));
  EXPECT_FALSE(cache->rebuilt());
  FERRY_ASSERT_OK_AND_ASSIGN(tags, cache->Tags(kRepo));
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_EQ(tags[0].first_seen, migrated);
  cache.reset();
  std::filesystem::remove_all(tmpl);
}

TEST_F(ScannerUnitTest, WatchListChangesAndLongUnwatchedRepositoriesAreForgotten) {
  const std::string a = "reg.test/team/a", b = "reg.test/team/b", c = "reg.test/team/c";
  FERRY_ASSERT_OK_AND_ASSIGN(auto first, scanner_->Watch({a, b}));
  EXPECT_THAT(first.first, ElementsAre(a, b));
  EXPECT_THAT(first.second, IsEmpty());
  clock_.Advance(absl::Hours(24));
  FERRY_ASSERT_OK_AND_ASSIGN(auto second, scanner_->Watch({b, c}));
  EXPECT_THAT(second.first, ElementsAre(c));
  EXPECT_THAT(second.second, ElementsAre(a));
  EXPECT_FALSE(scanner_->IsWatched(a));
  EXPECT_TRUE(scanner_->IsWatched(b));
  EXPECT_TRUE(scanner_->IsWatched(c));
  EXPECT_EQ(testing::MetricSum(registry_, "ferry_registry_watched_repositories"), 2);
  EXPECT_THAT(scanner_->Watch({"no-slash"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use registry/path")));
  auto names = [&] {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<RepositoryRecord>> records = scanner_->Repositories();
    if (records.ok()) {
      for (const RepositoryRecord& r : *records) out.push_back(r.name);
    }
    return out;
  };
  // `a` was last watched at the start: it is forgotten once expire_after (7 days) has passed.
  clock_.Advance(absl::Hours(24 * 6));
  scanner_->DueRepositories();
  EXPECT_THAT(names(), ElementsAre(a, b, c));
  clock_.Advance(absl::Seconds(1));
  scanner_->DueRepositories();
  EXPECT_THAT(names(), ElementsAre(b, c));
}

// A scan through the rate-limited client as the binary assembles it: at most
// `max_in_flight` requests to the host at once, `concurrency` tags of the repository fetched at
// once. Every manifest GET is held (up to 200 ms) until as many requests as both allow are
// inside the registry, so the requests a scan sends at once are seen at their peak.
class ConcurrentScanUnitTest : public ScannerUnitTest {
 protected:
  void Build(int concurrency, int max_in_flight) {
    {
      absl::MutexLock lock(&mu_);
      gate_ = std::min(concurrency, max_in_flight);
    }
    RateLimitedHttpClient::Options limits;
    limits.requests_per_second = 1e6;
    limits.burst = 1e6;
    limits.max_in_flight = max_in_flight;
    limited_ = std::make_unique<RateLimitedHttpClient>(counting_, limits, registry_);
    RegistryClient::Options options;
    options.insecure_hosts = {kRegistry};
    client_ = std::make_unique<RegistryClient>(*limited_, CredentialStore(), options, clock_);
    ScannerOptions scanner_options;
    scanner_options.concurrency = concurrency;
    scanner_ = std::make_unique<Scanner>(*client_, *cache_, scanner_options, metrics_, clock_);
  }
  int Peak() {
    absl::MutexLock lock(&mu_);
    return peak_;
  }
  int TagPeak() {
    absl::MutexLock lock(&mu_);
    return tag_peak_;
  }
  // Answers of `tag`'s manifest GET wait `delay` first (later tags may answer first).
  void Delay(const std::string& tag, absl::Duration delay) {
    absl::MutexLock lock(&mu_);
    delays_[FakeRepository::ManifestUrl(tag)] = delay;
  }

  // Counts the requests inside the fake registry around the FakeHttpClient.
  class CountingHttp final : public http::HttpClient {
   public:
    explicit CountingHttp(ConcurrentScanUnitTest& test) : test_(test) {}
    absl::StatusOr<http::Response> Send(const http::Request& request) override {
      absl::Duration delay;
      {
        absl::MutexLock lock(&test_.mu_);
        ++test_.inside_;
        test_.peak_ = std::max(test_.peak_, test_.inside_);
        if (!absl::StrContains(request.url, "/tags/list")) {
          ++test_.tag_inside_;
          test_.tag_peak_ = std::max(test_.tag_peak_, test_.tag_inside_);
        }
        if (auto it = test_.delays_.find(request.url); it != test_.delays_.end()) {
          delay = it->second;
        }
        if (request.method == "GET" && absl::StrContains(request.url, "/manifests/")) {
          auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(test_.mu_) {
            return test_.inside_ >= test_.gate_;
          };
          test_.mu_.AwaitWithTimeout(absl::Condition(&full), absl::Milliseconds(200));
        }
      }
      absl::SleepFor(delay);
      absl::StatusOr<http::Response> response = test_.http_.Send(request);
      absl::MutexLock lock(&test_.mu_);
      --test_.inside_;
      if (!absl::StrContains(request.url, "/tags/list")) --test_.tag_inside_;
      return response;
    }

   private:
    ConcurrentScanUnitTest& test_;
  };

  absl::Mutex mu_;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
  int peak_ ABSL_GUARDED_BY(mu_) = 0;
  int gate_ ABSL_GUARDED_BY(mu_) = 1;
  // Requests for tags (manifests and blobs, not tag lists) inside at once, and their peak.
  int tag_inside_ ABSL_GUARDED_BY(mu_) = 0;
  int tag_peak_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, absl::Duration> delays_ ABSL_GUARDED_BY(mu_);
  CountingHttp counting_{*this};
  std::unique_ptr<RateLimitedHttpClient> limited_;
};

TEST_F(ConcurrentScanUnitTest, TagsOfOneRepositoryAreFetchedAsConcurrentlyAsTheHostAllows) {
  for (int i = 0; i < 24; ++i) repo_.Push(absl::StrCat("1.", i));
  // More scan threads than the host allows: the host's limit holds.
  Build(/*concurrency=*/8, /*max_in_flight=*/3);
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(Peak(), 3) << "one repository's scan keeps the host's 3 slots busy, never more";
  EXPECT_EQ(limited_->PeakInFlight(kRegistry), 3);
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> tags, cache_->Tags(kRepo));
  EXPECT_EQ(tags.size(), 24u);
  for (const TagRecord& t : tags) {
    EXPECT_FALSE(t.metadata.digest.empty()) << t.tag;
    EXPECT_TRUE(t.metadata.created.has_value()) << t.tag;
  }
  EXPECT_EQ(http_.CountContaining("/manifests/"), 24);
  EXPECT_EQ(http_.CountContaining("/blobs/"), 24);
  EXPECT_EQ(scanner_->LastSequence(), 0u) << "a first scan is silent";
}

TEST_F(ConcurrentScanUnitTest, TheScansConcurrencyBoundsItBelowTheHostsLimit) {
  for (int i = 0; i < 24; ++i) repo_.Push(absl::StrCat("1.", i));
  Build(/*concurrency=*/2, /*max_in_flight=*/8);
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(Peak(), 2);
  // The re-checks of known tags (one HEAD each) run as concurrently.
  clock_.Advance(absl::Minutes(5));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(http_.CountContaining("/manifests/"), 48);
  EXPECT_EQ(Peak(), 2);
}

TEST_F(ConcurrentScanUnitTest, ScansOfOneHostShareItsFetchersWhicheverRepository) {
  FakeRepository other(http_, 1000, "team/other");
  const std::string other_repo = absl::StrCat(kRegistry, "/team/other");
  for (int i = 0; i < 24; ++i) {
    const std::string tag = absl::StrCat("1.", i);
    repo_.Push(tag);
    other.Push(tag);
    Delay(tag, absl::Milliseconds(2));  // kRepo's: the scans overlap
  }
  // The host allows 8 requests in flight, the operator 3 tags at once: with two scans of
  // the host at once (a thread per tag job of each had 6), still 3.
  Build(/*concurrency=*/3, /*max_in_flight=*/8);
  absl::Status first, second;
  std::thread a([&] { first = scanner_->Scan(kRepo); });
  std::thread b([&] { second = scanner_->Scan(other_repo); });
  a.join();
  b.join();
  FERRY_ASSERT_OK(first);
  FERRY_ASSERT_OK(second);
  EXPECT_EQ(TagPeak(), 3);
  for (const std::string& r : {std::string(kRepo), other_repo}) {
    FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> tags, cache_->Tags(r));
    EXPECT_EQ(tags.size(), 24u) << r;
    for (const TagRecord& t : tags) EXPECT_FALSE(t.metadata.digest.empty()) << r << ":" << t.tag;
  }
  EXPECT_EQ(http_.CountContaining("/manifests/"), 48);
  EXPECT_EQ(http_.CountContaining("/blobs/"), 48);
}

// Events and the cache are as a one-at-a-time scan leaves them: in list order, whichever tag
// the registry answers first, and once stored.
class ConcurrencyOrderTest : public ConcurrentScanUnitTest,
                             public ::testing::WithParamInterface<int> {};

TEST_P(ConcurrencyOrderTest, EventsFollowTheTagListWhateverAnswersFirst) {
  repo_.Push("base");
  Build(/*concurrency=*/GetParam(), /*max_in_flight=*/GetParam());
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  std::map<std::string, std::string> digests;
  for (int i = 0; i < 12; ++i) {
    const std::string tag = absl::StrCat("2.", i);
    digests[tag] = repo_.Push(tag);
    Delay(tag, absl::Milliseconds(2 * (12 - i)));  // the later the tag, the sooner its answer
  }
  clock_.Advance(absl::Minutes(1));
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::ZeroDuration());
  ASSERT_EQ(events.size(), 12u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence, i + 1);
    EXPECT_EQ(events[i].kind, TagEvent::Kind::kNewTag);
    EXPECT_EQ(events[i].repository, kRepo);
    EXPECT_EQ(events[i].tag.tag, absl::StrCat("2.", i));
    EXPECT_EQ(events[i].tag.metadata.digest, digests[events[i].tag.tag]);
    EXPECT_EQ(events[i].tag.recheck_interval, absl::Minutes(5));
    EXPECT_EQ(events[i].time, clock_.Now());
  }
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> tags, cache_->Tags(kRepo));
  EXPECT_EQ(tags.size(), 13u);
}

INSTANTIATE_TEST_SUITE_P(OneAtATimeAndConcurrent, ConcurrencyOrderTest, ::testing::Values(1, 4));

TEST_F(ConcurrentScanUnitTest, AFailedTagFailsTheScanKeepsWhatWasLearnedAndIsFetchedNextTime) {
  repo_.Push("base");
  Build(/*concurrency=*/4, /*max_in_flight=*/4);
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  for (int i = 0; i < 12; ++i) repo_.Push(absl::StrCat("2.", i));
  http_.Enqueue("GET", FakeRepository::ManifestUrl("2.5"), http::Response{500, {}, ""});
  clock_.Advance(absl::Minutes(1));
  EXPECT_THAT(scanner_->Scan(kRepo),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("2.5: manifest: HTTP 500")));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::ZeroDuration());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, TagEvent::Kind::kRepositoryError);
  // The registry lists tags as pushed ("2.9" before "2.10"), not sorted as strings.
  const std::vector<std::string>& listed = repo_.tags();
  auto position = [&](const std::string& tag) {
    return std::find(listed.begin(), listed.end(), tag) - listed.begin();
  };
  std::set<std::string> announced;
  std::ptrdiff_t previous = -1;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].kind, TagEvent::Kind::kNewTag);
    EXPECT_NE(events[i].tag.tag, "2.5");
    EXPECT_LT(previous, position(events[i].tag.tag)) << "in list order: " << events[i].tag.tag;
    previous = position(events[i].tag.tag);
    announced.insert(events[i].tag.tag);
  }
  // Every tag answered before the failure stopped the scan is stored and announced.
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> stored, cache_->Tags(kRepo));
  EXPECT_EQ(stored.size(), announced.size() + 1);
  EXPECT_GE(announced.size(), 5u) << "the tags listed before the failed one";
  // The next scan fetches only what is missing and announces it.
  const int manifests = http_.CountContaining("/manifests/");
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  EXPECT_EQ(http_.CountContaining("/manifests/") - manifests,
            12 - static_cast<int>(announced.size()));
  events = scanner_->WaitForEvents(events.back().sequence, absl::ZeroDuration());
  for (const TagEvent& e : events) {
    EXPECT_EQ(e.kind, TagEvent::Kind::kNewTag);
    EXPECT_TRUE(announced.insert(e.tag.tag).second) << e.tag.tag << " announced twice";
  }
  EXPECT_EQ(announced.size(), 12u);
}

// The webhook queue with one worker (and none reserved for interactive scans): `waits` counts
// the worker's waits on the clock, each begun once a scan has ended (or, the first, when the
// queue starts idle).
class ScanQueueUnitTest : public ScannerUnitTest {
 protected:
  // Advances the clock to just before the worker's next retry, checks nothing is scanned,
  // then to the retry, and waits for the scan it runs to end.
  void ExpectRetryAfter(absl::Duration pause) {
    const int lists = http_.CountContaining("/tags/list");
    const int64_t waits = clock_.waits_begun();
    clock_.Advance(pause - absl::Milliseconds(1));
    EXPECT_EQ(clock_.waiting(), 1) << "retried before " << pause;
    EXPECT_EQ(clock_.waits_begun(), waits);
    clock_.Advance(absl::Milliseconds(1));
    ASSERT_TRUE(clock_.AwaitWaits(waits + 1)) << "no retry after " << pause;
    EXPECT_EQ(http_.CountContaining("/tags/list"), lists + 1);
  }
  // Asserts the worker is idle for good: a long time passes and it does not scan.
  void ExpectNoMoreRetries() {
    const int64_t waits = clock_.waits_begun();
    clock_.Advance(absl::Hours(1));
    EXPECT_EQ(clock_.waiting(), 1);
    EXPECT_EQ(clock_.waits_begun(), waits);
  }
};

TEST_F(ScanQueueUnitTest, AnnouncedTagIsRescannedWithGrowingPausesUntilItIsListed) {
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Watch({kRepo}).status());
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  ScanQueue queue(*scanner_, 1, /*interactive_workers=*/0);
  ASSERT_TRUE(clock_.AwaitWaits(1));  // idle
  EXPECT_FALSE(queue.Request("reg.test/team/unwatched", "2"));
  ASSERT_TRUE(queue.Request(kRepo, "2"));  // announced before the registry lists it
  ASSERT_TRUE(clock_.AwaitWaits(2));
  EXPECT_EQ(http_.CountContaining("/tags/list"), 2);
  ExpectRetryAfter(absl::Milliseconds(100));
  ExpectRetryAfter(absl::Milliseconds(200));
  const std::string digest = repo_.Push("2");
  ExpectRetryAfter(absl::Milliseconds(400));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::ZeroDuration());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, TagEvent::Kind::kNewTag);
  EXPECT_EQ(events[0].tag.tag, "2");
  EXPECT_EQ(events[0].tag.metadata.digest, digest);
  ExpectNoMoreRetries();
}

// Holds the GETs whose URL contains `part` until the test allows them, one by one.
class HeldGets final : public http::HttpClient {
 public:
  HeldGets(http::HttpClient& inner, std::string part) : inner_(inner), part_(std::move(part)) {}
  absl::StatusOr<http::Response> Send(const http::Request& request) override {
    if (request.method == "GET" && absl::StrContains(request.url, part_)) {
      absl::MutexLock lock(&mu_);
      ++entered_;
      auto allowed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return allowed_ > 0; };
      mu_.Await(absl::Condition(&allowed));
      --allowed_;
    }
    return inner_.Send(request);
  }
  // Waits until `n` held GETs have come (bounded by 10 s).
  bool AwaitEntered(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }
  void Allow(int n) {
    absl::MutexLock lock(&mu_);
    allowed_ += n;
  }

 private:
  http::HttpClient& inner_;
  const std::string part_;
  absl::Mutex mu_;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int allowed_ ABSL_GUARDED_BY(mu_) = 0;
};

// The host's tag fetchers take an interactive scan's tags before the next ones of the scans
// in progress: with both fetchers busy on a large background scan, the first one freed
// fetches all of the push's tags before that scan's next.
TEST_F(ScannerUnitTest, FetchersTakeAnInteractiveScansTagsFirst) {
  FakeRepository big(http_, 1000, "team/big");
  const std::string big_repo = absl::StrCat(kRegistry, "/team/big");
  for (int i = 0; i < 6; ++i) big.Push(absl::StrCat("1.", i));
  repo_.Push("a");
  repo_.Push("b");
  HeldGets held(http_, "/team/big/manifests/");
  RegistryClient::Options client_options;
  client_options.insecure_hosts = {kRegistry};
  RegistryClient client(held, CredentialStore(), client_options, clock_);
  ScannerOptions options;
  options.concurrency = 2;
  Scanner scanner(client, *cache_, options, metrics_, clock_);
  absl::Status big_scan, push_scan;
  std::vector<std::thread> threads;
  const auto release = [&] {
    held.Allow(100);
    for (std::thread& t : threads) {
      if (t.joinable()) t.join();
    }
  };
  // Also when an ASSERT below returns early: no thread is left waiting.
  absl::Cleanup release_at_exit = release;
  threads.emplace_back([&] { big_scan = scanner.Scan(big_repo); });
  ASSERT_TRUE(held.AwaitEntered(2));  // both fetchers on the big scan's first two tags
  threads.emplace_back(
      [&] { push_scan = scanner.Scan(kRepo, false, 0, http::Priority::kInteractive); });
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (scanner.ScansFetching(kRegistry) < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(scanner.ScansFetching(kRegistry), 2) << "the push's scan never queued its tags";
  held.Allow(1);                      // one fetcher is freed
  EXPECT_TRUE(held.AwaitEntered(3));  // and is back on the big scan
  EXPECT_EQ(http_.CountContaining("/team/app/manifests/"), 2)
      << "the freed fetcher went back to the big scan before the push's tags";
  release();
  FERRY_EXPECT_OK(big_scan);
  FERRY_EXPECT_OK(push_scan);
}

// A push webhook's scan is interactive: it does not wait for a worker busy with a due scan
// (here one stuck on a registry that does not answer), and its requests go ahead of the
// scans' in the rate limiter.
TEST_F(ScanQueueUnitTest, APushIsScannedAtOnceAlsoWhileEveryWorkerIsBusy) {
  FakeRepository stuck(http_, 1000, "team/stuck");
  const std::string stuck_repo = absl::StrCat(kRegistry, "/team/stuck");
  absl::Notification stuck_listing;
  absl::Notification answer_stuck;
  http_.Set("GET", stuck.FirstPageUrl(),
            [&](const http::Request&) -> absl::StatusOr<http::Response> {
              stuck_listing.Notify();
              answer_stuck.WaitForNotification();
              return http::Response{200, {}, R"({"tags": []})"};
            });
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Watch({kRepo, stuck_repo}).status());
  FERRY_ASSERT_OK(scanner_->Scan(kRepo));
  ScanQueue queue(*scanner_, 1);  // one worker, and one for interactive scans
  // Whatever fails below, the stuck worker is let go before the queue joins it.
  const auto unstick = [&] {
    if (!answer_stuck.HasBeenNotified()) answer_stuck.Notify();
  };
  // Also when an ASSERT below returns early: no thread is left waiting.
  absl::Cleanup unstick_at_exit = unstick;
  ASSERT_TRUE(queue.Request(stuck_repo));
  ASSERT_TRUE(stuck_listing.WaitForNotificationWithTimeout(absl::Seconds(10)));
  const size_t sent_before = http_.requests().size();
  const std::string digest = repo_.Push("2");
  ASSERT_TRUE(queue.Request(kRepo, "2", http::Priority::kInteractive));
  std::vector<TagEvent> events = scanner_->WaitForEvents(0, absl::Seconds(10));
  unstick();
  ASSERT_EQ(events.size(), 1u) << "the push waited for the busy worker";
  EXPECT_EQ(events[0].tag.tag, "2");
  EXPECT_EQ(events[0].tag.metadata.digest, digest);
  const std::vector<http::Request> sent = http_.requests();
  int to_repo = 0;
  for (size_t i = sent_before; i < sent.size(); ++i) {
    if (!absl::StrContains(sent[i].url, "/team/app/")) continue;
    ++to_repo;
    EXPECT_EQ(sent[i].priority, http::Priority::kInteractive) << sent[i].url;
  }
  EXPECT_EQ(to_repo, 3) << "the tag list, the new tag's manifest and config";
  EXPECT_TRUE(queue.WaitIdle(absl::Seconds(10)));
}

TEST_F(ScanQueueUnitTest, WaitIdleReturnsOnceNothingIsQueuedRunningOrToBeRetried) {
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Watch({kRepo}).status());
  ScanQueue queue(*scanner_, 1, /*interactive_workers=*/0);
  ASSERT_TRUE(clock_.AwaitWaits(1));
  EXPECT_TRUE(queue.WaitIdle(absl::ZeroDuration()));
  ASSERT_TRUE(queue.Request(kRepo));
  EXPECT_TRUE(queue.WaitIdle(absl::Seconds(10)));
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<TagRecord> tags, cache_->Tags(kRepo));
  EXPECT_EQ(tags.size(), 1u);
  // An announced tag the registry does not list yet: a retry is due, the queue is not idle.
  ASSERT_TRUE(queue.Request(kRepo, "2"));
  EXPECT_FALSE(queue.WaitIdle(absl::Milliseconds(50)));
  repo_.Push("2");
  ASSERT_TRUE(clock_.AwaitWaits(3));
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_TRUE(queue.WaitIdle(absl::Seconds(10)));
  FERRY_ASSERT_OK_AND_ASSIGN(tags, cache_->Tags(kRepo));
  EXPECT_EQ(tags.size(), 2u);
}

TEST_F(ScanQueueUnitTest, AnnouncedTagThatNeverShowsIsGivenUpAfterSixRetries) {
  repo_.Push("1");
  FERRY_ASSERT_OK(scanner_->Watch({kRepo}).status());
  ScanQueue queue(*scanner_, 1, /*interactive_workers=*/0);
  ASSERT_TRUE(clock_.AwaitWaits(1));
  ASSERT_TRUE(queue.Request(kRepo, "never"));
  ASSERT_TRUE(clock_.AwaitWaits(2));
  for (int ms : {100, 200, 400, 800, 1600, 3200}) ExpectRetryAfter(absl::Milliseconds(ms));
  ExpectNoMoreRetries();
  EXPECT_EQ(http_.CountContaining("/tags/list"), 7);
}

}  // namespace
}  // namespace ferry::registry_scanner
