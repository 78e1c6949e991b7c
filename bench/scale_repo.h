// The generated repo of the scale benchmarks (scale_bench, git_writer_memory): N workloads,
// each a Deployment and its Service in a file of its own, over 10 namespaces and 10 images.
#pragma once

#include <map>
#include <string>

#include "absl/strings/str_cat.h"

namespace ferry::bench {

constexpr int kScaleNamespaces = 10;
constexpr int kScaleImages = 10;

// The image (0..kScaleImages-1: bench/app-K) that workload `i` uses.
inline int ScaleImageOf(int i) { return (i / kScaleNamespaces) % kScaleImages; }

// The id of workload `i` in a repo made with `prefix`.
inline std::string ScaleWorkloadId(const std::string& prefix, int i) {
  return absl::StrCat(prefix, i % kScaleNamespaces, ":deployment/app-", i);
}

// namespaces.yaml (namespaces PREFIX0..9) and apps/app-I.yaml for I < `workloads`: workload I
// in namespace PREFIX(I % 10) with image `registry`/bench/app-((I / 10) % 10):1.0.0, its
// Deployment with replicas: 0 (nothing to schedule). 2 * workloads + 10 objects.
inline std::map<std::string, std::string> ScaleRepoFiles(int workloads, const std::string& prefix,
                                                         const std::string& registry) {
  std::map<std::string, std::string> files;
  std::string& namespaces = files["namespaces.yaml"];
  for (int n = 0; n < kScaleNamespaces; ++n) {
    absl::StrAppend(&namespaces,
                    "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ", prefix, n, "\n");
  }
  for (int i = 0; i < workloads; ++i) {
    const std::string ns = absl::StrCat(prefix, i % kScaleNamespaces);
    const std::string name = absl::StrCat("app-", i);
    files[absl::StrCat("apps/", name, ".yaml")] = absl::StrCat(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name, "\n  namespace: ", ns,
        "\n  labels: {app: ", name, ", team: bench}\nspec:\n  replicas: 0\n  selector:\n",
        "    matchLabels: {app: ", name,
        "}\n  template:\n    metadata:\n      labels: {app: ", name,
        "}\n    spec:\n      containers:\n      - name: app\n        image: ", registry,
        "/bench/app-", ScaleImageOf(i), ":1.0.0\n",
        "        ports:\n        - containerPort: 8080\n          protocol: TCP\n",
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ", name, "\n  namespace: ", ns,
        "\nspec:\n  selector: {app: ", name,
        "}\n  ports:\n  - {port: 80, targetPort: 8080, protocol: TCP}\n");
  }
  return files;
}

}  // namespace ferry::bench
