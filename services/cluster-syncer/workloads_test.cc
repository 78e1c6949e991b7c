// Workloads, rollout status and export: status rules as a table, then against the real API
// server (statuses set by the Deployment controller, and by the test through the status
// subresource of a StatefulSet, whose controller the test cluster does not run).
#include "services/cluster-syncer/workloads.h"

#include <gtest/gtest.h>

#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "lib/kube/fake_discovery_api.h"
#include "lib/kube/kube_client.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_id_test_cases.h"
#include "services/cluster-syncer/export.h"
#include "services/cluster-syncer/syncer.h"
#include "services/cluster-syncer/workload_watch.h"
#include "services/cluster-syncer/workload_watch_testing.h"
#include "tests/support/kube.h"

namespace ferry::cluster_syncer {
namespace {

using State = RolloutInfo::State;

nlohmann::json Deployment(int replicas, int64_t generation, const nlohmann::json& status) {
  return {{"metadata", {{"name", "web"}, {"namespace", "ns"}, {"generation", generation}}},
          {"spec", {{"replicas", replicas}}},
          {"status", status}};
}

// An object of a workload kind as a misbehaving API (or a CRD without a schema) may send:
// fields of other types read as absent, and nothing throws.
TEST(WorkloadOf, FieldsOfOtherTypesReadAsAbsent) {
  const nlohmann::json hostile = nlohmann::json::parse(R"({
    "metadata": {"name": 5, "namespace": [1], "labels": "x", "uid": false},
    "spec": {"replicas": "three", "template": {"spec": {"containers": [
      7, {"name": {"a": 1}, "image": 9}, {"name": "app"}]}}},
    "status": {"observedGeneration": "1",
               "conditions": [3, {"type": 4}, {"type": "Progressing", "reason": {}}]}})");
  for (const char* kind : {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob",
                           "HelmRelease", "FluxHelmRelease"}) {
    ClusterWorkloadInfo w;
    ASSERT_NO_THROW(w = WorkloadOf(kind, hostile)) << kind;
    EXPECT_EQ(w.name, "") << kind;
    EXPECT_EQ(w.namespace_, "") << kind;
  }
  ClusterWorkloadInfo w = WorkloadOf("Deployment", hostile);
  ASSERT_EQ(w.containers.size(), 2u);  // the entries that are objects, names unreadable or not
  EXPECT_EQ(w.containers[1].name, "app");
  EXPECT_EQ(w.containers[1].image, "");
}

// Counts of any size or sign: each reads within [0, INT_MAX], so a difference of two cannot
// overflow, and a float no integer holds reads as absent.
TEST(RolloutOf, CountsOfAnySizeStayInRange) {
  for (const char* kind : {"Deployment", "StatefulSet", "DaemonSet", "Job"}) {
    nlohmann::json object = Deployment(2, 1, nlohmann::json::parse(R"({
        "observedGeneration": 1e300, "replicas": 18446744073709551615, "updatedReplicas": -5,
        "readyReplicas": 1e300, "availableReplicas": -1e300, "succeeded": 9e18,
        "desiredNumberScheduled": 4294967296, "updatedNumberScheduled": -1,
        "currentNumberScheduled": 18446744073709551615})"));
    object["spec"]["replicas"] = 3e9;
    object["metadata"]["generation"] = 1e300;
    RolloutInfo r;
    ASSERT_NO_THROW(r = RolloutOf(kind, object)) << kind;
    EXPECT_GE(r.desired, 0) << kind;
    EXPECT_GE(r.ready, 0) << kind;
    EXPECT_GE(r.updated, 0) << kind;
    EXPECT_GE(r.available, 0) << kind;
    EXPECT_GE(r.outdated, 0) << kind;
    EXPECT_EQ(r.generation, 0) << kind;
    EXPECT_EQ(r.observed_generation, 0) << kind;
  }
  const nlohmann::json deployment = Deployment(2, 1, nlohmann::json::parse(R"({
      "observedGeneration": 1, "replicas": 18446744073709551615, "updatedReplicas": -5,
      "readyReplicas": 1e300})"));
  RolloutInfo r = RolloutOf("Deployment", deployment);
  EXPECT_EQ(r.desired, 2);
  EXPECT_EQ(r.updated, 0);
  EXPECT_EQ(r.ready, 0);
  EXPECT_EQ(r.outdated, std::numeric_limits<int>::max());
}

// Export cleans what it knows the shape of and leaves the rest as the API sent it: fields of
// other types never throw (which would fail the whole export for one odd object).
TEST(CleanForExport, FieldsOfOtherTypesAreLeftAsTheyAre) {
  for (const char* kind : {"Namespace", "Service", "ServiceAccount", "Deployment"}) {
    for (const char* text :
         {R"([1, 2])", R"("text")", R"({"metadata": 5, "spec": [1], "status": 1})",
          R"({"metadata": {"annotations": [1], "labels": "x"}, "spec": "s"})",
          R"({"spec": {"type": 5, "ports": [1, "x", {"nodePort": 30000}], "finalizers": 1}})",
          R"({"spec": {"ports": {"a": {"nodePort": 1}}}})", R"({"spec": {"ports": 5}})"}) {
      nlohmann::json object = nlohmann::json::parse(text);
      EXPECT_NO_THROW(CleanForExport(kind, object)) << kind << " " << text;
    }
  }
  nlohmann::json service = nlohmann::json::parse(R"({
      "metadata": {"name": "web", "uid": "u", "labels": {"a": "b"}},
      "spec": {"type": 5, "clusterIP": "10.0.0.1", "ports": [7, {"port": 80, "nodePort": 30000}]},
      "status": {}})");
  CleanForExport("Service", service);
  EXPECT_EQ(service, nlohmann::json::parse(R"({
      "metadata": {"name": "web", "labels": {"a": "b"}},
      "spec": {"type": 5, "ports": [7, {"port": 80}]}})"));
}

