// Manifest loading and editing, side by side with the plain alternatives:
//
// - BM_LoadTree: load and index a repo of 5,000 workloads (10,000 resources in 500 files),
//   vs BM_LoadTree_YamlCppOnly: yaml-cpp parsing the same files with no indexing (the raw
//   parser's capacity, the floor for any loader built on it).
// - BM_SetImage_BigFile: one image edit in a 282-resource, 2.7 MB multi-document file with
//   the file's index at hand (what git-writer does), BM_SetImage_BigFile_WithLoad the same
//   including loading the file first, vs BM_ReEmit_BigFile: the naive edit that parses
//   every document, changes the node and re-emits the whole file (what reformatting tools
//   do, and which loses comments and quoting besides being slow).
//
// Counters: bytes_per_second (YAML throughput) and peak_rss_mb (VmHWM of the process).
#include <benchmark/benchmark.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"

namespace {

namespace fs = std::filesystem;

double PeakRssMb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

// A Deployment with a sidecar, comments and quoting variety, plus its Service.
std::string Workload(int i, int padding_env) {
  std::string s = absl::StrCat(
      "---\n# workload ", i, " of the benchmark repo\napiVersion: apps/v1\nkind: Deployment\n",
      "metadata:\n  name: app-", i, "\n  namespace: team-", i % 20, "\n  labels:\n    app: app-", i,
      "\n  annotations:\n    fluxcd.io/automated: \"", (i % 3 == 0 ? "true" : "false"),
      "\"\n    fluxcd.io/tag.app: semver:~1.", i % 7, "\nspec:\n  replicas: 2\n  selector:\n",
      "    matchLabels:\n      app: app-", i, "\n  template:\n    metadata:\n      labels:\n",
      "        app: app-", i, "\n    spec:\n      containers:\n      - name: app\n",
      "        image: registry.example.com/team-", i % 20, "/app-", i % 100, ":1.", i % 7,
      ".0 # pinned by Ferry\n        ports:\n        - containerPort: 8080\n        env:\n");
  for (int e = 0; e < padding_env; ++e) {
    absl::StrAppend(&s, "        - name: SETTING_", e, "\n          value: 'value number ", e,
                    " for app ", i, "'\n");
  }
  absl::StrAppend(&s, "      - name: proxy\n        image: \"envoyproxy/envoy:v1.2", i % 10,
                  ".0\"\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app-", i,
                  "\n  namespace: team-", i % 20, "\nspec:\n  ports:\n  - port: 80\n",
                  "    protocol: TCP\n");
  return s;
}

const fs::path& Repo() {
  static const fs::path* dir = [] {
    auto* p =
        new fs::path(fs::temp_directory_path() / ("ferry-bench-repo-" + std::to_string(getpid())));
    fs::create_directories(*p);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(Repo(), ec);
    });
    for (int f = 0; f < 500; ++f) {
      std::ofstream out(*p / absl::StrCat("apps-", f, ".yaml"));
      for (int w = 0; w < 10; ++w) out << Workload(f * 10 + w, 3);
    }
    return p;
  }();
  return *dir;
}

int64_t RepoBytes() {
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(Repo())) n += static_cast<int64_t>(e.file_size());
  return n;
}

// 282 resources (141 workloads + services) padded to about 2.7 MB.
const std::string& BigFile() {
  static const std::string* content = [] {
    auto* s = new std::string();
    for (int i = 0; i < 141; ++i) *s += Workload(i, 256);
    return s;
  }();
  return *content;
}

void BM_LoadTree(benchmark::State& state) {
  const int64_t bytes = RepoBytes();
  size_t containers = 0;
  for (auto _ : state) {
    absl::StatusOr<ferry::manifest::LoadResult> r = ferry::manifest::LoadTree(Repo().string(), {});
    if (!r.ok() || r->resources.size() != 10000) state.SkipWithError("load failed");
    for (const auto& res : r->resources) containers += ferry::manifest::FindContainers(res).size();
    benchmark::DoNotOptimize(containers);
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["resources"] = 10000;
  state.counters["peak_rss_mb"] = PeakRssMb();
}
BENCHMARK(BM_LoadTree)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_LoadTree_YamlCppOnly(benchmark::State& state) {
  const int64_t bytes = RepoBytes();
  for (auto _ : state) {
    size_t docs = 0;
    for (const auto& e : fs::directory_iterator(Repo())) {
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      docs += YAML::LoadAll(ss.str()).size();
    }
    if (docs != 10000) state.SkipWithError("parse failed");
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["peak_rss_mb"] = PeakRssMb();
}
BENCHMARK(BM_LoadTree_YamlCppOnly)->Unit(benchmark::kMillisecond)->Iterations(3);

const char kTarget[] = "team-10:deployment/app-70";

void BM_SetImage_BigFile(benchmark::State& state) {
  const std::string& content = BigFile();
  ferry::manifest::LoadResult index = ferry::manifest::LoadFile("big.yaml", content);
  const ferry::manifest::Resource* target = nullptr;
  for (const auto& r : index.resources) {
    if (r.id == kTarget) target = &r;
  }
  if (target == nullptr) {
    state.SkipWithError("resource not found");
    return;
  }
  for (auto _ : state) {
    auto edit = ferry::manifest::SetImage(content, *target,
                                          {"app", "registry.example.com/team-10/app-70:2.0.0", {}});
    if (!edit.ok() || edit->changes.size() != 1) state.SkipWithError("edit failed");
    benchmark::DoNotOptimize(edit);
  }
  state.counters["file_mb"] = static_cast<double>(content.size()) / 1e6;
  state.counters["resources"] = static_cast<double>(index.resources.size());
}
BENCHMARK(BM_SetImage_BigFile)->Unit(benchmark::kMillisecond);

void BM_SetImage_BigFile_WithLoad(benchmark::State& state) {
  const std::string& content = BigFile();
  for (auto _ : state) {
    absl::StatusOr<ferry::manifest::Source> source =
        ferry::manifest::FindResource("big.yaml", content, kTarget);
    auto edit = ferry::manifest::SetImage(content, *source, kTarget,
                                          {"app", "registry.example.com/team-10/app-70:2.0.0", {}});
    if (!edit.ok()) state.SkipWithError("edit failed");
    benchmark::DoNotOptimize(edit);
  }
  state.counters["file_mb"] = static_cast<double>(content.size()) / 1e6;
}
BENCHMARK(BM_SetImage_BigFile_WithLoad)->Unit(benchmark::kMillisecond);

void BM_ReEmit_BigFile(benchmark::State& state) {
  const std::string& content = BigFile();
  for (auto _ : state) {
    std::vector<YAML::Node> docs = YAML::LoadAll(content);
    YAML::Emitter out;
    for (YAML::Node& doc : docs) {
      if (doc["metadata"]["name"].as<std::string>() == "app-70" &&
          doc["kind"].as<std::string>() == "Deployment") {
        doc["spec"]["template"]["spec"]["containers"][0]["image"] =
            "registry.example.com/team-10/app-70:2.0.0";
      }
      out << YAML::BeginDoc << doc;
    }
    benchmark::DoNotOptimize(out.c_str());
  }
  state.counters["file_mb"] = static_cast<double>(content.size()) / 1e6;
}
BENCHMARK(BM_ReEmit_BigFile)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
