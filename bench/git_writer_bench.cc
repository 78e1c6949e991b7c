// A release of one image used by 100 workloads of a repo of 1,000 and of 10,000 (files of 10
// multi-document workloads with sidecars and comments; the argument is the repo's workload
// count), pushed to a bare repo over file://:
//
// - BM_Ferry_Release: git-writer's Writer with a warm mirror (ApplyUpdates, 100
//   compare-and-set edits, one commit, push);
// - BM_GitCli_Release: the seed's manual path scripted with the git CLI: shallow clone,
//   find the files with grep, edit with sed, commit, push.
//
// BM_Index_* time the workload index of a new revision (see each).
//
// Each runs 5 repetitions of one release; the report compares the medians. The release is the
// same 100 workloads at both sizes, so the 10,000 figure shows what the rest of the repo costs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/scale_repo.h"
#include "services/git-writer/git_writer_service.h"
#include "services/git-writer/libgit2_repository.h"
#include "services/git-writer/writer.h"
#include "tests/support/git_repo.h"

namespace {

using ferry::testing::GitRepo;

constexpr char kShared[] = "registry.example.com/shared/app";

constexpr int kReleased = 100;  // workloads that use kShared, one per file they are spread over

// Files between two that use kShared in a repo of `workloads` (at least 1,000).
int Stride(int workloads) { return std::max(1, workloads / 10 / kReleased); }

// The r-th file (0 <= r < kReleased) whose workload 3 uses kShared, in a repo of `workloads`:
// every Stride()-th file (at 10,000 all of them in namespace team-0: a file's namespace is its
// number modulo 10).
int ReleasedFile(int workloads, int r) { return r * Stride(workloads); }

std::map<std::string, std::string> RepoFiles(int workloads = 1000) {
  const int file_count = workloads / 10;
  const int stride = Stride(workloads);
  std::map<std::string, std::string> files;
  for (int f = 0; f < file_count; ++f) {
    std::string content;
    for (int w = 0; w < 10; ++w) {
      int i = f * 10 + w;
      std::string image = w == 3 && f % stride == 0
                              ? absl::StrCat(kShared, ":1.0.0")
                              : absl::StrCat("registry.example.com/team/app-", i, ":1.0.0");
      absl::StrAppend(&content, "---\n# workload ", i, "\napiVersion: apps/v1\nkind: Deployment\n",
                      "metadata:\n  name: app-", i, "\n  namespace: team-", f % 10,
                      "\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n",
                      "      - name: app\n        image: ", image, "  # release target\n",
                      "        env:\n        - name: MODE\n          value: production\n",
                      "      - name: proxy\n        image: \"envoyproxy/envoy:v1.28.0\"\n");
    }
    files[absl::StrCat("apps/team-", f, ".yaml")] = content;
  }
  return files;
}

// An upstream repo of RepoFiles(workloads) and a Writer over its mirror, fetched and indexed.
struct WarmWriter {
  std::unique_ptr<GitRepo> upstream;
  std::unique_ptr<ferry::git_writer::Libgit2Repository> repo;
  prometheus::Registry registry;
  std::unique_ptr<ferry::git_writer::WriterMetrics> metrics;
  std::unique_ptr<ferry::git_writer::Writer> writer;

