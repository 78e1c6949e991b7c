#include "lib/http/fake_http_client.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::http {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kUrl[] = "https://registry.example/v2/a/tags/list?n=10";

Request Make(const std::string& method, const std::string& url) {
  Request r;
  r.method = method;
  r.url = url;
  return r;
}

long StatusOf(FakeHttpClient& fake, const std::string& method, const std::string& url) {
  absl::StatusOr<Response> r = fake.Send(Make(method, url));
  return r.ok() ? r->status : -1;
}

TEST(FakeHttpClientTest, UnscriptedRequestsAreNotFound) {
  FakeHttpClient fake;
  fake.Set("GET", kUrl, Response{200, {}, "tags"});
  EXPECT_EQ(StatusOf(fake, "GET", "https://registry.example/v2/a/tags/list"), 404);
  EXPECT_EQ(StatusOf(fake, "HEAD", kUrl), 404) << "matched on the method too";
  EXPECT_EQ(StatusOf(fake, "GET", kUrl), 200);
  fake.Remove("GET", kUrl);
  EXPECT_EQ(StatusOf(fake, "GET", kUrl), 404);
}

TEST(FakeHttpClientTest, QueuedAnswersComeFirstInOrderThenTheStandingOne) {
  FakeHttpClient fake;
  fake.Set("GET", kUrl, Response{200, {}, ""});
  fake.Enqueue("GET", kUrl, Response{429, {{"retry-after", "1"}}, ""});
  fake.Enqueue("GET", kUrl, absl::UnavailableError("connection refused"));
  EXPECT_EQ(StatusOf(fake, "GET", kUrl), 429);
  EXPECT_THAT(fake.Send(Make("GET", kUrl)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("refused")));
  EXPECT_EQ(StatusOf(fake, "GET", kUrl), 200);
  EXPECT_EQ(StatusOf(fake, "GET", kUrl), 200);
}

TEST(FakeHttpClientTest, HandlersSeeTheRequestAndEveryRequestIsRecorded) {
  FakeHttpClient fake;
  fake.Set("GET", kUrl, [](const Request& r) -> absl::StatusOr<Response> {
    return Response{r.headers.empty() ? 401L : 200L, {}, ""};
  });
  Request authorized = Make("GET", kUrl);
  authorized.headers.emplace_back("Authorization", "Bearer t");
  EXPECT_EQ(StatusOf(fake, "GET", kUrl), 401);
  FERRY_ASSERT_OK(fake.Send(authorized));
  EXPECT_EQ(StatusOf(fake, "HEAD", "https://other.example/v2/"), 404);
  ASSERT_EQ(fake.requests().size(), 3u);
  EXPECT_EQ(fake.requests()[1].headers, authorized.headers);
  EXPECT_EQ(fake.Count("GET", kUrl), 2);
  EXPECT_EQ(fake.Count("HEAD", kUrl), 0);
  EXPECT_EQ(fake.CountContaining("/v2/"), 3);
}

}  // namespace
}  // namespace ferry::http
