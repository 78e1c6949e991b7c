// registry-scanner against a real registry (Debian's docker-registry on loopback) holding
// 100 repositories x 100 tags, each tag its own image (Docker schema 2 manifest + config).
// FERRY_SCANNER_BENCH_REPOSITORIES / FERRY_SCANNER_BENCH_TAGS make it smaller (e.g. 20 x 100,
// a few minutes in all; the full size pushes 10,000 images first, ~15 min).
//
// - BM_Ferry_ColdScan: Scanner with an empty cache scans every repository as the binary does
//   with --registry_concurrency=8 (its scan queue, at most 8 requests in flight to the host,
//   metadata of several tags of one repository fetched at once), rate limit lifted: list
//   tags, then manifest + config blob of every tag, each stored in the SQLite cache. In the
//   same benchmark the plain client below runs before and after it; counters tags_per_s,
//   plain_tags_per_s (mean of the two runs, and each run), pct_of_plain = Ferry / plain (and
//   pct_of_best_plain, against the faster run), in_flight / plain_in_flight (requests in
//   flight on average: time inside requests / time taken), cpu_ms_per_tag /
//   plain_cpu_ms_per_tag (this process's CPU time per tag, every thread) and
//   switches_per_tag / plain_switches_per_tag (its threads' context switches per tag). The
//   machine's other load moves a single run's ratio by 10-20 points:
//   `--benchmark_filter=BM_Ferry_ColdScan --benchmark_repetitions=5` gives the median of
//   each counter (pct_of_plain_median) over five runs, each side by side with its baseline.
// - BM_RawGets_ColdScan: the plain client alone: 8 threads, each with its own libcurl handle
//   (one keep-alive connection), GET of each tag list, then of every tag's manifest and
//   config blob (the digest found by a string search), no parsing, no storing: as
//   concurrent as Ferry's scan.
// - BM_Skopeo_Inspect: `skopeo inspect` of 100 of the tags (one repository), one process per
//   tag, as a shell loop would; counters report the time per tag and extrapolate to 10,000.
// - BM_Ferry_UnchangedRescan: every repository scanned again with nothing changed;
//   counter requests_per_repository (the target is exactly 1).
// - BM_Ferry_PushToEvent: a push to a registry whose notifications go to the scanner's
//   webhook, until the scanner emits the new-tag event (20 pushes; mean and max).
// - BM_Ferry_PushToEventBehindScans/{0,1}: the same with cold scans of other repositories
//   queued before the pushes, under a host budget of 40 requests/s; the webhook's scan as a
//   background one (0) or an interactive one (1).
// - BM_Binary_Rss10kTags: the real ferry-registry-scanner binary told to Watch every
//   repository; once all are scanned, its resident memory (VmRSS, VmHWM).
//
// Each runs once (Iterations(1)): the setup alone pushes 10,000 images.
#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/http/curl_http_client.h"
#include "lib/limits/limits.h"
#include "services/registry-scanner/metered_http_client.h"
#include "services/registry-scanner/rate_limited_http_client.h"
#include "services/registry-scanner/scanner.h"
#include "services/registry-scanner/webhook.h"
#include "tests/support/metrics.h"
#include "tests/support/registry.h"
#include "tests/support/subprocess.h"

namespace {

using namespace ferry::registry_scanner;  // NOLINT: a benchmark of this one service
using ferry::testing::RegistryServer;

// The size: FERRY_SCANNER_BENCH_REPOSITORIES x FERRY_SCANNER_BENCH_TAGS (100 x 100).
int SizeFromEnv(const char* name, int fallback) {
  const char* value = std::getenv(name);
  const int n = value != nullptr ? std::atoi(value) : 0;
  return n > 0 ? n : fallback;
}
const int kRepositories = SizeFromEnv("FERRY_SCANNER_BENCH_REPOSITORIES", 100);
const int kTags = SizeFromEnv("FERRY_SCANNER_BENCH_TAGS", 100);
// Threads pushing the images of the setup.
constexpr int kSeedThreads = 4;
// --registry_concurrency (its default): Ferry's requests in flight to the registry, and the
// plain client's connections.
constexpr int kConcurrency = 8;

std::string TagName(int t) { return absl::StrCat("1.", t, ".0"); }
std::string RepoPath(int r) { return absl::StrCat("team/app-", r); }

std::string ImageConfig(int r, int t) {
  return absl::StrCat(R"({"architecture":"amd64","os":"linux","created":"2024-01-)",
                      absl::Dec(1 + t % 28, absl::kZeroPad2),
                      R"(T00:00:00Z","config":{"Labels":{"repo":")", r, R"(","tag":")", t,
                      R"("}}})");
}