TEST(RolloutOf, DeploymentStatesLikeKubectl) {
  EXPECT_EQ(RolloutOf("Deployment", Deployment(2, 3, {{"observedGeneration", 2}})).state,
            State::kUpdating);  // spec not observed yet
  RolloutInfo partial = RolloutOf("Deployment", Deployment(3, 2,
                                                           {{"observedGeneration", 2},
                                                            {"replicas", 4},
                                                            {"updatedReplicas", 2},
                                                            {"readyReplicas", 3},
                                                            {"availableReplicas", 3}}));
  EXPECT_EQ(partial.state, State::kUpdating);
  EXPECT_EQ(partial.desired, 3);
  EXPECT_EQ(partial.updated, 2);
  EXPECT_EQ(partial.outdated, 2);
  EXPECT_EQ(partial.messages.at(0), "2 of 3 new replicas updated");
  RolloutInfo ready = RolloutOf("Deployment", Deployment(2, 2,
                                                         {{"observedGeneration", 2},
                                                          {"replicas", 2},
                                                          {"updatedReplicas", 2},
                                                          {"readyReplicas", 2},
                                                          {"availableReplicas", 2}}));
  EXPECT_EQ(ready.state, State::kReady);
  EXPECT_TRUE(ready.messages.empty());
  nlohmann::json stuck = Deployment(2, 2, {{"observedGeneration", 2}, {"updatedReplicas", 1}});
  stuck["status"]["conditions"] = {
      {{"type", "Progressing"},
       {"status", "False"},
       {"reason", "ProgressDeadlineExceeded"},
       {"message", "ReplicaSet \"web-1\" has timed out progressing."}}};
  RolloutInfo error = RolloutOf("Deployment", stuck);
  EXPECT_EQ(error.state, State::kError);
  EXPECT_TRUE(absl::StrContains(error.messages.at(0), "timed out")) << error.messages.at(0);
}

TEST(FailingPods, OnlyPodsOfTheSpecsImageStuckInABackOff) {
  ClusterWorkloadInfo w;
  w.containers = {{"app", "registry.test/app:1.1.0", false}};
  auto pod = [](const std::string& name, const std::string& image, const std::string& reason) {
    nlohmann::json state =
        reason.empty() ? nlohmann::json{{"running", nlohmann::json::object()}}
                       : nlohmann::json{{"waiting", {{"reason", reason}, {"message", "back-off"}}}};
    return nlohmann::json{
        {"metadata", {{"name", name}}},
        {"spec", {{"containers", {{{"name", "app"}, {"image", image}}}}}},
        {"status", {{"containerStatuses", {{{"name", "app"}, {"state", state}}}}}}};
  };
  nlohmann::json pods = {{"items",
                          {pod("new-crash", "registry.test/app:1.1.0", "CrashLoopBackOff"),
                           pod("old-crash", "registry.test/app:1.0.0", "CrashLoopBackOff"),
                           pod("new-pull", "registry.test/app:1.1.0", "ImagePullBackOff"),
                           pod("new-creating", "registry.test/app:1.1.0", "ContainerCreating"),
                           pod("new-running", "registry.test/app:1.1.0", "")}}};
  EXPECT_EQ(FailingPods(w, pods),
            (std::vector<std::string>{"pod new-crash container app: CrashLoopBackOff: back-off",
                                      "pod new-pull container app: ImagePullBackOff: back-off"}));
  EXPECT_TRUE(FailingPods(w, nlohmann::json::object()).empty());
}

