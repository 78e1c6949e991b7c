// The registry client and metadata reader against a real registry (Debian's
// docker-registry on a loopback port), cross-checked with skopeo.
#include "services/registry-scanner/registry_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/http/curl_http_client.h"
#include "lib/status/status_matchers.h"
#include "services/registry-scanner/metadata.h"
#include "services/registry-scanner/registry_policy.h"
#include "tests/support/git_repo.h"
#include "tests/support/registry.h"

namespace ferry::registry_scanner {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Config(const std::string& created, const std::string& arch,
                   const std::string& labels_json = "{}") {
  nlohmann::json c = {{"architecture", arch},
                      {"os", "linux"},
                      {"config", {{"Labels", nlohmann::json::parse(labels_json)}}},
                      {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}}}};
  if (!created.empty()) c["created"] = created;
  return c.dump();
}

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

class RegistryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-registry-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto server = testing::RegistryServer::Start(dir_);
    FERRY_ASSERT_OK(server);
    server_ = *std::move(server);
    http::CurlOptions options;
    options.insecure_hosts = {server_->host()};
    http_ = std::make_unique<http::CurlHttpClient>(options);
    RegistryClient::Options client_options;
    client_options.insecure_hosts = {server_->host()};
    client_options.page_size = 2;  // exercise pagination
    client_ = std::make_unique<RegistryClient>(*http_, CredentialStore(), client_options);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<testing::RegistryServer> server_;
  std::unique_ptr<http::CurlHttpClient> http_;
  std::unique_ptr<RegistryClient> client_;
};