// Runs `fn(i)` for i in [0, n) on kSeedThreads threads.
template <typename Fn>
void ParallelFor(int n, Fn fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kSeedThreads; ++w) {
    threads.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  }
  for (std::thread& t : threads) t.join();
}

// The shared registry, filled once.
struct Fixture {
  std::string dir;
  std::unique_ptr<RegistryServer> registry;
  double seed_seconds = 0;
  bool ok = false;

  static Fixture& Get() {
    static Fixture* f = [] {
      auto* fx = new Fixture();
      char tmpl[] = "/tmp/ferry-scanner-bench-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) return fx;
      fx->dir = tmpl;
      auto registry = RegistryServer::Start(fx->dir + "/registry");
      if (!registry.ok()) return fx;
      fx->registry = *std::move(registry);
      const absl::Time start = absl::Now();
      std::atomic<bool> failed{false};
      ParallelFor(kRepositories * kTags, [&](int i) {
        const int r = i / kTags, t = i % kTags;
        if (!fx->registry->PushImage(RepoPath(r), TagName(t), ImageConfig(r, t)).ok())
          failed = true;
      });
      fx->seed_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      fx->ok = !failed;
      std::atexit([] {
        Fixture& done = Get();
        done.registry.reset();  // stops docker-registry
        if (!done.dir.empty()) std::filesystem::remove_all(done.dir);
      });
      return fx;
    }();
    return *f;
  }
  std::string Repo(int r) const { return registry->host() + "/" + RepoPath(r); }
  std::vector<std::string> Repos() const {
    std::vector<std::string> out;
    for (int r = 0; r < kRepositories; ++r) out.push_back(Repo(r));
    return out;
  }
};

// A scanner as the binary assembles it with --registry_concurrency=8 (rate limit lifted: the
// registry's speed is measured).
struct ScannerStack {
  // `requests_per_second`: the host's budget (lifted by default).
  explicit ScannerStack(const std::string& cache_path, const std::string& host,
                        double requests_per_second = 1e6)
      : curl(CurlOptionsFor(host)),
        metered(curl, metrics),
        limited(metered, Limits(requests_per_second), metrics),
        client(limited, CredentialStore(), ClientOptions(host)),
        cache(std::move(Cache::Open(cache_path)).value()),
        scanner_metrics(metrics),
        scanner(client, *cache, Options(), scanner_metrics) {}
  static ferry::http::CurlOptions CurlOptionsFor(const std::string& host) {
    ferry::http::CurlOptions o;
    o.insecure_hosts = {host};
    return o;
  }
  static RateLimitedHttpClient::Options Limits(double requests_per_second) {
    RateLimitedHttpClient::Options o;
    o.requests_per_second = requests_per_second;
    o.burst = requests_per_second;
    o.max_in_flight = kConcurrency;
    return o;
  }
  static RegistryClient::Options ClientOptions(const std::string& host) {
    RegistryClient::Options o;
    o.insecure_hosts = {host};
    return o;
  }
  static ScannerOptions Options() {
    ScannerOptions o;
    o.concurrency = kConcurrency;
    return o;
  }
  double Requests() { return ferry::testing::MetricSum(metrics, "ferry_registry_requests_total"); }
  // Seconds spent in requests to the registry, summed over requests (libcurl's time each).
  double RequestSeconds() {
    double sum = 0;
    for (const auto& family : metrics.Collect()) {
      if (family.name != "ferry_registry_request_duration_seconds") continue;
      for (const auto& metric : family.metric) sum += metric.histogram.sample_sum;
    }
    return sum;
  }

  prometheus::Registry metrics;
  ferry::http::CurlHttpClient curl;
  MeteredHttpClient metered;
  RateLimitedHttpClient limited;
  RegistryClient client;
  std::unique_ptr<Cache> cache;
  ScannerMetrics scanner_metrics;
  Scanner scanner;
};

// CPU time (user + system) this process has used so far, in seconds.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Context switches (voluntary + involuntary) of this process's threads so far.
double ProcessContextSwitches() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_nvcsw + usage.ru_nivcsw);
}

