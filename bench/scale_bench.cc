// Ferry at scale: the four real binaries, a real registry, bare git repos over file:// and a
// real kube-apiserver (tests/kube/cluster.sh), all on loopback, with a generated repo of N
// workloads, side by side with the baselines of the same run.
//
// The repo: namespaces.yaml (10 namespaces) and apps/app-I.yaml per workload, a Deployment
// (replicas: 0: nothing to schedule) and its Service: 2N + 10 objects. The Deployments use
// 10 images of the local registry, N/10 each; the release changes `bench/app-0`.
//
//   BM_Scale_Ferry_FirstSync      cluster-syncer started on the repo -> its sync result shows
//                                 every object applied (the time includes its start-up, and
//                                 the retries of syncs that failed as a whole: counter
//                                 `failed_syncs`, the first one's error in the label)
//   BM_Scale_Ferry_NoOpResync     SyncNow of the same head; counter `writes` = write requests
//                                 the syncer sent to the API server (the target is 0)
//   BM_Scale_Ferry_ListWorkloads  the api's ListWorkloads of everything, following
//                                 next_page_token to the end
//   BM_Scale_Ferry_Release        a new tag of bench/app-0 for its N/10 workloads through the
//                                 api (no rollout wait): time = request -> commit pushed (the
//                                 job's COMMIT_PUSHED stage); counters: the same and job done
//   BM_Scale_Ferry_ReleaseOf100   the same for 100 of those workloads named in the request: a
//                                 change of the same size at every N (the whole release at
//                                 1,000), so its growth with N is what the repo's size costs
//   BM_Scale_Ferry_ReleaseOf100Settled  the same, each release once the machine is quiet
//                                 (the cluster's processes and the services together under 40%
//                                 of one core; `unsettled` counts the waits that gave up
//                                 after 30 s); the two release benchmarks before it start each
//                                 release as the last one ends, while the controllers still
//                                 make its ReplicaSets on the same two cores
//   The release benchmarks also report `cpu_ms_to_pushed_<process>`: the CPU each service and
//   cluster process used from the request until the push was seen, mean per release, and
//   `syncer_lists` / `syncer_gets`: the list and get requests the syncer sent meanwhile (a
//   release's planning is answered from a listing up to 10 s old, else by a get of each
//   named workload). From the push to the job seen done (the sync that applies the commit):
//   `cpu_ms_pushed_to_done_<process>`, and `cluster_cores_share_pushed_to_done`, the share of
//   the machine's cores the cluster's processes held meanwhile (near 1: the apply waits for
//   the API server and etcd, not for Ferry).
//   BM_Scale_Ferry_ReadLoad       FERRY_SCALE_LOAD_CLIENTS (default 16) clients reading from
//                                 the api (ListWorkloads' first page, ListImages of one
//                                 workload, GetVersion) for
//                                 FERRY_SCALE_LOAD_SECONDS (default 10 s) with a release
//                                 submitted meanwhile: requests/s, p50/p99 per kind, release time
//   BM_Scale_GitCli_Release       the manual path with the git CLI on a bare repo with the same
//                                 files: clone --depth 1, grep, sed, commit, push
//   BM_Scale_Kubectl_FirstSync    `kubectl apply --server-side` of the same files into a fresh
//                                 set of namespaces (namespaces.yaml first, then -R apps/)
//   BM_Scale_Kubectl_NoOpResync   the same command again
//   BM_Scale_PeakRss              VmHWM of each service after all of the above (counters, MB)
//
// The first syncs also report the CPU seconds etcd, kube-apiserver and kube-controller-manager
// used meanwhile (`cpu_s_<process>`, `cluster_cpu_s` in all) and that work spread over every
// core (`cluster_cpu_per_core_ms`): how long the cluster's own work takes on this machine
// when it keeps up with the client (the controllers' part may also lag behind it).
//
// The benchmarks share one stack and run in this order (Ferry's listing before kubectl adds
// N more workloads to the cluster). Size: --workloads=N or FERRY_SCALE_WORKLOADS=N (the flag
// wins), default 1000; the context field `workloads` and each benchmark's counter say which.
//
//   build/bench/scale_bench                            1,000 workloads, a few minutes
//   FERRY_SCALE_WORKLOADS=10000 build/bench/scale_bench
//
// FERRY_SCALE_LOG_DIR=DIR keeps each service's log and last metrics in DIR/<service>.log and
// DIR/<service>.metrics.
//
// With FERRY_TEST_KUBE_DIR the cluster running there is used (tests/support/kube.h) and the
// benchmark's namespaces are deleted at the end; otherwise a cluster is started for the run.
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_args.h"
#include "bench/scale_repo.h"
#include "bench/stack_bench.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "tests/support/git_repo.h"
#include "tests/support/http.h"
#include "tests/support/kube.h"
#include "tests/support/registry.h"

namespace {

using ferry::bench::Service;
using ferry::testing::GitRepo;
using ferry::testing::KubeCluster;

constexpr int kNamespaces = ferry::bench::kScaleNamespaces;
constexpr int kImages = ferry::bench::kScaleImages;
constexpr int kReleases = 5;  // iterations of each release benchmark
// Tags pushed up front: for the three release benchmarks and one more for ReadLoad.
constexpr int kReleaseTags = 3 * kReleases + 1;
constexpr int kNamedReleased = 100;  // workloads that BM_Scale_Ferry_ReleaseOf100 names
constexpr char kConfig[] =
    R"({"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z"})";

int& WorkloadCount() {
  static int n = 1000;
  return n;
}

// How long one step may take: a minute plus 60 ms per workload (10 min at 10,000).
absl::Duration StepTimeout() { return absl::Minutes(1) + absl::Milliseconds(60) * WorkloadCount(); }

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + absl::ToChronoNanoseconds(StepTimeout());
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// One stack for all the benchmarks of the process, built step by step as they need it.
class Scale {
 public:
  // The stack of this process; stopped at exit, before the shared cluster is.
  static Scale& Get() {
    static Scale scale;
    return scale;
  }