  // A Writer with nothing cached yet.
  void NewWriter() {
    writer = std::make_unique<ferry::git_writer::Writer>(*repo, ferry::git_writer::WriterOptions{},
                                                         *metrics);
  }
};

// Null (and the benchmark skipped) when the repo cannot be set up.
std::unique_ptr<WarmWriter> StartWarmWriter(benchmark::State& state,
                                            const std::map<std::string, std::string>& files) {
  auto out = std::make_unique<WarmWriter>();
  auto upstream = GitRepo::Create(files);
  if (!upstream.ok()) {
    state.SkipWithError("repo setup failed");
    return nullptr;
  }
  out->upstream = *std::move(upstream);
  ferry::git_writer::Libgit2Options o;
  o.url = out->upstream->url();
  o.mirror_dir = out->upstream->dir() + "/mirror.git";
  auto repo = ferry::git_writer::Libgit2Repository::Open(o);
  if (!repo.ok()) {
    state.SkipWithError("mirror setup failed");
    return nullptr;
  }
  out->repo = *std::move(repo);
  out->metrics = std::make_unique<ferry::git_writer::WriterMetrics>(out->registry);
  out->NewWriter();
  (void)out->writer->Refresh();  // warm mirror
  (void)out->writer->IndexAt("");
  return out;
}

std::unique_ptr<WarmWriter> StartWarmWriter(benchmark::State& state, int workloads = 1000) {
  return StartWarmWriter(state, RepoFiles(workloads));
}

// Container "app" of each of `workloads` goes to `image`, in one request.
ferry::git_writer::ApplyRequest ImageRelease(const std::vector<std::string>& workloads,
                                             const std::string& image) {
  ferry::git_writer::ApplyRequest req;
  for (const std::string& w : workloads) {
    ferry::git_writer::EditRequest e;
    e.workload = w;
    e.image = ferry::manifest::ImageChange{"app", image, {}};
    req.edits.push_back(std::move(e));
  }
  return req;
}

void BM_Ferry_Release(benchmark::State& state) {
  const int workloads = static_cast<int>(state.range(0));
  std::unique_ptr<WarmWriter> warm = StartWarmWriter(state, workloads);
  if (warm == nullptr) return;
  ferry::git_writer::Writer& writer = *warm->writer;
  int version = 1;
  std::vector<std::string> released;
  for (int r = 0; r < kReleased; ++r) {
    const int f = ReleasedFile(workloads, r);
    released.push_back(absl::StrCat("team-", f % 10, ":deployment/app-", f * 10 + 3));
  }
  for (auto _ : state) {
    auto out = writer.Apply(ImageRelease(released, absl::StrCat(kShared, ":1.0.", version)));
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
    } else if (out->revision.empty()) {
      std::string why = "release made no commit";
      for (const auto& edit : out->edits) {
        if (!edit.status.ok()) why = std::string(edit.status.message());
      }
      state.SkipWithError(why.c_str());
    }
    ++version;
  }
  state.counters["workloads_changed"] = kReleased;
}
BENCHMARK(BM_Ferry_Release)
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

void BM_GitCli_Release(benchmark::State& state) {
  auto upstream = GitRepo::Create(RepoFiles(static_cast<int>(state.range(0))));
  if (!upstream.ok()) {
    state.SkipWithError("repo setup failed");
    return;
  }
  int version = 1;
  for (auto _ : state) {
    std::string script = absl::StrCat(
        "set -e; d=$(mktemp -d); trap 'rm -rf $d' EXIT; "
        "git clone -q --depth 1 -b main ",
        (*upstream)->url(),
        " $d/w; cd $d/w; "
        "files=$(grep -rl --include='*.yaml' '",
        kShared,
        ":' .); "
        "sed -i 's#",
        kShared, ":[^ ]*#", kShared, ":1.0.", version,
        "#' $files; "
        "git -c user.name=ci -c user.email=ci@example.com commit -qam 'Release'; "
        "git push -q origin HEAD:main");
    int rc = std::system(absl::StrCat("(", script, ") >/dev/null 2>&1").c_str());
    if (rc != 0) state.SkipWithError("git CLI release failed");
    ++version;
  }
  state.counters["workloads_changed"] = kReleased;
}
BENCHMARK(BM_GitCli_Release)
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

// The workload index of a new upstream revision that changed one file of 100 (1,000
// workloads): built from the previous index (only the changed blob parsed) against built
// from nothing (every file parsed, as before the index kept blob ids). Only IndexAt is
// timed; the upstream commit and the fetch are not.
void IndexAfterUpstreamCommit(benchmark::State& state, bool from_previous) {
  std::unique_ptr<WarmWriter> warm = StartWarmWriter(state);
  if (warm == nullptr) return;
  std::map<std::string, std::string> files = RepoFiles();
  int version = 1;
  for (auto _ : state) {
    std::string& file = files["apps/team-7.yaml"];
    absl::StrAppend(&file, "# upstream change ", version++, "\n");
    if (!warm->upstream->CommitWithCli({{"apps/team-7.yaml", file}}, "Upstream change").ok()) {
      state.SkipWithError("upstream commit failed");
      break;
    }
    if (!from_previous) warm->NewWriter();
    (void)warm->writer->Refresh();
    const auto start = std::chrono::steady_clock::now();
    auto index = warm->writer->IndexAt("");
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!index.ok() || (*index)->loaded.resources.size() != 1000) {
      state.SkipWithError("index failed");
      break;
    }
  }
  state.counters["workloads"] = 1000;
}

