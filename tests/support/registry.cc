#include "tests/support/registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/support/git_repo.h"
#include "tests/support/ports.h"

namespace ferry::testing {

std::string Sha256Digest(const std::string& data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  std::string hex;
  for (unsigned char c : digest) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return "sha256:" + hex;
}

absl::Status RegistryServer::StartRegistry(const std::string& dir, const std::string& auth_config) {
  std::filesystem::create_directories(dir + "/data");
  int port = FreeLoopbackPort();
  host_ = absl::StrCat("127.0.0.1:", port);
  std::ofstream(dir + "/config.yml")
      << "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: " << dir
      << "/data\n  delete:\n    enabled: true\nhttp:\n  addr: " << host_ << "\n"
      << auth_config;
  auto process = Subprocess::Start({"/usr/bin/docker-registry", "serve", dir + "/config.yml"});
  if (!process.ok()) return process.status();
  process_ = *std::move(process);
  http::CurlOptions options;
  options.insecure_hosts = {host_};
  if (!token_url_.empty()) options.insecure_hosts.push_back(token_host());
  http_ = std::make_unique<http::CurlHttpClient>(options);
  for (int i = 0; i < 400; ++i) {
    http::Request ping;
    ping.url = absl::StrCat("http://", host_, "/v2/");
    ping.timeout = absl::Seconds(1);
    absl::StatusOr<http::Response> resp = http_->Send(ping);
    if (resp.ok() && (resp->status == 200 || resp->status == 401)) return absl::OkStatus();
    if (process_->Wait(absl::Milliseconds(25)).has_value()) {
      return absl::InternalError("docker-registry exited: " + process_->Output());
    }
  }
  return absl::DeadlineExceededError("docker-registry did not start: " + process_->Output());
}

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::Start(const std::string& dir,
                                                                      const std::string& user,
                                                                      const std::string& password) {
  std::unique_ptr<RegistryServer> r(new RegistryServer());
  std::filesystem::create_directories(dir);
  std::string auth;
  if (!user.empty()) {
    int status = 0;
    std::string out = RunCommand(
        absl::StrCat("htpasswd -Bbn '", user, "' '", password, "' > ", dir, "/htpasswd 2>&1"),
        &status);
    if (status != 0) return absl::InternalError("htpasswd failed: " + out);
    auth =
        absl::StrCat("auth:\n  htpasswd:\n    realm: ferry-test\n    path: ", dir, "/htpasswd\n");
    r->basic_auth_ = "Basic " + absl::Base64Escape(absl::StrCat(user, ":", password));
  }
  if (absl::Status s = r->StartRegistry(dir, auth); !s.ok()) return s;
  return r;
}

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::StartWithNotifications(
    const std::string& dir, const std::string& url, const std::string& bearer) {
  std::unique_ptr<RegistryServer> r(new RegistryServer());
  std::filesystem::create_directories(dir);
  std::string notifications =
      absl::StrCat("notifications:\n  endpoints:\n    - name: ferry\n      url: ", url,
                   "\n      headers:\n        Authorization: [\"Bearer ", bearer,
                   "\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 1s\n");
  if (absl::Status s = r->StartRegistry(dir, notifications); !s.ok()) return s;
  return r;
}

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::StartWithTokenAuth(
    const std::string& dir, const std::string& user, const std::string& password) {
  std::unique_ptr<RegistryServer> r(new RegistryServer());
  std::filesystem::create_directories(dir);
  int status = 0;
  std::string out = RunCommand(
      absl::StrCat("cd ", dir, " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 ",
                   "-subj /CN=ferry-token -keyout token_key.pem -out token_cert.pem 2>&1 && ",
                   "openssl x509 -in token_cert.pem -outform DER -out token_cert.der 2>&1"),
      &status);
  if (status != 0) return absl::InternalError("openssl failed: " + out);
  auto server =
      Subprocess::Start({"/usr/bin/env", "python3",
                         std::string(FERRY_SOURCE_DIR) + "/tests/support/registry_token_server.py",
                         "--key", dir + "/token_key.pem", "--cert-der", dir + "/token_cert.der",
                         "--issuer", "ferry-test", "--user", user, "--password", password});
  if (!server.ok()) return server.status();
  r->token_server_ = *std::move(server);
  auto line = r->token_server_->WaitForLine(
      [](const std::string& l) { return l.rfind("listening ", 0) == 0; }, absl::Seconds(20));
  if (!line)
    return absl::InternalError("token server did not start: " + r->token_server_->Output());
  r->token_url_ = absl::StrCat("http://127.0.0.1:", line->substr(10), "/token");
  r->basic_auth_ = "Basic " + absl::Base64Escape(absl::StrCat(user, ":", password));
  std::string auth = absl::StrCat("auth:\n  token:\n    realm: ", r->token_url_,
                                  "\n    service: ferry-registry\n    issuer: ferry-test\n",
                                  "    rootcertbundle: ", dir, "/token_cert.pem\n");
  if (absl::Status s = r->StartRegistry(dir, auth); !s.ok()) return s;
  return r;
}

std::string RegistryServer::token_host() const {
  if (token_url_.empty()) return "";
  std::string rest = token_url_.substr(7);  // after "http://"
  return rest.substr(0, rest.find('/'));
}

int RegistryServer::TokensIssued() {
  if (token_url_.empty()) return 0;
  http::Request req;
  req.url = token_url_.substr(0, token_url_.size() - 6) + "/count";
  absl::StatusOr<http::Response> resp = http_->Send(req);
  if (!resp.ok()) return -1;
  return nlohmann::json::parse(resp->body).value("count", -1);
}

absl::StatusOr<http::Response> RegistryServer::Send(http::Request request,
                                                    const std::string& repository) {
  if (!token_url_.empty()) {
    // A push token for this repository from the token server.
    http::Request token;
    token.url = absl::StrCat(token_url_, "?service=ferry-registry&scope=repository:", repository,
                             ":pull,push");
    token.headers.emplace_back("Authorization", basic_auth_);
    absl::StatusOr<http::Response> t = http_->Send(token);
    if (!t.ok()) return t.status();
    request.headers.emplace_back("Authorization",
                                 "Bearer " + nlohmann::json::parse(t->body).value("token", ""));
  } else if (!basic_auth_.empty()) {
    request.headers.emplace_back("Authorization", basic_auth_);
  }
  return http_->Send(request);
}

absl::StatusOr<std::string> RegistryServer::PushBlob(const std::string& repository,
                                                     const std::string& data) {
  const std::string digest = Sha256Digest(data);
  http::Request start;
  start.method = "POST";
  start.url = absl::StrCat("http://", host_, "/v2/", repository, "/blobs/uploads/");
  absl::StatusOr<http::Response> started = Send(start, repository);
  if (!started.ok()) return started.status();
  if (started->status != 202)
    return absl::InternalError(absl::StrCat("upload start: ", started->status));
  std::string location = started->Header("location");
  if (location.rfind("http", 0) != 0) location = absl::StrCat("http://", host_, location);
  http::Request put;
  put.method = "PUT";
  put.url = absl::StrCat(location, location.find('?') == std::string::npos ? "?" : "&",
                         "digest=", digest);
  put.headers = {{"Content-Type", "application/octet-stream"}};
  put.body = data;
  absl::StatusOr<http::Response> done = Send(put, repository);
  if (!done.ok()) return done.status();
  if (done->status != 201)
    return absl::InternalError(absl::StrCat("blob upload: ", done->status, " ", done->body));
  return digest;
}

absl::StatusOr<std::string> RegistryServer::PutManifest(const std::string& repository,
                                                        const std::string& tag,
                                                        const std::string& media_type,
                                                        const std::string& body) {
  http::Request put;
  put.method = "PUT";
  put.url = absl::StrCat("http://", host_, "/v2/", repository, "/manifests/", tag);
  put.headers = {{"Content-Type", media_type}};
  put.body = body;
  absl::StatusOr<http::Response> done = Send(put, repository);
  if (!done.ok()) return done.status();
  if (done->status != 201) {
    return absl::InternalError(absl::StrCat("manifest put: ", done->status, " ", done->body));
  }
  return Sha256Digest(body);
}

absl::StatusOr<std::string> RegistryServer::PushImage(const std::string& repository,
                                                      const std::string& tag,
                                                      const std::string& config_json, bool oci) {
  const std::string layer = "layer of " + repository + ":" + tag;
  absl::StatusOr<std::string> config_digest = PushBlob(repository, config_json);
  if (!config_digest.ok()) return config_digest.status();
  absl::StatusOr<std::string> layer_digest = PushBlob(repository, layer);
  if (!layer_digest.ok()) return layer_digest.status();
  const std::string media_type = oci ? "application/vnd.oci.image.manifest.v1+json"
                                     : "application/vnd.docker.distribution.manifest.v2+json";
  nlohmann::ordered_json m;
  m["schemaVersion"] = 2;
  m["mediaType"] = media_type;
  m["config"] = {{"mediaType", oci ? "application/vnd.oci.image.config.v1+json"
                                   : "application/vnd.docker.container.image.v1+json"},
                 {"size", config_json.size()},
                 {"digest", *config_digest}};
  m["layers"] = nlohmann::ordered_json::array(
      {{{"mediaType", oci ? "application/vnd.oci.image.layer.v1.tar+gzip"
                          : "application/vnd.docker.image.rootfs.diff.tar.gzip"},
        {"size", layer.size()},
        {"digest", *layer_digest}}});
  return PutManifest(repository, tag, media_type, m.dump());
}

absl::StatusOr<std::string> RegistryServer::PushIndex(
    const std::string& repository, const std::string& tag,
    const std::vector<std::pair<std::string, std::string>>& platform_digests, bool oci) {
  const std::string media_type = oci ? "application/vnd.oci.image.index.v1+json"
                                     : "application/vnd.docker.distribution.manifest.list.v2+json";
  nlohmann::ordered_json index;
  index["schemaVersion"] = 2;
  index["mediaType"] = media_type;
  index["manifests"] = nlohmann::ordered_json::array();
  for (const auto& [platform, digest] : platform_digests) {
    std::vector<std::string> parts = absl::StrSplit(platform, '/');
    // The size of each manifest is what the registry stored; ask it.
    http::Request head;
    head.method = "HEAD";
    head.url = absl::StrCat("http://", host_, "/v2/", repository, "/manifests/", digest);
    head.headers = {{"Accept", oci ? "application/vnd.oci.image.manifest.v1+json"
                                   : "application/vnd.docker.distribution.manifest.v2+json"}};
    absl::StatusOr<http::Response> sized = Send(head, repository);
    if (!sized.ok()) return sized.status();
    nlohmann::ordered_json entry;
    entry["mediaType"] = oci ? "application/vnd.oci.image.manifest.v1+json"
                             : "application/vnd.docker.distribution.manifest.v2+json";
    entry["size"] =
        std::stoll(sized->Header("content-length").empty() ? "0" : sized->Header("content-length"));
    entry["digest"] = digest;
    entry["platform"] = {{"architecture", parts.size() > 1 ? parts[1] : ""}, {"os", parts[0]}};
    if (parts.size() > 2) entry["platform"]["variant"] = parts[2];
    index["manifests"].push_back(entry);
  }
  return PutManifest(repository, tag, media_type, index.dump());
}

}  // namespace ferry::testing