  // Why the stack is unusable; empty when it is fine.
  const std::string& error() const { return error_; }
  int objects() const { return 2 * WorkloadCount() + kNamespaces; }
  int released_workloads() const { return released_; }
  // The ids of kNamedReleased workloads using bench/app-0, spread over the repo (all of them
  // at 1,000 workloads).
  std::vector<std::string> NamedRelease() const {
    std::vector<int> using_app0;
    for (int i = 0; i < WorkloadCount(); ++i) {
      if (ferry::bench::ScaleImageOf(i) == 0) using_app0.push_back(i);
    }
    std::vector<std::string> ids;
    const size_t stride = std::max<size_t>(1, using_app0.size() / kNamedReleased);
    for (size_t k = 0; k < using_app0.size() && ids.size() < kNamedReleased; k += stride) {
      ids.push_back(WorkloadId(using_app0[k]));
    }
    return ids;
  }
  // The id of Ferry's workload `i`.
  std::string WorkloadId(int i) const { return ferry::bench::ScaleWorkloadId(ferry_prefix(), i); }
  // The prefix of the namespaces of Ferry's repo (kubectl's have their own).
  std::string ferry_prefix() const { return absl::StrCat("scale-", run_id_, "-ferry-"); }

  // The first sync's duration in seconds, measured once (the syncer is started then), and its
  // result.
  absl::StatusOr<double> FirstSync() {
    if (!error_.empty()) return absl::FailedPreconditionError(error_);
    if (first_sync_seconds_ < 0) StartSyncer();
    if (!error_.empty()) return absl::FailedPreconditionError(error_);
    return first_sync_seconds_;
  }
  const ferry::v1::SyncResult& first_sync() const { return first_sync_; }
  // The CPU seconds the cluster's own processes used during the first sync; empty: unknown.
  const std::map<std::string, double>& first_sync_cluster_cpu() const {
    return first_sync_cluster_cpu_;
  }
  // Syncs that failed as a whole before the first complete one, and the first one's error.
  int first_sync_errors() const { return first_sync_errors_; }
  const std::string& first_sync_error() const { return first_sync_error_; }

  // SyncNow of git-writer's head on the running syncer.
  absl::StatusOr<ferry::v1::SyncResult> Resync() {
    if (absl::StatusOr<double> first = FirstSync(); !first.ok()) return first.status();
    return ferry::bench::SyncNow(syncer_, StepTimeout());
  }
  double syncer_writes() const { return ferry::bench::SyncerWrites(syncer_); }
  // Requests of `verb` ("get", "list") the syncer sent to the API server so far; -1: unknown.
  double syncer_requests(const std::string& verb) const {
    return ferry::bench::MetricSum(syncer_, "ferry_kube_requests_total{",
                                   {absl::StrCat("verb=\"", verb, "\"")});
  }

  // The public api, started after the first sync.
  absl::StatusOr<ferry::v1::Ferry::Stub*> Api() {
    if (absl::StatusOr<double> first = FirstSync(); !first.ok()) return first.status();
    if (api_stub_ == nullptr) StartScannerAndApi();
    if (!error_.empty()) return absl::FailedPreconditionError(error_);
    return api_stub_.get();
  }

  // A channel of its own to the api (a client of the load benchmark).
  std::shared_ptr<grpc::Channel> NewApiChannel() const {
    return ferry::bench::ServiceChannel(api_);
  }

  // The next release tag of bench/app-0 (kReleaseTags of them in the registry).
  absl::StatusOr<std::string> NextReleaseImage() {
    if (next_tag_ > kReleaseTags) return absl::OutOfRangeError("no more release tags pushed");
    return absl::StrCat(registry_->host(), "/bench/app-0:1.0.", next_tag_++);
  }
  GitRepo& repo() { return *repo_; }
  GitRepo& cli_repo() { return *cli_repo_; }
  const std::string& registry_host() const { return registry_->host(); }
  KubeCluster& cluster() { return *cluster_; }
  const std::string& kubectl_dir() const { return kubectl_dir_; }
  const std::string& run_id() const { return run_id_; }
  std::vector<std::pair<std::string, const Service*>> services() const {
    return {{"git_writer", &git_},
            {"cluster_syncer", &syncer_},
            {"registry_scanner", &scanner_},
            {"api", &api_}};
  }
  // Whether `name` is one of Ferry's services (not a process of the cluster).
  bool IsService(const std::string& name) const {
    for (const auto& [service, unused] : services()) {
      if (service == name) return true;
    }
    return false;
  }
  // The CPU seconds used so far by each of the cluster's processes and each running service,
  // by name; empty when one of them cannot be read.
  std::map<std::string, double> CpuSeconds() const {
    std::map<std::string, double> out = ferry::bench::ClusterCpuSeconds(*cluster_);
    if (out.empty()) return out;
    for (const auto& [name, service] : services()) {
      if (service->process == nullptr) continue;
      const double seconds = ferry::bench::ProcCpuSeconds(service->process->pid());
      if (seconds < 0) return {};
      out[name] = seconds;
    }
    return out;
  }