void BM_Index_FromPrevious(benchmark::State& state) { IndexAfterUpstreamCommit(state, true); }
BENCHMARK(BM_Index_FromPrevious)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);

void BM_Index_FromNothing(benchmark::State& state) { IndexAfterUpstreamCommit(state, false); }
BENCHMARK(BM_Index_FromNothing)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);

constexpr char kScaleRegistry[] = "registry.example.com";

// The scale benchmarks' repo of `workloads` workloads (a file per workload, its Deployment
// then its Service, in one folder).
std::map<std::string, std::string> ScaleRepo(int workloads) {
  return ferry::bench::ScaleRepoFiles(workloads, "team-", kScaleRegistry);
}

// kReleased workloads of ScaleRepo that use image 0 (ScaleImageOf).
std::vector<std::string> ScaleReleased() {
  std::vector<std::string> released;
  for (int r = 0; r < kReleased; ++r) {
    released.push_back(ferry::bench::ScaleWorkloadId("team-", r / 10 * 100 + r % 10));
  }
  return released;
}

// A job record like the one the api notes on a release's commit: the job with a result per
// released workload.
std::string JobNote(const std::string& id, const std::vector<std::string>& released) {
  std::string results;
  for (const std::string& w : released) {
    absl::StrAppend(&results, results.empty() ? "" : ",", R"({"workload":")", w,
                    R"(","status":"WORKLOAD_RESULT_STATUS_SUCCESS","containers":[{"name":"app",)",
                    R"("current":"registry.example.com/bench/app-0:1.0.0",)",
                    R"("target":"registry.example.com/bench/app-0:2.0.1"}]})");
  }
  return absl::StrCat(R"({"id":")", id,
                      R"(","kind":"JOB_KIND_RELEASE","state":"JOB_STATE_RUNNING",)",
                      R"("cause":{"user":"Bench <bench@example.com>"},"results":[)", results, "]}");
}

// The release of `released` to version 2.0.`version` of image 0 as the api asks for one (a
// job note, no diff).
ferry::git_writer::ApplyRequest ScaleRelease(const std::vector<std::string>& released,
                                             int version) {
  ferry::git_writer::ApplyRequest request =
      ImageRelease(released, absl::StrCat(kScaleRegistry, "/bench/app-0:2.0.", version));
  request.job_id = absl::StrCat("job-", version);
  request.job_kind = "release";
  request.omit_diff = true;  // as the api asks
  request.note = JobNote(request.job_id, released);
  return request;
}

// Apply of `request`, timed as the iteration's time (and then, when `wait_for_fold`, the
// end of the fold it started, if any). False (and the benchmark skipped) when it failed.
bool TimedRelease(benchmark::State& state, ferry::git_writer::Writer& writer,
                  const ferry::git_writer::ApplyRequest& request, bool wait_for_fold, double* ms) {
  const auto start = std::chrono::steady_clock::now();
  auto out = writer.Apply(request);
  if (wait_for_fold) writer.WaitForMaintenance();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  state.SetIterationTime(seconds);
  if (ms != nullptr) *ms = seconds * 1e3;
  if (!out.ok() || out->revision.empty()) {
    state.SkipWithError("release failed");
    return false;
  }
  for (const auto& edit : out->edits) {
    if (!edit.status.ok()) {
      state.SkipWithError(std::string(edit.status.message()).c_str());
      return false;
    }
  }
  return true;
}

