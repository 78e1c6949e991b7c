// cluster-syncer against a real API server (tests/kube/cluster.sh), side by side with
// `kubectl apply --server-side` (kubectl 1.20, built with the server) on the same manifests:
// 1,000 workloads in 10 namespaces, each a Deployment (0 replicas: no pods to schedule in a
// cluster without nodes) and a Service: 2,000 objects plus the namespaces.
//
// - BM_Ferry_FirstSync / BM_Kubectl_FirstSync: everything is new (each in its own set of
//   namespaces).
// - BM_Ferry_NoOpResync / BM_Kubectl_NoOpResync: the same files again; counter `writes` is
//   the number of write requests Ferry sent (the target is 0).
//
// And in process, against FakeKubeApi (no API server: what the syncer itself spends):
// - BM_Syncer_ReleaseOf100: the sync of a revision that changed the image of 100 workloads of
//   the scale benchmarks' repo (bench/scale_repo.h) of 1,000 and of 10,000 workloads, every
//   other file named as known (as git-writer serves it), from the record of the sync before.
// - BM_Syncer_ParseListPage: a list page of 500 Deployments' metadata parsed as the syncer
//   does (managedFields dropped as they are read) and with a plain parse.
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/scale_repo.h"
#include "lib/kube/kube_client.h"
#include "lib/manifest/resource.h"
#include "services/cluster-syncer/fake_kube_api.h"
#include "services/cluster-syncer/syncer.h"
#include "tests/support/git_repo.h"
#include "tests/support/kube.h"

namespace {

using namespace ferry::cluster_syncer;  // NOLINT: a benchmark of this one service
namespace kube = ferry::kube;

constexpr int kNamespaces = 10;
constexpr int kWorkloads = 1000;

std::vector<ManifestFileContent> Files(const std::string& prefix) {
  std::vector<ManifestFileContent> files;
  std::string namespaces;
  for (int n = 0; n < kNamespaces; ++n) {
    absl::StrAppend(&namespaces,
                    "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ", prefix, n, "\n");
  }
  files.push_back({"namespaces.yaml", namespaces});
  for (int i = 0; i < kWorkloads; ++i) {
    const std::string ns = absl::StrCat(prefix, i % kNamespaces);
    files.push_back(
        {absl::StrCat("apps/app-", i, ".yaml"),
         absl::StrCat(
             "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-", i,
             "\n  namespace: ", ns, "\n  labels: {app: app-", i,
             ", team: bench}\nspec:\n  replicas: 0\n"
             "  selector:\n    matchLabels: {app: app-",
             i,
             "}\n  template:\n"
             "    metadata:\n      labels: {app: app-",
             i,
             "}\n    spec:\n"
             "      containers:\n      - name: app\n        image: registry.example.com/team/app-",
             i, ":1.0.", i % 7,
             "\n        ports:\n        - containerPort: 8080\n"
             "        env:\n        - {name: MODE, value: production}\n"
             "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app-",
             i, "\n  namespace: ", ns, "\nspec:\n  selector: {app: app-", i,
             "}\n  ports:\n"
             "  - {port: 80, targetPort: 8080, protocol: TCP}\n")});
  }
  return files;
}

struct Env {
  ferry::testing::KubeCluster* cluster = nullptr;
  std::unique_ptr<prometheus::Registry> registry;
  std::unique_ptr<kube::KubeClient> client;
  std::unique_ptr<kube::Discovery> discovery;
  std::unique_ptr<Syncer> syncer;  // one for both runs, as in the service
  std::string kubectl_dir;

  static Env& Get() {
    static Env* env = [] {
      auto* e = new Env();
      auto cluster = ferry::testing::SharedKubeCluster();
      if (!cluster.ok()) return e;
      auto access = kube::LoadKubeconfig((*cluster)->kubeconfig(), "");
      if (!access.ok()) return e;
      e->cluster = *cluster;
      e->registry = std::make_unique<prometheus::Registry>();
      e->client = std::make_unique<kube::KubeClient>(*access, *e->registry);
      e->discovery = std::make_unique<kube::Discovery>(*e->client);
      SyncOptions o;
      o.sync_set = "bench";
      e->syncer = std::make_unique<Syncer>(*e->client, *e->discovery, o);
      // kubectl gets the same documents (other namespaces) as files in a folder.
      e->kubectl_dir = (*cluster)->dir() + "/kubectl-bench";
      for (const ManifestFileContent& f : Files("kubectl-")) {
        std::filesystem::path p = std::filesystem::path(e->kubectl_dir) / f.path;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p) << f.content;
      }
      return e;
    }();
    return *env;
  }
};

