// An in-memory Kubernetes API for unit tests: serves discovery documents for the kinds it
// knows, stores applied objects (no field-manager merge: an apply stores the object as
// given), lists them by label (a page at a time when asked with `limit`), deletes them,
// makes applied CRDs Established (and serves their kinds) after a set number of reads,
// refuses namespaced objects whose Namespace does not exist, and fails the calls a test asks
// it to. Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/kube/discovery.h"
#include "lib/kube/kube_api.h"

namespace ferry::cluster_syncer {

class FakeKubeApi final : public kube::KubeApi {
 public:
  // Serves Namespace, ConfigMap, Secret, Service, ServiceAccount, Endpoints, Deployment,
  // CronJob (batch/v1), Role, RoleBinding, ClusterRole and CustomResourceDefinition.
  FakeKubeApi();

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb) override;
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override;
  absl::StatusOr<nlohmann::json> Apply(const std::string& path, const nlohmann::json& object,
                                       const std::string& manager, bool force,
                                       bool dry_run) override;
  absl::Status Delete(const std::string& path, bool dry_run) override;

  // Serves `resource` from now on (listed by discovery; its objects can be stored).
  void Serve(const kube::ApiResource& resource);
  // Stores `object` as if someone else had made it (a controller, kubectl): at the path of
  // its apiVersion, kind, namespace and name. The kind must be served.
  void Put(const nlohmann::json& object);
  // The stored object at `path`, if any.
  std::optional<nlohmann::json> Object(const std::string& path);
  // From now on, calls of `verb` ("get", "list", "apply", "delete"; "discovery" for the
  // discovery documents) on a path starting with `path_prefix` ("" for every path) fail
  // with `status`. An OK status removes the rule.
  void Fail(const std::string& verb, const std::string& path_prefix, absl::Status status);
  // An applied CRD is Established, and its kinds served, once it has been read `gets` times
  // (default 1: at the first read); -1: never.
  void set_crd_established_after(int gets);

  // The calls made so far, as "verb path" (path without its query), in order.
  std::vector<std::string> calls();
  // The same, each path with its query ("get /apis/...?resourceVersion=0").
  std::vector<std::string> calls_with_query();
  // The kinds of the objects applied so far (dry runs included), in order.
  std::vector<std::string> applied_kinds();
  // Applies and deletes that were not dry runs.
  int64_t writes();

 private:
  struct Stored {
    kube::ApiResource resource;
    std::string ns;
    nlohmann::json object;
  };
  struct Target;  // a parsed path
  std::optional<Target> Parse(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Begin(const std::string& verb, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The resources of a group version ("/api/v1", "/apis/apps/v1").
  nlohmann::json DiscoveryDocument(const Target& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ServeCrd(const nlohmann::json& crd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ServeLocked(const kube::ApiResource& resource) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::vector<kube::ApiResource> resources_ ABSL_GUARDED_BY(mu_);
  // "group|resource|namespace|name" -> object
  std::map<std::string, Stored> objects_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> crd_gets_ ABSL_GUARDED_BY(mu_);  // CRD name -> reads
  int crd_established_after_ ABSL_GUARDED_BY(mu_) = 1;
  struct FailRule {
    std::string verb;
    std::string path_prefix;
    absl::Status status;
  };
  std::vector<FailRule> fail_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_with_query_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> applied_kinds_ ABSL_GUARDED_BY(mu_);
  int64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::cluster_syncer
