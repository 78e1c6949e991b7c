// Test-only: workload ids that every caller must take or refuse alike. WorkloadId's own test
// runs them through Parse and ParseLoose; the api (ValidateReleaseSpec,
// ValidatePolicyChanges), git-writer (ApplyUpdates), the cluster-syncer (GetClusterWorkload)
// and ferryctl (ParseWorkloadId) run them through their public functions, so the four agree
// by test. Before WorkloadId each had its own check, and the comments say which took an id.
#pragma once

#include <string_view>

namespace ferry::manifest::testing {

struct WorkloadIdCase {
  std::string_view text;
  // Empty for a valid id; else a part of the message saying what is wrong.
  std::string_view problem;
  // What WorkloadId::ParseLoose (ferryctl) makes of `text` in namespace "default"; empty when
  // it refuses it too.
  std::string_view loose;
};

inline constexpr WorkloadIdCase kWorkloadIdCases[] = {
    {"default:deployment/helloworld", "", "default:deployment/helloworld"},
    {"kube-system:daemonset/kube-proxy", "", "kube-system:daemonset/kube-proxy"},
    {"team-1:helmrelease/podinfo.v2", "", "team-1:helmrelease/podinfo.v2"},
    {"<cluster>:namespace/team", "", "<cluster>:namespace/team"},
    // Before WorkloadId, which callers took each of the ids below (api, git-writer,
    // cluster-syncer, ferryctl):
    // git-writer, the cluster-syncer; ferryctl lower-cased the kind.
    {"default:Deployment/web", "the kind \"Deployment\" is not lower-case",
     "default:deployment/web"},
    // git-writer, the cluster-syncer (which asked the API server for the object "web/extra").
    {"default:deployment/web/extra", "the name \"web/extra\" is not a Kubernetes object name", ""},
    // The api, the cluster-syncer.
    {"default:deployment/web\nInjected", "the name \"web\\nInjected\"", ""},
    // The api, the cluster-syncer, ferryctl.
    {"default:deployment/web\x01", "the name \"web\\x01\"", ""},
    // git-writer, the cluster-syncer.
    {"default:deploy ment/web", "the kind \"deploy ment\"", ""},
    // All four.
    {"default:deployment/My_App", "the name \"My_App\" is not a Kubernetes object name", ""},
    {"Default:deployment/web", "the namespace \"Default\" is neither <cluster> nor a DNS label",
     ""},
    {"a/b:deployment/web", "the namespace \"a/b\"", ""},
    {"default:deployment/web:8080", "the name \"web:8080\"", ""},
    // The cluster-syncer (which read the name in every namespace, or listed the kind).
    {":deployment/web", "the namespace is empty", ""},
    {"default:deployment/", "the name is empty", ""},
    {"default:/web", "the kind is empty", ""},
    // None.
    {"default:deployment-web", "no '/' between the kind and the name", ""},
};

}  // namespace ferry::manifest::testing