 private:
  Scale() {
    ferry::bench::BenchRun run = ferry::bench::StartBenchRun("scale-bench");
    dir_ = run.dir;
    run_id_ = run.run_id;
    cluster_ = run.cluster;
    error_ = run.error;
    if (!error_.empty()) return;
    auto registry = ferry::testing::RegistryServer::Start(dir_ + "/registry");
    if (!registry.ok()) {
      error_ = "registry: " + registry.status().ToString();
      return;
    }
    registry_ = *std::move(registry);
    for (int k = 0; k < kImages; ++k) {
      if (auto pushed = registry_->PushImage(absl::StrCat("bench/app-", k), "1.0.0", kConfig);
          !pushed.ok()) {
        error_ = "push: " + pushed.status().ToString();
        return;
      }
    }
    for (int t = 1; t <= kReleaseTags; ++t) {
      if (auto pushed = registry_->PushImage("bench/app-0", absl::StrCat("1.0.", t), kConfig);
          !pushed.ok()) {
        error_ = "push: " + pushed.status().ToString();
        return;
      }
    }
    const auto files =
        ferry::bench::ScaleRepoFiles(WorkloadCount(), ferry_prefix(), registry_->host());
    for (const auto& [path, content] : files) {
      if (absl::StrContains(content, "/bench/app-0:")) ++released_;
    }
    auto repo = GitRepo::Create(files);
    auto cli_repo = GitRepo::Create(files);
    if (!repo.ok() || !cli_repo.ok()) {
      error_ = "git repo: " + (repo.ok() ? cli_repo.status() : repo.status()).ToString();
      return;
    }
    repo_ = *std::move(repo);
    cli_repo_ = *std::move(cli_repo);
    // kubectl gets the same documents in namespaces of its own, as files in a folder.
    kubectl_dir_ = dir_ + "/kubectl";
    ferry::bench::WriteTree(
        kubectl_dir_,
        ferry::bench::ScaleRepoFiles(WorkloadCount(), absl::StrCat("scale-", run_id_, "-kubectl-"),
                                     registry_->host()));
    // FERRY_SCALE_GIT_WRITER_WRAPPER: as FERRY_SCALE_SYNCER_WRAPPER below, for git-writer.
    std::vector<std::string> argv = ferry::bench::WrapperCommand("FERRY_SCALE_GIT_WRITER_WRAPPER");
    for (std::string arg :
         {std::string(FERRY_GIT_WRITER_BIN), std::string("--grpc_address=127.0.0.1:0"),
          std::string("--metrics_address=127.0.0.1:0"), "--git_url=" + repo_->url(),
          "--state_dir=" + dir_ + "/git", std::string("--git_poll_interval=1h")}) {
      argv.push_back(std::move(arg));
    }
    Start(&git_, argv);
  }