// Scans every repository as the binary does: requested from its scan queue (the binary's
// number of workers); true when each was scanned without an error.
bool ScanAll(Scanner& scanner, const std::vector<std::string>& repos) {
  const absl::Time start = absl::Now();
  ScanQueue queue(scanner, kScanWorkers);
  for (const std::string& r : repos) {
    if (!queue.Request(r)) return false;
  }
  if (!queue.WaitIdle(absl::Minutes(30))) return false;
  absl::StatusOr<std::vector<RepositoryRecord>> records = scanner.Repositories();
  if (!records.ok()) return false;
  size_t scanned = 0;
  for (const RepositoryRecord& r : *records) {
    if (r.last_error.empty() && r.last_scan && *r.last_scan >= start) ++scanned;
  }
  return scanned == repos.size();
}

// The plain client: `kConcurrency` threads, each with one libcurl handle (one keep-alive
// connection), GETs of each repository's tag list and of every tag's manifest and config
// blob; nothing parsed (the config digest is found by a string search) or stored. Returns the
// seconds taken, or -1 when a request failed; adds the requests sent to `requests` and, when
// given, the seconds spent in them (summed over requests) to `request_seconds`.
double PlainClientScan(const Fixture& fx, int* requests, double* request_seconds = nullptr) {
  const std::string base = "http://" + fx.registry->host() + "/v2/";
  const std::string accept = absl::StrCat("Accept: ", RegistryClient::AcceptedManifestTypes());
  std::atomic<int> next{0};
  std::atomic<int> sent{0};
  std::atomic<bool> failed{false};
  std::atomic<int64_t> request_micros{0};
  const int lists = kRepositories;
  const int items = lists + kRepositories * kTags;
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int w = 0; w < kConcurrency; ++w) {
    threads.emplace_back([&] {
      CURL* curl = curl_easy_init();
      curl_slist* manifest_headers = curl_slist_append(nullptr, accept.c_str());
      std::string body;
      curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(
          curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
            static_cast<std::string*>(out)->append(data, size * n);
            return size * n;
          });
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
      auto get = [&](const std::string& url, curl_slist* headers) {
        body.clear();
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        long status = 0;
        ++sent;
        const absl::Time start = absl::Now();
        const bool ok = curl_easy_perform(curl) == CURLE_OK &&
                        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
                        status == 200;
        request_micros += absl::ToInt64Microseconds(absl::Now() - start);
        if (!ok) failed = true;
        return ok;
      };
      for (int i = next++; i < items && !failed; i = next++) {
        if (i < lists) {
          get(base + RepoPath(i) + "/tags/list?n=1000", nullptr);
          continue;
        }
        const int r = (i - lists) / kTags, t = (i - lists) % kTags;
        if (!get(base + RepoPath(r) + "/manifests/" + TagName(t), manifest_headers)) break;
        // "config":{..."digest":"sha256:<64 hex>"
        const size_t config = body.find("\"config\"");
        const size_t at = body.find("sha256:", config == std::string::npos ? 0 : config);
        if (at == std::string::npos || at + 71 > body.size()) {
          failed = true;
          break;
        }
        get(base + RepoPath(r) + "/blobs/" + body.substr(at, 71), nullptr);
      }
      curl_slist_free_all(manifest_headers);
      curl_easy_cleanup(curl);
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  *requests += sent.load();
  if (request_seconds != nullptr) *request_seconds += request_micros.load() / 1e6;
  return failed ? -1 : seconds;
}

void BM_Ferry_ColdScan(benchmark::State& state) {
  Fixture& fx = Fixture::Get();
  if (!fx.ok) return state.SkipWithError("registry setup failed");
  state.counters["seed_seconds"] = fx.seed_seconds;
  const double tags_total = static_cast<double>(kRepositories) * kTags;
  double requests = 0;
  double ferry_seconds = 0;
  std::vector<double> plain_seconds;
  int plain_requests = 0;
  double plain_request_seconds = 0;
  double ferry_request_seconds = 0;
  double plain_cpu = 0, ferry_cpu = 0;
  double plain_switches = 0, ferry_switches = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // The plain client before and after Ferry's scan: the registry's speed as it was then.
    double cpu = ProcessCpuSeconds();
    double switches = ProcessContextSwitches();
    const double before = PlainClientScan(fx, &plain_requests, &plain_request_seconds);
    plain_cpu += ProcessCpuSeconds() - cpu;
    plain_switches += ProcessContextSwitches() - switches;
    if (before < 0) return state.SkipWithError("a plain client request failed");
    plain_seconds.push_back(before);
    const std::string cache = fx.dir + "/cold.db";
    std::filesystem::remove(cache);
    auto stack = std::make_unique<ScannerStack>(cache, fx.registry->host());
    if (!stack->scanner.Watch(fx.Repos()).ok()) return state.SkipWithError("watch failed");
    const absl::Time start = absl::Now();
    cpu = ProcessCpuSeconds();
    switches = ProcessContextSwitches();
    state.ResumeTiming();
    if (!ScanAll(stack->scanner, fx.Repos())) return state.SkipWithError("scan failed");
    state.PauseTiming();
    ferry_seconds += absl::ToDoubleSeconds(absl::Now() - start);
    ferry_cpu += ProcessCpuSeconds() - cpu;
    ferry_switches += ProcessContextSwitches() - switches;
    requests = stack->Requests();
    ferry_request_seconds += stack->RequestSeconds();
    auto counts = stack->scanner.TagCounts();
    size_t tags = 0;
    if (counts.ok()) {
      for (const auto& [repo, n] : *counts) tags += n;
    }
    if (tags != tags_total) return state.SkipWithError("not every tag was stored");
    stack.reset();
    cpu = ProcessCpuSeconds();
    switches = ProcessContextSwitches();
    const double after = PlainClientScan(fx, &plain_requests, &plain_request_seconds);
    plain_cpu += ProcessCpuSeconds() - cpu;
    plain_switches += ProcessContextSwitches() - switches;
    if (after < 0) return state.SkipWithError("a plain client request failed");
    plain_seconds.push_back(after);
    state.ResumeTiming();
  }
  const double iterations = static_cast<double>(state.iterations());
  double plain_total = 0, plain_best = 1e300;
  for (double s : plain_seconds) {
    plain_total += s;
    plain_best = std::min(plain_best, s);
  }
  const double ferry_rate = tags_total * iterations / ferry_seconds;
  const double plain_rate = tags_total * plain_seconds.size() / plain_total;
  state.counters["requests"] = requests;
  state.counters["tags"] = tags_total;
  state.counters["concurrency"] = kConcurrency;
  state.counters["tags_per_s"] = ferry_rate;
  state.counters["plain_tags_per_s"] = plain_rate;
  state.counters["plain_before_tags_per_s"] = tags_total / plain_seconds.front();
  state.counters["plain_after_tags_per_s"] = tags_total / plain_seconds.back();
  state.counters["plain_requests"] = plain_requests / static_cast<double>(plain_seconds.size());
  // Ferry's rate as a share of the plain client's (of the mean of its runs, and of its best).
  state.counters["pct_of_plain"] = 100 * ferry_rate / plain_rate;
  state.counters["pct_of_best_plain"] = 100 * ferry_rate / (tags_total / plain_best);
  // Requests in flight on average (time inside requests / time taken): how much of the
  // concurrency each kept busy.
  state.counters["in_flight"] = ferry_request_seconds / ferry_seconds;
  state.counters["plain_in_flight"] = plain_request_seconds / plain_total;
  // CPU time of the client per tag (user + system, every thread): on a small machine the
  // registry's own share.
  state.counters["cpu_ms_per_tag"] = 1e3 * ferry_cpu / (tags_total * iterations);
  state.counters["plain_cpu_ms_per_tag"] = 1e3 * plain_cpu / (tags_total * plain_seconds.size());
  // Context switches of the client's threads per tag: each is CPU the registry, on the same
  // machine, does not get.
  state.counters["switches_per_tag"] = ferry_switches / (tags_total * iterations);
  state.counters["plain_switches_per_tag"] = plain_switches / (tags_total * plain_seconds.size());
}
BENCHMARK(BM_Ferry_ColdScan)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RawGets_ColdScan(benchmark::State& state) {
  Fixture& fx = Fixture::Get();
  if (!fx.ok) return state.SkipWithError("registry setup failed");
  int requests = 0;
  double seconds = 0;
  for (auto _ : state) {
    seconds = PlainClientScan(fx, &requests);
    if (seconds < 0) return state.SkipWithError("a request failed");
  }
  state.counters["requests"] = requests;
  state.counters["concurrency"] = kConcurrency;
  state.counters["tags_per_s"] = static_cast<double>(kRepositories) * kTags / seconds;
}
BENCHMARK(BM_RawGets_ColdScan)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Skopeo_Inspect(benchmark::State& state) {
  Fixture& fx = Fixture::Get();
  if (!fx.ok) return state.SkipWithError("registry setup failed");
  for (auto _ : state) {
    for (int t = 0; t < kTags; ++t) {
      std::string cmd = absl::StrCat("skopeo inspect --no-tags --tls-verify=false docker://",
                                     fx.Repo(0), ":", TagName(t), " >/dev/null 2>&1");
      if (std::system(cmd.c_str()) != 0) return state.SkipWithError("skopeo inspect failed");
    }
  }
  state.counters["tags"] = kTags;
}
BENCHMARK(BM_Skopeo_Inspect)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Ferry_UnchangedRescan(benchmark::State& state) {
  Fixture& fx = Fixture::Get();
  if (!fx.ok) return state.SkipWithError("registry setup failed");
  const std::string cache = fx.dir + "/warm.db";
  std::filesystem::remove(cache);
  ScannerStack stack(cache, fx.registry->host());
  if (!stack.scanner.Watch(fx.Repos()).ok() || !ScanAll(stack.scanner, fx.Repos())) {
    return state.SkipWithError("warm-up scan failed");
  }
  const double before = stack.Requests();
  for (auto _ : state) {
    if (!ScanAll(stack.scanner, fx.Repos())) return state.SkipWithError("re-scan failed");
  }
  state.counters["requests_per_repository"] =
      (stack.Requests() - before) / static_cast<double>(kRepositories * state.iterations());
}
BENCHMARK(BM_Ferry_UnchangedRescan)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