TEST(FailingPods, ALongWaitingMessageIsCutBetweenUtf8Characters) {
  ClusterWorkloadInfo w;
  w.containers = {{"app", "registry.test/app:1.1.0", false}};
  std::string detail = "x";
  for (int i = 0; i < 150; ++i) detail += "é";  // byte 200 is inside a character
  nlohmann::json pods = {
      {"items",
       {{{"metadata", {{"name", "p"}}},
         {"spec", {{"containers", {{{"name", "app"}, {"image", "registry.test/app:1.1.0"}}}}}},
         {"status",
          {{"containerStatuses",
            {{{"name", "app"},
              {"state",
               {{"waiting", {{"reason", "CrashLoopBackOff"}, {"message", detail}}}}}}}}}}}}}};
  std::vector<std::string> failing = FailingPods(w, pods);
  ASSERT_EQ(failing.size(), 1u);
  const std::string prefix = "pod p container app: CrashLoopBackOff: ";
  ASSERT_TRUE(absl::StartsWith(failing[0], prefix)) << failing[0];
  const std::string kept = failing[0].substr(prefix.size());
  EXPECT_EQ(kept.size(), 199u) << "x and 99 whole characters";
  EXPECT_TRUE(absl::StartsWith(detail, kept));
}

TEST(RolloutOf, JobsAndDaemonSets) {
  nlohmann::json job = {{"spec", {{"completions", 2}}}, {"status", {{"succeeded", 1}}}};
  EXPECT_EQ(RolloutOf("Job", job).state, State::kUpdating);
  job["status"]["conditions"] = {
      {{"type", "Failed"}, {"status", "True"}, {"reason", "BackoffLimitExceeded"}}};
  EXPECT_EQ(RolloutOf("Job", job).state, State::kError);
  nlohmann::json ds = {{"metadata", {{"generation", 1}}},
                       {"status",
                        {{"observedGeneration", 1},
                         {"desiredNumberScheduled", 3},
                         {"updatedNumberScheduled", 3},
                         {"numberAvailable", 2}}}};
  EXPECT_EQ(RolloutOf("DaemonSet", ds).state, State::kUpdating);
  ds["status"]["numberAvailable"] = 3;
  EXPECT_EQ(RolloutOf("DaemonSet", ds).state, State::kReady);
}

TEST(RolloutOf, HelmReleasesOfBothOperatorsByTheirConditions) {
  nlohmann::json fhr = {{"metadata", {{"generation", 2}}}, {"status", {{"observedGeneration", 2}}}};
  EXPECT_EQ(RolloutOf("FluxHelmRelease", fhr).state, State::kUnknown);  // no condition yet
  fhr["status"]["conditions"] = {{{"type", "Released"}, {"status", "True"}}};
  EXPECT_EQ(RolloutOf("FluxHelmRelease", fhr).state, State::kReady);
  fhr["metadata"]["generation"] = 3;  // a new spec the operator has not seen
  EXPECT_EQ(RolloutOf("FluxHelmRelease", fhr).state, State::kUpdating);
  fhr["status"]["conditions"] = {{{"type", "Released"},
                                  {"status", "False"},
                                  {"reason", "HelmUpgradeFailed"},
                                  {"message", "upgrade failed"}}};
  RolloutInfo failed = RolloutOf("FluxHelmRelease", fhr);
  EXPECT_EQ(failed.state, State::kError);
  EXPECT_EQ(failed.messages.at(0), "upgrade failed");
  EXPECT_EQ(RolloutOf("HelmRelease", fhr).state, State::kError);
}

TEST(WorkloadOf, ContainersThenInitContainersAndCronJobTemplates) {
  nlohmann::json cron = {
      {"metadata", {{"name", "report"}, {"namespace", "tools"}, {"labels", {{"a", "b"}}}}},
      {"spec",
       {{"jobTemplate",
         {{"spec",
           {{"template",
             {{"spec",
               {{"containers", {{{"name", "report"}, {"image", "r:1"}}}},
                {"initContainers", {{{"name", "init"}, {"image", "i:1"}}}}}}}}}}}}}}};
  ClusterWorkloadInfo w = WorkloadOf("CronJob", cron);
  EXPECT_EQ(w.id, "tools:cronjob/report");
  ASSERT_EQ(w.containers.size(), 2u);
  EXPECT_EQ(w.containers[0].image, "r:1");
  EXPECT_FALSE(w.containers[0].init);
  EXPECT_EQ(w.containers[1].name, "init");
  EXPECT_TRUE(w.containers[1].init);
  EXPECT_EQ(w.labels.at("a"), "b");
}

