// Which registries the scanner may reach. Every repository it is asked about (Watch,
// ListTags, GetImage) and every registry request it sends is checked here, so a caller or a
// webhook cannot make the scanner connect wherever it names (cloud metadata endpoints, other
// services in the cluster):
//  - the name must follow the image reference grammar (lib/image) -> else InvalidArgument;
//  - with --registry_allow_hosts, its registry host must be on that list -> else
//    PermissionDenied;
//  - link-local and metadata hosts (169.254.0.0/16, fe80::/10, metadata.google.internal, ...)
//    are refused unless --registry_allow_link_local -> PermissionDenied; the same check runs
//    on the address each connection actually goes to (CheckAddress, for
//    CurlOptions::connect_guard), token realms and redirects included.
// PermissionDenied rather than FailedPrecondition: the request is well formed and nothing
// about the scanner's state would make it succeed on a retry; only the operator's policy
// refuses it, and only the operator (the flag) can change that.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/image/reference.h"

namespace ferry::registry_scanner {

class RegistryPolicy {
 public:
  // `allow_hosts`: "host", "host:port", "*.example.com" or "*.example.com:port" (any case);
  // empty allows every host not refused as link-local or metadata. InvalidArgument naming
  // --registry_allow_hosts for an entry that is none of these.
  static absl::StatusOr<RegistryPolicy> Create(const std::vector<std::string>& allow_hosts,
                                               bool allow_link_local);
  // Every host allowed except link-local and metadata ones.
  RegistryPolicy() = default;

  // Checks a registry host as named ("host[:port]", "docker.io" for Docker Hub).
  absl::Status CheckRegistry(const std::string& registry) const;
  // True when --registry_allow_hosts is set and names `registry` (a host reached without an
  // allow list is allowed but not listed).
  bool Lists(const std::string& registry) const;
  // Parses a "registry/path" repository name (image::Reference::ParseRepository) and checks
  // its registry.
  absl::StatusOr<image::Reference> CheckRepository(const std::string& repository) const;
  // Checks the numeric address a connection is about to be opened to.
  absl::Status CheckAddress(const std::string& ip) const;

 private:
  struct Pattern {
    std::string host;  // lower-case; "*.example.com" keeps its "*"
    int port = 0;      // 0: any port
  };
  std::vector<Pattern> allow_;
  bool allow_link_local_ = false;
};

}  // namespace ferry::registry_scanner
