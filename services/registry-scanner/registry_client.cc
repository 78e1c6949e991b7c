#include "services/registry-scanner/registry_client.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/http/url.h"
#include "lib/image/reference.h"

namespace ferry::registry_scanner {
namespace {

constexpr char kAccept[] =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws, "
    "application/vnd.docker.distribution.manifest.v1+json";

std::string NormalizeHost(const std::string& host) {
  if (host == "index.docker.io" || host == "registry-1.docker.io" ||
      host == "https://index.docker.io/v1/" || host == "docker.io") {
    return "docker.io";
  }
  std::string h = host;
  for (const char* prefix : {"https://", "http://"}) {
    if (absl::StartsWith(h, prefix)) h = h.substr(std::string(prefix).size());
  }
  while (!h.empty() && h.back() == '/') h.pop_back();
  return h;
}

// Parses `Bearer realm="...",service="...",scope="..."` into its parameters.
std::map<std::string, std::string> ChallengeParams(absl::string_view header) {
  std::map<std::string, std::string> params;
  size_t space = header.find(' ');
  if (space == absl::string_view::npos) return params;
  absl::string_view rest = header.substr(space + 1);
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    size_t eq = rest.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key =
        absl::AsciiStrToLower(std::string(absl::StripAsciiWhitespace(rest.substr(0, eq))));
    rest = rest.substr(eq + 1);
    std::string value;
    if (!rest.empty() && rest[0] == '"') {
      size_t close = rest.find('"', 1);
      if (close == absl::string_view::npos) break;
      value = std::string(rest.substr(1, close - 1));
      rest = rest.substr(close + 1);
    } else {
      size_t comma = rest.find(',');
      value = std::string(rest.substr(0, comma));
      rest = comma == absl::string_view::npos ? "" : rest.substr(comma);
    }
    params[key] = value;
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!rest.empty() && rest[0] == ',') rest = rest.substr(1);
  }
  return params;
}

}  // namespace

absl::Status RegistryError(const http::Response& response, const std::string& what) {
  std::string detail;
  try {
    nlohmann::json j = nlohmann::json::parse(response.body);
    if (j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
      detail = absl::StrCat(": ", j["errors"][0].value("code", ""), " ",
                            j["errors"][0].value("message", ""));
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::string message = absl::StrCat(what, ": HTTP ", response.status, detail);
  switch (response.status) {
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    default:
      if (response.status >= 500) return absl::UnavailableError(message);
      return absl::InternalError(message);
  }
}

absl::StatusOr<CredentialStore> CredentialStore::Load(const std::vector<std::string>& paths) {
  CredentialStore store;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read docker config ", path));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      nlohmann::json j = nlohmann::json::parse(ss.str());
      if (!j.contains("auths")) continue;
      for (auto& [host, entry] : j["auths"].items()) {
        Credentials c;
        if (entry.contains("auth")) {
          std::string decoded;
          if (!absl::Base64Unescape(entry["auth"].get<std::string>(), &decoded) ||
              decoded.find(':') == std::string::npos) {
            return absl::InvalidArgumentError(
                absl::StrCat(path, ": auths.", host, ".auth is not base64 of user:password"));
          }
          c.username = decoded.substr(0, decoded.find(':'));
          c.password = decoded.substr(decoded.find(':') + 1);
        } else {
          c.username = entry.value("username", "");
          c.password = entry.value("password", "");
        }
        store.Add(host, c);
      }
    } catch (const nlohmann::json::exception&) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is not valid JSON"));
    }
  }
  return store;
}

void CredentialStore::Add(const std::string& host, Credentials credentials) {
  by_host_[NormalizeHost(host)] = std::move(credentials);
}

const CredentialStore::Credentials* CredentialStore::Find(const std::string& host) const {
  auto it = by_host_.find(NormalizeHost(host));
  return it == by_host_.end() ? nullptr : &it->second;
}

namespace {

// "host[:port]" of an absolute URL, lower-case (no path, query or fragment).
std::string AuthorityOf(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  const size_t end = url.find_first_of("/?#", start);
  return absl::AsciiStrToLower(
      url.substr(start, end == std::string::npos ? std::string::npos : end - start));
}

// The longest a registry token is kept, whatever its expires_in says.
constexpr absl::Duration kMaxTokenLife = absl::Hours(24);

// A Docker-Content-Digest header that is no digest (a broken or hostile registry): the
// manifest cannot be named by it. The header's text is not echoed.
absl::Status BadDigestHeader(const std::string& registry, const std::string& path,
                             const std::string& reference) {
  return absl::InternalError(
      absl::StrCat(registry, "/", path, ":", reference,
                   ": the registry's Docker-Content-Digest header is not a digest "
                   "(algorithm:hex)"));
}

}  // namespace

