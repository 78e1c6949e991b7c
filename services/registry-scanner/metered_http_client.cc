#include "services/registry-scanner/metered_http_client.h"

#include <chrono>

#include "absl/strings/match.h"

namespace ferry::registry_scanner {
MeteredHttpClient::MeteredHttpClient(http::HttpClient& inner, prometheus::Registry& registry)
    : inner_(inner),
      requests_(prometheus::BuildCounter()
                    .Name("ferry_registry_requests_total")
                    .Help("Requests to registries, by host, kind and HTTP status.")
                    .Register(registry)),
      seconds_(prometheus::BuildHistogram()
                   .Name("ferry_registry_request_duration_seconds")
                   .Help("Duration of requests to registries, by host and kind.")
                   .Register(registry)) {}

std::string MeteredHttpClient::KindOf(const http::Request& request) {
  const std::string& url = request.url;
  if (absl::StrContains(url, "/tags/list")) return "tags";
  if (absl::StrContains(url, "/manifests/"))
    return request.method == "HEAD" ? "manifest_head" : "manifest";
  if (absl::StrContains(url, "/blobs/")) return "blob";
  if (absl::EndsWith(url, "/v2/")) return "ping";
  return "token";
}

absl::StatusOr<http::Response> MeteredHttpClient::Send(const http::Request& request) {
  const std::string host = http::HostOfUrl(request.url);
  const std::string kind = KindOf(request);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<http::Response> response = inner_.Send(request);
  seconds_
      .Add({{"host", host}, {"kind", kind}},
           prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                                   5, 10})
      .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  requests_
      .Add({{"host", host},
            {"kind", kind},
            {"code", response.ok() ? std::to_string(response->status) : "error"}})
      .Increment();
  return response;
}

}  // namespace ferry::registry_scanner
