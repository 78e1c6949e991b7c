// End to end: a new tag pushed to the registry -> the running spec in the Kubernetes API.
//
// The four real binaries, a real registry, git repo and kube-apiserver, all on loopback, and
// one automated workload (semver:~1). Each iteration pushes the next 1.0.N tag and measures
// until the Deployment's spec in the API server names it (polled every 10 ms over HTTPS).
//
//   BM_PushToRunning_Webhook   the registry's push notification reaches the scanner's webhook
//   BM_PushToRunning_Polling   the same without webhook: the scanner finds the tag on its own
//                              scan (every 10 s), the way a registry without notifications is
//                              followed. Flux v1 polled every 5 min and synced every 5 min.
#include <benchmark/benchmark.h>

#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/stack_bench.h"
#include "lib/http/curl_http_client.h"
#include "nlohmann/json.hpp"
#include "tests/support/git_repo.h"
#include "tests/support/kube.h"
#include "tests/support/ports.h"
#include "tests/support/registry.h"
#include "tests/support/subprocess.h"

namespace {

using ferry::testing::Subprocess;

constexpr char kConfig[] =
    R"({"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z"})";

// One stack: registry, repo, the four services.
struct Stack {
  std::string dir;
  std::unique_ptr<ferry::testing::RegistryServer> registry;
  std::unique_ptr<ferry::testing::GitRepo> repo;
  std::vector<std::unique_ptr<Subprocess>> services;
  std::string ns;
  std::string image;
  int next = 1;
  bool ok = false;

