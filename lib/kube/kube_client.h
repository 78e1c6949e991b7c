// A Kubernetes API client over libcurl (the KubeApi of a real API server): JSON in and out
// (nlohmann::json), the API's Status objects turned into specific error codes, bearer tokens
// re-read from their file when it changes. API discovery is in discovery.h.
//
// Metrics:
//   ferry_kube_requests_total{verb,code}            requests by Kubernetes verb and HTTP code
//   ferry_kube_request_duration_seconds{verb}       their latency
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/http/curl_http_client.h"
#include "lib/kube/discovery.h"
#include "lib/kube/kube_api.h"
#include "lib/kube/kubeconfig.h"

namespace ferry::kube {

class KubeClient final : public KubeApi {
 public:
  KubeClient(ClusterAccess access, prometheus::Registry& registry);

  // GET `path` ("/api/v1/namespaces"); `verb` labels the metric (get, list, discovery).
  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb) override;
  // A collection's objects with their metadata only (PartialObjectMetadataList): much less
  // for the server to encode and for us to parse than whole objects.
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override;
  // ListMetadata bounded by `timeout` rather than 60 s.
  absl::StatusOr<nlohmann::json> ListMetadataWithin(const std::string& path,
                                                    absl::Duration timeout) override;
  // Server-side apply of `object` at `path` (the object's own URL) with field manager
  // `manager`; `force` takes over fields owned by other managers; `dry_run` writes nothing.
  absl::StatusOr<nlohmann::json> Apply(const std::string& path, const nlohmann::json& object,
                                       const std::string& manager, bool force,
                                       bool dry_run) override;
  // A merge patch (e.g. of a status subresource).
  absl::StatusOr<nlohmann::json> MergePatch(const std::string& path, const nlohmann::json& patch);
  // DELETE with background propagation; `dry_run` deletes nothing.
  absl::Status Delete(const std::string& path, bool dry_run) override;
  // Apply and Delete bounded by `timeout` rather than 60 s.
  absl::StatusOr<nlohmann::json> ApplyWithin(const std::string& path, const nlohmann::json& object,
                                             const std::string& manager, bool force, bool dry_run,
                                             absl::Duration timeout) override;
  absl::Status DeleteWithin(const std::string& path, bool dry_run, absl::Duration timeout) override;
  // Calls bounded by `timeout` rather than 60 s (a Lease's renewal must not outlast its
  // renew deadline): GET `path`; POST `object` to the collection `path` (AlreadyExists when
  // it exists); PUT `object` at `path` (Aborted when its metadata.resourceVersion is stale).
  absl::StatusOr<nlohmann::json> GetWithin(const std::string& path, const std::string& verb,
                                           absl::Duration timeout) override;
  absl::StatusOr<nlohmann::json> Create(const std::string& path, const nlohmann::json& object,
                                        const std::string& verb, absl::Duration timeout);
  absl::StatusOr<nlohmann::json> Replace(const std::string& path, const nlohmann::json& object,
                                         const std::string& verb, absl::Duration timeout);

  // A watch, as KubeApi::Watch says; metrics count it with verb "watch" when it ends.
  absl::Status Watch(const std::string& path, absl::Duration timeout, const std::atomic<bool>& stop,
                     const std::function<bool(const nlohmann::json& event)>& on_event) override;

  const ClusterAccess& access() const { return access_; }
  // Requests that write (apply, patch, delete) sent so far; for tests and benchmarks.
  int64_t writes() const { return writes_.load(); }
  int64_t requests() const { return requests_.load(); }

 private:
  absl::StatusOr<nlohmann::json> Call(const std::string& verb, const std::string& method,
                                      const std::string& path, const std::string& body,
                                      const std::string& content_type,
                                      const std::string& accept = "application/json",
                                      absl::Duration timeout = absl::Seconds(60));
  // `request` with the API's address, `path`, Accept and credentials.
  http::Request NewRequest(const std::string& method, const std::string& path,
                           const std::string& accept, absl::Duration timeout);
  std::string Token();

  const ClusterAccess access_;
  http::CurlHttpClient http_;
  prometheus::Family<prometheus::Counter>& requests_total_;
  prometheus::Family<prometheus::Histogram>& duration_;
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> requests_{0};
  absl::Mutex token_mu_;
  std::string file_token_ ABSL_GUARDED_BY(token_mu_);
  absl::Time token_read_ ABSL_GUARDED_BY(token_mu_) = absl::InfinitePast();
};

// The API error for an HTTP status and the body of a failed request (a Status object when
// the API server sent one): NotFound, AlreadyExists, InvalidArgument (Invalid, BadRequest),
// PermissionDenied, Unauthenticated, Aborted (Conflict), ResourceExhausted (429), Internal
// (500), Unavailable (other 5xx), with the server's message.
absl::Status ApiError(long status, const std::string& body, const std::string& what);

// The JSON of an answer (`kind`: "an answer", "a watch event") to the call `what`
// ("GET /api/v1/pods"), without the metadata.managedFields of the objects in it (Ferry reads
// none, and they are most of a listed object's bytes). ResourceExhausted when it nests
// deeper than limits::kKubeJsonDepth (checked before parsing, so nothing recurses that
// deep); Internal when it is not JSON.
absl::StatusOr<nlohmann::json> ParseAnswer(std::string_view text, const std::string& what,
                                           const char* kind);

}  // namespace ferry::kube
