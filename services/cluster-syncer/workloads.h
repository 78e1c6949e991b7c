// Workloads as they run in the cluster: containers with their images, labels, annotations,
// and rollout status computed the way `kubectl rollout status` does.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/kube/discovery.h"
#include "lib/kube/kube_api.h"

namespace ferry::cluster_syncer {

struct RolloutInfo {
  enum class State { kUnknown, kReady, kUpdating, kError } state = State::kUnknown;
  int desired = 0;
  int updated = 0;
  int ready = 0;
  int available = 0;
  int outdated = 0;
  int64_t generation = 0;
  int64_t observed_generation = 0;
  std::vector<std::string> messages;
};

struct RunningContainer {
  std::string name;
  std::string image;
  bool init = false;
};

struct ClusterWorkloadInfo {
  std::string id;  // "namespace:kind/name", kind lower-case (manifest::ResourceId)
  std::string kind;
  std::string namespace_;
  std::string name;
  std::vector<RunningContainer> containers;  // containers, then initContainers
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  RolloutInfo rollout;
};

// The rollout status of a workload object of `kind`.
RolloutInfo RolloutOf(const std::string& kind, const nlohmann::json& object);

// Messages for the pods in `pods` (a PodList) whose container runs the image `w`'s spec
// gives that container and waits with a reason the rollout does not recover from by itself
// (CrashLoopBackOff, ImagePullBackOff, InvalidImageName): "pod P container C:
// CrashLoopBackOff: ...". Pods of another spec (an old image) are not counted. At most
// kMaxFailingPodMessages, each waiting message cut (at a UTF-8 character boundary) to
// kMaxPodDetailBytes.
inline constexpr size_t kMaxFailingPodMessages = 3;
inline constexpr size_t kMaxPodDetailBytes = 200;
// Pods listed per rollout check (GetClusterWorkload).
inline constexpr int kRolloutPodsListed = 100;
std::vector<std::string> FailingPods(const ClusterWorkloadInfo& w, const nlohmann::json& pods);

// A workload object as ClusterWorkloadInfo.
ClusterWorkloadInfo WorkloadOf(const std::string& kind, const nlohmann::json& object);

// True for cluster add-ons (kubernetes.io/cluster-service=true, addonmanager.kubernetes.io/mode).
bool IsClusterAddon(const nlohmann::json& object);

// Deployments, DaemonSets, StatefulSets, CronJobs, Jobs (not those a CronJob made) and
// HelmReleases (when the CRD is served) in `ns` (empty: all, or the allowed namespaces when
// `allow` is not empty), add-ons hidden, sorted by id.
absl::StatusOr<std::vector<ClusterWorkloadInfo>> ListClusterWorkloads(
    kube::KubeApi& client, kube::Discovery& discovery, const std::string& ns,
    const std::set<std::string>& allow);
// The same workloads, each given to `fn` as it is listed (in no particular order) rather
// than held together: a caller keeps what it needs of each.
absl::Status ForEachClusterWorkload(kube::KubeApi& client, kube::Discovery& discovery,
                                    const std::string& ns, const std::set<std::string>& allow,
                                    const std::function<void(ClusterWorkloadInfo)>& fn);

// Where a read by name is answered from: the API server's watch cache (`resourceVersion=0`:
// no etcd round trip; the cache follows etcd's changes, usually within moments, but
// Kubernetes promises no bound, and with several API servers an answer may be older than one
// seen before) or etcd itself (everything written before the read began).
enum class ReadFrom { kWatchCache, kEtcd };

// The workloads among `ids` ("namespace:kind/name") that ForEachClusterWorkload would give
// for `ns` and `allow`, each read by a GET of its own, up to `threads` at once: as many
// requests as ids instead of one answer holding every workload of the cluster. An id that is
// not a workload id, or whose workload is not in the cluster, outside `ns` or `allow`, or one
// that a listing hides (an add-on, a CronJob's Job) is left out; an id named twice is read
// once. A HelmRelease whose kind two groups serve is read as GetClusterWorkload reads it (the
// first group that has it), where a listing gives both. PermissionDenied as
// ForEachClusterWorkload for `ns` outside `allow`; the first other failure of a read or of
// discovery fails the call, and no read starts after it. `cancelled` (optional) is asked
// before each read: once it says so, the call ends with CANCELLED. Each read is answered as
// `from` says. Sorted by id.
absl::StatusOr<std::vector<ClusterWorkloadInfo>> GetClusterWorkloads(
    kube::KubeApi& client, kube::Discovery& discovery, const std::vector<std::string>& ids,
    const std::string& ns, const std::set<std::string>& allow, size_t threads, ReadFrom from,
    const std::function<bool()>& cancelled = nullptr);

// One workload by id ("namespace:kind/name"). InvalidArgument, before any call, when `id`
// is not one (manifest::WorkloadId::Parse's message); NotFound when it does not exist;
// discovery's own failure (other than a kind not served) as it is.
// A Deployment, DaemonSet or StatefulSet still updating is also checked for its pods of the
// current revision (listed by its selector, matchLabels and matchExpressions, at most
// kRolloutPodsListed): a Deployment's pods whose pod-template-hash is its ReplicaSet's of
// the current deployment.kubernetes.io/revision, a StatefulSet's whose
// controller-revision-hash is status.updateRevision, a DaemonSet's whose
// pod-template-generation is its template generation. FailingPods among them make its
// rollout ROLLOUT_STATE_ERROR; pods of older revisions never do (an unchanged sidecar that
// was crashing before the release). Pods that cannot be listed (no RBAC for pods or
// replicasets), a revision not known yet, or a selector operator it does not know leave the
// state as it is.
absl::StatusOr<ClusterWorkloadInfo> GetClusterWorkload(kube::KubeApi& client,
                                                       kube::Discovery& discovery,
                                                       const std::string& id);

// Whether a listing of workloads gives `object` of `kind`: not an add-on, nor a Job that a
// CronJob made.
bool Listed(const std::string& kind, const nlohmann::json& object);

// The kinds ListClusterWorkloads reads, as (group, kind).
const std::vector<std::pair<std::string, std::string>>& WorkloadKinds();

}  // namespace ferry::cluster_syncer