// A release of 100 workloads of the scale benchmarks' repo (a file per workload in one
// folder, so each commit writes a tree of N entries) of 1,000 and of 10,000 workloads, as
// the api asks for one (a job note, no diff): request -> commit and note pushed.
void BM_Ferry_ReleaseInTheScaleRepo(benchmark::State& state) {
  const int workloads = static_cast<int>(state.range(0));
  std::unique_ptr<WarmWriter> warm = StartWarmWriter(state, ScaleRepo(workloads));
  if (warm == nullptr) return;
  const std::vector<std::string> released = ScaleReleased();
  int version = 1;
  for (auto _ : state) {
    if (!TimedRelease(state, *warm->writer, ScaleRelease(released, version++), false, nullptr)) {
      break;
    }
  }
  state.counters["workloads"] = workloads;
}
BENCHMARK(BM_Ferry_ReleaseInTheScaleRepo)
    ->Arg(1000)
    ->Arg(10000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);

// Splits the mirror of `warm` (one pack, as fetched) into two packs of half its objects each,
// with the git CLI, and opens it again: the next fold then merges every pack, into a pack of
// what the refs reach. False when git fails.
bool SplitMirrorInTwo(WarmWriter& warm) {
  warm.writer.reset();
  warm.repo.reset();
  const std::string mirror = warm.upstream->dir() + "/mirror.git";
  const std::string git = "git --git-dir=" + mirror + " ";
  int rc = -1;
  const std::string old_packs = ferry::testing::RunCommand("ls " + mirror + "/objects/pack", &rc);
  if (rc != 0) return false;
  const std::string list = warm.upstream->dir() + "/objects.txt";
  ferry::testing::RunCommand(git + "rev-list --objects --all | cut -d' ' -f1 > " + list, &rc);
  if (rc != 0) return false;
  for (const char* half : {"NR % 2 == 0", "NR % 2 == 1"}) {
    ferry::testing::RunCommand(absl::StrCat("awk '", half, "' ", list, " | ", git,
                                            "pack-objects -q ", mirror, "/objects/pack/pack"),
                               &rc);
    if (rc != 0) return false;
  }
  for (absl::string_view name : absl::StrSplit(old_packs, '\n', absl::SkipEmpty())) {
    std::filesystem::remove(absl::StrCat(mirror, "/objects/pack/", name));
  }
  ferry::git_writer::Libgit2Options o;
  o.url = warm.upstream->url();
  o.mirror_dir = mirror;
  auto repo = ferry::git_writer::Libgit2Repository::Open(o);
  if (!repo.ok()) return false;
  warm.repo = *std::move(repo);
  warm.NewWriter();
  return warm.writer->Refresh().ok() && warm.writer->IndexAt("").ok();
}

// 40 releases of 100 workloads of the 10,000-workload scale repo, each a write (the commit
// with its note): the 32nd makes the fold of the mirror's packs due. First argument 0: a
// fold of the 32 small packs (every object of them kept); 1: of every pack, keeping what
// the refs reach (the mirror split in two first). Second argument 0, as git-writer does: the
// fold runs beside the releases that follow. 1, the alternative: each release also waits for
// the fold it started, as when the fold ran inside the push (or, for a fold of every pack,
// as when it held the writes off). max_ms is the slowest release of the 40.
void BM_Ferry_ReleasesAcrossAFold(benchmark::State& state) {
  const bool every_pack = state.range(0) == 1;
  const bool wait_for_fold = state.range(1) == 1;
  std::unique_ptr<WarmWriter> warm = StartWarmWriter(state, ScaleRepo(10000));
  if (warm == nullptr) return;
  if (every_pack && !SplitMirrorInTwo(*warm)) return state.SkipWithError("splitting the mirror");
  const std::vector<std::string> released = ScaleReleased();
  int version = 1;
  double max_ms = 0;
  for (auto _ : state) {
    double ms = 0;
    if (!TimedRelease(state, *warm->writer, ScaleRelease(released, version++), wait_for_fold,
                      &ms)) {
      break;
    }
    max_ms = std::max(max_ms, ms);
  }
  warm->writer->WaitForMaintenance();
  state.counters["max_ms"] = max_ms;
  state.counters["fold_waited_for"] = wait_for_fold ? 1 : 0;
  state.counters["every_pack"] = every_pack ? 1 : 0;
}
BENCHMARK(BM_Ferry_ReleasesAcrossAFold)
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(40);