TEST_F(RegistryClientTest, ListsEveryTagAcrossPages) {
  for (const char* tag : {"1.0.0", "1.1.0", "2.0.0", "latest", "master-a1"}) {
    FERRY_ASSERT_OK(server_->PushImage("team/app", tag, Config("2023-05-01T10:00:00Z", "amd64")));
  }
  absl::StatusOr<std::vector<std::string>> tags = client_->ListTags(server_->host(), "team/app");
  FERRY_ASSERT_OK(tags);
  std::sort(tags->begin(), tags->end());
  EXPECT_EQ(*tags, (std::vector<std::string>{"1.0.0", "1.1.0", "2.0.0", "latest", "master-a1"}));
  EXPECT_THAT(client_->ListTags(server_->host(), "team/nope"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(RegistryClientTest, Schema2ConfigCreatedLabelsAndDigest) {
  auto digest = server_->PushImage("team/app", "1.0.0",
                                   Config("2023-05-01T10:00:00.123456789Z", "amd64",
                                          R"({"org.opencontainers.image.revision":"abc"})"));
  FERRY_ASSERT_OK(digest);
  absl::StatusOr<TagMetadata> m =
      FetchTagMetadata(*client_, server_->host(), "team/app", "1.0.0", {});
  FERRY_ASSERT_OK(m);
  EXPECT_EQ(m->digest, *digest);
  EXPECT_EQ(m->media_type, "application/vnd.docker.distribution.manifest.v2+json");
  ASSERT_TRUE(m->created.has_value());
  EXPECT_EQ(*m->created, Utc(2023, 5, 1, 10, 0, 0) + absl::Nanoseconds(123456789));
  EXPECT_EQ(m->created_source, CreatedSource::kConfig);
  EXPECT_EQ(m->labels.at("org.opencontainers.image.revision"), "abc");
  ASSERT_EQ(m->platforms.size(), 1u);
  EXPECT_EQ(m->platforms[0].architecture, "amd64");
  EXPECT_EQ(*client_->ManifestDigest(server_->host(), "team/app", "1.0.0"), *digest);
}

TEST_F(RegistryClientTest, OciImageWithoutCreatedFallsBackToTheLabelAndZeroIsReported) {
  FERRY_ASSERT_OK(server_->PushImage(
      "team/app", "labelled",
      Config("", "amd64", R"({"org.opencontainers.image.created":"2022-01-02T03:04:05Z"})"),
      /*oci=*/true));
  auto labelled = FetchTagMetadata(*client_, server_->host(), "team/app", "labelled", {});
  FERRY_ASSERT_OK(labelled);
  EXPECT_EQ(labelled->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(labelled->created_source, CreatedSource::kOciLabel);
  EXPECT_EQ(*labelled->created, Utc(2022, 1, 2, 3, 4, 5));

  FERRY_ASSERT_OK(server_->PushImage("team/app", "zero", Config("0001-01-01T00:00:00Z", "amd64")));
  auto zero = FetchTagMetadata(*client_, server_->host(), "team/app", "zero", {});
  FERRY_ASSERT_OK(zero);
  EXPECT_FALSE(zero->created.has_value());
  EXPECT_NE(zero->incomplete_reason.find("no creation time"), std::string::npos);
}

TEST_F(RegistryClientTest, ManifestListAndOciIndexRecordEveryPlatform) {
  for (bool oci : {false, true}) {
    const std::string tag = oci ? "oci-multi" : "docker-multi";
    auto amd = server_->PushImage("team/multi", tag + "-amd64",
                                  Config("2024-01-01T00:00:00Z", "amd64"), oci);
    auto arm = server_->PushImage("team/multi", tag + "-arm64",
                                  Config("2024-02-02T00:00:00Z", "arm64"), oci);
    FERRY_ASSERT_OK(amd);
    FERRY_ASSERT_OK(arm);
    auto index = server_->PushIndex("team/multi", tag,
                                    {{"linux/amd64", *amd}, {"linux/arm64/v8", *arm}}, oci);
    FERRY_ASSERT_OK(index);
    MetadataOptions arm_options;
    arm_options.platform = *PlatformSpec::Parse("linux/arm64");
    auto m = FetchTagMetadata(*client_, server_->host(), "team/multi", tag, arm_options);
    FERRY_ASSERT_OK(m);
    EXPECT_EQ(m->digest, *index);
    ASSERT_EQ(m->platforms.size(), 2u);
    EXPECT_EQ(m->platforms[1].variant, "v8");
    EXPECT_EQ(*m->created, Utc(2024, 2, 2, 0, 0, 0));  // the arm64 image's
    auto amd_default = FetchTagMetadata(*client_, server_->host(), "team/multi", tag, {});
    FERRY_ASSERT_OK(amd_default);
    EXPECT_EQ(*amd_default->created, Utc(2024, 1, 1, 0, 0, 0));
    MetadataOptions s390;
    s390.platform = *PlatformSpec::Parse("linux/s390x");
    auto none = FetchTagMetadata(*client_, server_->host(), "team/multi", tag, s390);
    FERRY_ASSERT_OK(none);
    EXPECT_NE(none->incomplete_reason.find("no linux/s390x image"), std::string::npos);
  }
}

TEST_F(RegistryClientTest, AgreesWithSkopeo) {
  auto digest = server_->PushImage("team/app", "2.0.0", Config("2023-07-08T09:10:11Z", "amd64"));
  FERRY_ASSERT_OK(digest);
  auto m = FetchTagMetadata(*client_, server_->host(), "team/app", "2.0.0", {});
  FERRY_ASSERT_OK(m);
  int status = 0;
  std::string out = testing::RunCommand(absl::StrCat("skopeo inspect --tls-verify=false docker://",
                                                     server_->host(), "/team/app:2.0.0 2>&1"),
                                        &status);
  ASSERT_EQ(status, 0) << out;
  nlohmann::json s = nlohmann::json::parse(out);
  EXPECT_EQ(s["Digest"], m->digest);
  EXPECT_EQ(s["Created"], "2023-07-08T09:10:11Z");
  EXPECT_EQ(*m->created, Utc(2023, 7, 8, 9, 10, 11));
  EXPECT_EQ(s["Architecture"], m->platforms[0].architecture);
}

TEST(PlatformSpecTest, Parses) {
  EXPECT_EQ(PlatformSpec::Parse("linux/arm64/v8")->variant, "v8");
  EXPECT_THAT(PlatformSpec::Parse("linux"), ::testing::Not(::ferry::testing::IsOk()));
  EXPECT_FALSE(ParseCreated("0001-01-01T00:00:00Z").has_value());
  EXPECT_TRUE(ParseCreated("9999-12-31T23:59:59Z").has_value());
  EXPECT_FALSE(ParseCreated("10000-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(ParseCreated("yesterday").has_value());
}

}  // namespace
}  // namespace ferry::registry_scanner

namespace ferry::registry_scanner {
namespace {

// htpasswd Basic auth on a real registry, credentials from a Docker config.json file.
TEST(RegistryAuthTest, BasicAuthWithDockerConfigCredentials) {
  char tmpl[] = "/tmp/ferry-registry-auth-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto server = testing::RegistryServer::Start(dir, "ferry", "pa55-word");
  FERRY_ASSERT_OK(server);
  FERRY_ASSERT_OK(
      (*server)->PushImage("private/app", "1.0.0", Config("2023-01-01T00:00:00Z", "amd64")));
  http::CurlOptions curl_options;
  curl_options.insecure_hosts = {(*server)->host()};
  http::CurlHttpClient http(curl_options);
  RegistryClient::Options options;
  options.insecure_hosts = {(*server)->host()};

  RegistryClient anonymous(http, CredentialStore(), options);
  auto denied = anonymous.ListTags((*server)->host(), "private/app");
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kUnauthenticated));

  auto write_config = [&](const std::string& name, const std::string& user,
                          const std::string& pass) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << nlohmann::json{{"auths",
                                           {{(*server)->host(),
                                             {{"auth", absl::Base64Escape(user + ":" + pass)}}}}}}
                               .dump();
    return path;
  };
  auto good = CredentialStore::Load({write_config("good.json", "ferry", "pa55-word")});
  FERRY_ASSERT_OK(good);
  RegistryClient authed(http, *good, options);
  auto tags = authed.ListTags((*server)->host(), "private/app");
  FERRY_ASSERT_OK(tags);
  EXPECT_EQ(*tags, std::vector<std::string>{"1.0.0"});
  auto meta = FetchTagMetadata(authed, (*server)->host(), "private/app", "1.0.0", {});
  FERRY_ASSERT_OK(meta);
  EXPECT_TRUE(meta->created.has_value());

  auto bad = CredentialStore::Load({write_config("bad.json", "ferry", "wrong-secret")});
  FERRY_ASSERT_OK(bad);
  RegistryClient wrong(http, *bad, options);
  auto refused = wrong.ListTags((*server)->host(), "private/app");
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("wrong-secret"))));

  std::ofstream(dir + "/broken.json") << "{not json";
  EXPECT_THAT(CredentialStore::Load({dir + "/broken.json"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  server->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::registry_scanner

namespace ferry::registry_scanner {
namespace {

// The Bearer token flow against a real registry with token auth and a real token server:
// the token is fetched with the configured credentials and reused until it expires.
TEST(RegistryAuthTest, BearerTokenFlowWithCachedToken) {
  char tmpl[] = "/tmp/ferry-registry-token-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto server = testing::RegistryServer::StartWithTokenAuth(dir, "robot", "t0ken-pass");
  FERRY_ASSERT_OK(server);
  auto first = (*server)->PushImage("team/app", "1.0.0", Config("2023-01-01T00:00:00Z", "amd64"));
  FERRY_ASSERT_OK(first);
  FERRY_ASSERT_OK(
      (*server)->PushImage("team/app", "1.1.0", Config("2023-02-01T00:00:00Z", "amd64")));
  const int pushes = (*server)->TokensIssued();

  http::CurlOptions curl_options;
  // The test's token server speaks plain http too.
  curl_options.insecure_hosts = {(*server)->host(), (*server)->token_host()};
  http::CurlHttpClient http(curl_options);
  RegistryClient::Options options;
  options.insecure_hosts = {(*server)->host()};
  CredentialStore creds;
  creds.Add((*server)->host(), {"robot", "t0ken-pass"});
  {
    // The realm is on another host: without an allow list it is reached, but the registry's
    // credentials go only to a host listed explicitly, so the token server refuses.
    RegistryClient unlisted(http, creds, options);
    auto anonymous = unlisted.ListTags((*server)->host(), "team/app");
    EXPECT_THAT(anonymous, StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_EQ((*server)->TokensIssued(), pushes);
  }
  {
    // An allow list naming the registry but not the realm's host: the realm is never asked.
    auto policy = RegistryPolicy::Create({(*server)->host()}, false);
    FERRY_ASSERT_OK(policy);
    RegistryClient::Options allow_registry_only = options;
    allow_registry_only.check_registry = [&](const std::string& r) {
      return policy->CheckRegistry(r);
    };
    allow_registry_only.registry_listed = [&](const std::string& h) { return policy->Lists(h); };
    RegistryClient confined(http, creds, allow_registry_only);
    auto refused_realm = confined.ListTags((*server)->host(), "team/app");
    EXPECT_THAT(refused_realm,
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("token realm")));
    EXPECT_EQ((*server)->TokensIssued(), pushes);
  }
  // The token server listed with the registry: credentials go there.
  auto policy = RegistryPolicy::Create({(*server)->host(), (*server)->token_host()}, false);
  FERRY_ASSERT_OK(policy);
  options.check_registry = [&](const std::string& r) { return policy->CheckRegistry(r); };
  options.registry_listed = [&](const std::string& h) { return policy->Lists(h); };
  RegistryClient client(http, creds, options);
  auto tags = client.ListTags((*server)->host(), "team/app");
  FERRY_ASSERT_OK(tags);
  EXPECT_EQ(tags->size(), 2u);
  auto meta = FetchTagMetadata(client, (*server)->host(), "team/app", "1.1.0", {});
  FERRY_ASSERT_OK(meta);
  EXPECT_TRUE(meta->created.has_value());
  // One token for the repository scope, reused for tags, manifest and blob requests.
  EXPECT_EQ((*server)->TokensIssued() - pushes, 1);

  CredentialStore wrong;
  wrong.Add((*server)->host(), {"robot", "nope-nope"});
  RegistryClient refused(http, wrong, options);
  auto denied = refused.ListTags((*server)->host(), "team/app");
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("nope-nope"))));
  server->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::registry_scanner
