// The syncer against a real API server (tests/kube/cluster.sh), cross-checked with kubectl.
#include "services/cluster-syncer/syncer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/kube/kube_client.h"
#include "tests/support/kube_fixture.h"

namespace ferry::cluster_syncer {
namespace {

// A config repo's files for namespace prefix `p` (every test uses its own).
std::vector<ManifestFileContent> RepoFiles(const std::string& p) {
  auto sub = [&](const std::string& text) { return absl::StrReplaceAll(text, {{"@@", p}}); };
  return {
      {"namespaces.yaml",
       sub("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: @@-apps\n"
           "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: @@-tools\n")},
      {"crd.yaml", sub(R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: @@widgets.example.com
spec:
  group: example.com
  names: {kind: @@Widget, plural: @@widgets, singular: @@widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
)")},
      {"widget.yaml", sub("apiVersion: example.com/v1\nkind: @@Widget\nmetadata:\n  name: w\n"
                          "  namespace: @@-apps\nspec:\n  size: 3\n")},
      {"rbac.yaml", sub(R"(apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: @@-apps}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: @@-apps}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: web-reader, namespace: @@-apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- kind: ServiceAccount
  name: web
  namespace: @@-apps
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: @@-viewer}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get]
)")},
      {"web.yaml", sub(R"(# The web app: config, service, deployment.
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: @@-apps
data:
  port: "8080"
  debug: "yes"
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: @@-apps
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: @@-apps
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: registry.example.com/team/web:1.0.0
        ports:
        - containerPort: 8080
          name: http
      - name: proxy
        image: envoyproxy/envoy:v1.28.0
)")},
      {"cron.yaml", sub(R"(apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: report
  namespace: @@-tools
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: registry.example.com/team/report:2.1.0
)")},
  };
}

class SyncerTest : public testing::KubeSuite {
 protected:
  void SetUp() override {
    KubeSuite::SetUp();
    if (IsSkipped()) return;
    auto access = kube::LoadKubeconfig(cluster_->kubeconfig(), "");
    ASSERT_TRUE(access.ok()) << access.status();
    client_ = std::make_unique<kube::KubeClient>(*access, registry_);
    discovery_ = std::make_unique<kube::Discovery>(*client_);
  }
  std::unique_ptr<Syncer> MakeSyncer(const std::string& set, bool gc = false,
                                     std::set<std::string> allow = {}) {
    SyncOptions o;
    o.sync_set = set;
    o.garbage_collection = gc;
    o.allow_namespaces = std::move(allow);
    return std::make_unique<Syncer>(*client_, *discovery_, o);
  }
  std::string Kubectl(const std::string& args, int* status = nullptr) {
    return cluster_->Kubectl(args, status);
  }
  static std::string Errors(const SyncReport& r) {
    std::string out = r.error;
    for (const auto& e : r.errors)
      absl::StrAppend(&out, "\n", e.resource, " (", e.path, "): ", e.error);
    return out;
  }

  prometheus::Registry registry_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<kube::Discovery> discovery_;
};

TEST_F(SyncerTest, FirstSyncThenNoOpResyncThenOneChangedObject) {
  auto syncer = MakeSyncer("first");
  auto files = RepoFiles("s1");
  SyncReport first = syncer->Sync("rev1", files, false);
  ASSERT_TRUE(first.error.empty()) << first.error;
  EXPECT_EQ(first.failed, 0) << Errors(first);
  EXPECT_EQ(first.applied, 12);
  // kubectl sees what Ferry applied, with the values' types intact.
  int status = 0;
  EXPECT_EQ(
      Kubectl("-n s1-apps get deploy web -o jsonpath={.spec.template.spec.containers[0].image}",
              &status),
      "registry.example.com/team/web:1.0.0");
  EXPECT_EQ(Kubectl("-n s1-apps get cm web-config -o jsonpath={.data.debug}"), "yes");
  // The Service's port had no protocol: 1.20 refuses such an apply unless Ferry writes TCP.
  EXPECT_EQ(Kubectl("-n s1-apps get svc web -o jsonpath={.spec.ports[0].protocol}"), "TCP");
  EXPECT_EQ(Kubectl("-n s1-apps get s1widget w -o jsonpath={.spec.size}"), "3");
  EXPECT_EQ(Kubectl("-n s1-tools get cronjob report -o jsonpath={.spec.schedule}"), "0 * * * *");
  EXPECT_EQ(
      Kubectl("get clusterrole s1-viewer -o 'jsonpath={.metadata.labels.ferry\\.dev/sync-set}'"),
      "first");
  std::string managers =
      Kubectl("-n s1-apps get deploy web -o jsonpath={.metadata.managedFields[*].manager}");
  EXPECT_TRUE(absl::StrContains(managers, "ferry")) << managers;

  // Nothing changed: nothing is written.
  const int64_t writes = client_->writes();
  SyncReport again = syncer->Sync("rev1", files, false);
  EXPECT_EQ(again.failed, 0) << Errors(again);
  EXPECT_EQ(again.applied, 0);
  EXPECT_EQ(again.unchanged, 12);
  EXPECT_EQ(client_->writes(), writes);

  // One image changed in one file: exactly that object is written.
  for (auto& f : files) {
    if (f.path == "web.yaml") {
      f.content = absl::StrReplaceAll(f.content, {{"team/web:1.0.0", "team/web:1.1.0"}});
    }
  }
  SyncReport changed = syncer->Sync("rev2", files, false);
  EXPECT_EQ(changed.failed, 0) << Errors(changed);
  EXPECT_EQ(changed.applied, 1);
  EXPECT_EQ(changed.unchanged, 11);
  EXPECT_EQ(client_->writes(), writes + 1);
  EXPECT_EQ(
      Kubectl("-n s1-apps get deploy web -o jsonpath={.spec.template.spec.containers[0].image}"),
      "registry.example.com/team/web:1.1.0");
}

TEST_F(SyncerTest, AnObjectMovedToAnotherFileIsAppliedAgainWithItsNewSource) {
  auto syncer = MakeSyncer("moved");
  const std::string cm =
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: moving, namespace: default}\n"
      "data: {a: b}\n";
  SyncReport first = syncer->Sync("rev1", {{"old.yaml", cm}}, false);
  ASSERT_EQ(first.applied, 1) << Errors(first);
  SyncReport moved = syncer->Sync("rev2", {{"new/place.yaml", cm}}, false);
  EXPECT_EQ(moved.applied, 1) << Errors(moved);
  EXPECT_EQ(Kubectl("get cm moving -o 'jsonpath={.metadata.annotations.ferry\\.dev/source}'"),
            "new/place.yaml");
}

TEST_F(SyncerTest, BrokenManifestsFailAloneWithTheirReason) {
  auto syncer = MakeSyncer("broken");
  auto files = RepoFiles("s2");
  files.push_back({"bad/invalid-field.yaml",
                   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: s2-apps}\n"
                   "data:\n  nested: {not: allowed}\n"});
  files.push_back(
      {"bad/unknown-kind.yaml",
       "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g, namespace: s2-apps}\n"});
  files.push_back(
      {"bad/wrong-namespace.yaml",
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: s2-nowhere}\n"});
  files.push_back({"bad/not-yaml.yaml", "apiVersion: v1\nkind: [unclosed\n"});
  SyncReport r = syncer->Sync("rev1", files, false);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.applied, 12) << Errors(r);
  EXPECT_EQ(r.failed, 4) << Errors(r);
  std::map<std::string, std::string> by_path;
  for (const auto& e : r.errors) by_path[e.path] = e.error;
  EXPECT_TRUE(absl::StrContains(by_path["bad/invalid-field.yaml"], "nested")) << Errors(r);
  EXPECT_TRUE(absl::StrContains(by_path["bad/unknown-kind.yaml"], "Gadget")) << Errors(r);
  EXPECT_TRUE(absl::StrContains(by_path["bad/wrong-namespace.yaml"], "s2-nowhere")) << Errors(r);
  EXPECT_FALSE(by_path["bad/not-yaml.yaml"].empty()) << Errors(r);
  int status = 0;
  Kubectl("-n s2-apps get deploy web", &status);
  EXPECT_EQ(status, 0);
}

// SyncOptions::manifest_limits (--max_manifest_*) bound loading and YAML->JSON: a document
// over them fails with its file and the flag, the rest is applied.
TEST_F(SyncerTest, ManifestLimitsFailTheDocumentOverThemAlone) {
  SyncOptions o;
  o.sync_set = "limits";
  o.manifest_limits.max_depth = 3;
  Syncer syncer(*client_, *discovery_, o);
  const std::vector<ManifestFileContent> files = {
      {"ok.yaml",
       "apiVersion: v1\nkind: Namespace\nmetadata: {name: s6-limits}\n---\n"
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flat, namespace: s6-limits}\n"
       "data: {a: b}\n"},
      {"deep.yaml",
       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n"
       "  namespace: s6-limits\n  labels: {a: b}\n  annotations: &a {x: y}\n"
       "data: {k: {kk: *a}}\n"}};
  SyncReport r = syncer.Sync("rev1", files, false);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.applied, 2) << Errors(r);
  ASSERT_EQ(r.failed, 1) << Errors(r);
  EXPECT_EQ(r.errors[0].path, "deep.yaml");
  EXPECT_TRUE(absl::StrContains(r.errors[0].error, "deep.yaml:8:")) << Errors(r);
  EXPECT_TRUE(absl::StrContains(r.errors[0].error,
                                "over the limit of 3 levels (raise it with --max_manifest_depth)"))
      << Errors(r);
}

TEST_F(SyncerTest, GarbageCollectionDeletesWhatLeftGitKeepsIgnoredAndForeignObjects) {
  auto syncer = MakeSyncer("gc", /*gc=*/true);
  auto files = RepoFiles("s3");
  files.push_back(
      {"extra.yaml",
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaving, namespace: s3-apps}\n"
       "data: {a: b}\n---\n"
       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: s3-apps\n"
       "data: {a: b}\n"});
  SyncReport first = syncer->Sync("rev1", files, false);
  ASSERT_EQ(first.failed, 0) << Errors(first);
  EXPECT_EQ(first.pruned, 0);
  // "kept" gets an ignore annotation in the cluster; a foreign object has no label.
  int status = 0;
  Kubectl("-n s3-apps annotate cm kept ferry.dev/ignore=true", &status);
  ASSERT_EQ(status, 0);
  Kubectl("-n s3-apps create configmap foreign --from-literal=x=y", &status);
  ASSERT_EQ(status, 0);
  // Both configmaps and the CronJob leave git.
  files.pop_back();
  std::erase_if(files, [](const ManifestFileContent& f) { return f.path == "cron.yaml"; });

