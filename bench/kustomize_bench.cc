// Ferry on a kustomize repo (issue 18): git-writer and cluster-syncer, the real binaries,
// against a bare git repo over file:// and a real kube-apiserver (tests/kube/cluster.sh), side
// by side with `kubectl apply --server-side -k` per root in the same run.
//
// The repo: 10 bases (base-B/: a kustomization and 10 Deployments, replicas: 0, one container
// each) and 10 overlays per base (overlays/base-B-O/: a namespace of its own, `resources:
// [../../base-B]` and an `images:` entry with a tag of its own): 100 roots rendering 1,000
// workloads, plus namespaces.yaml (plain YAML, the 100 namespaces): 1,100 objects.
//
//   BM_Kustomize_Ferry_FirstSync         git-writer and cluster-syncer started on the repo ->
//                                        the sync result shows every object applied (the time
//                                        includes both start-ups and git-writer's builds);
//                                        counter `builds` from git-writer's
//                                        ferry_git_kustomize_roots_total{outcome="built"}
//   BM_Kustomize_Kubectl_FirstSync       the same files in namespaces of their own: one
//                                        `kubectl apply --server-side -f namespaces.yaml`, then
//                                        `kubectl apply --server-side -k overlays/base-B-O` per
//                                        root (the kubectl on PATH, whose kustomize is current,
//                                        with the test cluster's kubeconfig; the label says which)
//   BM_Kustomize_Ferry_NoOpResync        SyncNow of the same head: counters `builds` and
//                                        `writes` (write requests to the API server); the
//                                        benchmark fails unless both are 0
//   BM_Kustomize_Kubectl_NoOpResync      the 101 kubectl commands again
//   BM_Kustomize_Ferry_ChangedBaseResync a commit that changes one file of base-0, then
//                                        SyncNow: the benchmark fails unless git-writer built
//                                        the 10 roots over base-0 and took the 90 others from
//                                        its cache
//
// The kubectl rows carry the Ferry figure they compare with (`ferry_ms`) and the ratio
// (`ferry_over_kubectl`). The benchmarks share one stack and run in this order, about three
// minutes in all:
//
//   build/bench/kustomize_bench
//
// With FERRY_TEST_KUBE_DIR the cluster running there is used (tests/support/kube.h) and the
// benchmark's namespaces are deleted at the end; otherwise a cluster is started for the run.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/stack_bench.h"
#include "ferry/v1/cluster_syncer.pb.h"
#include "tests/support/git_repo.h"
#include "tests/support/kube.h"

namespace {

using ferry::bench::Service;
using ferry::testing::GitRepo;
using ferry::testing::KubeCluster;
using ferry::testing::RunCommand;

constexpr int kBases = 10;
constexpr int kDeploymentsPerBase = 10;
constexpr int kOverlaysPerBase = 10;
constexpr int kRoots = kBases * kOverlaysPerBase;
constexpr int kWorkloads = kRoots * kDeploymentsPerBase;
constexpr int kObjects = kWorkloads + kRoots;  // and a namespace per root
// Never pulled: every Deployment has replicas: 0.
constexpr char kImage[] = "registry.example.com/bench/app-";
constexpr absl::Duration kStepTimeout = absl::Minutes(3);

std::string OverlayFolder(int base, int overlay) {
  return absl::StrCat("overlays/base-", base, "-", overlay);
}

// Deployment `app-B-D` of base B; `revision` goes into an annotation (the changed-base commit
// raises it).
std::string Deployment(int base, int d, int revision) {
  const std::string name = absl::StrCat("app-", base, "-", d);
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
                      "\n  annotations: {bench/revision: \"", revision, "\"}\nspec:\n",
                      "  replicas: 0\n  selector:\n    matchLabels: {app: ", name,
                      "}\n  template:\n    metadata:\n      labels: {app: ", name,
                      "}\n    spec:\n      containers:\n      - name: app\n        image: ", kImage,
                      base, ":1.0.0\n");
}