using kube::DeploymentsOnlyApi;

// The ids every caller takes or refuses alike (lib/manifest/workload_id_test_cases.h): one
// that is not an id is refused with WorkloadId's message before the API server is asked.
TEST(GetClusterWorkload, TakesWorkloadIdsAsEveryServiceDoes) {
  for (const auto& c : manifest::testing::kWorkloadIdCases) {
    const std::string id(c.text);
    DeploymentsOnlyApi api;
    kube::Discovery discovery(api);
    absl::StatusOr<ClusterWorkloadInfo> w = GetClusterWorkload(api, discovery, id);
    if (c.problem.empty()) {
      EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound) << id << ": " << w.status();
    } else {
      EXPECT_EQ(w.status(), manifest::WorkloadId::Parse(id).status()) << id;
      EXPECT_TRUE(api.gets.empty()) << id << " reached the API server: " << api.gets[0];
    }
  }
  DeploymentsOnlyApi api;
  kube::Discovery discovery(api);
  (void)GetClusterWorkload(api, discovery, "team-1:deployment/web");
  (void)GetClusterWorkload(api, discovery, "<cluster>:deployment/web");
  EXPECT_EQ(api.gets, (std::vector<std::string>{"/apis/apps/v1/namespaces/team-1/deployments/web",
                                                "/apis/apps/v1/deployments/web"}));
}

class ClusterWorkloadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    auto access = kube::LoadKubeconfig(cluster_->kubeconfig(), "");
    ASSERT_TRUE(access.ok()) << access.status();
    client_ = std::make_unique<kube::KubeClient>(*access, registry_);
    discovery_ = std::make_unique<kube::Discovery>(*client_);
  }
  void Apply(const std::string& set, const std::vector<ManifestFileContent>& files) {
    SyncOptions o;
    o.sync_set = set;
    Syncer syncer(*client_, *discovery_, o);
    SyncReport r = syncer.Sync("rev", files, false);
    ASSERT_EQ(r.failed, 0) << (r.errors.empty() ? r.error : r.errors[0].error);
  }
  // Polls GetClusterWorkload until `done` holds (at most 30 s).
  ClusterWorkloadInfo WaitFor(const std::string& id,
                              const std::function<bool(const ClusterWorkloadInfo&)>& done) {
    ClusterWorkloadInfo last;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto w = GetClusterWorkload(*client_, *discovery_, id);
      if (w.ok()) {
        last = *w;
        if (done(last)) break;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return last;
  }

  testing::KubeCluster* cluster_ = nullptr;
  prometheus::Registry registry_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<kube::Discovery> discovery_;
};

constexpr char kWorkloads[] = R"(apiVersion: v1
kind: Namespace
metadata: {name: w1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: w1}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "registry.example.com/web:1.0"}
      initContainers:
      - {name: migrate, image: "registry.example.com/migrate:1.0"}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: w1}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: "postgres:15"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: addon
  namespace: w1
  labels: {addonmanager.kubernetes.io/mode: Reconcile}
spec:
  selector: {matchLabels: {app: addon}}
  template:
    metadata: {labels: {app: addon}}
    spec:
      containers:
      - {name: addon, image: "addon:1"}
)";

