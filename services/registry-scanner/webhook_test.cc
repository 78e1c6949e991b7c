#include "services/registry-scanner/webhook.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/http/curl_http_client.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"
#include "tests/support/metrics.h"

namespace ferry::registry_scanner {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

TEST(ParseWebhookTest, DistributionEnvelopeOnlyTaggedPushes) {
  const std::string body = R"({"events":[
    {"action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
     "repository":"team/app","tag":"1.2.0","url":"http://127.0.0.1:5000/v2/team/app/manifests/sha256:ab"},
     "request":{"host":"127.0.0.1:5000"}},
    {"action":"push","target":{"mediaType":"application/octet-stream","repository":"team/app"},
     "request":{"host":"127.0.0.1:5000"}},
    {"action":"pull","target":{"repository":"team/app","tag":"1.2.0"},"request":{"host":"127.0.0.1:5000"}}]})";
  auto hints = ParseWebhook(body);
  FERRY_ASSERT_OK(hints);
  ASSERT_EQ(hints->size(), 1u);
  EXPECT_EQ((*hints)[0].repository, "127.0.0.1:5000/team/app");
  EXPECT_EQ((*hints)[0].tag, "1.2.0");
}

TEST(ParseWebhookTest, DockerHubAndGeneric) {
  auto hub = ParseWebhook(R"({"push_data":{"tag":"v2"},"repository":{"repo_name":"org/app"}})");
  FERRY_ASSERT_OK(hub);
  EXPECT_EQ((*hub)[0].repository, "docker.io/org/app");
  auto official = ParseWebhook(R"({"push_data":{"tag":"1"},"repository":{"repo_name":"nginx"}})");
  EXPECT_EQ((*official)[0].repository, "docker.io/library/nginx");
  auto generic = ParseWebhook(R"({"repository":"quay.io/org/app","tag":"x"})");
  FERRY_ASSERT_OK(generic);
  EXPECT_EQ((*generic)[0].repository, "quay.io/org/app");
  EXPECT_THAT(ParseWebhook("not json"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseWebhook(R"({"hello":1})"), StatusIs(absl::StatusCode::kInvalidArgument));
}

std::string HmacHex(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(mac[i], absl::kZeroPad2));
  return hex;
}

TEST(AuthenticWebhookTest, BearerOrHmac) {
  EXPECT_TRUE(AuthenticWebhook("Bearer s3cret", "", "{}", "s3cret"));
  EXPECT_FALSE(AuthenticWebhook("Bearer wrong", "", "{}", "s3cret"));
  EXPECT_TRUE(
      AuthenticWebhook("", "sha256=" + HmacHex("s3cret", "{\"a\":1}"), "{\"a\":1}", "s3cret"));
  EXPECT_FALSE(
      AuthenticWebhook("", "sha256=" + HmacHex("s3cret", "{\"a\":1}"), "{\"a\":2}", "s3cret"));
  EXPECT_FALSE(AuthenticWebhook("", "", "{}", "s3cret"));
  EXPECT_FALSE(AuthenticWebhook("Bearer ", "", "{}", ""));  // no secret: nothing is authentic
}

TEST(WebhookServerTest, AnswersWithStatusesAndCallsBackOnlyWhenAuthentic) {
  std::mutex mu;
  std::vector<PushHint> seen;
  prometheus::Registry metrics;
  auto server = WebhookServer::Start(
      {"127.0.0.1", 0}, "s3cret", limits::kWebhookBody.default_value,
      [&](const PushHint& h) {
        std::lock_guard<std::mutex> lock(mu);
        seen.push_back(h);
      },
      metrics);
  FERRY_ASSERT_OK(server);
  http::CurlOptions o;
  o.insecure_hosts = {absl::StrCat("127.0.0.1:", (*server)->port())};
  http::CurlHttpClient client(o);
  auto post = [&](const std::string& auth, const std::string& body) {
    http::Request r;
    r.method = "POST";
    r.url = absl::StrCat("http://127.0.0.1:", (*server)->port(), "/webhook");
    if (!auth.empty()) r.headers.emplace_back("Authorization", auth);
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = body;
    auto resp = client.Send(r);
    return resp.ok() ? resp->status : -1;
  };
  const std::string body = R"({"repository":"127.0.0.1:5000/team/app","tag":"1"})";
  EXPECT_EQ(post("", body), 401);
  EXPECT_EQ(post("Bearer nope", body), 401);
  EXPECT_EQ(post("Bearer s3cret", "{oops"), 400);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(seen.empty());
  }
  EXPECT_EQ(post("Bearer s3cret", body), 200);
  const std::string requests = "ferry_registry_webhook_requests_total";
  EXPECT_EQ(testing::MetricSum(metrics, requests, {{"result", "unauthorized"}}), 2);
  EXPECT_EQ(testing::MetricSum(metrics, requests, {{"result", "malformed"}}), 1);
  EXPECT_EQ(testing::MetricSum(metrics, requests, {{"result", "accepted"}}), 1);
  EXPECT_EQ(testing::MetricSum(metrics, "ferry_registry_webhook_hints_total"), 1);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].repository, "127.0.0.1:5000/team/app");
}

