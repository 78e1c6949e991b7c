// Addresses Ferry refuses to connect to on behalf of a request it was handed: link-local
// networks and the cloud metadata endpoints reachable from inside a VM or pod. A name that
// resolves to one of them is refused as well when the check runs on the address actually
// connected to (CurlOptions::connect_guard).
#pragma once

#include "absl/strings/string_view.h"

namespace ferry::http {

// True when `ip` (numeric IPv4 or IPv6 text, as inet_ntop prints it) is link-local
// (169.254.0.0/16, fe80::/10) or a known metadata endpoint (100.100.100.200, 168.63.129.16,
// fd00:ec2::254), also when written as an IPv4-mapped (::ffff:a.b.c.d) or NAT64
// (64:ff9b::a.b.c.d) IPv6 address. False for anything else, including text that is not a
// numeric address.
bool IsLinkLocalOrMetadata(absl::string_view ip);

// True for host names that are cloud metadata services' own names (metadata.google.internal,
// metadata.goog, metadata, instance-data, instance-data.ec2.internal; any case, trailing dot
// ignored), and for numeric addresses IsLinkLocalOrMetadata() refuses.
bool IsMetadataHostName(absl::string_view host);

}  // namespace ferry::http
