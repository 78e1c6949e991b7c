// A real container registry for tests: Debian's docker-registry (Docker Distribution 2.8)
// on a loopback port with a temporary storage folder, and helpers that push images through
// its HTTP API the way a build pipeline would.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/http/curl_http_client.h"
#include "tests/support/subprocess.h"

namespace ferry::testing {

class RegistryServer {
 public:
  // Starts `docker-registry serve` with storage and config under `dir`. With `user`, the
  // registry requires htpasswd Basic auth for that user and `password` (the helpers below
  // authenticate themselves).
  static absl::StatusOr<std::unique_ptr<RegistryServer>> Start(const std::string& dir,
                                                               const std::string& user = "",
                                                               const std::string& password = "");

  // Starts the registry with a notifications endpoint: every push is POSTed to `url` with
  // "Authorization: Bearer <bearer>".
  static absl::StatusOr<std::unique_ptr<RegistryServer>> StartWithNotifications(
      const std::string& dir, const std::string& url, const std::string& bearer);

  // Starts the registry with token auth: a token server (tests/support/
  // registry_token_server.py, plain http on loopback) issues signed tokens to `user` /
  // `password`, and the registry trusts its certificate.
  static absl::StatusOr<std::unique_ptr<RegistryServer>> StartWithTokenAuth(
      const std::string& dir, const std::string& user, const std::string& password);

  // "127.0.0.1:PORT".
  const std::string& host() const { return host_; }

  // "127.0.0.1:PORT" of the token server (token auth only).
  std::string token_host() const;

  // Tokens the token server has issued so far (token auth only).
  int TokensIssued();

  // Pushes an image whose config is `config_json` (with one small layer) as a Docker
  // schema 2 manifest, or an OCI manifest with `oci`. Returns the manifest's digest.
  absl::StatusOr<std::string> PushImage(const std::string& repository, const std::string& tag,
                                        const std::string& config_json, bool oci = false);

  // Pushes a manifest list (OCI index with `oci`) of already pushed manifests, each with
  // its platform ("linux/amd64", "linux/arm64/v8"). Returns its digest.
  absl::StatusOr<std::string> PushIndex(
      const std::string& repository, const std::string& tag,
      const std::vector<std::pair<std::string, std::string>>& platform_digests, bool oci = false);

 private:
  RegistryServer() = default;
  absl::StatusOr<std::string> PushBlob(const std::string& repository, const std::string& data);
  absl::StatusOr<std::string> PutManifest(const std::string& repository, const std::string& tag,
                                          const std::string& media_type, const std::string& body);

  // Sends `request` with Basic auth, or a push token for `repository`, when the registry
  // requires it.
  absl::StatusOr<http::Response> Send(http::Request request, const std::string& repository = "");
  absl::Status StartRegistry(const std::string& dir, const std::string& auth_config);

  std::string host_;
  std::string basic_auth_;  // "Basic ..." or empty
  std::string token_url_;   // token auth: "http://127.0.0.1:P/token"
  std::unique_ptr<Subprocess> token_server_;
  std::unique_ptr<Subprocess> process_;
  std::unique_ptr<http::CurlHttpClient> http_;
};

// "sha256:<hex>" of `data`.
std::string Sha256Digest(const std::string& data);

}  // namespace ferry::testing