void RunFerry(benchmark::State& state) {
  Env& env = Env::Get();
  if (env.cluster == nullptr) return state.SkipWithError("no Kubernetes API");
  const auto files = Files("ferry-");
  const int64_t writes = env.client->writes();
  SyncReport report;
  for (auto _ : state) report = env.syncer->Sync("bench", files, false);
  if (!report.error.empty() || report.failed > 0) {
    return state.SkipWithError(
        ("sync failed: " + (report.errors.empty() ? report.error : report.errors[0].error))
            .c_str());
  }
  state.counters["objects"] = report.applied + report.unchanged;
  state.counters["applied"] = report.applied;
  state.counters["writes"] = static_cast<double>(env.client->writes() - writes);
}

void BM_Ferry_FirstSync(benchmark::State& state) { RunFerry(state); }
BENCHMARK(BM_Ferry_FirstSync)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Ferry_NoOpResync(benchmark::State& state) { RunFerry(state); }
BENCHMARK(BM_Ferry_NoOpResync)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void RunKubectl(benchmark::State& state) {
  Env& env = Env::Get();
  if (env.cluster == nullptr) return state.SkipWithError("no Kubernetes API");
  int status = 0;
  for (auto _ : state) {
    // The namespaces first, as a person would (kubectl does not order by dependency).
    env.cluster->Kubectl("apply --server-side -f " + env.kubectl_dir + "/namespaces.yaml", &status);
    if (status != 0) return state.SkipWithError("kubectl apply (namespaces) failed");
    std::string out = env.cluster->Kubectl(
        "apply --server-side -R -f " + env.kubectl_dir + "/apps >/dev/null", &status);
    if (status != 0) return state.SkipWithError(("kubectl apply failed: " + out).c_str());
  }
}

void BM_Kubectl_FirstSync(benchmark::State& state) { RunKubectl(state); }
BENCHMARK(BM_Kubectl_FirstSync)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Kubectl_NoOpResync(benchmark::State& state) { RunKubectl(state); }
BENCHMARK(BM_Kubectl_NoOpResync)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Syncer_ReleaseOf100(benchmark::State& state) {
  const int workloads = static_cast<int>(state.range(0));
  std::vector<ManifestFileContent> files;
  for (auto& [path, content] :
       ferry::bench::ScaleRepoFiles(workloads, "team-", "registry.example.com")) {
    files.push_back({path, content});
  }
  FakeKubeApi api;
  kube::Discovery discovery(api);
  SyncOptions o;
  o.sync_set = "bench";
  Syncer syncer(api, discovery, o);
  SyncReport first = syncer.Sync("rev-0", files, false);
  if (!first.error.empty() || first.failed > 0) return state.SkipWithError("first sync failed");
  // The files of workloads 0, N/100, 2N/100, ...: apps/app-I.yaml holds image app-K:1.0.0.
  std::set<std::string> paths;
  for (int r = 0; r < 100; ++r)
    paths.insert(absl::StrCat("apps/app-", r * (workloads / 100), ".yaml"));
  std::vector<size_t> released;
  for (size_t f = 0; f < files.size(); ++f) {
    if (paths.count(files[f].path) > 0) released.push_back(f);
  }
  int version = 0;
  SyncReport report;
  for (auto _ : state) {
    ++version;
    std::vector<ManifestFileContent> served;
    served.reserve(files.size());
    for (const ManifestFileContent& f : files) {
      ManifestFileContent known{f.path, "", ""};
      known.unchanged = true;
      known.hash = ferry::manifest::DocumentHash(f.content);
      served.push_back(std::move(known));
    }
    for (size_t f : released) {
      std::string& content = files[f].content;
      const size_t at = content.find(":1.0.");
      content.replace(at, content.find('\n', at) - at, absl::StrCat(":1.0.", version));
      served[f] = files[f];
    }
    const auto start = std::chrono::steady_clock::now();
    report = syncer.Sync(absl::StrCat("rev-", version), std::move(served), false,
                         Syncer::Live::kFromRecord);
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!report.error.empty() || report.applied != 100) {
      return state.SkipWithError(("sync failed: " + report.error).c_str());
    }
  }
  state.counters["applied"] = report.applied;
  state.counters["unchanged"] = report.unchanged;
}
BENCHMARK(BM_Syncer_ReleaseOf100)
    ->Arg(1000)
    ->Arg(10000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);