RegistryClient::RegistryClient(http::HttpClient& http, CredentialStore credentials, Options options,
                               runtime::Clock& clock)
    : http_(http),
      credentials_(std::move(credentials)),
      options_(std::move(options)),
      clock_(clock) {}

const char* RegistryClient::AcceptedManifestTypes() { return kAccept; }

std::string RegistryClient::BaseUrl(const std::string& registry) const {
  std::string host = registry == "docker.io" ? "registry-1.docker.io" : registry;
  const char* scheme = options_.insecure_hosts.count(registry) ? "http://" : "https://";
  return absl::StrCat(scheme, host);
}

absl::StatusOr<std::string> RegistryClient::FetchToken(const std::string& registry,
                                                       const std::string& challenge,
                                                       http::Priority priority) {
  std::map<std::string, std::string> params = ChallengeParams(challenge);
  const std::string key = absl::StrCat(registry, " ", params["scope"]);
  {
    absl::MutexLock lock(&mu_);
    auto it = tokens_.find(key);
    if (it != tokens_.end() && it->second.expires > clock_.Now()) return it->second.token;
  }
  if (params["realm"].empty()) {
    return absl::UnauthenticatedError(absl::StrCat(registry, ": token challenge without realm"));
  }
  // The realm is a URL the registry names: its host passes the same policy as a registry,
  // and gets the registry's credentials only when it is the registry's own or listed.
  const std::string& realm = params["realm"];
  const std::string realm_host = AuthorityOf(realm);
  if (!absl::StartsWith(realm, "https://") && !absl::StartsWith(realm, "http://")) {
    return absl::UnauthenticatedError(
        absl::StrCat(registry, ": token realm is not an http(s) URL"));
  }
  if (realm_host.empty() || absl::StrContains(realm_host, "@")) {
    return absl::UnauthenticatedError(absl::StrCat(registry, ": token realm has no valid host"));
  }
  if (options_.check_registry && !IsOwnHost(registry, realm_host)) {
    if (absl::Status allowed = options_.check_registry(realm_host); !allowed.ok()) {
      return absl::Status(allowed.code(),
                          absl::StrCat(registry, ": token realm: ", allowed.message()));
    }
  }
  http::Request req;
  req.url = realm;
  req.priority = priority;
  std::vector<std::string> query;
  if (!params["service"].empty()) query.push_back("service=" + http::UrlEncode(params["service"]));
  if (!params["scope"].empty()) query.push_back("scope=" + http::UrlEncode(params["scope"]));
  if (!query.empty()) {
    req.url += (req.url.find('?') == std::string::npos ? "?" : "&") + absl::StrJoin(query, "&");
  }
  const CredentialStore::Credentials* c = credentials_.Find(registry);
  if (c != nullptr && MaySendCredentials(registry, realm_host)) {
    req.headers.emplace_back("Authorization", "Basic " + absl::Base64Escape(absl::StrCat(
                                                             c->username, ":", c->password)));
  }
  req.timeout = options_.request_timeout;
  absl::StatusOr<http::Response> resp = SendChecked(registry, req);
  if (!resp.ok()) return resp.status();
  if (resp->status != 200) return RegistryError(*resp, absl::StrCat(registry, ": token"));
  try {
    nlohmann::json j = nlohmann::json::parse(resp->body);
    std::string token = j.value("token", j.value("access_token", ""));
    if (token.empty()) return absl::UnauthenticatedError(absl::StrCat(registry, ": empty token"));
    // Its lifetime (60 s when not given as a number), renewed a little before the registry
    // would refuse it, and taken between a second and a day whatever the answer says.
    double expires_in = 60;
    if (auto it = j.find("expires_in"); it != j.end() && it->is_number()) {
      expires_in = it->get<double>();
    }
    const double keep = std::clamp(expires_in - 10, 1.0, absl::ToDoubleSeconds(kMaxTokenLife));
    absl::MutexLock lock(&mu_);
    tokens_[key] = {token, clock_.Now() + absl::Seconds(keep)};
    return token;
  } catch (const nlohmann::json::exception&) {
    return absl::UnauthenticatedError(absl::StrCat(registry, ": token response is not JSON"));
  }
}