TEST_F(ClusterWorkloadsTest, ListsWorkloadsWithRolloutStatusHidingAddons) {
  Apply("workloads", {{"w.yaml", kWorkloads}});
  // No scheduler in the test cluster: the controller creates the pods, none becomes ready.
  ClusterWorkloadInfo web = WaitFor("w1:deployment/web", [](const ClusterWorkloadInfo& w) {
    return w.rollout.observed_generation >= w.rollout.generation && w.rollout.updated == 2;
  });
  EXPECT_EQ(web.rollout.state, State::kUpdating);
  EXPECT_EQ(web.rollout.desired, 2);
  EXPECT_EQ(web.rollout.available, 0);
  ASSERT_EQ(web.containers.size(), 2u);
  EXPECT_EQ(web.containers[1].image, "registry.example.com/migrate:1.0");
  EXPECT_TRUE(web.containers[1].init);

  auto list = ListClusterWorkloads(*client_, *discovery_, "w1", {});
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> ids;
  for (const auto& w : *list) ids.push_back(w.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"w1:deployment/web", "w1:statefulset/db"}));

  // StatefulSet statuses through the status subresource.
  auto sts = discovery_->FindPreferred("apps", "StatefulSet");
  ASSERT_TRUE(sts.ok());
  const std::string status_path = sts->ObjectPath("w1", "db") + "/status";
  ASSERT_TRUE(client_
                  ->MergePatch(status_path, {{"status",
                                              {{"observedGeneration", 1},
                                               {"replicas", 3},
                                               {"readyReplicas", 1},
                                               {"updatedReplicas", 3},
                                               {"currentRevision", "db-1"},
                                               {"updateRevision", "db-1"}}}})
                  .ok());
  auto db = GetClusterWorkload(*client_, *discovery_, "w1:statefulset/db");
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(db->rollout.state, State::kUpdating);
  EXPECT_EQ(db->rollout.messages.at(0), "1 of 3 pods ready");
  ASSERT_TRUE(client_->MergePatch(status_path, {{"status", {{"readyReplicas", 3}}}}).ok());
  db = GetClusterWorkload(*client_, *discovery_, "w1:statefulset/db");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->rollout.state, State::kReady);
  EXPECT_EQ(GetClusterWorkload(*client_, *discovery_, "w1:deployment/nope").status().code(),
            absl::StatusCode::kNotFound);
}

// Named workloads read one by one give what a listing gives for them, and leave out what it
// leaves out.
TEST_F(ClusterWorkloadsTest, NamedWorkloadsReadOneByOneAsAListingHasThem) {
  Apply("workloads", {{"w.yaml", kWorkloads}});
  // The same workloads in namespace w2.
  Apply("workloads-w2", {{"w2.yaml", absl::StrReplaceAll(kWorkloads, {{"w1", "w2"}})}});
  auto list = ListClusterWorkloads(*client_, *discovery_, "w1", {});
  ASSERT_TRUE(list.ok()) << list.status();
  const std::vector<std::string> ids = {
      "w1:statefulset/db", "w1:deployment/web", "w1:deployment/addon", "w1:deployment/nope",
      "w2:deployment/web", "w1:cronjob/web",    "not an id",           "w1:deployment/web"};
  const auto same_as_listed = [&](const std::vector<ClusterWorkloadInfo>& named) {
    ASSERT_EQ(named.size(), list->size());
    for (size_t i = 0; i < list->size(); ++i) {
      const ClusterWorkloadInfo& a = named[i];
      const ClusterWorkloadInfo& b = (*list)[i];
      EXPECT_EQ(a.id, b.id);
      ASSERT_EQ(a.containers.size(), b.containers.size()) << a.id;
      for (size_t c = 0; c < a.containers.size(); ++c) {
        EXPECT_EQ(a.containers[c].image, b.containers[c].image) << a.id;
      }
      EXPECT_EQ(a.labels, b.labels) << a.id;
      EXPECT_EQ(a.rollout.generation, b.rollout.generation) << a.id;
    }
  };
  auto named =
      GetClusterWorkloads(*client_, *discovery_, ids, "w1", {}, /*threads=*/4, ReadFrom::kEtcd);
  ASSERT_TRUE(named.ok()) << named.status();
  same_as_listed(*named);
  const auto ids_of = [](const absl::StatusOr<std::vector<ClusterWorkloadInfo>>& workloads) {
    std::vector<std::string> out;
    if (workloads.ok()) {
      for (const ClusterWorkloadInfo& w : *workloads) out.push_back(w.id);
    }
    return out;
  };
  // From the API server's watch cache: the same, once the cache has caught up with the
  // applies above (moments; waited for up to 10 s).
  absl::StatusOr<std::vector<ClusterWorkloadInfo>> cached;
  for (const absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(20))) {
    cached = GetClusterWorkloads(*client_, *discovery_, ids, "w1", {}, 4, ReadFrom::kWatchCache);
    ASSERT_TRUE(cached.ok()) << cached.status();
    if (ids_of(cached) == ids_of(named)) break;
  }
  ASSERT_EQ(ids_of(cached), ids_of(named)) << "the watch cache did not catch up within 10 s";
  same_as_listed(*cached);
  // Every namespace, then only the allowed ones.
  EXPECT_EQ(
      ids_of(GetClusterWorkloads(*client_, *discovery_, ids, "", {}, 1, ReadFrom::kEtcd)),
      (std::vector<std::string>{"w1:deployment/web", "w1:statefulset/db", "w2:deployment/web"}));
  EXPECT_EQ(ids_of(GetClusterWorkloads(*client_, *discovery_, ids, "", {"w2"}, 1, ReadFrom::kEtcd)),
            (std::vector<std::string>{"w2:deployment/web"}));
  EXPECT_EQ(GetClusterWorkloads(*client_, *discovery_, ids, "w1", {"w2"}, 1, ReadFrom::kEtcd)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

// helm-operator 0.x's FluxHelmRelease, as a Flux v1 repo has it: once its CRD is served, the
// syncer applies it and lists it as a workload with its Released condition.
constexpr char kFluxHelmReleaseCrd[] = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: fluxhelmreleases.flux.weave.works}
spec:
  group: flux.weave.works
  names: {kind: FluxHelmRelease, listKind: FluxHelmReleaseList, plural: fluxhelmreleases,
          singular: fluxhelmrelease}
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
)";