  ~Scale() {
    // FERRY_SCALE_LOG_DIR: each service's log, kept for a look at where the time went.
    if (const char* logs = std::getenv("FERRY_SCALE_LOG_DIR"); logs != nullptr) {
      for (const auto& [name, service] : services()) {
        if (service->process == nullptr) continue;
        std::ofstream(absl::StrCat(logs, "/", name, ".log")) << service->process->Output();
        auto page = ferry::testing::HttpGet(
            absl::StrCat("http://127.0.0.1:", service->metrics_port, "/metrics"));
        if (page.ok()) std::ofstream(absl::StrCat(logs, "/", name, ".metrics")) << page->body;
      }
    }
    for (Service* s : {&api_, &scanner_, &syncer_, &git_}) s->process.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  void Start(Service* service, const std::vector<std::string>& argv) {
    ferry::bench::StartServiceInto(service, argv, StepTimeout(), &error_);
  }

  // Starts the syncer and follows its sync results until one covers every object.
  void StartSyncer() {
    const std::map<std::string, double> cpu_before = ferry::bench::ClusterCpuSeconds(*cluster_);
    const absl::Time start = absl::Now();
    // FERRY_SCALE_SYNCER_WRAPPER: a command to run the syncer under (a profiler, e.g.
    // "/usr/bin/heaptrack -o FILE"); its peak RSS is then the wrapper's. A wrapper that does
    // not exec the syncer leaves it running when the benchmark ends, and the benchmark waits
    // for its output to close: stop it then (pkill -f ferry-cluster-syncer).
    std::vector<std::string> argv = ferry::bench::WrapperCommand("FERRY_SCALE_SYNCER_WRAPPER");
    for (std::string arg :
         {std::string(FERRY_CLUSTER_SYNCER_BIN), std::string("--grpc_address=127.0.0.1:0"),
          std::string("--metrics_address=127.0.0.1:0"), "--kubeconfig=" + cluster_->kubeconfig(),
          "--git_writer_address=" + git_.target(), std::string("--sync_interval=1h"),
          "--sync_set=scale-" + run_id_}) {
      argv.push_back(std::move(arg));
    }
    Start(&syncer_, argv);
    if (!error_.empty()) return;
    absl::StatusOr<ferry::bench::CompleteSync> sync =
        ferry::bench::WaitForCompleteSync(syncer_, objects(), start, StepTimeout(), "scale_bench");
    if (!sync.ok()) {
      error_ = std::string(sync.status().message());
      return;
    }
    first_sync_seconds_ = sync->seconds;
    first_sync_cluster_cpu_ =
        ferry::bench::CpuUsed(cpu_before, ferry::bench::ClusterCpuSeconds(*cluster_));
    first_sync_ = sync->result;
    first_sync_errors_ = sync->failed_syncs;
    first_sync_error_ = sync->first_error;
  }

  void StartScannerAndApi() {
    Start(&scanner_, {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                      "--metrics_address=127.0.0.1:0", "--state_dir=" + dir_ + "/scanner",
                      "--registry_insecure_hosts=" + registry_->host()});
    // With automation, as an installation runs: it has the scanner watch every image in git.
    Start(&api_, {FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                  "--git_writer_address=" + git_.target(),
                  "--registry_scanner_address=" + scanner_.target(),
                  "--cluster_syncer_address=" + syncer_.target()});
    if (error_.empty()) api_stub_ = ferry::v1::Ferry::NewStub(ferry::bench::ServiceChannel(api_));
  }

  std::string error_;
  std::string dir_;
  std::string run_id_;
  KubeCluster* cluster_ = nullptr;
  std::unique_ptr<ferry::testing::RegistryServer> registry_;
  std::unique_ptr<GitRepo> repo_, cli_repo_;
  std::string kubectl_dir_;
  int released_ = 0;
  int next_tag_ = 1;
  Service git_, syncer_, scanner_, api_;
  double first_sync_seconds_ = -1;
  // CPU seconds of etcd, kube-apiserver and kube-controller-manager; empty: unknown.
  std::map<std::string, double> first_sync_cluster_cpu_;
  ferry::v1::SyncResult first_sync_;
  int first_sync_errors_ = 0;
  std::string first_sync_error_;
  std::unique_ptr<ferry::v1::Ferry::Stub> api_stub_;
};

void SetSizeCounters(benchmark::State& state) {
  state.counters["workloads"] = WorkloadCount();
  state.counters["objects"] = Scale::Get().objects();
}

// The CPU the cluster's own processes used during a sync, each and in all, and that total
// spread over this machine's cores: how long the cluster's work takes when it keeps up with
// the client. It includes the controllers' reaction (ReplicaSets for new Deployments), which
// may also lag behind a client.
void SetClusterCpuCounters(benchmark::State& state, const std::map<std::string, double>& used) {
  if (used.empty()) return;
  double total = 0;
  for (const auto& [name, seconds] : used) {
    state.counters["cpu_s_" + name] = seconds;
    total += seconds;
  }
  state.counters["cluster_cpu_s"] = total;
  state.counters["cluster_cpu_per_core_ms"] =
      total / std::max(1u, std::thread::hardware_concurrency()) * 1e3;
}

void BM_Scale_Ferry_FirstSync(benchmark::State& state) {
  Scale& scale = Scale::Get();
  for (auto _ : state) {
    absl::StatusOr<double> seconds = scale.FirstSync();
    if (!seconds.ok()) return state.SkipWithError(seconds.status().ToString().c_str());
    state.SetIterationTime(*seconds);
  }
  SetSizeCounters(state);
  state.counters["applied"] = scale.first_sync().applied();
  state.counters["failed_syncs"] = scale.first_sync_errors();
  if (scale.first_sync_errors() > 0) state.SetLabel("first error: " + scale.first_sync_error());
  state.counters["syncer_reported_ms"] = absl::ToDoubleMilliseconds(
      ToTime(scale.first_sync().finished()) - ToTime(scale.first_sync().started()));
  SetClusterCpuCounters(state, scale.first_sync_cluster_cpu());
}
BENCHMARK(BM_Scale_Ferry_FirstSync)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Scale_Ferry_NoOpResync(benchmark::State& state) {
  Scale& scale = Scale::Get();
  if (absl::StatusOr<double> first = scale.FirstSync(); !first.ok()) {
    return state.SkipWithError(first.status().ToString().c_str());
  }
  const double writes = scale.syncer_writes();
  ferry::v1::SyncResult result;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    absl::StatusOr<ferry::v1::SyncResult> r = scale.Resync();
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    result = *std::move(r);
  }
  SetSizeCounters(state);
  state.counters["applied"] = result.applied();
  state.counters["unchanged"] = result.unchanged();
  state.counters["writes"] = scale.syncer_writes() - writes;
}
BENCHMARK(BM_Scale_Ferry_NoOpResync)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);

void BM_Scale_Ferry_ListWorkloads(benchmark::State& state) {
  absl::StatusOr<ferry::v1::Ferry::Stub*> api = Scale::Get().Api();
  if (!api.ok()) return state.SkipWithError(api.status().ToString().c_str());
  int workloads = 0, pages = 0;
  double bytes = 0;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    workloads = pages = 0;
    bytes = 0;
    ferry::v1::ListWorkloadsRequest request;
    // Bounded: a server that keeps answering with a token stops here.
    for (int page = 0; page < WorkloadCount() + 1; ++page) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline());
      ferry::v1::ListWorkloadsResponse response;
      grpc::Status s = (*api)->ListWorkloads(&ctx, request, &response);
      if (!s.ok()) return state.SkipWithError(("ListWorkloads: " + s.error_message()).c_str());
      workloads += response.workloads_size();
      bytes += static_cast<double>(response.ByteSizeLong());
      ++pages;
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (workloads < WorkloadCount()) {
    return state.SkipWithError(
        absl::StrCat("ListWorkloads returned ", workloads, " of ", WorkloadCount()).c_str());
  }
  SetSizeCounters(state);
  state.counters["listed"] = workloads;
  state.counters["pages"] = pages;
  state.counters["response_mb"] = bytes / 1e6;
}
BENCHMARK(BM_Scale_Ferry_ListWorkloads)
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