// Pushes to team/live on a registry whose notifications go to a scanner's webhook, one after
// the other, each timed until the scanner's new-tag event (mean_ms, max_ms). The webhook's
// scans are queued with `priority` (the binary: interactive). With `backlog_repositories`,
// that many other repositories of `backlog_tags` tags each are pushed first, and their cold
// scans queued before the pushes. `requests_per_second`: the host's budget.
void PushesToEvents(benchmark::State& state, int pushes, ferry::http::Priority priority,
                    double requests_per_second, int backlog_repositories, int backlog_tags) {
  char tmpl[] = "/tmp/ferry-push-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return state.SkipWithError("mkdtemp failed");
  const std::string dir = tmpl;
  // The scanner's webhook first (the registry needs its URL), then the registry.
  std::unique_ptr<ScannerStack> stack;
  std::unique_ptr<ScanQueue> queue;
  std::mutex mu;
  std::string live;  // the pushed repository; the backlog's own pushes are not hints here
  prometheus::Registry webhook_metrics;
  auto webhook = WebhookServer::Start(
      {"127.0.0.1", 0}, "bench-secret", ferry::limits::kWebhookBody.default_value,
      [&](const PushHint& hint) {
        std::lock_guard<std::mutex> lock(mu);
        if (queue && hint.repository == live) queue->Request(hint.repository, hint.tag, priority);
      },
      webhook_metrics);
  if (!webhook.ok()) return state.SkipWithError("webhook server failed");
  auto registry = RegistryServer::StartWithNotifications(
      dir + "/registry", absl::StrCat("http://127.0.0.1:", (*webhook)->port(), "/webhook"),
      "bench-secret");
  if (!registry.ok()) return state.SkipWithError("notifying registry failed");
  std::atomic<bool> failed{false};
  ParallelFor(backlog_repositories * backlog_tags, [&](int i) {
    const int r = i / backlog_tags, t = i % backlog_tags;
    if (!(*registry)
             ->PushImage(absl::StrCat("team/backlog-", r), TagName(t), ImageConfig(r, t))
             .ok()) {
      failed = true;
    }
  });
  if (failed || !(*registry)->PushImage("team/live", "0.0.0", ImageConfig(0, 0)).ok()) {
    return state.SkipWithError("push failed");
  }
  std::vector<std::string> backlog;
  for (int r = 0; r < backlog_repositories; ++r) {
    backlog.push_back(absl::StrCat((*registry)->host(), "/team/backlog-", r));
  }
  stack =
      std::make_unique<ScannerStack>(dir + "/cache.db", (*registry)->host(), requests_per_second);
  std::vector<std::string> watched = backlog;
  {
    std::lock_guard<std::mutex> lock(mu);
    live = (*registry)->host() + "/team/live";
    watched.push_back(live);
  }
  if (!stack->scanner.Watch(watched).ok() || !stack->scanner.Scan(live).ok()) {
    return state.SkipWithError("first scan failed");
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    queue = std::make_unique<ScanQueue>(stack->scanner, kScanWorkers);
  }
  double worst = 0, total = 0;
  int pushed_count = 0;
  for (auto _ : state) {
    for (const std::string& r : backlog) queue->Request(r);
    for (int i = 1; i <= pushes; ++i) {
      const std::string tag = absl::StrCat("1.", i, ".0");
      uint64_t seen = stack->scanner.LastSequence();
      auto pushed = (*registry)->PushImage("team/live", tag, ImageConfig(1, i));
      const absl::Time pushed_at = absl::Now();
      if (!pushed.ok()) return state.SkipWithError("push failed");
      bool found = false;
      const absl::Time deadline = pushed_at + absl::Seconds(30);
      while (!found && absl::Now() < deadline) {
        for (const TagEvent& e : stack->scanner.WaitForEvents(seen, absl::Seconds(1))) {
          seen = std::max(seen, e.sequence);
          if (e.kind == TagEvent::Kind::kNewTag && e.tag.tag == tag) found = true;
        }
      }
      if (!found) return state.SkipWithError("no event within 30 s of a push");
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - pushed_at);
      worst = std::max(worst, ms);
      total += ms;
      ++pushed_count;
    }
  }
  state.counters["mean_ms"] = total / pushed_count;
  state.counters["max_ms"] = worst;
  {
    std::lock_guard<std::mutex> lock(mu);
    queue.reset();
  }
  std::filesystem::remove_all(dir);
}