// The generated repo; overlay O of base B deploys into namespace PREFIX B-O.
std::map<std::string, std::string> RepoFiles(const std::string& prefix) {
  std::map<std::string, std::string> files;
  std::string& namespaces = files["namespaces.yaml"];
  for (int b = 0; b < kBases; ++b) {
    std::string& base = files[absl::StrCat("base-", b, "/kustomization.yaml")];
    base = "resources:\n";
    for (int d = 0; d < kDeploymentsPerBase; ++d) {
      absl::StrAppend(&base, "- deploy-", d, ".yaml\n");
      files[absl::StrCat("base-", b, "/deploy-", d, ".yaml")] = Deployment(b, d, 1);
    }
    for (int o = 0; o < kOverlaysPerBase; ++o) {
      const std::string ns = absl::StrCat(prefix, b, "-", o);
      absl::StrAppend(&namespaces, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ", ns,
                      "\n");
      files[OverlayFolder(b, o) + "/kustomization.yaml"] =
          absl::StrCat("namespace: ", ns, "\nresources:\n- ../../base-", b,
                       "\nimages:\n- name: ", kImage, b, "\n  newTag: \"1.0.", o + 1, "\"\n");
    }
  }
  return files;
}

// "kubectl vX.Y.Z (kustomize vA.B.C)" of the kubectl on PATH.
std::string KubectlVersion() {
  std::string client = "?", kustomize = "?";
  for (absl::string_view line : absl::StrSplit(RunCommand("kubectl version --client 2>&1"), '\n')) {
    if (absl::ConsumePrefix(&line, "Client Version: ")) client = std::string(line);
    if (absl::ConsumePrefix(&line, "Kustomize Version: ")) kustomize = std::string(line);
  }
  return absl::StrCat("kubectl ", client, " (kustomize ", kustomize, ")");
}

// Roots of git-writer's indexed revisions so far by outcome (built, cached, failed); -1 when
// its metrics cannot be read.
double Roots(const Service& git, const std::string& outcome) {
  return ferry::bench::MetricSum(git, "ferry_git_kustomize_roots_total{",
                                 {absl::StrCat("outcome=\"", outcome, "\"")});
}

// One stack for all the benchmarks of the process, built as they need it.
class Stack {
 public:
  // The stack of this process; stopped at exit, before the shared cluster is.
  static Stack& Get() {
    static Stack stack;
    return stack;
  }

  // Why the stack is unusable; empty when it is fine.
  const std::string& error() const { return error_; }

  // Starts git-writer and cluster-syncer (once) and waits for a sync of every object.
  absl::StatusOr<ferry::bench::CompleteSync> FirstSync() {
    if (error_.empty() && !first_sync_) StartFerry();
    if (!error_.empty()) return absl::FailedPreconditionError(error_);
    return *first_sync_;
  }

  absl::StatusOr<ferry::v1::SyncResult> Resync() {
    if (absl::StatusOr<ferry::bench::CompleteSync> first = FirstSync(); !first.ok()) {
      return first.status();
    }
    return ferry::bench::SyncNow(syncer_, kStepTimeout);
  }

  const Service& git() const { return git_; }
  const Service& syncer() const { return syncer_; }
  GitRepo& repo() { return *repo_; }
  const std::string& kubectl_dir() const { return kubectl_dir_; }
  const std::string& kubectl_version() const { return kubectl_version_; }
  KubeCluster& cluster() { return *cluster_; }

  // Ferry's figures, for the kubectl rows' ratios (ms; 0 until measured).
  double ferry_first_ms = 0;
  double ferry_noop_ms = 0;

 private:
  Stack() {
    ferry::bench::BenchRun run = ferry::bench::StartBenchRun("kustomize-bench");
    dir_ = run.dir;
    run_id_ = run.run_id;
    cluster_ = run.cluster;
    error_ = run.error;
    if (!error_.empty()) return;
    auto repo = GitRepo::Create(RepoFiles(Prefix("ferry")));
    if (!repo.ok()) {
      error_ = "git repo: " + repo.status().ToString();
      return;
    }
    repo_ = *std::move(repo);
    // kubectl gets the same tree in namespaces of its own, as files in a folder.
    kubectl_dir_ = dir_ + "/kubectl";
    ferry::bench::WriteTree(kubectl_dir_, RepoFiles(Prefix("kubectl")));
    kubectl_version_ = KubectlVersion();
  }

