// How cluster-syncer reaches the Kubernetes API: a kubeconfig file (its current or a named
// context) or, inside a pod, the service account Kubernetes mounts.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "lib/http/curl_http_client.h"

namespace ferry::kube {

// Everything needed to talk to one API server. Secrets (token, key) stay in here: they are
// never logged or put in errors.
struct ClusterAccess {
  std::string server;  // "https://host:port" (no trailing slash)
  http::CurlOptions tls;
  std::string token;               // bearer token, or
  std::string token_path;          // a file holding it, re-read when it changes (rotation)
  std::string username, password;  // basic auth (rare; kept for old kubeconfigs)
  std::string default_namespace = "default";
  std::string context;  // the context used (kubeconfig only), for messages
};

// Reads `path` and resolves `context` (empty: current-context). Relative file references
// are resolved against the kubeconfig's folder, as kubectl does. InvalidArgument /
// NotFound with what to fix.
absl::StatusOr<ClusterAccess> LoadKubeconfig(const std::string& path, const std::string& context);

// The pod's service account: KUBERNETES_SERVICE_HOST / _PORT, the token, CA and namespace
// files under `account_dir` (default /var/run/secrets/kubernetes.io/serviceaccount).
// FailedPrecondition when not running in a pod.
absl::StatusOr<ClusterAccess> InClusterAccess(
    const std::string& account_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// `kubeconfig` with `context` when a kubeconfig is given, else the pod's service account
// (--kubeconfig empty inside a pod): LoadKubeconfig's or InClusterAccess's errors.
absl::StatusOr<ClusterAccess> LoadClusterAccess(const std::string& kubeconfig,
                                                const std::string& context);

}  // namespace ferry::kube