void BM_Ferry_PushToEvent(benchmark::State& state) {
  PushesToEvents(state, 20, ferry::http::Priority::kInteractive, 1e6, 0, 0);
}
BENCHMARK(BM_Ferry_PushToEvent)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// A push while the scanner works through a backlog: cold scans of 8 repositories of 30 tags
// each are queued (~12 s of requests at the host's budget of 40 requests/s), then 5 pushes.
// Argument 0: the webhook's scan queued as a background one (close to the scanner before
// 2026-12-04, which had no priorities); 1: as an interactive one (ahead of the due scans, on
// the worker kept for them, its requests first in the host's budget).
void BM_Ferry_PushToEventBehindScans(benchmark::State& state) {
  PushesToEvents(state, 5,
                 state.range(0) == 1 ? ferry::http::Priority::kInteractive
                                     : ferry::http::Priority::kBackground,
                 /*requests_per_second=*/40, /*backlog_repositories=*/8, /*backlog_tags=*/30);
}
BENCHMARK(BM_Ferry_PushToEventBehindScans)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// VmRSS / VmHWM of `pid` in MB.
std::pair<double, double> RssMb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  double rss = 0, hwm = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stod(line.substr(6)) / 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stod(line.substr(6)) / 1024.0;
  }
  return {rss, hwm};
}