constexpr char kFluxHelmRelease[] = R"(apiVersion: v1
kind: Namespace
metadata: {name: fhr}
---
apiVersion: flux.weave.works/v1beta1
kind: FluxHelmRelease
metadata: {name: podinfo, namespace: fhr}
spec:
  chartGitPath: podinfo
  values:
    image: stefanprodan/podinfo:1.2.0
)";

TEST_F(ClusterWorkloadsTest, ListsFluxHelmReleasesOnceTheirCrdIsServed) {
  Apply("fhr-crd", {{"crd.yaml", kFluxHelmReleaseCrd}});
  // The CRD's kind is discoverable once it is established.
  absl::StatusOr<kube::ApiResource> api = absl::NotFoundError("not yet");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !api.ok() && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(100))) {
    ASSERT_TRUE(discovery_->Refresh().ok());
    api = discovery_->FindPreferred("flux.weave.works", "FluxHelmRelease");
  }
  ASSERT_TRUE(api.ok()) << api.status();
  Apply("fhr", {{"podinfo.yaml", kFluxHelmRelease}});
  auto list = ListClusterWorkloads(*client_, *discovery_, "fhr", {});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->at(0).id, "fhr:fluxhelmrelease/podinfo");
  EXPECT_EQ(list->at(0).rollout.state, State::kUnknown);  // no operator in the test cluster
  ASSERT_TRUE(client_
                  ->MergePatch(api->ObjectPath("fhr", "podinfo") + "/status",
                               {{"status",
                                 {{"observedGeneration", 1},
                                  {"conditions", {{{"type", "Released"}, {"status", "True"}}}}}}})
                  .ok());
  auto released = GetClusterWorkload(*client_, *discovery_, "fhr:fluxhelmrelease/podinfo");
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->rollout.state, State::kReady);
}

// The watch against the real API server: workloads appear, change and go as the API reports
// them, add-ons hidden, without a new listing.
TEST_F(ClusterWorkloadsTest, AWatchFollowsWorkloadsWithoutListingAgain) {
  WorkloadWatch watch(*client_, *discovery_, ImageOnly);
  watch.Start();
  EXPECT_EQ(WaitForWatched(watch, "ww1", ""), "");
  const int64_t listings = watch.listings();
  const std::string workloads = absl::StrReplaceAll(kWorkloads, {{"w1", "ww1"}});
  Apply("watched", {{"w.yaml", workloads}});
  const std::string both =
      "ww1:deployment/web registry.example.com/web:1.0, ww1:statefulset/db postgres:15";
  EXPECT_EQ(WaitForWatched(watch, "ww1", both), both);
  Apply("watched", {{"w.yaml", absl::StrReplaceAll(
                                   workloads, {{"example.com/web:1.0", "example.com/web:2.0"}})}});
  const std::string changed =
      "ww1:deployment/web registry.example.com/web:2.0, ww1:statefulset/db postgres:15";
  EXPECT_EQ(WaitForWatched(watch, "ww1", changed), changed);
  auto sts = discovery_->FindPreferred("apps", "StatefulSet");
  ASSERT_TRUE(sts.ok()) << sts.status();
  ASSERT_TRUE(client_->Delete(sts->ObjectPath("ww1", "db"), false).ok());
  const std::string web = "ww1:deployment/web registry.example.com/web:2.0";
  EXPECT_EQ(WaitForWatched(watch, "ww1", web), web);
  EXPECT_EQ(watch.listings(), listings);
  EXPECT_TRUE(absl::StrContains(Watched(watch, ""), web));
}