  SyncOptions dry;
  dry.sync_set = "gc";
  dry.garbage_collection = true;
  dry.gc_dry_run = true;
  Syncer dry_syncer(*client_, *discovery_, dry);
  SyncReport preview = dry_syncer.Sync("rev2", files, false);
  EXPECT_EQ(preview.pruned, 2) << Errors(preview);
  Kubectl("-n s3-apps get cm leaving", &status);
  EXPECT_EQ(status, 0) << "dry-run GC deleted something";

  SyncReport second = syncer->Sync("rev2", files, false);
  EXPECT_EQ(second.failed, 0) << Errors(second);
  EXPECT_EQ(second.pruned, 2);
  std::vector<std::string> expected = {"s3-apps:configmap/leaving", "s3-tools:cronjob/report"};
  std::vector<std::string> pruned = second.pruned_ids;
  std::sort(pruned.begin(), pruned.end());
  EXPECT_EQ(pruned, expected);
  Kubectl("-n s3-apps get cm leaving", &status);
  EXPECT_NE(status, 0);
  Kubectl("-n s3-apps get cm kept", &status);
  EXPECT_EQ(status, 0);
  Kubectl("-n s3-apps get cm foreign", &status);
  EXPECT_EQ(status, 0);
  Kubectl("-n s3-apps get deploy web", &status);
  EXPECT_EQ(status, 0);
  // The Service's Endpoints carry its labels (copied by a controller) but were never
  // applied by Ferry: not pruned.
  Kubectl("-n s3-apps get endpoints web", &status);
  EXPECT_EQ(status, 0);
}