struct ReleaseTimes {
  double pushed = 0;  // seconds from the request to the COMMIT_PUSHED stage
  double done = 0;    // seconds from the request to the finished job, as seen by WatchJob
  int released = 0;
  std::map<std::string, double> stages;  // stage name -> seconds from the request
  // CPU seconds each cluster process and service used from the request until the watcher saw
  // the COMMIT_PUSHED stage; empty: unknown.
  std::map<std::string, double> cpu_to_pushed;
  // The same from then until the job was seen done (the sync that applies the commit), and
  // how long that was.
  std::map<std::string, double> cpu_pushed_to_done;
  double seen_pushed_to_done = 0;
};

// One release of the next bench/app-0 tag to `workloads`, or to every workload using the image
// when empty.
absl::StatusOr<ReleaseTimes> ReleaseOnce(ferry::v1::Ferry::Stub& api, Scale& scale,
                                         const std::vector<std::string>& workloads = {}) {
  absl::StatusOr<std::string> image = scale.NextReleaseImage();
  if (!image.ok()) return image.status();
  ferry::v1::ReleaseRequest request;
  if (workloads.empty()) {
    request.mutable_spec()->set_all_workloads(true);
  } else {
    for (const std::string& id : workloads) request.mutable_spec()->add_workloads(id);
  }
  request.mutable_spec()->set_image(*image);
  request.mutable_cause()->set_user("Bench <bench@example.com>");
  const std::string head_before = scale.repo().Head();
  const std::map<std::string, double> cpu_before = scale.CpuSeconds();
  const absl::Time start = absl::Now();
  ferry::v1::Job job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::Status s = api.Release(&ctx, request, &job);
    if (!s.ok()) return absl::UnavailableError("Release: " + s.error_message());
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  ferry::v1::GetJobRequest watch_request;
  watch_request.set_id(job.id());
  auto watch = api.WatchJob(&ctx, watch_request);
  ReleaseTimes times;
  bool pushed_seen = false;
  std::map<std::string, double> cpu_at_pushed;
  absl::Time seen_pushed;
  while (watch->Read(&job)) {
    if (!pushed_seen) {
      for (const auto& stage : job.stages()) {
        if (stage.kind() != ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED) continue;
        cpu_at_pushed = scale.CpuSeconds();
        seen_pushed = absl::Now();
        times.cpu_to_pushed = ferry::bench::CpuUsed(cpu_before, cpu_at_pushed);
        pushed_seen = true;
        break;
      }
    }
    if (job.state() != ferry::v1::JOB_STATE_SUCCEEDED &&
        job.state() != ferry::v1::JOB_STATE_FAILED) {
      continue;
    }
    const absl::Time seen_done = absl::Now();
    times.done = absl::ToDoubleSeconds(seen_done - start);
    if (pushed_seen) {
      times.cpu_pushed_to_done = ferry::bench::CpuUsed(cpu_at_pushed, scale.CpuSeconds());
      times.seen_pushed_to_done = absl::ToDoubleSeconds(seen_done - seen_pushed);
    }
    break;
  }
  ctx.TryCancel();
  if (job.state() != ferry::v1::JOB_STATE_SUCCEEDED) {
    std::string stages;
    for (const auto& stage : job.stages()) {
      absl::StrAppend(&stages, stages.empty() ? "" : ", ",
                      ferry::v1::JobStageKind_Name(stage.kind()).substr(15));  // JOB_STAGE_KIND_
    }
    return absl::AbortedError(absl::StrCat(
        "release job ", job.id(), " did not succeed: ",
        job.error().empty() ? "no end seen" : job.error(), " (stages: ", stages, "; upstream head ",
        scale.repo().Head() == head_before ? "unchanged" : "moved", ")"));
  }
  for (const auto& stage : job.stages()) {
    const double at = absl::ToDoubleSeconds(ToTime(stage.time()) - start);
    if (stage.kind() == ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED) times.pushed = at;
    // JOB_STAGE_KIND_ dropped, lower case: the counter's name.
    std::string name = absl::AsciiStrToLower(ferry::v1::JobStageKind_Name(stage.kind()).substr(15));
    times.stages[name] = at;
  }
  for (const auto& result : job.results()) {
    if (result.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) ++times.released;
  }
  if (job.revision().empty() || scale.repo().Head() != job.revision()) {
    return absl::InternalError("the job's revision is not the upstream head");
  }
  return times;
}

// Waits until the cluster's processes and the services together use less than 40% of one
// core over a quarter of a second (the controllers done with the last release's ReplicaSets;
// an idle test cluster's own chatter alone takes 15-30%), for at most `limit`; false when
// they never did.
bool WaitForQuiet(const Scale& scale, absl::Duration limit) {
  constexpr absl::Duration kWindow = absl::Milliseconds(250);
  constexpr double kQuiet = 0.4;  // of one core
  const absl::Time end = absl::Now() + limit;
  std::map<std::string, double> last = scale.CpuSeconds();
  while (absl::Now() < end) {
    absl::SleepFor(kWindow);
    std::map<std::string, double> now = scale.CpuSeconds();
    const std::map<std::string, double> used = ferry::bench::CpuUsed(last, now);
    double total = 0;
    for (const auto& [name, seconds] : used) total += seconds;
    if (!used.empty() && total < kQuiet * absl::ToDoubleSeconds(kWindow)) return true;
    last = std::move(now);
  }
  return false;
}