TEST_F(ClusterWorkloadsTest, ExportAppliesToAFreshNamespaceWithoutDiff) {
  std::string repo = std::string(kWorkloads);
  repo = absl::StrReplaceAll(repo, {{"w1", "x1"}});
  repo += R"(---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: x1, labels: {app: web}}
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web, namespace: x1, annotations: {team: platform}}
data: {port: "8080", mode: "yes"}
)";
  Apply("export", {{"x.yaml", repo}});
  auto exported = [&](const std::string& ns) {
    ExportOptions o;
    o.namespaces = {ns};
    o.kinds = {"Namespace", "Deployment", "StatefulSet", "Service", "ConfigMap"};
    std::map<std::string, std::string> out;
    absl::Status s = ExportResources(*client_, *discovery_, o,
                                     [&](const std::string& id, const std::string& yaml) {
                                       out[id] = yaml;
                                       return true;
                                     });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  };
  std::map<std::string, std::string> first = exported("x1");
  ASSERT_TRUE(first.count("x1:deployment/web")) << first.size();
  const std::string& deploy = first["x1:deployment/web"];
  for (const char* server_made : {"status:", "uid:", "resourceVersion", "managedFields",
                                  "creationTimestamp", "ferry.dev/", "deployment.kubernetes.io"}) {
    EXPECT_FALSE(absl::StrContains(deploy, server_made)) << server_made << " in\n" << deploy;
  }
  EXPECT_FALSE(absl::StrContains(first["x1:service/web"], "clusterIP:")) << first["x1:service/web"];
  EXPECT_TRUE(absl::StrContains(first["x1:configmap/web"], "port: \"8080\""))
      << first["x1:configmap/web"];

  // Apply the export (renamed to x2) with kubectl, export again: the same documents.
  std::string copy;
  for (const auto& [id, yaml] : first) {
    if (absl::StrContains(id, "kube-root-ca.crt")) continue;
    copy += "---\n" + absl::StrReplaceAll(yaml, {{"x1", "x2"}});
  }
  int status = 0;
  std::string out = cluster_->Kubectl("apply -f -", &status, copy);
  ASSERT_EQ(status, 0) << out;
  std::map<std::string, std::string> second = exported("x2");
  for (const auto& [id, yaml] : first) {
    if (absl::StrContains(id, "kube-root-ca.crt")) continue;
    const std::string id2 = absl::StrReplaceAll(id, {{"x1", "x2"}});
    ASSERT_TRUE(second.count(id2)) << id2;
    // kubectl's own bookkeeping annotation is removed by the export as well.
    EXPECT_EQ(absl::StrReplaceAll(second[id2], {{"x2", "x1"}}), yaml) << id;
  }
}

