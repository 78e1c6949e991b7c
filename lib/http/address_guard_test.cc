#include "lib/http/address_guard.h"

#include <gtest/gtest.h>

namespace ferry::http {
namespace {

TEST(AddressGuardTest, RefusesLinkLocalAndMetadataAddresses) {
  for (const char* ip : {"169.254.169.254", "169.254.0.1", "169.254.255.255", "100.100.100.200",
                         "168.63.129.16", "fe80::1", "fe80::a9fe:a9fe", "febf::1", "fd00:ec2::254",
                         "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"}) {
    EXPECT_TRUE(IsLinkLocalOrMetadata(ip)) << ip;
  }
}

TEST(AddressGuardTest, AllowsLoopbackAndOrdinaryAddresses) {
  for (const char* ip :
       {"127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "169.253.255.255", "169.255.0.0",
        "100.100.100.201", "fec0::1", "fd00:ec2::253", "::ffff:127.0.0.1", "8.8.8.8", "",
        "not-an-address", "169.254.169.254.example.com"}) {
    EXPECT_FALSE(IsLinkLocalOrMetadata(ip)) << ip;
  }
}

TEST(AddressGuardTest, KnowsMetadataNames) {
  EXPECT_TRUE(IsMetadataHostName("metadata.google.internal"));
  EXPECT_TRUE(IsMetadataHostName("Metadata.Google.Internal."));
  EXPECT_TRUE(IsMetadataHostName("metadata"));
  EXPECT_TRUE(IsMetadataHostName("169.254.169.254"));
  EXPECT_FALSE(IsMetadataHostName("metadata.example.com"));
  EXPECT_FALSE(IsMetadataHostName("127.0.0.1"));
  EXPECT_FALSE(IsMetadataHostName("registry.example.com"));
}

}  // namespace
}  // namespace ferry::http