// A page of 500 Deployments as the syncer lists them (a PartialObjectMetadataList), each with
// the managedFields an API server keeps for Ferry's apply and the controller manager's status
// updates.
std::string ListPage() {
  std::string page = R"({"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1",)"
                     R"("metadata":{"resourceVersion":"1","continue":"c"},"items":[)";
  for (int i = 0; i < 500; ++i) {
    const std::string name = absl::StrCat("app-", i);
    absl::StrAppend(
        &page, i == 0 ? "" : ",",
        R"({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":")",
        name, R"(","namespace":"team-3","uid":"0b7c1d3e-5f1a-4c2e-9d7b-1a2b3c4d5e6f",)",
        R"("resourceVersion":"123456","generation":2,"creationTimestamp":"2026-12-05T08:00:00Z",)",
        R"("labels":{"app":")", name,
        R"("},"annotations":{"deployment.kubernetes.io/revision":"2",)",
        R"("ferry.dev/checksum":"9f86d081884c7d65"},"managedFields":[{"manager":"ferry",)",
        R"("operation":"Apply","apiVersion":"apps/v1","time":"2026-12-05T08:00:00Z",)",
        R"("fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":)",
        R"({"f:ferry.dev/checksum":{}},"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},)",
        R"("f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":)",
        R"({"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":)",
        R"({"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}},)",
        R"("f:resources":{"f:requests":{"f:cpu":{},"f:memory":{}}}}}}}}}},)",
        R"({"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1",)",
        R"("time":"2026-12-05T08:00:01Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":)",
        R"({"f:annotations":{".":{},"f:deployment.kubernetes.io/revision":{}}},"f:status":)",
        R"({"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},)",
        R"("f:lastTransitionTime":{},"f:lastUpdateTime":{},"f:message":{},"f:reason":{},)",
        R"("f:status":{},"f:type":{}},"k:{\"type\":\"Progressing\"}":{".":{},)",
        R"("f:lastTransitionTime":{},"f:lastUpdateTime":{},"f:message":{},"f:reason":{},)",
        R"("f:status":{},"f:type":{}}},"f:observedGeneration":{},"f:replicas":{},)",
        R"("f:unavailableReplicas":{},"f:updatedReplicas":{}}}}]}})");
  }
  return page + "]}";
}

// One list page read as the syncer reads it (kube::ParseAnswer, which drops each object's
// metadata.managedFields as it parses: arg 1) against the plain parse it replaced (arg 0),
// the parsed page freed within the time as it is in a sync.
void BM_Syncer_ParseListPage(benchmark::State& state) {
  const bool as_syncer = state.range(0) == 1;
  const std::string page = ListPage();
  size_t items = 0;
  for (auto _ : state) {
    if (as_syncer) {
      absl::StatusOr<nlohmann::json> parsed = kube::ParseAnswer(page, "GET /x", "an answer");
      if (!parsed.ok()) return state.SkipWithError(parsed.status().ToString().c_str());
      items = (*parsed)["items"].size();
    } else {
      nlohmann::json parsed = nlohmann::json::parse(page, nullptr, false);
      items = parsed["items"].size();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * page.size()));
  state.counters["items"] = static_cast<double>(items);
  state.counters["page_kb"] = static_cast<double>(page.size()) / 1024;
}
BENCHMARK(BM_Syncer_ParseListPage)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
