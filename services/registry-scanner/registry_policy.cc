#include "services/registry-scanner/registry_policy.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/http/address_guard.h"

namespace ferry::registry_scanner {
namespace {

// "host[:port]" -> host (lower-case) and port (0 when none). False when the port is not
// 1-65535.
bool SplitHostPort(absl::string_view text, std::string* host, int* port) {
  *port = 0;
  const size_t colon = text.rfind(':');
  if (colon != absl::string_view::npos) {
    if (!absl::SimpleAtoi(text.substr(colon + 1), port) || *port < 1 || *port > 65535) {
      return false;
    }
    text = text.substr(0, colon);
  }
  *host = absl::AsciiStrToLower(text);
  return true;
}

}  // namespace

absl::StatusOr<RegistryPolicy> RegistryPolicy::Create(const std::vector<std::string>& allow_hosts,
                                                      bool allow_link_local) {
  RegistryPolicy policy;
  policy.allow_link_local_ = allow_link_local;
  for (const std::string& entry : allow_hosts) {
    Pattern p;
    absl::string_view host_part = entry;
    const bool wildcard = absl::ConsumePrefix(&host_part, "*.");
    // The host part must itself be a registry host of the grammar.
    bool valid = SplitHostPort(host_part, &p.host, &p.port) && !p.host.empty() &&
                 image::Reference::Parse(absl::StrCat(p.host, ".x/a")).ok() &&
                 p.host.find_first_of("*/@") == std::string::npos;
    if (!valid) {
      return absl::InvalidArgumentError(
          absl::StrCat("--registry_allow_hosts: \"", entry,
                       "\" is not host, host:port, *.domain or *.domain:port (port 1-65535)"));
    }
    if (wildcard) p.host = "*." + p.host;
    policy.allow_.push_back(std::move(p));
  }
  return policy;
}

absl::Status RegistryPolicy::CheckRegistry(const std::string& registry) const {
  std::string host;
  int port = 0;
  if (!SplitHostPort(registry, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry host \"", registry, "\": the port must be 1-65535"));
  }
  if (!allow_link_local_ && http::IsMetadataHostName(host)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "registry \"", registry,
        "\" is a link-local or cloud metadata address; the scanner does not connect there "
        "unless started with --registry_allow_link_local"));
  }
  if (allow_.empty()) return absl::OkStatus();
  for (const Pattern& p : allow_) {
    if (p.port != 0 && p.port != port) continue;
    if (absl::StartsWith(p.host, "*.")
            ? absl::EndsWith(host, p.host.substr(1)) && host.size() > p.host.size() - 1
            : host == p.host) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "registry \"", registry, "\" is not in --registry_allow_hosts; add it there to scan it"));
}

bool RegistryPolicy::Lists(const std::string& registry) const {
  return !allow_.empty() && CheckRegistry(registry).ok();
}

absl::StatusOr<image::Reference> RegistryPolicy::CheckRepository(
    const std::string& repository) const {
  absl::StatusOr<image::Reference> ref = image::Reference::ParseRepository(repository);
  if (!ref.ok()) return ref.status();
  if (absl::Status s = CheckRegistry(ref->Registry()); !s.ok()) return s;
  return ref;
}

absl::Status RegistryPolicy::CheckAddress(const std::string& ip) const {
  if (allow_link_local_ || !http::IsLinkLocalOrMetadata(ip)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "connection to ", ip,
      " refused: a link-local or cloud metadata address (a registry name, token realm or "
      "redirect led there); allow it with --registry_allow_link_local"));
}

}  // namespace ferry::registry_scanner
