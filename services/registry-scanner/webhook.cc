#include "services/registry-scanner/webhook.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/http/http_client.h"
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

bool AuthenticWebhook(const std::string& authorization, const std::string& signature,
                      const std::string& body, const std::string& secret) {
  if (secret.empty()) return false;
  const std::string bearer = "Bearer " + secret;
  if (authorization.size() == bearer.size() &&
      CRYPTO_memcmp(authorization.data(), bearer.data(), bearer.size()) == 0) {
    return true;
  }
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

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(
    const runtime::ListenAddress& address, std::string secret,
    std::function<void(const PushHint&)> on_hint, prometheus::Registry& registry) {
  auto& requests = prometheus::BuildCounter()
                       .Name("ferry_registry_webhook_requests_total")
                       .Help("Push webhook requests by result (accepted, unauthorized, malformed).")
                       .Register(registry);
  prometheus::Counter& accepted = requests.Add({{"result", "accepted"}});
  prometheus::Counter& unauthorized = requests.Add({{"result", "unauthorized"}});
  prometheus::Counter& malformed = requests.Add({{"result", "malformed"}});
  prometheus::Counter& hinted = prometheus::BuildCounter()
                                    .Name("ferry_registry_webhook_hints_total")
                                    .Help("Pushes announced by accepted webhook requests.")
                                    .Register(registry)
                                    .Add({});
  std::unique_ptr<WebhookServer> w(new WebhookServer());
  w->server_ = std::make_unique<httplib::Server>();
  w->server_->Post("/webhook", [secret, on_hint, &accepted, &unauthorized, &malformed, &hinted](
                                   const httplib::Request& req, httplib::Response& res) {
    if (!AuthenticWebhook(req.get_header_value("Authorization"),
                          req.get_header_value("X-Hub-Signature-256"), req.body, secret)) {
      unauthorized.Increment();
      res.status = 401;
      res.set_content("{\"error\":\"missing or wrong webhook secret\"}", "application/json");
      return;
    }
    absl::StatusOr<std::vector<PushHint>> hints = ParseWebhook(req.body);
    if (!hints.ok()) {
      malformed.Increment();
      res.status = 400;
      res.set_content(nlohmann::json{{"error", std::string(hints.status().message())}}.dump(),
                      "application/json");
      return;
    }
    accepted.Increment();
    hinted.Increment(static_cast<double>(hints->size()));
    for (const PushHint& h : *hints) on_hint(h);
    res.status = 200;
    res.set_content(nlohmann::json{{"accepted", hints->size()}}.dump(), "application/json");
  });
  int port = address.port == 0 ? w->server_->bind_to_any_port(address.host)
                               : (w->server_->bind_to_port(address.host, address.port)
                                      ? address.port
                                      : -1);
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