  Stack(const std::string& name, bool webhook) : ns(name) {
    char tmpl[] = "/tmp/ferry-e2e-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    auto cluster = ferry::testing::SharedKubeCluster();
    if (!cluster.ok()) return;
    const int webhook_port = ferry::testing::FreeLoopbackPort();
    std::ofstream(dir + "/secret") << "bench-secret\n";
    auto r = webhook
                 ? ferry::testing::RegistryServer::StartWithNotifications(
                       dir + "/registry",
                       absl::StrCat("http://127.0.0.1:", webhook_port, "/webhook"), "bench-secret")
                 : ferry::testing::RegistryServer::Start(dir + "/registry");
    if (!r.ok()) return;
    registry = *std::move(r);
    image = registry->host() + "/bench/app";
    if (!registry->PushImage("bench/app", "1.0.0", kConfig).ok()) return;
    auto g = ferry::testing::GitRepo::Create(
        {{"app.yaml",
          absl::StrCat(
              "apiVersion: v1\nkind: Namespace\nmetadata: {name: ", ns,
              "}\n---\n"
              "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n"
              "  namespace: ",
              ns,
              "\n  annotations:\n    ferry.dev/automated: \"true\"\n"
              "    ferry.dev/tag.app: semver:~1\nspec:\n  replicas: 0\n  selector:\n"
              "    matchLabels: {app: app}\n  template:\n    metadata:\n      labels: {app: app}\n"
              "    spec:\n      containers:\n      - name: app\n        image: ",
              image, ":1.0.0\n")}});
    if (!g.ok()) return;
    repo = *std::move(g);
    const int git = ferry::testing::FreeLoopbackPort(),
              scanner = ferry::testing::FreeLoopbackPort(),
              syncer = ferry::testing::FreeLoopbackPort(), api = ferry::testing::FreeLoopbackPort();
    auto at = [](int port) { return absl::StrCat("127.0.0.1:", port); };
    std::vector<std::string> scanner_argv = {
        FERRY_REGISTRY_SCANNER_BIN,
        "--grpc_address=" + at(scanner),
        "--metrics_address=127.0.0.1:0",
        "--state_dir=" + dir + "/scanner",
        "--registry_insecure_hosts=" + registry->host(),
        webhook ? "--scan_interval=1h" : "--scan_interval=10s"};
    if (webhook) {
      scanner_argv.push_back(absl::StrCat("--webhook_address=127.0.0.1:", webhook_port));
      scanner_argv.push_back("--webhook_secret_path=" + dir + "/secret");
    }
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {FERRY_GIT_WRITER_BIN, "--grpc_address=" + at(git), "--metrics_address=127.0.0.1:0",
              "--git_url=" + repo->url(), "--state_dir=" + dir + "/git", "--git_poll_interval=1h"},
             scanner_argv,
             {FERRY_CLUSTER_SYNCER_BIN, "--grpc_address=" + at(syncer),
              "--metrics_address=127.0.0.1:0", "--kubeconfig=" + (*cluster)->kubeconfig(),
              "--git_writer_address=" + at(git), "--sync_interval=1h", "--sync_set=" + ns},
             {FERRY_API_BIN, "--grpc_address=" + at(api), "--metrics_address=127.0.0.1:0",
              "--git_writer_address=" + at(git), "--registry_scanner_address=" + at(scanner),
              "--cluster_syncer_address=" + at(syncer), "--automation_interval=1h"}}) {
      auto s = ferry::bench::StartService(argv);
      if (!s.ok()) return;
      services.push_back(std::move(s->process));
    }
    ok = WaitRunning("1.0.0", absl::Seconds(60));
  }

  ~Stack() {
    services.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // Polls the Deployment in the API server until its container runs `tag`.
  bool WaitRunning(const std::string& tag, absl::Duration timeout) {
    auto cluster = ferry::testing::SharedKubeCluster();
    static ferry::http::CurlHttpClient http([&] {
      ferry::http::CurlOptions o;
      o.ca_path = (*cluster)->ca_path();
      return o;
    }());
    ferry::http::Request get;
    get.url =
        absl::StrCat((*cluster)->server(), "/apis/apps/v1/namespaces/", ns, "/deployments/app");
    get.headers.emplace_back("Authorization", "Bearer " + (*cluster)->token());
    const std::string want = image + ":" + tag;
    const absl::Time give_up = absl::Now() + timeout;
    while (absl::Now() < give_up) {
      auto resp = http.Send(get);
      if (resp.ok() && resp->status == 200) {
        auto obj = nlohmann::json::parse(resp->body, nullptr, false);
        if (!obj.is_discarded() &&
            obj["spec"]["template"]["spec"]["containers"][0].value("image", "") == want) {
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Pushes the next tag and returns how long until it runs; negative on timeout.
  double PushAndWait(absl::Duration timeout) {
    const std::string tag = absl::StrCat("1.0.", next++);
    const absl::Time start = absl::Now();
    if (!registry->PushImage("bench/app", tag, kConfig).ok()) return -1;
    if (!WaitRunning(tag, timeout)) return -1;
    return absl::ToDoubleSeconds(absl::Now() - start);
  }
};

void Run(benchmark::State& state, const std::string& ns, bool webhook, absl::Duration timeout) {
  Stack stack(ns, webhook);
  if (!stack.ok) return state.SkipWithError("the stack did not start");
  double max = 0, sum = 0;
  int n = 0;
  for (auto _ : state) {
    const double seconds = stack.PushAndWait(timeout);
    if (seconds < 0) return state.SkipWithError("the tag did not reach the cluster in time");
    state.SetIterationTime(seconds);
    max = std::max(max, seconds);
    sum += seconds;
    ++n;
  }
  state.counters["max_ms"] = max * 1e3;
  state.counters["mean_ms"] = n > 0 ? sum / n * 1e3 : 0;
}

void BM_PushToRunning_Webhook(benchmark::State& state) {
  Run(state, "bench-webhook", true, absl::Seconds(30));
}
BENCHMARK(BM_PushToRunning_Webhook)->UseManualTime()->Iterations(20)->Unit(benchmark::kMillisecond);

void BM_PushToRunning_Polling(benchmark::State& state) {
  Run(state, "bench-polling", false, absl::Seconds(60));
}
BENCHMARK(BM_PushToRunning_Polling)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