bool RegistryClient::IsOwnHost(const std::string& registry, const std::string& host) const {
  if (host == AuthorityOf(BaseUrl(registry))) return true;
  // Docker Hub's token service is Docker Hub's own.
  return registry == "docker.io" && host == "auth.docker.io";
}

bool RegistryClient::MaySendCredentials(const std::string& registry,
                                        const std::string& host) const {
  if (IsOwnHost(registry, host)) return true;
  return options_.registry_listed && options_.registry_listed(host);
}

absl::StatusOr<http::Response> RegistryClient::SendChecked(const std::string& registry,
                                                           http::Request request) {
  request.follow_redirects = false;
  for (int hop = 0;; ++hop) {
    absl::StatusOr<http::Response> resp = http_.Send(request);
    if (!resp.ok()) return resp;
    const long code = resp->status;
    if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308) return resp;
    std::string location = resp->Header("location");
    if (location.empty()) return resp;
    if (hop >= 5) {
      return absl::FailedPreconditionError(absl::StrCat(registry, ": more than 5 redirects"));
    }
    if (absl::StartsWith(location, "/")) {
      const std::string& from = request.url;
      const size_t scheme_end = from.find("://");
      const size_t path = from.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
      location = from.substr(0, path) + location;
    } else if (!absl::StartsWith(location, "https://") && !absl::StartsWith(location, "http://")) {
      return absl::FailedPreconditionError(
          absl::StrCat(registry, ": redirect to a URL that is not http(s)"));
    }
    const std::string host = AuthorityOf(location);
    if (host.empty() || absl::StrContains(host, "@")) {
      return absl::FailedPreconditionError(
          absl::StrCat(registry, ": redirect without a valid host"));
    }
    if (options_.check_registry && !IsOwnHost(registry, host)) {
      if (absl::Status allowed = options_.check_registry(host); !allowed.ok()) {
        return absl::Status(allowed.code(),
                            absl::StrCat(registry, ": redirect: ", allowed.message()));
      }
    }
    if (!MaySendCredentials(registry, host)) {
      std::vector<std::pair<std::string, std::string>> kept;
      for (auto& h : request.headers) {
        if (!absl::EqualsIgnoreCase(h.first, "authorization")) kept.push_back(std::move(h));
      }
      request.headers = std::move(kept);
    }
    if (code == 303) request.method = request.method == "HEAD" ? "HEAD" : "GET";
    request.url = std::move(location);
  }
}

absl::StatusOr<http::Response> RegistryClient::Call(const std::string& registry,
                                                    http::Request request) {
  if (options_.check_registry) {
    if (absl::Status allowed = options_.check_registry(registry); !allowed.ok()) return allowed;
  }
  std::string scheme;
  {
    absl::MutexLock lock(&mu_);
    scheme = auth_scheme_[registry];
  }
  request.timeout = options_.request_timeout;
  const CredentialStore::Credentials* creds = credentials_.Find(registry);
  if (scheme == "basic" && creds != nullptr) {
    request.headers.emplace_back(
        "Authorization",
        "Basic " + absl::Base64Escape(absl::StrCat(creds->username, ":", creds->password)));
  }
  absl::StatusOr<http::Response> resp = SendChecked(registry, request);
  if (!resp.ok() || resp->status != 401) return resp;
  const std::string challenge = resp->Header("www-authenticate");
  http::Request retry = request;
  if (absl::StartsWithIgnoreCase(challenge, "basic")) {
    if (creds == nullptr) return RegistryError(*resp, absl::StrCat(registry, ": no credentials"));
    {
      absl::MutexLock lock(&mu_);
      auth_scheme_[registry] = "basic";
    }
    retry.headers.emplace_back(
        "Authorization",
        "Basic " + absl::Base64Escape(absl::StrCat(creds->username, ":", creds->password)));
  } else if (absl::StartsWithIgnoreCase(challenge, "bearer")) {
    absl::StatusOr<std::string> token = FetchToken(registry, challenge, request.priority);
    if (!token.ok()) return token.status();
    retry.headers.emplace_back("Authorization", "Bearer " + *token);
  } else {
    return resp;
  }
  return SendChecked(registry, retry);
}

