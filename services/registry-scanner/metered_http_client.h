// An HttpClient decorator that counts registry requests for Prometheus:
//
//   ferry_registry_requests_total{host, kind, code}   kind: tags, manifest, manifest_head,
//                                                      blob, token, ping; code: HTTP status
//                                                      or "error"
//   ferry_registry_request_duration_seconds{host, kind}
//
// Label values are bounded: hosts are the configured registries, kinds a fixed set.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "lib/http/http_client.h"

namespace ferry::registry_scanner {

class MeteredHttpClient final : public http::HttpClient {
 public:
  MeteredHttpClient(http::HttpClient& inner, prometheus::Registry& registry);
  absl::StatusOr<http::Response> Send(const http::Request& request) override;

  // The kind label of a request.
  static std::string KindOf(const http::Request& request);

 private:
  http::HttpClient& inner_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& seconds_;
};

}  // namespace ferry::registry_scanner