  ~Stack() {
    for (Service* s : {&syncer_, &git_}) s->process.reset();
    // The benchmark's namespaces, in a cluster that outlives this process.
    if (cluster_ != nullptr && std::getenv("FERRY_TEST_KUBE_DIR") != nullptr) {
      std::string names;
      for (const char* who : {"ferry", "kubectl"}) {
        for (int b = 0; b < kBases; ++b) {
          for (int o = 0; o < kOverlaysPerBase; ++o) {
            absl::StrAppend(&names, " ", Prefix(who), b, "-", o);
          }
        }
      }
      cluster_->Kubectl("delete namespace --wait=false" + names);
    }
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string Prefix(const std::string& who) const {
    return absl::StrCat("kz-", run_id_, "-", who, "-");
  }

  void Start(Service* service, const std::vector<std::string>& argv) {
    ferry::bench::StartServiceInto(service, argv, kStepTimeout, &error_);
  }

  void StartFerry() {
    const absl::Time start = absl::Now();
    Start(&git_,
          {FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
           "--git_url=" + repo_->url(), "--state_dir=" + dir_ + "/git", "--git_poll_interval=1h"});
    Start(&syncer_,
          {FERRY_CLUSTER_SYNCER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
           "--kubeconfig=" + cluster_->kubeconfig(), "--git_writer_address=" + git_.target(),
           "--sync_interval=1h", "--sync_set=kz-" + run_id_});
    if (!error_.empty()) return;
    absl::StatusOr<ferry::bench::CompleteSync> sync = ferry::bench::WaitForCompleteSync(
        syncer_, kObjects, start, kStepTimeout, "kustomize_bench");
    if (!sync.ok()) {
      error_ = std::string(sync.status().message());
      return;
    }
    first_sync_ = *std::move(sync);
  }

  std::string error_;
  std::string dir_;
  std::string run_id_;
  KubeCluster* cluster_ = nullptr;
  std::unique_ptr<GitRepo> repo_;
  std::string kubectl_dir_;
  std::string kubectl_version_;
  Service git_, syncer_;
  std::optional<ferry::bench::CompleteSync> first_sync_;
};

void SetSizeCounters(benchmark::State& state) {
  state.counters["roots"] = kRoots;
  state.counters["workloads"] = kWorkloads;
  state.counters["objects"] = kObjects;
}

void BM_Kustomize_Ferry_FirstSync(benchmark::State& state) {
  Stack& stack = Stack::Get();
  absl::StatusOr<ferry::bench::CompleteSync> sync = stack.FirstSync();
  if (!sync.ok()) return state.SkipWithError(sync.status().ToString().c_str());
  for (auto _ : state) state.SetIterationTime(sync->seconds);
  stack.ferry_first_ms = sync->seconds * 1e3;
  const double built = Roots(stack.git(), "built");
  const double failed = Roots(stack.git(), "failed");
  if (built < kRoots || failed != 0) {
    return state.SkipWithError(
        absl::StrCat("git-writer built ", built, " roots of ", kRoots, ", ", failed, " failed")
            .c_str());
  }
  SetSizeCounters(state);
  state.counters["applied"] = sync->result.applied();
  state.counters["builds"] = built;
  state.counters["build_seconds"] =
      ferry::bench::MetricSum(stack.git(), "ferry_git_kustomize_build_duration_seconds_sum ");
  state.counters["failed_syncs"] = sync->failed_syncs;
  if (sync->failed_syncs > 0) state.SetLabel("first error: " + sync->first_error);
}
BENCHMARK(BM_Kustomize_Ferry_FirstSync)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// The kubectl copy of the repo: namespaces.yaml first (kubectl does not order by dependency),
// then `-k` of each root, one after the other, with the kubectl on PATH. `ferry_ms` is the
// Ferry figure of the same step.
void RunKubectl(benchmark::State& state, double ferry_ms) {
  Stack& stack = Stack::Get();
  if (!stack.error().empty()) return state.SkipWithError(stack.error().c_str());
  const std::string kubectl =
      absl::StrCat("kubectl --kubeconfig ", stack.cluster().kubeconfig(), " apply --server-side ");
  const std::string dir = stack.kubectl_dir();
  double seconds = 0, namespaces_seconds = 0;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    int status = 0;
    std::string out = RunCommand(kubectl + "-f " + dir + "/namespaces.yaml 2>&1", &status);
    if (status != 0) return state.SkipWithError(("kubectl apply (namespaces): " + out).c_str());
    namespaces_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    for (int b = 0; b < kBases; ++b) {
      for (int o = 0; o < kOverlaysPerBase; ++o) {
        out = RunCommand(absl::StrCat(kubectl, "-k ", dir, "/", OverlayFolder(b, o), " 2>&1"),
                         &status);
        if (status != 0) return state.SkipWithError(("kubectl apply -k: " + out).c_str());
      }
    }
    seconds = absl::ToDoubleSeconds(absl::Now() - start);
    state.SetIterationTime(seconds);
  }
  SetSizeCounters(state);
  state.counters["kubectl_runs"] = kRoots + 1;
  state.counters["namespaces_ms"] = namespaces_seconds * 1e3;
  state.counters["ferry_ms"] = ferry_ms;
  if (ferry_ms > 0) state.counters["ferry_over_kubectl"] = ferry_ms / (seconds * 1e3);
  state.SetLabel(stack.kubectl_version() + " from PATH, the test cluster's kubeconfig");
}

