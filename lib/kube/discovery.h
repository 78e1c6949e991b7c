// API discovery: which kinds the API server serves, under which resource names and scopes,
// with which verbs; and the URLs of their collections and objects.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/kube/kube_api.h"

namespace ferry::kube {

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
  explicit Discovery(KubeApi& client, absl::Duration min_refresh = absl::Seconds(2));
  // The resource serving `kind` in `api_version` ("apps/v1"). NotFound naming both when
  // the API does not serve it (after one refresh).
  absl::StatusOr<ApiResource> Find(const std::string& api_version, const std::string& kind);
  // The preferred version's resource for `kind` in `group`, if served.
  absl::StatusOr<ApiResource> FindPreferred(const std::string& group, const std::string& kind);
  // Reloads everything now. A group version whose document is missing is left out; one that
  // is unavailable or not of discovery's shape (an aggregated API that is down or
  // misbehaves) keeps what the last load had of it (none, the first time); a
  // malformed /api or /apis is Internal, and what was loaded before stays. Of refreshes that
  // overlap, the one begun last that succeeds decides.
  absl::Status Refresh();
  // Every resource of every served version (preferred versions first).
  absl::StatusOr<std::vector<ApiResource>> All();

 private:
  absl::Status EnsureLoaded() ABSL_LOCKS_EXCLUDED(mu_, load_mu_);
  // The resources of `group`/`version` as the installed answer has them.
  std::vector<ApiResource> Installed(const std::string& group, const std::string& version)
      ABSL_LOCKS_EXCLUDED(mu_);
  KubeApi& client_;
  const absl::Duration min_refresh_;
  // Held by the first load, so that callers arriving together (the threads of a
  // WorkloadWatch at start) wait for one rather than each making their own. Lookups once
  // loaded never take it.
  absl::Mutex load_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  // Refreshes begun, and the one whose answer is installed (numbered from 1).
  uint64_t refreshes_begun_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t installed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time refreshed_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<ApiResource> resources_ ABSL_GUARDED_BY(mu_);    // preferred versions first
  std::map<std::string, size_t> by_gvk_ ABSL_GUARDED_BY(mu_);  // "group/version/kind" -> index
  std::map<std::string, std::string> preferred_ ABSL_GUARDED_BY(mu_);  // group -> preferred
};

}  // namespace ferry::kube
