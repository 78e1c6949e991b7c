#include "services/registry-scanner/webhook.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/http/http_client.h"
#include "lib/limits/limits.h"
#include "lib/log/log.h"

namespace ferry::registry_scanner {
absl::StatusOr<std::vector<PushHint>> ParseWebhook(const std::string& body) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception&) {
    return absl::InvalidArgumentError("webhook body is not JSON");
  }
  std::vector<PushHint> hints;
  try {
    if (j.contains("events") && j["events"].is_array()) {
      // Docker Distribution notification envelope.
      for (const auto& e : j["events"]) {
        if (e.value("action", "") != "push" || !e.contains("target")) continue;
        const auto& t = e["target"];
        std::string tag = t.value("tag", "");
        if (tag.empty()) continue;  // blob pushes and pushes by digest
        std::string host = e.contains("request") ? e["request"].value("host", "") : "";
        const std::string url = t.value("url", "");
        if (host.empty() && url.find("://") != std::string::npos) host = http::HostOfUrl(url);
        std::string repo = t.value("repository", "");
        if (host.empty() || repo.empty()) continue;
        hints.push_back({absl::StrCat(host, "/", repo), tag});
      }
      return hints;
    }
    if (j.contains("push_data") && j.contains("repository") && j["repository"].is_object()) {
      // Docker Hub.
      std::string repo = j["repository"].value("repo_name", "");
      if (repo.find('/') == std::string::npos) repo = "library/" + repo;
      hints.push_back({"docker.io/" + repo, j["push_data"].value("tag", "")});
      return hints;
    }
    if (j.contains("repository") && j["repository"].is_string()) {
      hints.push_back({j["repository"].get<std::string>(), j.value("tag", "")});
      return hints;
    }
  } catch (const nlohmann::json::exception&) {
  }
  return absl::InvalidArgumentError(
      "unknown webhook shape: expected a registry notification envelope (events[]), a Docker "
      "Hub payload, or {\"repository\": \"registry/path\", \"tag\": \"...\"}");
}

bool BearerMatches(const std::string& authorization, const std::string& secret) {
  if (secret.empty()) return false;
  const std::string bearer = "Bearer " + secret;
  return authorization.size() == bearer.size() &&
         CRYPTO_memcmp(authorization.data(), bearer.data(), bearer.size()) == 0;
}

bool AuthenticWebhook(const std::string& authorization, const std::string& signature,
                      const std::string& body, const std::string& secret) {
  if (secret.empty()) return false;
  if (BearerMatches(authorization, secret)) return true;
  if (!absl::StartsWith(signature, "sha256=")) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(mac[i], absl::kZeroPad2));
  const std::string given = signature.substr(7);
  return given.size() == hex.size() && CRYPTO_memcmp(given.data(), hex.data(), hex.size()) == 0;
}