TEST_F(SyncerTest, NamespaceAllowListSkipsEverythingElse) {
  auto setup = MakeSyncer("allow-setup");
  SyncReport made = setup->Sync("rev0", {RepoFiles("s4")[0]}, false);  // the namespaces
  ASSERT_EQ(made.failed, 0) << Errors(made);
  auto syncer = MakeSyncer("allow", false, {"s4-apps"});
  auto files = RepoFiles("s4");
  std::erase_if(files, [](const ManifestFileContent& f) { return f.path == "widget.yaml"; });
  SyncReport r = syncer->Sync("rev1", files, false);
  EXPECT_EQ(r.failed, 0) << Errors(r);
  // Applied: the s4-apps Namespace and what is in it. Skipped: the other namespace, the CRD
  // and the ClusterRole (cluster-scoped), the CronJob (in s4-tools).
  int status = 0;
  Kubectl("-n s4-tools get cronjob report", &status);
  EXPECT_NE(status, 0) << "a namespace outside the allow-list was written";
  Kubectl("get clusterrole s4-viewer", &status);
  EXPECT_NE(status, 0) << "a cluster-scoped object was written under an allow-list";
  Kubectl("-n s4-apps get deploy web", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(r.applied, 7);
  EXPECT_EQ(r.skipped, 4);
}

// A file git-writer did not serve (over its size limit, a name that is not UTF-8) comes
// with a load error and no content: it fails alone, and what it held is never pruned.
TEST_F(SyncerTest, AFileGitWriterDidNotServeFailsAloneAndKeepsItsObjects) {
  auto syncer = MakeSyncer("unserved", /*gc=*/true);
  auto files = RepoFiles("s7");
  files.push_back({"big.yaml",
                   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: s7-apps}\n"
                   "data: {a: b}\n"});
  SyncReport first = syncer->Sync("rev1", files, false);
  ASSERT_EQ(first.failed, 0) << Errors(first);
  files.back() = {"big.yaml", "",
                  "manifest file size is 5242880 bytes, over the limit of 3145728 bytes (raise it "
                  "with --max_manifest_file_bytes)"};
  SyncReport second = syncer->Sync("rev2", files, false);
  EXPECT_EQ(second.failed, 1) << Errors(second);
  EXPECT_EQ(second.pruned, 0) << Errors(second);
  EXPECT_TRUE(absl::StrContains(Errors(second), "big.yaml: manifest file size is 5242880 bytes"))
      << Errors(second);
  int status = 0;
  Kubectl("-n s7-apps get cm big", &status);
  EXPECT_EQ(status, 0) << "the unserved file's object was pruned";
}

}  // namespace
}  // namespace ferry::cluster_syncer