absl::StatusOr<std::vector<std::string>> RegistryClient::ListTags(const std::string& registry,
                                                                  const std::string& path,
                                                                  http::Priority priority) {
  std::vector<std::string> tags;
  std::string url =
      absl::StrCat(BaseUrl(registry), "/v2/", path, "/tags/list?n=", options_.page_size);
  for (int page = 0; page < 10000 && !url.empty(); ++page) {
    http::Request req;
    req.url = url;
    req.priority = priority;
    absl::StatusOr<http::Response> resp = Call(registry, req);
    if (!resp.ok()) return resp.status();
    if (resp->status != 200) {
      return RegistryError(*resp, absl::StrCat(registry, "/", path, ": list tags"));
    }
    try {
      nlohmann::json j = nlohmann::json::parse(resp->body);
      if (j.contains("tags") && j["tags"].is_array()) {
        for (const auto& t : j["tags"]) tags.push_back(t.get<std::string>());
      }
    } catch (const nlohmann::json::exception&) {
      return absl::InternalError(absl::StrCat(registry, "/", path, ": tag list is not JSON"));
    }
    // Link: </v2/name/tags/list?last=x&n=100>; rel="next"
    url.clear();
    std::string link = resp->Header("link");
    size_t lt = link.find('<');
    size_t gt = link.find('>');
    if (lt != std::string::npos && gt != std::string::npos &&
        absl::StrContains(link, "rel=\"next\"")) {
      std::string next = link.substr(lt + 1, gt - lt - 1);
      if (absl::StartsWith(next, "/")) {
        url = BaseUrl(registry) + next;
      } else if (absl::StartsWith(next, BaseUrl(registry) + "/")) {
        url = next;
      } else {
        // The next page goes out with this registry's credentials: never to another host.
        // FailedPrecondition: the registry's answer, not a fault of the scanner's.
        return absl::FailedPreconditionError(absl::StrCat(
            registry, "/", path, ": list tags: the registry's next page is on another host"));
      }
    }
  }
  return tags;
}

absl::StatusOr<Manifest> RegistryClient::GetManifest(const std::string& registry,
                                                     const std::string& path,
                                                     const std::string& reference,
                                                     http::Priority priority) {
  http::Request req;
  req.url = absl::StrCat(BaseUrl(registry), "/v2/", path, "/manifests/", reference);
  req.headers.emplace_back("Accept", kAccept);
  req.priority = priority;
  absl::StatusOr<http::Response> resp = Call(registry, req);
  if (!resp.ok()) return resp.status();
  if (resp->status != 200) {
    return RegistryError(*resp, absl::StrCat(registry, "/", path, ":", reference, ": manifest"));
  }
  Manifest m;
  m.media_type = resp->Header("content-type");
  m.digest = resp->Header("docker-content-digest");
  if (!m.digest.empty() && !image::IsDigest(m.digest)) {
    return BadDigestHeader(registry, path, reference);
  }
  m.body = std::move(resp->body);
  if (m.media_type.empty() || m.media_type == "application/json") {
    try {
      m.media_type = nlohmann::json::parse(m.body).value("mediaType", m.media_type);
    } catch (const nlohmann::json::exception&) {
    }
  }
  return m;
}

absl::StatusOr<std::string> RegistryClient::ManifestDigest(const std::string& registry,
                                                           const std::string& path,
                                                           const std::string& reference,
                                                           http::Priority priority) {
  http::Request req;
  req.method = "HEAD";
  req.url = absl::StrCat(BaseUrl(registry), "/v2/", path, "/manifests/", reference);
  req.headers.emplace_back("Accept", kAccept);
  req.priority = priority;
  absl::StatusOr<http::Response> resp = Call(registry, req);
  if (!resp.ok()) return resp.status();
  if (resp->status != 200) {
    return RegistryError(*resp, absl::StrCat(registry, "/", path, ":", reference, ": manifest"));
  }
  std::string digest = resp->Header("docker-content-digest");
  if (digest.empty()) {
    return absl::InternalError(absl::StrCat(registry, ": no Docker-Content-Digest header"));
  }
  if (!image::IsDigest(digest)) return BadDigestHeader(registry, path, reference);
  return digest;
}

absl::StatusOr<std::string> RegistryClient::GetBlob(const std::string& registry,
                                                    const std::string& path,
                                                    const std::string& digest,
                                                    http::Priority priority) {
  http::Request req;
  req.url = absl::StrCat(BaseUrl(registry), "/v2/", path, "/blobs/", digest);
  req.priority = priority;
  absl::StatusOr<http::Response> resp = Call(registry, req);
  if (!resp.ok()) return resp.status();
  if (resp->status != 200) {
    return RegistryError(*resp, absl::StrCat(registry, "/", path, "@", digest, ": blob"));
  }
  return std::move(resp->body);
}

}  // namespace ferry::registry_scanner
