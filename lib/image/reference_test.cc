#include "lib/image/reference.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "lib/status/status_matchers.h"

namespace ferry::image {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

struct Good {
  const char* text;
  const char* name;
  const char* tag;
  const char* digest;
  const char* repository;  // normalized
};

class ParseGoodTest : public ::testing::TestWithParam<Good> {};

TEST_P(ParseGoodTest, ParsesAndNormalizes) {
  const Good& g = GetParam();
  absl::StatusOr<Reference> ref = Reference::Parse(g.text);
  FERRY_ASSERT_OK(ref);
  EXPECT_EQ(ref->original(), g.text);
  EXPECT_EQ(ref->name(), g.name);
  EXPECT_EQ(ref->tag(), g.tag);
  EXPECT_EQ(ref->digest(), g.digest);
  EXPECT_EQ(ref->Repository(), g.repository);
}

const char kDigest[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

INSTANTIATE_TEST_SUITE_P(
    References, ParseGoodTest,
    ::testing::Values(
        Good{"nginx", "nginx", "", "", "docker.io/library/nginx"},
        Good{"nginx:1.25", "nginx", "1.25", "", "docker.io/library/nginx"},
        Good{"library/nginx:1.25", "library/nginx", "1.25", "", "docker.io/library/nginx"},
        Good{"docker.io/nginx", "docker.io/nginx", "", "", "docker.io/library/nginx"},
        Good{"index.docker.io/library/nginx:latest", "index.docker.io/library/nginx", "latest", "",
             "docker.io/library/nginx"},
        Good{"weaveworksdemos/front-end:0.2.0", "weaveworksdemos/front-end", "0.2.0", "",
             "docker.io/weaveworksdemos/front-end"},
        Good{"quay.io/weaveworks/helloworld:master-a000001", "quay.io/weaveworks/helloworld",
             "master-a000001", "", "quay.io/weaveworks/helloworld"},
        Good{"localhost:5000/team/app:v1", "localhost:5000/team/app", "v1", "",
             "localhost:5000/team/app"},
        Good{"localhost/app", "localhost/app", "", "", "localhost/app"},
        Good{"127.0.0.1:5000/a/b/c:1_0", "127.0.0.1:5000/a/b/c", "1_0", "", "127.0.0.1:5000/a/b/c"},
        Good{"Registry/app:1", "Registry/app", "1", "", "Registry/app"},
        Good{"my_org__x/app-name.v2--x:TAG.x-1", "my_org__x/app-name.v2--x", "TAG.x-1", "",
             "docker.io/my_org__x/app-name.v2--x"}));

TEST(ReferenceTest, DigestWithAndWithoutTag) {
  auto both = Reference::Parse(std::string("nginx:1.25@") + kDigest);
  FERRY_ASSERT_OK(both);
  EXPECT_EQ(both->tag(), "1.25");
  EXPECT_EQ(both->digest(), kDigest);
  auto only = Reference::Parse(std::string("quay.io/a/b@") + kDigest);
  FERRY_ASSERT_OK(only);
  EXPECT_EQ(only->tag(), "");
  EXPECT_EQ(only->EffectiveTag(), "");
  EXPECT_EQ(Reference::Parse("nginx")->EffectiveTag(), "latest");
}

TEST(ReferenceTest, IsDigestTakesAlgorithmColonHexOnly) {
  EXPECT_TRUE(IsDigest("sha256:" + std::string(64, 'a')));
  EXPECT_TRUE(IsDigest("sha512:" + std::string(128, '0')));
  for (const std::string& bad :
       {std::string(), std::string("sha256"), std::string("sha256:"), std::string("sha256:xyz"),
        "sha256:" + std::string(31, 'a'), "sha256:\xff\xfe" + std::string(64, 'a'),
        "sha256:" + std::string(64, 'a') + "\n", "sha256:" + std::string(300, 'a'),
        ":" + std::string(64, 'a')}) {
    EXPECT_FALSE(IsDigest(bad)) << bad;
  }
}

TEST(ReferenceTest, WithTagKeepsTheWrittenName) {
  EXPECT_EQ(Reference::Parse("nginx:1.25")->WithTag("1.26"), "nginx:1.26");
  EXPECT_EQ(Reference::Parse("index.docker.io/library/nginx")->WithTag("2"),
            "index.docker.io/library/nginx:2");
  EXPECT_EQ(Reference::Parse(std::string("localhost:5000/app:1@") + kDigest)->WithTag("2"),
            "localhost:5000/app:2");
}

TEST(ReferenceTest, SameRepositoryAcrossSpellings) {
  auto a = *Reference::Parse("nginx:1");
  auto b = *Reference::Parse("index.docker.io/library/nginx:2");
  auto c = *Reference::Parse("docker.io/library/nginx");
  auto d = *Reference::Parse("quay.io/library/nginx:1");
  auto e = *Reference::Parse("localhost:5000/nginx");
  EXPECT_TRUE(a.SameRepository(b));
  EXPECT_TRUE(b.SameRepository(c));
  EXPECT_FALSE(a.SameRepository(d));
  EXPECT_FALSE(a.SameRepository(e));
}

struct Bad {
  const char* text;
  const char* reason;
};

class ParseBadTest : public ::testing::TestWithParam<Bad> {};

TEST_P(ParseBadTest, RejectsWithReason) {
  absl::StatusOr<Reference> ref = Reference::Parse(GetParam().text);
  EXPECT_THAT(ref, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().reason)))
      << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    References, ParseBadTest,
    ::testing::Values(
        Bad{"", "empty"}, Bad{":1.0", "no repository name"}, Bad{"nginx:", "tag \"\" must be"},
        Bad{"nginx:-1", "tag \"-1\" must be"}, Bad{"nginx:a/b", "registry host \"nginx:a\""},
        Bad{"NGINX", "path component \"NGINX\""}, Bad{"org/App:1", "path component \"App\""},
        Bad{"a//b", "path component \"\""}, Bad{"a/b/", "path component \"\""},
        Bad{"nginx@sha256:abc", "digest must be"}, Bad{"-bad.io/app", "registry host \"-bad.io\""},
        Bad{"my host/app", "character 3 is a space"}, Bad{"nginx:1 2", "character 8 is a space"},
        // Hostile spellings, each refused with a reason of its own.
        Bad{"127.0.0.1:5000/../../etc", "path component \"..\""},
        Bad{"user:pass@127.0.0.1:5000/team/app", "user info"},
        Bad{"127.0.0.1:5000/team/app\r\nX-Injected: 1", "character 24 is byte 0x0d"},
        Bad{"127.0.0.1:5000/team/\napp", "byte 0x0a"},
        Bad{"127.0.0.1:99999/team/app", "port \"99999\" of registry host"},
        Bad{"127.0.0.1:0/team/app", "is not 1-65535"},
        Bad{"127.0.0.1:0065536/team/app", "is not 1-65535"},
        Bad{"http://127.0.0.1:5000/team/app", "no scheme"},
        Bad{"registry.example.com:/app", "registry host"}, Bad{"caf\xc3\xa9.io/app", "byte 0xc3"}));

