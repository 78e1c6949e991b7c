// A fault-injecting HTTP proxy for tests: forwards to a real upstream (a registry on
// loopback) and, on request, answers the next requests with an error status (with an
// optional Retry-After) instead, cuts them off after the headers (a connection reset
// mid-response), or holds them before forwarding (a slow registry), so error handling is
// exercised against real traffic.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/http/curl_http_client.h"

namespace ferry::testing {

class LoopbackHttpServer;

class FaultProxy {
 public:
  // Listens on 127.0.0.1 (any port) and forwards to http://`upstream_host`.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(const std::string& upstream_host);
  ~FaultProxy();

  // "127.0.0.1:PORT".
  std::string host() const;
  // The next `count` requests whose path contains `path_part` get `status` (with
  // "Retry-After: retry_after" when not empty) instead of being forwarded.
  void Fail(int count, int status, const std::string& path_part = "",
            const std::string& retry_after = "");
  // The next `count` requests whose path contains `path_part` get response headers and then
  // a closed connection before the promised body.
  void Cut(int count, const std::string& path_part = "");
  // The next `count` requests whose path contains `path_part` are held for up to `hold`
  // (or until Release()) before they are forwarded.
  void Hold(int count, absl::Duration hold, const std::string& path_part = "");
  // Lets held requests go on now.
  void Release();
  // Requests being held now.
  int held();
  // Requests seen so far (forwarded or failed).
  int requests();

 private:
  FaultProxy() = default;
  std::string upstream_;
  std::unique_ptr<http::CurlHttpClient> client_;
  std::unique_ptr<LoopbackHttpServer> http_;
  std::mutex mu_;
  int fail_count_ = 0;
  int fail_status_ = 0;
  std::string fail_path_;
  std::string retry_after_;
  int cut_count_ = 0;
  std::string cut_path_;
  int hold_count_ = 0;
  absl::Duration hold_;
  std::string hold_path_;
  int held_ = 0;
  uint64_t release_generation_ = 0;
  std::condition_variable released_;
  int requests_ = 0;
};

}  // namespace ferry::testing