// The index of Ferry's own release commit, carried over from the index it was made on when
// the commit is first read (as the syncer's read of the new head does): a release of 100
// workloads of the scale benchmarks' repo (a file per workload, its Deployment then its
// Service) of 1,000 and of 10,000 workloads. Only IndexAt(commit) is timed, not the release:
// the carry with what comes with it (the oldest cached index dropped, two malloc_trims); a
// release before the timed ones fills the cache, so each drops one.
void BM_Index_CarriedAfterRelease(benchmark::State& state) {
  const int workloads = static_cast<int>(state.range(0));
  std::unique_ptr<WarmWriter> warm = StartWarmWriter(state, ScaleRepo(workloads));
  if (warm == nullptr) return;
  ferry::git_writer::Writer& writer = *warm->writer;
  int version = 1;
  const std::vector<std::string> released = ScaleReleased();
  auto release = [&] {
    return writer.Apply(
        ImageRelease(released, absl::StrCat(kScaleRegistry, "/bench/app-0:2.0.", version++)));
  };
  if (auto first = release(); !first.ok() || !writer.IndexAt(first->revision).ok()) {
    state.SkipWithError("first release failed");
    return;
  }
  for (auto _ : state) {
    auto out = release();
    if (!out.ok() || out->revision.empty()) {
      state.SkipWithError("release failed");
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    auto index = writer.IndexAt(out->revision);
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!index.ok() || (*index)->loaded.resources.size() != 2 * workloads + 10u) {
      state.SkipWithError("index failed");
      break;
    }
  }
  state.counters["workloads"] = workloads;
}
BENCHMARK(BM_Index_CarriedAfterRelease)
    ->Arg(1000)
    ->Arg(10000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);

// The first page (500 entries) of ListWorkloads at Ferry's own commit releasing 100 workloads
// of the scale benchmarks' repo of 1,000 and of 10,000: the first listing of a revision makes the
// entry of every workload. Two releases per iteration; only the listing of the second is timed, its
// index already carried (IndexAt). Second argument 1: the first release was listed too, so
// the second's entries can come from it (those of the files the release did not change);
// 0: it was not, so every entry is made anew (as for a revision after an upstream commit).
void BM_Index_FirstListingAfterRelease(benchmark::State& state) {
  const int workloads = static_cast<int>(state.range(0));
  const bool base_listed = state.range(1) == 1;
  std::unique_ptr<WarmWriter> warm = StartWarmWriter(state, ScaleRepo(workloads));
  if (warm == nullptr) return;
  ferry::git_writer::Writer& writer = *warm->writer;
  ferry::git_writer::GitWriterService service(writer, ferry::git_writer::ServiceOptions{});
  const std::vector<std::string> released = ScaleReleased();
  int version = 1;
  auto release = [&]() -> std::string {
    auto out = writer.Apply(
        ImageRelease(released, absl::StrCat(kScaleRegistry, "/bench/app-0:2.0.", version++)));
    if (!out.ok() || out->revision.empty() || !writer.IndexAt(out->revision).ok()) return "";
    return out->revision;
  };
  auto list = [&](const std::string& revision) {
    ferry::v1::ListManifestWorkloadsRequest request;
    request.set_revision(revision);
    request.set_limit(500);
    ferry::v1::ListManifestWorkloadsResponse response;
    return service.ListWorkloads(nullptr, &request, &response).ok() &&
           response.workloads_size() == 500;
  };
  for (auto _ : state) {
    const std::string first = release();
    if (first.empty() || (base_listed && !list(first))) {
      state.SkipWithError("first release failed");
      break;
    }
    const std::string second = release();
    if (second.empty()) {
      state.SkipWithError("second release failed");
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    const bool listed = list(second);
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!listed) {
      state.SkipWithError("listing failed");
      break;
    }
  }
  state.counters["workloads"] = workloads;
}
BENCHMARK(BM_Index_FirstListingAfterRelease)
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);

}  // namespace

BENCHMARK_MAIN();