TEST(ReferenceTest, UserInfoIsNeverEchoed) {
  for (const char* text : {"user:s3cret@registry.example.com/team/app",
                           "user:s3c@ret@registry.example.com/team/app:1"}) {
    absl::StatusOr<Reference> ref = Reference::Parse(text);
    ASSERT_THAT(ref, Not(IsOk())) << text;
    EXPECT_EQ(ref.status().message().find("s3c"), std::string::npos) << ref.status().message();
    EXPECT_NE(ref.status().message().find("\"registry.example.com/team/app"), std::string::npos)
        << ref.status().message();
    auto repository = Reference::ParseRepository(text);
    ASSERT_THAT(repository, Not(IsOk()));
    EXPECT_EQ(repository.status().message().find("s3c"), std::string::npos)
        << repository.status().message();
  }
}

// User info with no '/' after it reached the digest branch, whose error echoed the whole
// text; and no error quotes anything before the last '@'.
TEST(ReferenceTest, UserInfoWithoutPathIsNeverEchoed) {
  for (const std::string& text :
       {std::string("user:s3cret@registry.example.com"),
        std::string("user:s3cret@registry.example.com:5000"),
        std::string("us3c:s3cret@localhost:5000"), std::string("user:s3cret@sha256:abc"),
        std::string("s3cret/App@") + kDigest, std::string("S3C!:x@") + kDigest,
        std::string("user:s3c@ret@registry.example.com")}) {
    absl::StatusOr<Reference> ref = Reference::Parse(text);
    ASSERT_THAT(ref, Not(IsOk())) << text;
    EXPECT_EQ(ref.status().message().find("s3c"), std::string::npos) << ref.status().message();
    EXPECT_EQ(ref.status().message().find("S3C"), std::string::npos) << ref.status().message();
    auto repository = Reference::ParseRepository(text);
    ASSERT_THAT(repository, Not(IsOk())) << text;
    EXPECT_EQ(repository.status().message().find("s3c"), std::string::npos)
        << repository.status().message();
  }
  absl::StatusOr<Reference> host = Reference::Parse("user:s3cret@registry.example.com");
  EXPECT_NE(host.status().message().find("user info"), std::string::npos)
      << host.status().message();
  EXPECT_NE(host.status().message().find("\"registry.example.com\""), std::string::npos)
      << host.status().message();
  // A digest after a name is still one.
  FERRY_EXPECT_OK(Reference::Parse(std::string("nginx@") + kDigest));
  auto repo = Reference::ParseRepository(std::string("s3cret.io/app@") + kDigest);
  ASSERT_THAT(repo, Not(IsOk()));
  EXPECT_EQ(repo.status().message().find("s3c"), std::string::npos) << repo.status().message();
}