void BM_Binary_Rss10kTags(benchmark::State& state) {
  Fixture& fx = Fixture::Get();
  if (!fx.ok) return state.SkipWithError("registry setup failed");
  const std::string state_dir = fx.dir + "/binary-state";
  std::filesystem::remove_all(state_dir);
  auto process = ferry::testing::Subprocess::Start(
      {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
       "--state_dir=" + state_dir, "--registry_insecure_hosts=" + fx.registry->host(),
       "--registry_rps=100000", "--registry_burst=100000"});
  if (!process.ok()) return state.SkipWithError("could not start the scanner");
  auto line = (*process)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, " listening "); }, absl::Seconds(20));
  const int port = line ? ferry::testing::IntField(*line, "grpc_port").value_or(0) : 0;
  if (port == 0) return state.SkipWithError("the scanner did not start");
  auto stub = ferry::v1::RegistryScanner::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  for (auto _ : state) {
    ferry::v1::WatchRequest watch;
    for (const std::string& r : fx.Repos()) watch.add_repositories(r);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    ferry::v1::WatchResponse watched;
    if (!stub->Watch(&ctx, watch, &watched).ok()) return state.SkipWithError("Watch failed");
    // Scanned when every repository reports a last scan (polled every 100 ms, at most 10 min).
    const absl::Time deadline = absl::Now() + absl::Minutes(10);
    int tags = 0;
    while (absl::Now() < deadline) {
      grpc::ClientContext sctx;
      ferry::v1::StatusResponse status;
      if (!stub->Status(&sctx, {}, &status).ok()) return state.SkipWithError("Status failed");
      int scanned = 0;
      tags = 0;
      for (const auto& r : status.repositories()) {
        if (r.has_last_scan()) ++scanned;
        tags += r.tag_count();
      }
      if (scanned == kRepositories) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (tags != kRepositories * kTags) return state.SkipWithError("not every tag was scanned");
  }
  auto [rss, hwm] = RssMb((*process)->pid());
  state.counters["rss_mb"] = rss;
  state.counters["peak_rss_mb"] = hwm;
}
BENCHMARK(BM_Binary_Rss10kTags)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
