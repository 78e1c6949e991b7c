// A small HTTP client interface for talking to registries (and other HTTP APIs), so that
// callers can be tested with a fake and run with CurlHttpClient.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::http {

// Who waits for an answer: a background job (a scan) or someone asking now (an API call's
// lookup). Rate limiters serve a host's interactive requests ahead of its background ones;
// both count against the host's budget.
enum class Priority { kBackground, kInteractive };

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  absl::Duration timeout = absl::Seconds(30);
  // When false, 3xx responses are returned instead of followed.
  bool follow_redirects = true;
  Priority priority = Priority::kBackground;
  // When set, the body of a 2xx answer is given to it piece by piece as it arrives instead
  // of being kept in Response::body (other answers' bodies are kept as usual): for streams
  // such as a Kubernetes watch. Returning false ends the transfer (Cancelled).
  std::function<bool(const char* data, size_t size)> on_body;
  // When set, the transfer ends (Cancelled) within about a second of it becoming true, also
  // while no data flows: for a stream the caller stops.
  const std::atomic<bool>* cancelled = nullptr;
  // When finite, the transfer ends once nothing has arrived for about this long (rounded up
  // to whole seconds), however long `timeout` allows: DeadlineExceeded when the answer had
  // begun (its status line arrived), Unavailable when nothing came at all. For a stream whose
  // server sends something now and then, so that a connection gone silent (a peer that
  // vanished without closing it) is noticed.
  absl::Duration idle_timeout = absl::InfiniteDuration();
};

struct Response {
  long status = 0;
  // Header names lower-cased; repeated headers keep every value.
  std::multimap<std::string, std::string> headers;
  std::string body;

  // The first value of header `name` (lower-case), or "".
  std::string Header(const std::string& name) const;
};

// "host:port" of "scheme://host:port/path" (of "host:port/path" when there is no scheme): up to
// the first '/', '?' or '#' after the scheme.
std::string HostOfUrl(const std::string& url);

// Thread-safe implementations only.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Sends `request`. A response with any status is OK; transport failures (connection
  // refused, timeout, TLS) are Unavailable / DeadlineExceeded with the reason.
  virtual absl::StatusOr<Response> Send(const Request& request) = 0;
};

}  // namespace ferry::http