// Releases to `workloads` (every workload using bench/app-0 when empty), one per iteration,
// expecting `expected` workloads released each time. With `settle`, each release waits for a
// quiet machine first (WaitForQuiet); otherwise it follows the last one's end at once, while
// the controllers still react to it.
void RunReleases(benchmark::State& state, const std::vector<std::string>& workloads, int expected,
                 bool settle = false) {
  Scale& scale = Scale::Get();
  absl::StatusOr<ferry::v1::Ferry::Stub*> api = scale.Api();
  if (!api.ok()) return state.SkipWithError(api.status().ToString().c_str());
  double pushed_sum = 0, done_sum = 0, pushed_max = 0, done_max = 0, after_push_seconds = 0;
  int n = 0, released = 0, unsettled = 0, cpu_known = 0, after_push_known = 0;
  std::map<std::string, double> stage_sums, cpu_sums, after_push_sums;
  const double lists_before = scale.syncer_requests("list");
  const double gets_before = scale.syncer_requests("get");
  for (auto _ : state) {
    // The wait is outside the time: the iteration's time is set by hand (UseManualTime).
    if (settle && !WaitForQuiet(scale, absl::Seconds(30))) ++unsettled;
    absl::StatusOr<ReleaseTimes> times = ReleaseOnce(**api, scale, workloads);
    if (!times.ok()) return state.SkipWithError(times.status().ToString().c_str());
    state.SetIterationTime(times->pushed);
    pushed_sum += times->pushed;
    done_sum += times->done;
    pushed_max = std::max(pushed_max, times->pushed);
    done_max = std::max(done_max, times->done);
    released = times->released;
    for (const auto& [name, at] : times->stages) stage_sums[name] += at;
    for (const auto& [name, seconds] : times->cpu_to_pushed) cpu_sums[name] += seconds;
    if (!times->cpu_to_pushed.empty()) ++cpu_known;
    if (!times->cpu_pushed_to_done.empty()) {
      for (const auto& [name, seconds] : times->cpu_pushed_to_done)
        after_push_sums[name] += seconds;
      after_push_seconds += times->seen_pushed_to_done;
      ++after_push_known;
    }
    ++n;
  }
  if (released != expected) {
    return state.SkipWithError(
        absl::StrCat("released ", released, " workloads, expected ", expected).c_str());
  }
  SetSizeCounters(state);
  state.counters["released"] = released;
  state.counters["pushed_mean_ms"] = pushed_sum / n * 1e3;
  state.counters["pushed_max_ms"] = pushed_max * 1e3;
  state.counters["done_mean_ms"] = done_sum / n * 1e3;
  state.counters["done_max_ms"] = done_max * 1e3;
  // When each stage was reached, mean ms from the request.
  for (const auto& [name, sum] : stage_sums) state.counters["at_" + name + "_ms"] = sum / n * 1e3;
  // Whose CPU the time to the push was spent on, mean ms per release: Ferry's services and
  // the cluster's processes, which share this machine's cores.
  for (const auto& [name, sum] : cpu_sums) {
    state.counters["cpu_ms_to_pushed_" + name] = sum / cpu_known * 1e3;
  }
  // From the push to the job seen done: the sync that applies the commit. Whose CPU it took,
  // mean ms per release, and how much of the machine's cores the cluster's processes held
  // meanwhile (1 = every core, all the time): near 1, the apply waits for the API server, not
  // for Ferry.
  if (after_push_known > 0 && after_push_seconds > 0) {
    double cluster = 0;
    for (const auto& [name, sum] : after_push_sums) {
      state.counters["cpu_ms_pushed_to_done_" + name] = sum / after_push_known * 1e3;
      if (!scale.IsService(name)) cluster += sum;
    }
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    state.counters["cluster_cores_share_pushed_to_done"] = cluster / (after_push_seconds * cores);
  }
  if (settle) state.counters["unsettled"] = unsettled;
  // How the syncer answered the planning's question which workloads run, among its other
  // reads: by listings (every workload kind) or by reads of single objects.
  const double lists_after = scale.syncer_requests("list");
  const double gets_after = scale.syncer_requests("get");
  if (std::min({lists_before, gets_before, lists_after, gets_after}) >= 0) {  // -1: unread
    state.counters["syncer_lists"] = lists_after - lists_before;
    state.counters["syncer_gets"] = gets_after - gets_before;
  }
}

void BM_Scale_Ferry_Release(benchmark::State& state) {
  RunReleases(state, {}, Scale::Get().released_workloads());
}
BENCHMARK(BM_Scale_Ferry_Release)
    ->UseManualTime()
    ->Iterations(kReleases)
    ->Unit(benchmark::kMillisecond);

void BM_Scale_Ferry_ReleaseOf100(benchmark::State& state) {
  const std::vector<std::string> named = Scale::Get().NamedRelease();
  RunReleases(state, named, static_cast<int>(named.size()));
}
BENCHMARK(BM_Scale_Ferry_ReleaseOf100)
    ->UseManualTime()
    ->Iterations(kReleases)
    ->Unit(benchmark::kMillisecond);

void BM_Scale_Ferry_ReleaseOf100Settled(benchmark::State& state) {
  const std::vector<std::string> named = Scale::Get().NamedRelease();
  RunReleases(state, named, static_cast<int>(named.size()), /*settle=*/true);
}
BENCHMARK(BM_Scale_Ferry_ReleaseOf100Settled)
    ->UseManualTime()
    ->Iterations(kReleases)
    ->Unit(benchmark::kMillisecond);

// Percentile `p` (0-100) of `values`, sorted in place; 0 when empty.
double Percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t i = std::min(values.size() - 1, static_cast<size_t>(p / 100 * values.size()));
  return values[i];
}

// FERRY_SCALE_LOAD_CLIENTS: ReadLoad's clients (default 16, 1 to 64).
int LoadClients() {
  int clients = 16;
  if (const char* env = std::getenv("FERRY_SCALE_LOAD_CLIENTS"); env != nullptr) {
    if (!absl::SimpleAtoi(env, &clients)) clients = 16;
  }
  return std::clamp(clients, 1, 64);
}