void BM_Kustomize_Kubectl_FirstSync(benchmark::State& state) {
  RunKubectl(state, Stack::Get().ferry_first_ms);
}
BENCHMARK(BM_Kustomize_Kubectl_FirstSync)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// git-writer's roots built and taken from its cache, and the syncer's write requests, so far.
struct Tally {
  double built = 0, cached = 0, writes = 0;
};

Tally Count(const Stack& stack) {
  return {Roots(stack.git(), "built"), Roots(stack.git(), "cached"),
          ferry::bench::SyncerWrites(stack.syncer())};
}

// Sets the counters of a re-sync (`result` its last sync) since `before`; returns the change.
Tally SetResyncCounters(benchmark::State& state, const Stack& stack, const Tally& before,
                        const ferry::v1::SyncResult& result) {
  const Tally now = Count(stack);
  const Tally change = {now.built - before.built, now.cached - before.cached,
                        now.writes - before.writes};
  SetSizeCounters(state);
  state.counters["applied"] = result.applied();
  state.counters["unchanged"] = result.unchanged();
  state.counters["builds"] = change.built;
  state.counters["cached"] = change.cached;
  state.counters["writes"] = change.writes;
  return change;
}

void BM_Kustomize_Ferry_NoOpResync(benchmark::State& state) {
  Stack& stack = Stack::Get();
  if (absl::StatusOr<ferry::bench::CompleteSync> first = stack.FirstSync(); !first.ok()) {
    return state.SkipWithError(first.status().ToString().c_str());
  }
  const Tally before = Count(stack);
  ferry::v1::SyncResult result;
  double sum = 0;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    absl::StatusOr<ferry::v1::SyncResult> r = stack.Resync();
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    state.SetIterationTime(seconds);
    sum += seconds;
    result = *std::move(r);
  }
  stack.ferry_noop_ms = sum / static_cast<double>(state.iterations()) * 1e3;
  const Tally change = SetResyncCounters(state, stack, before, result);
  if (change.built != 0 || change.writes != 0) {
    state.SkipWithError(absl::StrCat("an unchanged re-sync built ", change.built,
                                     " roots and sent ", change.writes,
                                     " write requests; both should be 0")
                            .c_str());
  }
}
BENCHMARK(BM_Kustomize_Ferry_NoOpResync)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

void BM_Kustomize_Kubectl_NoOpResync(benchmark::State& state) {
  RunKubectl(state, Stack::Get().ferry_noop_ms);
}
BENCHMARK(BM_Kustomize_Kubectl_NoOpResync)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// base-0/deploy-0.yaml gets a new annotation value: one rendered Deployment changes in each of
// the 10 roots over base-0.
void BM_Kustomize_Ferry_ChangedBaseResync(benchmark::State& state) {
  Stack& stack = Stack::Get();
  if (absl::StatusOr<ferry::bench::CompleteSync> first = stack.FirstSync(); !first.ok()) {
    return state.SkipWithError(first.status().ToString().c_str());
  }
  const Tally before = Count(stack);
  ferry::v1::SyncResult result;
  for (auto _ : state) {
    absl::StatusOr<std::string> head = stack.repo().CommitWithCli(
        {{"base-0/deploy-0.yaml", Deployment(0, 0, 2)}}, "Change base-0");
    if (!head.ok()) return state.SkipWithError(head.status().ToString().c_str());
    const absl::Time start = absl::Now();
    absl::StatusOr<ferry::v1::SyncResult> r = stack.Resync();
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    if (r->revision() != *head) {
      return state.SkipWithError(
          absl::StrCat("synced ", r->revision(), ", not the new head ", *head).c_str());
    }
    result = *std::move(r);
  }
  const Tally change = SetResyncCounters(state, stack, before, result);
  if (change.built != kOverlaysPerBase || change.cached != kRoots - kOverlaysPerBase) {
    state.SkipWithError(absl::StrCat("after a change of one base, git-writer built ", change.built,
                                     " roots and took ", change.cached,
                                     " from its cache; expected ", kOverlaysPerBase, " and ",
                                     kRoots - kOverlaysPerBase)
                            .c_str());
  }
}
BENCHMARK(BM_Kustomize_Ferry_ChangedBaseResync)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // bench_report.py tells this benchmark's output by this context field.
  benchmark::AddCustomContext("kustomize_roots", std::to_string(kRoots));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
