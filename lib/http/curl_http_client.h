// HttpClient over libcurl (OpenSSL): TLS verification on, optional CA bundle, HTTP/2 when
// the server offers it.
#pragma once

#include <string>

#include "lib/http/http_client.h"

namespace ferry::http {

struct CurlOptions {
  // PEM bundle to trust instead of the system's; empty for the system's.
  std::string ca_path;
  // Hosts ("host:port") allowed over plain http; others must use https.
  std::vector<std::string> insecure_hosts;
  std::string user_agent = "ferry";
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlOptions options = {});
  ~CurlHttpClient() override;
  absl::StatusOr<Response> Send(const Request& request) override;

 private:
  CurlOptions options_;
};

}  // namespace ferry::http