namespace {

void Answer(httplib::Response& res, int status, prometheus::Counter& counter,
            const std::string& error) {
  counter.Increment();
  res.status = status;
  res.set_content(nlohmann::json{{"error", error}}.dump(), "application/json");
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(
    const runtime::ListenAddress& address, std::string secret, uint64_t max_body_bytes,
    std::function<void(const PushHint&)> on_hint, prometheus::Registry& registry,
    std::function<absl::Status()> permit) {
  auto& requests =
      prometheus::BuildCounter()
          .Name("ferry_registry_webhook_requests_total")
          .Help(
              "Push webhook requests by result (accepted, unauthorized, malformed, too_large, "
              "standby).")
          .Register(registry);
  prometheus::Counter& accepted = requests.Add({{"result", "accepted"}});
  prometheus::Counter& unauthorized = requests.Add({{"result", "unauthorized"}});
  prometheus::Counter& malformed = requests.Add({{"result", "malformed"}});
  prometheus::Counter& too_large = requests.Add({{"result", "too_large"}});
  prometheus::Counter& standby = requests.Add({{"result", "standby"}});
  prometheus::Counter& hinted = prometheus::BuildCounter()
                                    .Name("ferry_registry_webhook_hints_total")
                                    .Help("Pushes announced by accepted webhook requests.")
                                    .Register(registry)
                                    .Add({});
  std::unique_ptr<WebhookServer> w(new WebhookServer());
  w->server_ = std::make_unique<httplib::Server>();
  // One request per connection: a refused request's body stays unread, and must not be
  // parsed as the next request on a kept-alive connection.
  w->server_->set_keep_alive_max_count(1);
  // Bodies httplib reads itself (methods without a handler below) stop at the limit too.
  w->server_->set_payload_max_length(max_body_bytes);
  const std::string too_large_message =
      limits::OverLimit("POST /webhook", limits::kWebhookBody, max_body_bytes);
  // The handler gets the headers first and reads the body itself, only once the request
  // may be authentic and only up to the limit.
  w->server_->Post("/webhook", [secret, max_body_bytes, too_large_message, on_hint, permit,
                                &accepted, &unauthorized, &malformed, &too_large, &standby,
                                &hinted](const httplib::Request& req, httplib::Response& res,
                                         const httplib::ContentReader& content_reader) {
    const std::string authorization = req.get_header_value("Authorization");
    const std::string signature = req.get_header_value("X-Hub-Signature-256");
    const bool bearer = BearerMatches(authorization, secret);
    if (!bearer && !absl::StartsWith(signature, "sha256=")) {
      Answer(res, 401, unauthorized, "missing or wrong webhook secret");
      return;
    }
    // A standby refuses before reading the body (the answer names the leader, nothing
    // secret; a signed request is not verified yet, which costs it nothing here).
    if (permit) {
      if (absl::Status s = permit(); !s.ok()) {
        Answer(res, 503, standby, std::string(s.message()));
        res.set_header("Retry-After", "1");
        return;
      }
    }
    if (req.has_header("Content-Length")) {
      uint64_t declared = 0;
      if (!absl::SimpleAtoi(req.get_header_value("Content-Length"), &declared)) {
        Answer(res, 400, malformed, "Content-Length is not a number");
        return;
      }
      if (declared > max_body_bytes) {
        Answer(res, 413, too_large,
               limits::OverLimit("POST /webhook", limits::kWebhookBody, max_body_bytes, declared));
        return;
      }
    }
    std::string body;
    bool over_limit = false;
    const bool read =
        content_reader([&body, &over_limit, max_body_bytes](const char* data, size_t length) {
          if (body.size() + length > max_body_bytes) {
            over_limit = true;
            return false;
          }
          body.append(data, length);
          return true;
        });
    if (over_limit || res.status == 413) {
      Answer(res, 413, too_large, too_large_message);
      return;
    }
    if (!read) {
      Answer(res, 400, malformed, "the request body could not be read");
      return;
    }
    if (!bearer && !AuthenticWebhook("", signature, body, secret)) {
      Answer(res, 401, unauthorized, "missing or wrong webhook secret");
      return;
    }
    absl::StatusOr<std::vector<PushHint>> hints = ParseWebhook(body);
    if (!hints.ok()) {
      Answer(res, 400, malformed, std::string(hints.status().message()));
      return;
    }
    accepted.Increment();
    hinted.Increment(static_cast<double>(hints->size()));
    for (const PushHint& h : *hints) on_hint(h);
    res.status = 200;
    res.set_content(nlohmann::json{{"accepted", hints->size()}}.dump(), "application/json");
  });
  // Any other path or method: 404 without reading what was sent.
  auto not_found = [](const httplib::Request&, httplib::Response& res,
                      const httplib::ContentReader&) { res.status = 404; };
  w->server_->Post(".*", not_found);
  w->server_->Put(".*", not_found);
  w->server_->Patch(".*", not_found);
  w->server_->Delete(".*", not_found);
  int port = address.port == 0
                 ? w->server_->bind_to_any_port(address.host)
                 : (w->server_->bind_to_port(address.host, address.port) ? address.port : -1);
  if (port <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen for webhooks on ", address.ToString(),
                     ": the address is in use or not an address of this host"));
  }
  w->port_ = port;
  httplib::Server* server = w->server_.get();
  w->thread_ = std::thread([server] { server->listen_after_bind(); });
  return w;
}

WebhookServer::~WebhookServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ferry::registry_scanner
