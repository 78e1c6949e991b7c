// Push webhooks: an HTTP endpoint that registries (Docker Distribution notifications,
// Docker Hub, or anything posting {"repository", "tag"}) call when an image is pushed.
// Authenticated with a shared secret, either as "Authorization: Bearer <secret>" or as an
// HMAC-SHA256 of the body in "X-Hub-Signature-256: sha256=<hex>". A webhook is only a hint:
// the scanner checks the registry itself before it reports anything.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/runtime/address.h"

namespace httplib {
class Server;
}
namespace prometheus {
class Registry;
}

namespace ferry::registry_scanner {

// "Something was pushed to this repository" ("registry/path", tag may be empty).
struct PushHint {
  std::string repository;
  std::string tag;
};

// Parses a webhook body. InvalidArgument when it is not one of the known shapes.
absl::StatusOr<std::vector<PushHint>> ParseWebhook(const std::string& body);

// True when `authorization` is "Bearer <secret>" (compared in constant time). Needs no body:
// the server checks it before reading one.
bool BearerMatches(const std::string& authorization, const std::string& secret);

// True when the request carries the secret (bearer) or a valid HMAC-SHA256 of `body`.
bool AuthenticWebhook(const std::string& authorization, const std::string& signature,
                      const std::string& body, const std::string& secret);

class WebhookServer {
 public:
  // Listens on `address` (port 0 = any); POST /webhook with a valid secret calls `on_hint`
  // for each push (200); a bad secret gets 401, a malformed body 400, nothing is called.
  // Hostile senders cost little: a request without a matching bearer token and without a
  // signature header gets 401 before its body is read; a declared Content-Length over
  // `max_body_bytes` gets 413 at once, and a body (chunked or compressed) growing past it
  // while read is cut off with 413 before any parsing or HMAC; bodies sent to any other path
  // are never read (404). Each connection carries one request and is then closed, so an
  // unread body cannot be taken for the next request.
  // With `permit` (leader election), an authentic request it refuses gets 503 with
  // Retry-After and its message, its body unread and nothing called: the registry delivers
  // the notification again, and a Service spreading connections brings it to the leader.
  // Counts requests in `registry` as ferry_registry_webhook_requests_total{result} (result:
  // accepted, unauthorized, malformed, too_large, standby) and hints as
  // ferry_registry_webhook_hints_total.
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Start(
      const runtime::ListenAddress& address, std::string secret, uint64_t max_body_bytes,
      std::function<void(const PushHint&)> on_hint, prometheus::Registry& registry,
      std::function<absl::Status()> permit = nullptr);
  ~WebhookServer();
  int port() const { return port_; }

 private:
  WebhookServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace ferry::registry_scanner
