// An HttpClient for tests: answers from a script kept in memory, per method and URL, and
// records every request, so code above the HTTP seam (a registry client, a rate limiter) can
// be tested in milliseconds without a server.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lib/http/http_client.h"

namespace ferry::http {

// Thread-safe. A request is matched on its method and its whole URL (query included): first
// against the one-shot answers queued for it (Enqueue, in order), then against the standing
// one (Set). A request nothing matches is answered 404 with an empty body.
class FakeHttpClient final : public HttpClient {
 public:
  // Computes an answer from the request (e.g. to look at its headers). Called without the
  // fake's lock held: it may call the fake.
  using Handler = std::function<absl::StatusOr<Response>(const Request&)>;

  // Answers every `method` request to `url` with `response` (replacing an earlier answer).
  void Set(const std::string& method, const std::string& url, Response response);
  void Set(const std::string& method, const std::string& url, Handler handler);
  // Forgets the standing answer for `method` `url`: it is a 404 again.
  void Remove(const std::string& method, const std::string& url);
  // Answers the next `method` request to `url` with `answer` (a response, or a transport
  // failure such as Unavailable), before the standing answer; one-shot answers queue up.
  void Enqueue(const std::string& method, const std::string& url, absl::StatusOr<Response> answer);

  absl::StatusOr<Response> Send(const Request& request) override;

  // Every request sent so far, in order.
  std::vector<Request> requests() const;
  // How many `method` requests to `url` have been sent.
  int Count(const std::string& method, const std::string& url) const;
  // How many requests have been sent whose URL contains `part`.
  int CountContaining(const std::string& part) const;

 private:
  using Key = std::pair<std::string, std::string>;  // method, URL

  mutable absl::Mutex mu_;
  std::map<Key, Handler> standing_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::deque<absl::StatusOr<Response>>> queued_ ABSL_GUARDED_BY(mu_);
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::http
