#include "lib/http/address_guard.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"

namespace ferry::http {
namespace {

bool IsRefusedIpv4(const unsigned char b[4]) {
  if (b[0] == 169 && b[1] == 254) return true;                                // link-local
  if (b[0] == 100 && b[1] == 100 && b[2] == 100 && b[3] == 200) return true;  // Alibaba Cloud
  if (b[0] == 168 && b[1] == 63 && b[2] == 129 && b[3] == 16) return true;    // Azure platform
  return false;
}

}  // namespace

bool IsLinkLocalOrMetadata(absl::string_view ip) {
  const std::string text(ip);
  unsigned char v4[4];
  if (inet_pton(AF_INET, text.c_str(), v4) == 1) return IsRefusedIpv4(v4);
  unsigned char v6[16];
  if (inet_pton(AF_INET6, text.c_str(), v6) != 1) return false;
  if (v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80) return true;  // fe80::/10
  static const unsigned char kAwsMetadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                                 0,    0,    0,    0,    0, 0, 0x02, 0x54};
  if (std::memcmp(v6, kAwsMetadata, 16) == 0) return true;
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(v6, kMapped, 12) == 0 || std::memcmp(v6, kNat64, 12) == 0) {
    return IsRefusedIpv4(v6 + 12);
  }
  return false;
}

bool IsMetadataHostName(absl::string_view host) {
  std::string name = absl::AsciiStrToLower(host);
  absl::string_view bare = name;
  absl::ConsumeSuffix(&bare, ".");
  for (absl::string_view known : {"metadata.google.internal", "metadata.goog", "metadata",
                                  "instance-data", "instance-data.ec2.internal"}) {
    if (bare == known) return true;
  }
  return IsLinkLocalOrMetadata(bare);
}

}  // namespace ferry::http
