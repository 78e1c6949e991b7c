#include "lib/kube/election.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lib/kube/kubeconfig.h"
#include "lib/log/log.h"
#include "re2/re2.h"

namespace ferry::kube {

void AddLeaderElectionFlags(CLI::App& app, LeaderElectionFlags& flags,
                            absl::string_view what_the_leader_does) {
  // Leader election on a coordination.k8s.io/v1 Lease, for several replicas: a standby serves
  // reads, answers writes with UNAVAILABLE naming the leader, and reports not ready. The Lease
  // is reached through the Kubernetes API (--kubeconfig or the pod's service account), which
  // needs get, create and update on leases in its namespace.
  app.add_flag(
         "--leader_elect", flags.enabled,
         absl::StrCat("Elect a leader among replicas: only the leader ", what_the_leader_does))
      ->envname("FERRY_LEADER_ELECT");
  // The Lease's name; the component's default is derived from what it serves.
  app.add_option("--leader_elect_lease_name", flags.lease_name, "Lease name")
      ->envname("FERRY_LEADER_ELECT_LEASE_NAME");
  // The Lease's namespace; default the kubeconfig context's or the pod's namespace.
  app.add_option("--leader_elect_namespace", flags.lease_namespace, "Lease namespace")
      ->envname("FERRY_LEADER_ELECT_NAMESPACE");
  // How long a standby waits, after it last saw the Lease change, before taking it over.
  app.add_option("--leader_elect_lease_duration", flags.lease_duration, "Lease duration")
      ->envname("FERRY_LEADER_ELECT_LEASE_DURATION")
      ->capture_default_str();
  // A leader that has not renewed within this stops writing (shorter than the duration).
  app.add_option("--leader_elect_renew_deadline", flags.renew_deadline, "Renew deadline")
      ->envname("FERRY_LEADER_ELECT_RENEW_DEADLINE")
      ->capture_default_str();
  // How often the leader renews and a standby tries to acquire (shorter than the deadline).
  app.add_option("--leader_elect_retry_period", flags.retry_period, "Retry period")
      ->envname("FERRY_LEADER_ELECT_RETRY_PERIOD")
      ->capture_default_str();
}

absl::StatusOr<LeaderElectionConfig> ParseLeaderElection(const LeaderElectionFlags& flags,
                                                         const std::string& default_lease_name) {
  LeaderElectionConfig out;
  out.enabled = flags.enabled;
  auto duration = [](const std::string& flag, const std::string& text, absl::Duration& d) {
    if (!absl::ParseDuration(text, &d) || d < absl::Milliseconds(100) || d > absl::Hours(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", text, "' is not a duration between 100ms and 1h"));
    }
    return absl::OkStatus();
  };
  if (absl::Status s =
          duration("--leader_elect_lease_duration", flags.lease_duration, out.lease_duration);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          duration("--leader_elect_renew_deadline", flags.renew_deadline, out.renew_deadline);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          duration("--leader_elect_retry_period", flags.retry_period, out.retry_period);
      !s.ok()) {
    return s;
  }
  if (out.lease_duration < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "--leader_elect_lease_duration: a Lease counts whole seconds; use 1s or more");
  }
  if (out.renew_deadline >= out.lease_duration) {
    return absl::InvalidArgumentError(
        absl::StrCat("--leader_elect_renew_deadline (", flags.renew_deadline,
                     ") must be shorter than --leader_elect_lease_duration (", flags.lease_duration,
                     "): a leader must stop writing before a standby may take over"));
  }
  if (out.retry_period >= out.renew_deadline) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--leader_elect_retry_period (", flags.retry_period,
        ") must be shorter than --leader_elect_renew_deadline (", flags.renew_deadline, ")"));
  }
  static const RE2 kDnsSubdomain("[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?");
  out.lease_name = flags.lease_name.empty() ? default_lease_name : flags.lease_name;
  if (!RE2::FullMatch(out.lease_name, kDnsSubdomain)) {
    return absl::InvalidArgumentError(absl::StrCat("--leader_elect_lease_name: '", out.lease_name,
                                                   "' is not a Kubernetes object name"));
  }
  static const RE2 kDnsLabel("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
  if (!flags.lease_namespace.empty() && !RE2::FullMatch(flags.lease_namespace, kDnsLabel)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--leader_elect_namespace: '", flags.lease_namespace, "' is not a namespace name"));
  }
  out.lease_namespace = flags.lease_namespace;
  return out;
}

std::string DefaultLeaseName(absl::string_view component, absl::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), digest, &len, EVP_sha256(), nullptr);
  return absl::StrCat(
      "ferry-", component, "-",
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 5)));
}

std::string PodName() {
  const char* pod = std::getenv("POD_NAME");
  if (pod != nullptr && *pod != '\0') return pod;
  char host[256] = {};
  return gethostname(host, sizeof host - 1) == 0 ? host : "";
}

Election MakeElection(const LeaderElectionConfig& config, KubeClient& client,
                      const std::string& component, prometheus::Registry& registry) {
  const std::string ns =
      config.lease_namespace.empty() ? client.access().default_namespace : config.lease_namespace;
  Election election;
  // Each Lease call is over well within a renew deadline, so that a slow one does not alone
  // cost the leader its lease.
  election.lease = std::make_unique<KubeLeaseApi>(
      client, ns, config.lease_name, std::max(config.renew_deadline / 2, absl::Seconds(1)));
  LeaderElector::Options options;
  options.component = component;
  options.lease = ns + "/" + config.lease_name;
  options.identity = MakeIdentity(component, PodName());
  options.lease_duration = config.lease_duration;
  options.renew_deadline = config.renew_deadline;
  options.retry_period = config.retry_period;
  election.elector = std::make_unique<LeaderElector>(*election.lease, options, registry);
  return election;
}

absl::StatusOr<Election> MakeElection(const LeaderElectionConfig& config,
                                      const std::string& kubeconfig, const std::string& context,
                                      const std::string& component,
                                      prometheus::Registry& registry) {
  if (!config.enabled) return Election();
  absl::StatusOr<ClusterAccess> access = LoadClusterAccess(kubeconfig, context);
  if (!access.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--leader_elect needs the Kubernetes API (--kubeconfig, or the service "
                     "account of a pod): ",
                     access.status().message()));
  }
  log::Info("leader election", {{"server", access->server}, {"lease", config.lease_name}});
  auto client = std::make_unique<KubeClient>(*std::move(access), registry);
  Election election = MakeElection(config, *client, component, registry);
  election.client = std::move(client);
  return election;
}

std::function<void(runtime::Server*)> ReadinessFollowsLeadership(LeaderElector* elector) {
  return [elector](runtime::Server* server) {
    if (elector == nullptr) {
      if (server != nullptr) {
        server->SetServingStatus(runtime::kReadinessHealthName, true);
        server->SetServingStatus(runtime::kLeaderHealthName, true);
      }
      return;
    }
    // The sink is called under the elector's lock: once it is removed, no call is under way.
    if (server == nullptr) {
      elector->SetLeadershipSink(nullptr);
      return;
    }
    elector->SetLeadershipSink([server](bool leading) {
      server->SetServingStatus(runtime::kReadinessHealthName, leading);
      server->SetServingStatus(runtime::kLeaderHealthName, leading);
    });
  };
}

}  // namespace ferry::kube