// A pod of the new spec in CrashLoopBackOff fails the rollout (no kubelet here: the test
// sets the pod's status as a kubelet would).
TEST_F(ClusterWorkloadsTest, APodOfTheNewSpecInCrashLoopBackOffFailsTheRollout) {
  const std::string image = "registry.example.com/crash:1.0";
  Apply("crash", {{"c.yaml",
                   "apiVersion: v1\nkind: Namespace\nmetadata: {name: crash}\n---\n"
                   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, "
                   "namespace: crash}\nspec:\n  replicas: 1\n"
                   "  selector: {matchLabels: {app: crash}}\n  template:\n"
                   "    metadata: {labels: {app: crash}}\n    spec:\n"
                   "      containers: [{name: app, image: \"" +
                       image + "\"}]\n"}});
  std::string pod;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (pod.empty() && absl::Now() < deadline) {
    auto pods = client_->Get("/api/v1/namespaces/crash/pods?labelSelector=app%3Dcrash", "list");
    if (pods.ok() && (*pods)["items"].is_array() && !(*pods)["items"].empty()) {
      pod = (*pods)["items"][0]["metadata"]["name"].get<std::string>();
    } else {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  ASSERT_FALSE(pod.empty()) << "the controller manager made no pod";
  ClusterWorkloadInfo before = WaitFor("crash:deployment/app", [](const ClusterWorkloadInfo& w) {
    return w.rollout.observed_generation >= w.rollout.generation;
  });
  EXPECT_EQ(before.rollout.state, State::kUpdating);
  ASSERT_TRUE(
      client_
          ->MergePatch("/api/v1/namespaces/crash/pods/" + pod + "/status",
                       {{"status",
                         {{"containerStatuses",
                           {{{"name", "app"},
                             {"image", image},
                             {"imageID", ""},
                             {"ready", false},
                             {"restartCount", 5},
                             {"state",
                              {{"waiting",
                                {{"reason", "CrashLoopBackOff"},
                                 {"message", "back-off 5m0s restarting failed container"}}}}}}}}}}})
          .ok());
  ClusterWorkloadInfo after = WaitFor("crash:deployment/app", [](const ClusterWorkloadInfo& w) {
    return w.rollout.state == State::kError;
  });
  ASSERT_EQ(after.rollout.state, State::kError);
  EXPECT_EQ(
      after.rollout.messages.back(),
      "pod " + pod + " container app: CrashLoopBackOff: back-off 5m0s restarting failed container");
}

// Only pods of the current revision count (an unchanged sidecar already crashing in the old
// pods does not fail a release), and a selector's matchExpressions select them.
TEST_F(ClusterWorkloadsTest, OnlyPodsOfTheCurrentRevisionFailTheRollout) {
  auto manifest = [](const std::string& tag) {
    return "apiVersion: v1\nkind: Namespace\nmetadata: {name: side}\n---\n"
           "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: side}\n"
           "spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: side}\n"
           "    matchExpressions: [{key: tier, operator: In, values: [web, api]}]\n"
           "  template:\n    metadata: {labels: {app: side, tier: web}}\n    spec:\n"
           "      containers:\n      - {name: app, image: \"registry.example.com/app:" +
           tag + "\"}\n      - {name: sidecar, image: \"registry.example.com/sidecar:1.0\"}\n";
  };
  auto pods = [&] {
    std::vector<std::string> names;
    auto list = client_->Get("/api/v1/namespaces/side/pods?labelSelector=app%3Dside", "list");
    if (list.ok() && (*list)["items"].is_array()) {
      for (const auto& p : (*list)["items"]) {
        names.push_back(p["metadata"]["name"].get<std::string>());
      }
    }
    return names;
  };
  auto wait_pods = [&](size_t n) {
    std::vector<std::string> names;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while ((names = pods()).size() < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    return names;
  };
  auto crash = [&](const std::string& pod, const std::string& container) {
    nlohmann::json statuses = nlohmann::json::array();
    for (const char* c : {"app", "sidecar"}) {
      nlohmann::json state = nlohmann::json{{"running", nlohmann::json::object()}};
      if (container == c) {
        state = {{"waiting", {{"reason", "CrashLoopBackOff"}, {"message", "back-off"}}}};
      }
      statuses.push_back({{"name", c},
                          {"image", ""},
                          {"imageID", ""},
                          {"ready", false},
                          {"restartCount", 0},
                          {"state", state}});
    }
    ASSERT_TRUE(client_
                    ->MergePatch("/api/v1/namespaces/side/pods/" + pod + "/status",
                                 {{"status", {{"containerStatuses", statuses}}}})
                    .ok());
  };
  Apply("side", {{"s.yaml", manifest("1.0")}});
  std::vector<std::string> first = wait_pods(1);
  ASSERT_EQ(first.size(), 1u) << "the controller manager made no pod";
  const std::string old_pod = first[0];
  // The sidecar crashes in the old pod; then app 1.1 is released.
  crash(old_pod, "sidecar");
  Apply("side", {{"s.yaml", manifest("1.1")}});
  std::vector<std::string> both = wait_pods(2);
  ASSERT_EQ(both.size(), 2u) << "no pod of the new revision";
  const std::string new_pod = both[0] == old_pod ? both[1] : both[0];
  ClusterWorkloadInfo updating = WaitFor("side:deployment/app", [](const ClusterWorkloadInfo& w) {
    return w.rollout.observed_generation >= w.rollout.generation &&
           w.annotations.count("deployment.kubernetes.io/revision") > 0 &&
           w.annotations.at("deployment.kubernetes.io/revision") == "2";
  });
  EXPECT_EQ(updating.rollout.state, State::kUpdating)
      << "the old pod's crashing sidecar is not this rollout's failure: "
      << absl::StrJoin(updating.rollout.messages, "; ");
  // The new pod's app crashes: that fails it, and only that pod is named.
  crash(new_pod, "app");
  ClusterWorkloadInfo failed = WaitFor("side:deployment/app", [](const ClusterWorkloadInfo& w) {
    return w.rollout.state == State::kError;
  });
  ASSERT_EQ(failed.rollout.state, State::kError);
  EXPECT_EQ(failed.rollout.messages.back(),
            "pod " + new_pod + " container app: CrashLoopBackOff: back-off");
  for (const std::string& m : failed.rollout.messages) {
    EXPECT_FALSE(absl::StrContains(m, old_pod)) << m;
  }
}

}  // namespace
}  // namespace ferry::cluster_syncer
