// A real Kubernetes API for tests: tests/kube/cluster.sh (etcd + kube-apiserver +
// kube-controller-manager on loopback, built from Debian's kubernetes source package),
// started once and stopped (SIGTERM) when this object goes.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace ferry::testing {

class KubeCluster {
 public:
  // Starts a cluster with its files under `dir`; waits until the API is ready (up to 20 min
  // the first time on a machine: the binaries are built then).
  static absl::StatusOr<std::unique_ptr<KubeCluster>> Start(const std::string& dir);
  // A cluster started by someone else (tests/kube/cluster.sh DIR) and left running when this
  // object goes. Unavailable when `dir` holds no ready cluster.
  static absl::StatusOr<std::unique_ptr<KubeCluster>> Attach(const std::string& dir);
  ~KubeCluster();

  const std::string& dir() const { return dir_; }
  // "https://127.0.0.1:PORT".
  const std::string& server() const { return server_; }
  // A kubeconfig with the admin token and the cluster CA.
  std::string kubeconfig() const { return dir_ + "/kubeconfig"; }
  std::string ca_path() const { return dir_ + "/ca.crt"; }
  std::string token() const;
  // The folder of the cluster's own binaries (kubectl 1.20 among them).
  const std::string& bin() const { return bin_; }
  // Runs the matching kubectl (1.20) with this kubeconfig; returns its output (stdout and
  // stderr) and sets `status` to the exit code.
  std::string Kubectl(const std::string& args, int* status = nullptr,
                      const std::string& stdin_text = "") const;

 private:
  KubeCluster() = default;
  std::string dir_;
  std::string server_;
  std::string bin_;
  std::unique_ptr<Subprocess> process_;
};

// One cluster for the whole test process, started on first use under a temporary folder
// and stopped at exit. With FERRY_TEST_KUBE_DIR set, the cluster already running with its
// files in that folder instead (one cluster for several test processes:
// tests/support/kube_ctest_fixture.sh). The error says why there is none.
absl::StatusOr<KubeCluster*> SharedKubeCluster();

}  // namespace ferry::testing