// A standby (leader election) answers authentic notifications 503 with Retry-After, so the
// registry delivers them again, to the leader; nothing is called.
TEST(WebhookServerTest, AStandbyAnswers503AndCallsNothing) {
  int hints = 0;
  prometheus::Registry metrics;
  absl::Status permit = absl::UnavailableError("a standby; the leader is ferry-registry-scanner/b");
  auto server = WebhookServer::Start(
      {"127.0.0.1", 0}, "s3cret", limits::kWebhookBody.default_value,
      [&](const PushHint&) { ++hints; }, metrics, [&] { return permit; });
  FERRY_ASSERT_OK(server);
  httplib::Client client("127.0.0.1", (*server)->port());
  const std::string body = R"({"repository":"127.0.0.1:5000/team/app","tag":"1"})";
  auto refused =
      client.Post("/webhook", {{"Authorization", "Bearer s3cret"}}, body, "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_TRUE(absl::StrContains(refused->body, "the leader is")) << refused->body;
  // An unauthenticated caller learns nothing about the election.
  auto anonymous = client.Post("/webhook", body, "application/json");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(hints, 0);
  EXPECT_EQ(
      testing::MetricSum(metrics, "ferry_registry_webhook_requests_total", {{"result", "standby"}}),
      1);
  permit = absl::OkStatus();  // it leads now
  auto accepted =
      client.Post("/webhook", {{"Authorization", "Bearer s3cret"}}, body, "application/json");
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 200);
  EXPECT_EQ(hints, 1);
}

TEST(WebhookServerTest, RefusesBodiesOverTheLimitBeforeParsingOrHmac) {
  int hints = 0;
  prometheus::Registry metrics;
  constexpr uint64_t kMax = 64;
  auto server = WebhookServer::Start(
      {"127.0.0.1", 0}, "s3cret", kMax, [&](const PushHint&) { ++hints; }, metrics);
  FERRY_ASSERT_OK(server);
  httplib::Client client("127.0.0.1", (*server)->port());
  const std::string small = R"({"repository":"127.0.0.1:5000/a/b","tag":"1"})";
  const std::string big(200, ' ');  // whitespace: valid JSON padding, over the limit
  ASSERT_LE(small.size(), kMax);

  // Declared length over the limit: 413 naming the limit and the flag, even when authentic.
  auto declared = client.Post("/webhook", {{"Authorization", "Bearer s3cret"}}, big + small,
                              "application/json");
  ASSERT_TRUE(declared);
  EXPECT_EQ(declared->status, 413);
  EXPECT_TRUE(absl::StrContains(declared->body, "over the limit of 64 bytes")) << declared->body;
  EXPECT_TRUE(absl::StrContains(declared->body, "--webhook_max_body_bytes")) << declared->body;

  // Chunked (no declared length), HMAC-signed: cut off at the limit, 413.
  const std::string payload = big + small;
  const std::string signature = "sha256=" + HmacHex("s3cret", payload);
  auto chunked = client.Post(
      "/webhook", {{"X-Hub-Signature-256", signature}},
      [&payload](size_t offset, httplib::DataSink& sink) {
        if (offset < payload.size()) {
          sink.write(payload.data() + offset, std::min<size_t>(16, payload.size() - offset));
        } else {
          sink.done();
        }
        return true;
      },
      "application/json");
  // The server answers and closes while the client may still be sending chunks: the client
  // then sees its write or read fail instead of the answer. Either way the refusal is
  // counted (too_large below).
  if (chunked) {
    EXPECT_EQ(chunked->status, 413);
    EXPECT_TRUE(absl::StrContains(chunked->body, "--webhook_max_body_bytes")) << chunked->body;
  } else {
    EXPECT_TRUE(chunked.error() == httplib::Error::Write || chunked.error() == httplib::Error::Read)
        << httplib::to_string(chunked.error());
  }

  // No credentials at all: 401 from the headers alone.
  auto anonymous = client.Post("/webhook", small, "application/json");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  // Other paths never read a body.
  auto elsewhere = client.Post("/elsewhere", big, "application/json");
  ASSERT_TRUE(elsewhere);
  EXPECT_EQ(elsewhere->status, 404);

  // Within the limit, signed: accepted.
  auto ok = client.Post("/webhook", {{"X-Hub-Signature-256", "sha256=" + HmacHex("s3cret", small)}},
                        small, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(hints, 1);
  const std::string requests = "ferry_registry_webhook_requests_total";
  EXPECT_EQ(testing::MetricSum(metrics, requests, {{"result", "too_large"}}), 2);
  EXPECT_EQ(testing::MetricSum(metrics, requests, {{"result", "unauthorized"}}), 1);
}

}  // namespace
}  // namespace ferry::registry_scanner
