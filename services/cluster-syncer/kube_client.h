// A Kubernetes API client over libcurl: JSON in and out (nlohmann::json), the API's Status
// objects turned into specific error codes, bearer tokens re-read from their file when it
// changes, and API discovery (kind -> resource, scope, verbs).
//
// Metrics:
//   ferry_kube_requests_total{verb,code}            requests by Kubernetes verb and HTTP code
//   ferry_kube_request_duration_seconds{verb}       their latency
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/http/curl_http_client.h"
#include "services/cluster-syncer/kubeconfig.h"

namespace ferry::cluster_syncer {

class KubeClient {
 public:
  KubeClient(ClusterAccess access, prometheus::Registry& registry);

  // GET `path` ("/api/v1/namespaces"); `verb` labels the metric (get, list, discovery).
  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb = "get");
  // A collection's objects with their metadata only (PartialObjectMetadataList): much less
  // for the server to encode and for us to parse than whole objects.
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path);
  // Server-side apply of `object` at `path` (the object's own URL) with field manager
  // `manager`; `force` takes over fields owned by other managers; `dry_run` writes nothing.
  absl::StatusOr<nlohmann::json> Apply(const std::string& path, const nlohmann::json& object,
                                       const std::string& manager, bool force, bool dry_run);
  // A merge patch (e.g. of a status subresource).
  absl::StatusOr<nlohmann::json> MergePatch(const std::string& path, const nlohmann::json& patch);
  // DELETE with background propagation; `dry_run` deletes nothing.
  absl::Status Delete(const std::string& path, bool dry_run = false);

  const ClusterAccess& access() const { return access_; }
  // Requests that write (apply, patch, delete) sent so far; for tests and benchmarks.
  int64_t writes() const { return writes_.load(); }
  int64_t requests() const { return requests_.load(); }

 private:
  absl::StatusOr<nlohmann::json> Call(const std::string& verb, const std::string& method,
                                      const std::string& path, const std::string& body,
                                      const std::string& content_type,
                                      const std::string& accept = "application/json");
  std::string Token();

  const ClusterAccess access_;
  http::CurlHttpClient http_;
  prometheus::Family<prometheus::Counter>& requests_total_;
  prometheus::Family<prometheus::Histogram>& duration_;
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> requests_{0};
  std::mutex token_mu_;
  std::string file_token_;
  absl::Time token_read_ = absl::InfinitePast();
};

// The API error for an HTTP status and the body of a failed request (a Status object when
// the API server sent one): NotFound, AlreadyExists, InvalidArgument (Invalid, BadRequest),
// PermissionDenied, Unauthenticated, Aborted (Conflict), ResourceExhausted (429), Internal
// (500), Unavailable (other 5xx), with the server's message.
absl::Status ApiError(long status, const std::string& body, const std::string& what);

// One kind the API serves.
struct ApiResource {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string kind;     // "Deployment"
  std::string name;     // plural resource name, "deployments"
  bool namespaced = false;
  std::vector<std::string> verbs;

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
  bool Can(const std::string& verb) const;
  // The collection URL ("/apis/apps/v1/namespaces/ns/deployments"; `ns` ignored when
  // cluster-scoped, empty for all namespaces).
  std::string CollectionPath(const std::string& ns) const;
  // The object URL.
  std::string ObjectPath(const std::string& ns, const std::string& object_name) const;
};

// Kind -> resource mapping from /api and /apis, cached; refreshed on demand when a kind is
// unknown (a CRD just created), at most once per `min_refresh`.
class Discovery {
 public:
  explicit Discovery(KubeClient& client, absl::Duration min_refresh = absl::Seconds(2));
  // The resource serving `kind` in `api_version` ("apps/v1"). NotFound naming both when
  // the API does not serve it (after one refresh).
  absl::StatusOr<ApiResource> Find(const std::string& api_version, const std::string& kind);
  // The preferred version's resource for `kind` in `group`, if served.
  absl::StatusOr<ApiResource> FindPreferred(const std::string& group, const std::string& kind);
  // Reloads everything now.
  absl::Status Refresh();
  // Every resource of every served version (preferred versions first).
  absl::StatusOr<std::vector<ApiResource>> All();

 private:
  absl::Status EnsureLoaded();
  KubeClient& client_;
  const absl::Duration min_refresh_;
  std::mutex mu_;
  bool loaded_ = false;
  absl::Time refreshed_ = absl::InfinitePast();
  std::vector<ApiResource> resources_;         // preferred versions first
  std::map<std::string, size_t> by_gvk_;       // "group/version/kind" -> index
  std::map<std::string, std::string> preferred_;  // group -> preferred version
};

}  // namespace ferry::cluster_syncer
