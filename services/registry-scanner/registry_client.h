// The Docker Registry HTTP API v2 / OCI distribution client: tags, manifests, blobs, with
// the anonymous, Basic and Bearer-token auth flows (tokens cached until they expire).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/http/http_client.h"
#include "lib/runtime/clock.h"

namespace ferry::registry_scanner {

// Credentials per registry host, from Docker config.json files.
class CredentialStore {
 public:
  struct Credentials {
    std::string username;
    std::string password;
  };
  // Reads `auths` of each file ({"auths": {"host": {"auth": base64(user:pass)} | {"username",
  // "password"}}}). InvalidArgument naming the file when one does not parse.
  static absl::StatusOr<CredentialStore> Load(const std::vector<std::string>& paths);
  void Add(const std::string& host, Credentials credentials);
  // Credentials for `host` ("docker.io" also answers for Docker Hub's other names).
  const Credentials* Find(const std::string& host) const;

 private:
  std::map<std::string, Credentials> by_host_;
};

// A manifest as the registry returned it.
struct Manifest {
  std::string media_type;
  std::string digest;  // Docker-Content-Digest
  std::string body;
};

class RegistryClient {
 public:
  struct Options {
    std::set<std::string> insecure_hosts;                // hosts reached over plain http
    int page_size = 1000;                                // tags per page (n=)
    absl::Duration request_timeout = absl::Seconds(30);  // per HTTP request
    // Checked before every request to a registry (RegistryPolicy::CheckRegistry); its error
    // is the request's answer and nothing is sent. Unset: every registry.
    std::function<absl::Status(const std::string& registry)> check_registry;
    // True when a host is named on the allow list itself (RegistryPolicy::Lists): only such a
    // host, besides the registry's own, is sent the registry's credentials (a token realm or
    // a redirect elsewhere). Unset: no other host.
    std::function<bool(const std::string& host)> registry_listed;
  };
  // `clock` decides when a cached Bearer token has expired.
  RegistryClient(http::HttpClient& http, CredentialStore credentials, Options options,
                 runtime::Clock& clock = runtime::SystemClock());

  // Each call's requests (a token's too) go out with `priority`: kInteractive when someone
  // waits for the answer now, so that the rate limiter serves them ahead of scans.

  // Every tag of `path` on `registry`, following pagination.
  absl::StatusOr<std::vector<std::string>> ListTags(
      const std::string& registry, const std::string& path,
      http::Priority priority = http::Priority::kBackground);
  // The manifest for a tag or digest, in any supported media type.
  absl::StatusOr<Manifest> GetManifest(const std::string& registry, const std::string& path,
                                       const std::string& reference,
                                       http::Priority priority = http::Priority::kBackground);
  // The digest of a tag without downloading the manifest (HEAD).
  absl::StatusOr<std::string> ManifestDigest(const std::string& registry, const std::string& path,
                                             const std::string& reference,
                                             http::Priority priority = http::Priority::kBackground);
  // A blob (e.g. an image config).
  absl::StatusOr<std::string> GetBlob(const std::string& registry, const std::string& path,
                                      const std::string& digest,
                                      http::Priority priority = http::Priority::kBackground);

  // Accept header listing every manifest type Ferry reads.
  static const char* AcceptedManifestTypes();

 private:
  // Sends a request to the registry, answering auth challenges once.
  absl::StatusOr<http::Response> Call(const std::string& registry, http::Request request);
  // The token request goes out with `priority` (the request that was challenged's).
  absl::StatusOr<std::string> FetchToken(const std::string& registry, const std::string& challenge,
                                         http::Priority priority);
  std::string BaseUrl(const std::string& registry) const;
  // Sends `request` to `registry`'s host or where it redirects (at most 5 hops, followed here
  // rather than by the HTTP client): each hop's host must pass check_registry, and the
  // Authorization header goes only to the registry's own host or to a listed one.
  absl::StatusOr<http::Response> SendChecked(const std::string& registry, http::Request request);
  // Whether `host` is the registry's own (its API host; auth.docker.io for Docker Hub).
  bool IsOwnHost(const std::string& registry, const std::string& host) const;
  // Whether `host` ("host[:port]") may be sent `registry`'s credentials.
  bool MaySendCredentials(const std::string& registry, const std::string& host) const;

  http::HttpClient& http_;
  const CredentialStore credentials_;
  const Options options_;
  runtime::Clock& clock_;

  struct CachedToken {
    std::string token;
    absl::Time expires;
  };
  absl::Mutex mu_;
  // By registry + scope.
  std::map<std::string, CachedToken> tokens_ ABSL_GUARDED_BY(mu_);
  // Registry -> "basic" once challenged.
  std::map<std::string, std::string> auth_scheme_ ABSL_GUARDED_BY(mu_);
};

// Maps an HTTP status from a registry to a status code with a message naming what failed.
absl::Status RegistryError(const http::Response& response, const std::string& what);

}  // namespace ferry::registry_scanner
