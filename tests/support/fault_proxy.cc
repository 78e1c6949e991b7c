#include "tests/support/fault_proxy.h"

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/loopback_http_server.h"

namespace ferry::testing {

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& upstream_host) {
  std::unique_ptr<FaultProxy> p(new FaultProxy());
  p->upstream_ = upstream_host;
  http::CurlOptions options;
  options.insecure_hosts = {upstream_host};
  p->client_ = std::make_unique<http::CurlHttpClient>(options);
  p->http_ = std::make_unique<LoopbackHttpServer>();
  FaultProxy* self = p.get();
  auto handler = [self](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      ++self->requests_;
      if (self->fail_count_ > 0 && absl::StrContains(req.path, self->fail_path_)) {
        --self->fail_count_;
        res.status = self->fail_status_;
        if (!self->retry_after_.empty()) res.set_header("Retry-After", self->retry_after_);
        res.set_content("{\"errors\":[{\"code\":\"INJECTED\",\"message\":\"injected fault\"}]}",
                        "application/json");
        return;
      }
      if (self->cut_count_ > 0 && absl::StrContains(req.path, self->cut_path_)) {
        --self->cut_count_;
        res.status = 200;
        // Promises 1 MiB and sends none of it: the server closes the connection.
        res.set_content_provider(1 << 20, "application/octet-stream",
                                 [](size_t, size_t, httplib::DataSink&) { return false; });
        return;
      }
    }
    {
      std::unique_lock<std::mutex> lock(self->mu_);
      if (self->hold_count_ > 0 && absl::StrContains(req.path, self->hold_path_)) {
        --self->hold_count_;
        ++self->held_;
        const uint64_t generation = self->release_generation_;
        self->released_.wait_for(lock, absl::ToChronoNanoseconds(self->hold_),
                                 [&] { return self->release_generation_ != generation; });
        --self->held_;
      }
    }
    http::Request forward;
    forward.method = req.method;
    forward.url = absl::StrCat("http://", self->upstream_, req.target);
    for (const auto& [name, value] : req.headers) {
      if (absl::EqualsIgnoreCase(name, "Host") || absl::EqualsIgnoreCase(name, "Content-Length") ||
          absl::StartsWithIgnoreCase(name, "REMOTE_") ||
          absl::EqualsIgnoreCase(name, "LOCAL_ADDR") ||
          absl::EqualsIgnoreCase(name, "LOCAL_PORT")) {
        continue;
      }
      forward.headers.emplace_back(name, value);
    }
    forward.body = req.body;
    absl::StatusOr<http::Response> up = self->client_->Send(forward);
    if (!up.ok()) {
      res.status = 502;
      return;
    }
    res.status = static_cast<int>(up->status);
    std::string content_type = up->Header("content-type");
    for (const auto& [name, value] : up->headers) {
      if (name == "content-length" || name == "transfer-encoding" || name == "connection" ||
          name == "content-type") {
        continue;
      }
      res.set_header(name, value);
    }
    res.set_content(up->body, content_type.empty() ? "application/octet-stream" : content_type);
  };
  // cpp-httplib serves HEAD through the GET handlers; the method is forwarded as is.
  p->http_->server().Get(".*", handler);
  if (absl::Status started = p->http_->Start(); !started.ok()) return started;
  return p;
}

FaultProxy::~FaultProxy() {
  Release();
  http_.reset();  // stops serving before the members its handler uses go
}

std::string FaultProxy::host() const { return http_->host(); }

void FaultProxy::Fail(int count, int status, const std::string& path_part,
                      const std::string& retry_after) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_count_ = count;
  fail_status_ = status;
  fail_path_ = path_part;
  retry_after_ = retry_after;
}

void FaultProxy::Cut(int count, const std::string& path_part) {
  std::lock_guard<std::mutex> lock(mu_);
  cut_count_ = count;
  cut_path_ = path_part;
}

void FaultProxy::Hold(int count, absl::Duration hold, const std::string& path_part) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_count_ = count;
  hold_ = hold;
  hold_path_ = path_part;
}

void FaultProxy::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++release_generation_;
  }
  released_.notify_all();
}

int FaultProxy::held() {
  std::lock_guard<std::mutex> lock(mu_);
  return held_;
}

int FaultProxy::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

}  // namespace ferry::testing