TEST(ReferenceTest, RefusesOverlongTextWithoutEchoingIt) {
  const std::string huge(100000, 'a');
  absl::StatusOr<Reference> ref = Reference::Parse(huge);
  ASSERT_THAT(ref, Not(IsOk()));
  EXPECT_LT(ref.status().message().size(), 200u) << "the message must not echo the text";
  EXPECT_NE(ref.status().message().find("longer than 512 characters"), std::string::npos);
}

TEST(ReferenceTest, ParseRepositoryWantsTheNormalizedRegistryPath) {
  auto ok = Reference::ParseRepository("127.0.0.1:5000/team/app");
  FERRY_ASSERT_OK(ok);
  EXPECT_EQ(ok->Host(), "127.0.0.1");
  EXPECT_EQ(ok->Port(), 5000);
  auto hub = Reference::ParseRepository("docker.io/library/nginx");
  FERRY_ASSERT_OK(hub);
  EXPECT_EQ(hub->Host(), "docker.io");
  EXPECT_EQ(hub->Port(), 0);
  for (auto [text, reason] : std::vector<std::pair<std::string, std::string>>{
           {"nginx", "registry host is missing; write docker.io/library/nginx"},
           {"docker.io/nginx", "normalized form, docker.io/library/nginx"},
           {"quay.io/a/b:1", "no tag or digest; write quay.io/a/b"},
           {"no-slash", "registry host is missing"},
           {"127.0.0.1:5000/../x", "invalid repository \"127.0.0.1:5000/../x\": path component"},
           {"127.0.0.1:70000/x", "invalid repository"}}) {
    absl::StatusOr<Reference> bad = Reference::ParseRepository(text);
    EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(reason))) << text;
  }
}

TEST(ReferenceTest, ToStringRoundTrips) {
  for (const std::string& text : std::vector<std::string>{
           "nginx", "nginx:1.25", std::string("quay.io/a/b:1@") + kDigest,
           std::string("localhost:5000/app@") + kDigest, std::string("Registry/app:1")}) {
    auto ref = Reference::Parse(text);
    FERRY_ASSERT_OK(ref);
    EXPECT_EQ(ref->ToString(), text);
  }
}

TEST(ReferenceTest, RejectsOverlongNamesAndTags) {
  std::string long_name(256, 'a');
  EXPECT_THAT(Reference::Parse(long_name), ::testing::Not(::ferry::testing::IsOk()));
  FERRY_EXPECT_OK(Reference::Parse(std::string(255, 'a')));
  EXPECT_THAT(Reference::Parse("a:" + std::string(129, 't')),
              ::testing::Not(::ferry::testing::IsOk()));
  FERRY_EXPECT_OK(Reference::Parse("a:" + std::string(128, 't')));
  FERRY_EXPECT_OK(ValidateTag("v1.2.3-rc.1"));
  EXPECT_THAT(ValidateTag(".hidden"), ::testing::Not(::ferry::testing::IsOk()));
}

}  // namespace
}  // namespace ferry::image
