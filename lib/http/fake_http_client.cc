#include "lib/http/fake_http_client.h"

namespace ferry::http {

void FakeHttpClient::Set(const std::string& method, const std::string& url, Response response) {
  Set(method, url, [response = std::move(response)](const Request&) { return response; });
}

void FakeHttpClient::Set(const std::string& method, const std::string& url, Handler handler) {
  absl::MutexLock lock(&mu_);
  standing_[{method, url}] = std::move(handler);
}

void FakeHttpClient::Remove(const std::string& method, const std::string& url) {
  absl::MutexLock lock(&mu_);
  standing_.erase({method, url});
}

void FakeHttpClient::Enqueue(const std::string& method, const std::string& url,
                             absl::StatusOr<Response> answer) {
  absl::MutexLock lock(&mu_);
  queued_[{method, url}].push_back(std::move(answer));
}

absl::StatusOr<Response> FakeHttpClient::Send(const Request& request) {
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    const Key key{request.method, request.url};
    if (auto it = queued_.find(key); it != queued_.end() && !it->second.empty()) {
      absl::StatusOr<Response> answer = std::move(it->second.front());
      it->second.pop_front();
      return answer;
    }
    if (auto it = standing_.find(key); it != standing_.end()) handler = it->second;
  }
  if (!handler) return Response{404, {}, ""};
  return handler(request);
}

std::vector<Request> FakeHttpClient::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int FakeHttpClient::Count(const std::string& method, const std::string& url) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Request& r : requests_) n += r.method == method && r.url == url;
  return n;
}

int FakeHttpClient::CountContaining(const std::string& part) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Request& r : requests_) n += r.url.find(part) != std::string::npos;
  return n;
}

}  // namespace ferry::http
