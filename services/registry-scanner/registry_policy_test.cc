#include "services/registry-scanner/registry_policy.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace ferry::registry_scanner {
namespace {

TEST(RegistryPolicyTest, DefaultAllowsAnyHostButLinkLocalAndMetadata) {
  RegistryPolicy policy;
  EXPECT_TRUE(policy.CheckRegistry("127.0.0.1:5000").ok());
  EXPECT_TRUE(policy.CheckRegistry("docker.io").ok());
  for (const char* registry : {"169.254.169.254", "169.254.169.254:80", "metadata.google.internal",
                               "METADATA.google.internal:80", "100.100.100.200"}) {
    absl::Status s = policy.CheckRegistry(registry);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << registry;
    EXPECT_TRUE(absl::StrContains(s.message(), "--registry_allow_link_local")) << s;
  }
  EXPECT_TRUE(policy.CheckAddress("127.0.0.1").ok());
  EXPECT_TRUE(policy.CheckAddress("::1").ok());
  absl::Status metadata = policy.CheckAddress("169.254.169.254");
  EXPECT_EQ(metadata.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(metadata.message(), "169.254.169.254")) << metadata;
  EXPECT_TRUE(absl::StrContains(metadata.message(), "--registry_allow_link_local")) << metadata;
  EXPECT_EQ(policy.CheckAddress("fe80::1").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(policy.CheckAddress("fd00:ec2::254").code(), absl::StatusCode::kPermissionDenied);
}

TEST(RegistryPolicyTest, LinkLocalOnlyWithTheFlag) {
  auto policy = RegistryPolicy::Create({}, /*allow_link_local=*/true);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->CheckRegistry("169.254.169.254").ok());
  EXPECT_TRUE(policy->CheckAddress("169.254.169.254").ok());
}

TEST(RegistryPolicyTest, AllowListByHostPortAndWildcard) {
  auto policy = RegistryPolicy::Create({"registry.example.com", "127.0.0.1:5000", "*.corp.example"},
                                       false);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->CheckRegistry("registry.example.com").ok());
  EXPECT_TRUE(policy->CheckRegistry("Registry.Example.com:443").ok());
  EXPECT_TRUE(policy->CheckRegistry("127.0.0.1:5000").ok());
  EXPECT_TRUE(policy->CheckRegistry("eu.corp.example").ok());
  EXPECT_TRUE(policy->CheckRegistry("a.b.corp.example:8443").ok());
  for (const char* registry : {"127.0.0.1:5001", "127.0.0.1", "corp.example", "evilcorp.example",
                               "registry.example.com.evil.io", "docker.io"}) {
    absl::Status s = policy->CheckRegistry(registry);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << registry;
    EXPECT_TRUE(absl::StrContains(s.message(), "--registry_allow_hosts")) << s;
  }
  // The address guard is independent of the allow list: loopback stays reachable.
  EXPECT_TRUE(policy->CheckAddress("127.0.0.1").ok());
}

TEST(RegistryPolicyTest, BadAllowListEntriesNameTheFlag) {
  for (const char* entry : {"", "http://x.io", "x.io:0", "x.io:70000", "*", "a*.x.io", "x.io/path",
                            "user@x.io"}) {
    auto policy = RegistryPolicy::Create({entry}, false);
    ASSERT_FALSE(policy.ok()) << entry;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(policy.status().message(), "--registry_allow_hosts"));
  }
}

TEST(RegistryPolicyTest, CheckRepositoryParsesThenChecksTheHost) {
  auto policy = RegistryPolicy::Create({"127.0.0.1:5000"}, false);
  ASSERT_TRUE(policy.ok());
  EXPECT_TRUE(policy->CheckRepository("127.0.0.1:5000/team/app").ok());
  EXPECT_EQ(policy->CheckRepository("127.0.0.1:5000/../x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(policy->CheckRepository("127.0.0.1:5001/team/app").status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace ferry::registry_scanner