int LoadSeconds() {
  int seconds = 10;
  if (const char* env = std::getenv("FERRY_SCALE_LOAD_SECONDS"); env != nullptr) {
    if (!absl::SimpleAtoi(env, &seconds)) seconds = 10;
  }
  return std::clamp(seconds, 1, 120);
}

// LoadClients() clients, each on a channel of its own, read from the api for
// FERRY_SCALE_LOAD_SECONDS (default 10, at most 120) in turn: the first page of ListWorkloads,
// ListImages of one workload (a different one each time), GetVersion. A release of bench/app-0 is
// submitted a third of the way in. Time = the load's duration; counters: requests per second in
// all, p50 and p99 per kind, errors, and the release's times under the load.
void BM_Scale_Ferry_ReadLoad(benchmark::State& state) {
  const int client_count = LoadClients();
  Scale& scale = Scale::Get();
  absl::StatusOr<ferry::v1::Ferry::Stub*> api = scale.Api();
  if (!api.ok()) return state.SkipWithError(api.status().ToString().c_str());
  const absl::Duration duration = absl::Seconds(LoadSeconds());
  enum Kind { kList, kListImages, kVersion, kKinds };
  std::vector<double> latencies[kKinds];
  int errors = 0;
  std::string first_error;
  absl::StatusOr<ReleaseTimes> release = absl::UnknownError("not run");
  double elapsed = 0;
  // Tags already known, as in an installation that runs: one workload of each image first.
  for (int i = 0; i < kImages * kNamespaces; i += kNamespaces) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::ListImagesRequest request;
    request.set_workload(scale.WorkloadId(i));
    ferry::v1::ListImagesResponse response;
    if (grpc::Status s = (*api)->ListImages(&ctx, request, &response); !s.ok()) {
      return state.SkipWithError(("ListImages: " + s.error_message()).c_str());
    }
  }
  for (auto _ : state) {
    std::mutex mu;
    const absl::Time start = absl::Now();
    const absl::Time end = start + duration;
    absl::Time last_answer = start;  // under mu
    std::vector<std::thread> clients;
    for (int c = 0; c < client_count; ++c) {
      clients.emplace_back([&, c] {
        auto stub = ferry::v1::Ferry::NewStub(scale.NewApiChannel());
        std::vector<double> mine[kKinds];
        int my_errors = 0;
        std::string my_error;
        for (int k = 0; absl::Now() < end; ++k) {
          const Kind kind = static_cast<Kind>((c + k) % kKinds);
          grpc::ClientContext ctx;
          ctx.set_deadline(Deadline());
          grpc::Status s;
          const absl::Time t0 = absl::Now();
          if (kind == kList) {
            ferry::v1::ListWorkloadsResponse response;
            s = stub->ListWorkloads(&ctx, ferry::v1::ListWorkloadsRequest(), &response);
          } else if (kind == kListImages) {
            const int i = (c * 7919 + k * 31) % WorkloadCount();
            ferry::v1::ListImagesRequest request;
            request.set_workload(scale.WorkloadId(i));
            ferry::v1::ListImagesResponse response;
            s = stub->ListImages(&ctx, request, &response);
          } else {
            ferry::v1::VersionInfo response;
            s = stub->GetVersion(&ctx, ferry::v1::GetVersionRequest(), &response);
          }
          // Only answers count: a fast failure would raise the rate and lower the percentiles.
          if (s.ok()) {
            mine[kind].push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
          } else if (my_errors++ == 0) {
            my_error = s.error_message();
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        last_answer = std::max(last_answer, absl::Now());
        for (int k = 0; k < kKinds; ++k) {
          latencies[k].insert(latencies[k].end(), mine[k].begin(), mine[k].end());
        }
        if (my_errors > 0 && errors == 0) first_error = my_error;
        errors += my_errors;
      });
    }
    absl::SleepFor(duration / 3);  // the load settles before the release
    release = ReleaseOnce(**api, scale);
    for (std::thread& t : clients) t.join();
    // The load's own window: until the last client's last answer, not a release that
    // outlasted it.
    elapsed = absl::ToDoubleSeconds(last_answer - start);
    state.SetIterationTime(elapsed);
  }
  SetSizeCounters(state);
  size_t requests = 0;
  const char* names[kKinds] = {"list_workloads", "list_images", "get_version"};
  for (int k = 0; k < kKinds; ++k) {
    requests += latencies[k].size();
    state.counters[absl::StrCat(names[k], "_p50_ms")] = Percentile(latencies[k], 50);
    state.counters[absl::StrCat(names[k], "_p99_ms")] = Percentile(latencies[k], 99);
  }
  state.counters["clients"] = client_count;
  state.counters["requests_per_s"] = static_cast<double>(requests) / elapsed;
  state.counters["errors"] = errors;
  std::string label;
  if (release.ok()) {
    state.counters["release_pushed_ms"] = release->pushed * 1e3;
    state.counters["release_done_ms"] = release->done * 1e3;
  } else {
    label = "release: " + release.status().ToString();
  }
  if (errors > 0) absl::StrAppend(&label, label.empty() ? "" : "; ", "first error: ", first_error);
  if (!label.empty()) state.SetLabel(label);
}
BENCHMARK(BM_Scale_Ferry_ReadLoad)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Scale_GitCli_Release(benchmark::State& state) {
  Scale& scale = Scale::Get();
  if (!scale.error().empty()) return state.SkipWithError(scale.error().c_str());
  const std::string image = scale.registry_host() + "/bench/app-0";
  double sum = 0, max = 0;
  int n = 0, version = 1;
  for (auto _ : state) {
    const std::string script = absl::StrCat(
        "set -e; d=$(mktemp -d); trap 'rm -rf $d' EXIT; git clone -q --depth 1 -b main ",
        scale.cli_repo().url(), " $d/w; cd $d/w; files=$(grep -rlF --include='*.yaml' '", image,
        ":' .); sed -i 's#", image, ":[^ ]*#", image, ":1.0.", version++,
        "#' $files; git -c user.name=ci -c user.email=ci@example.com commit -qam Release; "
        "git push -q origin HEAD:main");
    const absl::Time start = absl::Now();
    const int rc = std::system(absl::StrCat("(", script, ") >/dev/null 2>&1").c_str());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (rc != 0) return state.SkipWithError("git CLI release failed");
    state.SetIterationTime(seconds);
    sum += seconds;
    max = std::max(max, seconds);
    ++n;
  }
  const std::string changed = scale.cli_repo().Git("diff --name-only HEAD~1 HEAD");
  SetSizeCounters(state);
  state.counters["released"] = std::count(changed.begin(), changed.end(), '\n');
  state.counters["mean_ms"] = sum / n * 1e3;
  state.counters["max_ms"] = max * 1e3;
}
BENCHMARK(BM_Scale_GitCli_Release)
    ->UseManualTime()
    ->Iterations(kReleases)
    ->Unit(benchmark::kMillisecond);

// `kubectl apply --server-side` of the kubectl copy of the repo: the namespaces first, as a
// person would (kubectl does not order by dependency), then every workload file.
void RunKubectl(benchmark::State& state) {
  Scale& scale = Scale::Get();
  if (!scale.error().empty()) return state.SkipWithError(scale.error().c_str());
  const std::string dir = scale.kubectl_dir();
  std::map<std::string, double> cluster_cpu;
  for (auto _ : state) {
    const std::map<std::string, double> cpu_before =
        ferry::bench::ClusterCpuSeconds(scale.cluster());
    const absl::Time start = absl::Now();
    int status = 0;
    std::string out =
        scale.cluster().Kubectl("apply --server-side -f " + dir + "/namespaces.yaml", &status);
    if (status != 0) return state.SkipWithError(("kubectl apply (namespaces): " + out).c_str());
    // One line per object: into a file, read only when kubectl fails.
    scale.cluster().Kubectl("apply --server-side -R -f " + dir + "/apps >" + dir + "/out.txt",
                            &status);
    if (status != 0) {
      out = ferry::testing::RunCommand("tail -3 " + dir + "/out.txt");
      return state.SkipWithError(("kubectl apply: " + out).c_str());
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    cluster_cpu =
        ferry::bench::CpuUsed(cpu_before, ferry::bench::ClusterCpuSeconds(scale.cluster()));
  }
  SetSizeCounters(state);
  SetClusterCpuCounters(state, cluster_cpu);
}

void BM_Scale_Kubectl_FirstSync(benchmark::State& state) { RunKubectl(state); }
BENCHMARK(BM_Scale_Kubectl_FirstSync)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_Scale_Kubectl_NoOpResync(benchmark::State& state) { RunKubectl(state); }
BENCHMARK(BM_Scale_Kubectl_NoOpResync)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// Peak and current resident set of each service once everything above ran.
void BM_Scale_PeakRss(benchmark::State& state) {
  Scale& scale = Scale::Get();
  if (absl::StatusOr<ferry::v1::Ferry::Stub*> api = scale.Api(); !api.ok()) {
    return state.SkipWithError(api.status().ToString().c_str());
  }
  for (auto _ : state) state.SetIterationTime(0);
  SetSizeCounters(state);
  for (const auto& [name, service] : scale.services()) {
    if (service->process == nullptr) continue;
    state.counters[name + "_peak_mb"] =
        ferry::bench::ProcStatusMb(service->process->pid(), "VmHWM");
    state.counters[name + "_rss_mb"] = ferry::bench::ProcStatusMb(service->process->pid(), "VmRSS");
  }
  // The benchmark's namespaces, in a cluster that outlives this process.
  if (std::getenv("FERRY_TEST_KUBE_DIR") != nullptr) {
    const std::string prefix = "scale-" + scale.run_id() + "-";
    std::string names;
    for (const char* who : {"ferry-", "kubectl-"}) {
      for (int n = 0; n < kNamespaces; ++n) absl::StrAppend(&names, " ", prefix, who, n);
    }
    scale.cluster().Kubectl("delete namespace --wait=false" + names);
  }
}
BENCHMARK(BM_Scale_PeakRss)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

// --workloads=N (or FERRY_SCALE_WORKLOADS=N) sets the repo's size; the rest goes to Google
// Benchmark.
int main(int argc, char** argv) {
  int workloads = 1000;
  bool valid = true;
  if (const char* env = std::getenv("FERRY_SCALE_WORKLOADS"); env != nullptr) {
    valid = absl::SimpleAtoi(env, &workloads);
  }
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--workloads=")) {
      valid = valid && absl::SimpleAtoi(arg, &workloads);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (!valid || workloads < kNamespaces * kImages || workloads > 100000) {
    std::fprintf(stderr,
                 "scale_bench: --workloads / FERRY_SCALE_WORKLOADS: a number from %d to "
                 "100000\n",
                 kNamespaces * kImages);
    return 2;
  }
  WorkloadCount() = workloads;
  benchmark::AddCustomContext("workloads", std::to_string(workloads));
  int rest_count = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_count, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_count, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
