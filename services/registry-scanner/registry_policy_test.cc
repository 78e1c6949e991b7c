#include "services/registry-scanner/registry_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "lib/status/status_matchers.h"
#include "services/registry-scanner/registry_client.h"

namespace ferry::registry_scanner {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(RegistryPolicyTest, DefaultAllowsAnyHostButLinkLocalAndMetadata) {
  RegistryPolicy policy;
  FERRY_EXPECT_OK(policy.CheckRegistry("127.0.0.1:5000"));
  FERRY_EXPECT_OK(policy.CheckRegistry("docker.io"));
  for (const char* registry : {"169.254.169.254", "169.254.169.254:80", "metadata.google.internal",
                               "METADATA.google.internal:80", "100.100.100.200"}) {
    absl::Status s = policy.CheckRegistry(registry);
    EXPECT_THAT(
        s, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("--registry_allow_link_local")))
        << registry;
  }
  FERRY_EXPECT_OK(policy.CheckAddress("127.0.0.1"));
  FERRY_EXPECT_OK(policy.CheckAddress("::1"));
  absl::Status metadata = policy.CheckAddress("169.254.169.254");
  EXPECT_THAT(metadata, StatusIs(absl::StatusCode::kPermissionDenied,
                                 AllOf(HasSubstr("169.254.169.254"),
                                       HasSubstr("--registry_allow_link_local"))));
  EXPECT_THAT(policy.CheckAddress("fe80::1"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(policy.CheckAddress("fd00:ec2::254"), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(RegistryPolicyTest, LinkLocalOnlyWithTheFlag) {
  auto policy = RegistryPolicy::Create({}, /*allow_link_local=*/true);
  FERRY_ASSERT_OK(policy);
  FERRY_EXPECT_OK(policy->CheckRegistry("169.254.169.254"));
  FERRY_EXPECT_OK(policy->CheckAddress("169.254.169.254"));
}

TEST(RegistryPolicyTest, AllowListByHostPortAndWildcard) {
  auto policy =
      RegistryPolicy::Create({"registry.example.com", "127.0.0.1:5000", "*.corp.example"}, false);
  FERRY_ASSERT_OK(policy);
  FERRY_EXPECT_OK(policy->CheckRegistry("registry.example.com"));
  FERRY_EXPECT_OK(policy->CheckRegistry("Registry.Example.com:443"));
  FERRY_EXPECT_OK(policy->CheckRegistry("127.0.0.1:5000"));
  FERRY_EXPECT_OK(policy->CheckRegistry("eu.corp.example"));
  FERRY_EXPECT_OK(policy->CheckRegistry("a.b.corp.example:8443"));
  for (const char* registry : {"127.0.0.1:5001", "127.0.0.1", "corp.example", "evilcorp.example",
                               "registry.example.com.evil.io", "docker.io"}) {
    absl::Status s = policy->CheckRegistry(registry);
    EXPECT_THAT(s,
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("--registry_allow_hosts")))
        << registry;
  }
  // The address guard is independent of the allow list: loopback stays reachable.
  FERRY_EXPECT_OK(policy->CheckAddress("127.0.0.1"));
}

TEST(RegistryPolicyTest, BadAllowListEntriesNameTheFlag) {
  for (const char* entry :
       {"", "http://x.io", "x.io:0", "x.io:70000", "*", "a*.x.io", "x.io/path", "user@x.io"}) {
    auto policy = RegistryPolicy::Create({entry}, false);
    EXPECT_THAT(policy,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--registry_allow_hosts")))
        << entry;
  }
}

TEST(RegistryPolicyTest, CheckRepositoryParsesThenChecksTheHost) {
  auto policy = RegistryPolicy::Create({"127.0.0.1:5000"}, false);
  FERRY_ASSERT_OK(policy);
  FERRY_EXPECT_OK(policy->CheckRepository("127.0.0.1:5000/team/app"));
  EXPECT_THAT(policy->CheckRepository("127.0.0.1:5000/../x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(policy->CheckRepository("127.0.0.1:5001/team/app"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// Answers every request with one tag page whose Link points at `next`; records the URLs.
class OnePageHttp : public http::HttpClient {
 public:
  explicit OnePageHttp(std::string next) : next_(std::move(next)) {}
  absl::StatusOr<http::Response> Send(const http::Request& request) override {
    urls.push_back(request.url);
    http::Response response;
    response.status = 200;
    response.body = R"({"name":"team/app","tags":["1"]})";
    response.headers.emplace("link", "<" + next_ + ">; rel=\"next\"");
    return response;
  }
  std::vector<std::string> urls;

 private:
  std::string next_;
};

TEST(RegistryClientPolicyTest, RefusedRegistryIsNeverSentARequest) {
  OnePageHttp http("/v2/team/app/tags/list?last=1");
  RegistryClient::Options options;
  auto policy = RegistryPolicy::Create({"registry.example.com"}, false);
  FERRY_ASSERT_OK(policy);
  options.check_registry = [&](const std::string& r) { return policy->CheckRegistry(r); };
  RegistryClient client(http, CredentialStore(), options);
  absl::StatusOr<std::vector<std::string>> tags = client.ListTags("127.0.0.1:5000", "team/app");
  EXPECT_THAT(tags, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_TRUE(http.urls.empty());
}

TEST(RegistryClientPolicyTest, NextPageOnAnotherHostIsNotFollowed) {
  OnePageHttp http("https://elsewhere.example.com/v2/team/app/tags/list?last=1");
  CredentialStore credentials;
  credentials.Add("registry.example.com", {"user", "s3cret"});
  RegistryClient client(http, std::move(credentials), {});
  absl::StatusOr<std::vector<std::string>> tags =
      client.ListTags("registry.example.com", "team/app");
  ASSERT_THAT(tags, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("next page is on another host")));
  ASSERT_EQ(http.urls.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(http.urls[0], "https://registry.example.com/v2/team/app/tags/list"));
}

// Answers the first request with a redirect to `location`, the next ones with a tag page;
// records each request.
class RedirectingHttp : public http::HttpClient {
 public:
  // `challenge`: a Basic challenge comes first, so that the redirected request carries
  // the registry's credentials.
  explicit RedirectingHttp(std::string location, bool challenge = false)
      : location_(std::move(location)), challenge_(challenge) {}
  absl::StatusOr<http::Response> Send(const http::Request& request) override {
    EXPECT_FALSE(request.follow_redirects) << "the client follows redirects itself";
    requests.push_back(request);
    http::Response response;
    if (challenge_ && requests.size() == 1) {
      response.status = 401;
      response.headers.emplace("www-authenticate", "Basic realm=\"registry\"");
      return response;
    }
    if (requests.size() == (challenge_ ? 2u : 1u)) {
      response.status = 307;
      response.headers.emplace("location", location_);
      return response;
    }
    response.status = 200;
    response.body = R"({"name":"team/app","tags":["1"]})";
    return response;
  }
  static bool HasAuthorization(const http::Request& r) {
    for (const auto& h : r.headers) {
      if (absl::EqualsIgnoreCase(h.first, "authorization")) return true;
    }
    return false;
  }
  std::vector<http::Request> requests;

 private:
  std::string location_;
  bool challenge_;
};

RegistryClient::Options PolicyOptions(const RegistryPolicy& policy) {
  RegistryClient::Options options;
  options.insecure_hosts = {"127.0.0.1:5000"};
  options.check_registry = [&policy](const std::string& r) { return policy.CheckRegistry(r); };
  options.registry_listed = [&policy](const std::string& h) { return policy.Lists(h); };
  return options;
}

CredentialStore RegistryCredentials() {
  CredentialStore credentials;
  credentials.Add("127.0.0.1:5000", {"user", "s3cret"});
  return credentials;
}

TEST(RegistryClientPolicyTest, RedirectOffTheAllowListIsNotFollowed) {
  RedirectingHttp http("http://127.0.0.1:6000/v2/team/app/tags/list");
  auto policy = RegistryPolicy::Create({"127.0.0.1:5000"}, false);
  FERRY_ASSERT_OK(policy);
  RegistryClient client(http, RegistryCredentials(), PolicyOptions(*policy));
  auto tags = client.ListTags("127.0.0.1:5000", "team/app");
  EXPECT_THAT(tags, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("redirect")));
  EXPECT_EQ(http.requests.size(), 1u);
}

TEST(RegistryClientPolicyTest, RedirectToALinkLocalHostIsNotFollowed) {
  RedirectingHttp http("http://169.254.169.254/latest/meta-data");
  RegistryPolicy policy;
  RegistryClient client(http, RegistryCredentials(), PolicyOptions(policy));
  auto tags = client.ListTags("127.0.0.1:5000", "team/app");
  EXPECT_THAT(tags, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(http.requests.size(), 1u);
}

TEST(RegistryClientPolicyTest, RedirectElsewhereWithoutAnAllowListDropsCredentials) {
  RedirectingHttp http("http://127.0.0.1:6000/v2/team/app/tags/list", /*challenge=*/true);
  RegistryPolicy policy;  // no allow list: another host is reached, but is not listed
  RegistryClient client(http, RegistryCredentials(), PolicyOptions(policy));
  auto tags = client.ListTags("127.0.0.1:5000", "team/app");
  FERRY_ASSERT_OK(tags);
  ASSERT_EQ(http.requests.size(), 3u);
  EXPECT_TRUE(RedirectingHttp::HasAuthorization(http.requests[1]));  // the registry's own
  EXPECT_EQ(http.requests[2].url, "http://127.0.0.1:6000/v2/team/app/tags/list");
  EXPECT_FALSE(RedirectingHttp::HasAuthorization(http.requests[2]));
}

TEST(RegistryClientPolicyTest, RedirectToAListedHostKeepsCredentials) {
  RedirectingHttp http("http://127.0.0.1:6000/v2/team/app/tags/list", /*challenge=*/true);
  auto policy = RegistryPolicy::Create({"127.0.0.1:5000", "127.0.0.1:6000"}, false);
  FERRY_ASSERT_OK(policy);
  RegistryClient client(http, RegistryCredentials(), PolicyOptions(*policy));
  auto tags = client.ListTags("127.0.0.1:5000", "team/app");
  FERRY_ASSERT_OK(tags);
  ASSERT_EQ(http.requests.size(), 3u);
  EXPECT_TRUE(RedirectingHttp::HasAuthorization(http.requests[2]));
}

TEST(RegistryClientPolicyTest, RedirectToAListedHostIsFollowedWithRelativeLocation) {
  RedirectingHttp http("/v2/team/app/tags/list?n=1000&page=2");
  auto policy = RegistryPolicy::Create({"127.0.0.1:5000"}, false);
  FERRY_ASSERT_OK(policy);
  RegistryClient client(http, RegistryCredentials(), PolicyOptions(*policy));
  auto tags = client.ListTags("127.0.0.1:5000", "team/app");
  FERRY_ASSERT_OK(tags);
  ASSERT_EQ(http.requests.size(), 2u);
  EXPECT_EQ(http.requests[1].url, "http://127.0.0.1:5000/v2/team/app/tags/list?n=1000&page=2");
}

}  // namespace
}  // namespace ferry::registry_scanner
