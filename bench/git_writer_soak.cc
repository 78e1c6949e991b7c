// Soak of a real ferry-git-writer against a real file:// upstream: N fetches (Notify, each a
// fetch with nothing new) and M releases (ApplyUpdates, each a commit, a push and a job note),
// then the resident memory of the process at the start and at the end.
//
//   build/bench/git_writer_soak [--fetches=10000] [--releases=1000] [--ssh]
//
// --ssh: the upstream is served by a real sshd on loopback (as in production, where the
// remote is ssh or https) instead of file://, which libgit2 serves inside the process.
//
// The start is measured after a warm-up (the first 1% of each, at least 10 fetches and 50
// releases: three rounds of the mirror's pack folding, every 32 writes), so the figure is
// growth, not the first allocations. Exit code 1 when the process's own memory (RssAnon:
// heap and stacks) grew by 5% or more of the starting RSS. The mapped files (RssFile) are
// reported beside it but not counted: they are the mirror's packs, which grow with the
// history the run itself adds (2,000 commits and notes), not with time. The live heap
// (allocated and not freed, ferry_process_heap_in_use_bytes) is reported too.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/bench_args.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "tests/support/git_repo.h"
#include "tests/support/http.h"
#include "tests/support/sshd.h"
#include "tests/support/subprocess.h"

namespace {

using ferry::testing::GitRepo;
using ferry::testing::Subprocess;

// A "Name:   123 kB" field of /proc/`pid`/status in KiB (VmRSS, RssAnon, RssFile), -1 when
// unknown.
long RssKib(pid_t pid, absl::string_view field = "VmRSS:") {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field)) {
      long kib = -1;
      (void)absl::SimpleAtoi(
          absl::StripAsciiWhitespace(line.substr(field.size(), line.size() - field.size() - 3)),
          &kib);
      return kib;
    }
  }
  return -1;
}

// A repo like a small team's: 50 files of 4 workloads each.
std::map<std::string, std::string> RepoFiles() {
  std::map<std::string, std::string> files;
  for (int f = 0; f < 50; ++f) {
    std::string content;
    for (int w = 0; w < 4; ++w) {
      absl::StrAppend(&content,
                      "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-",
                      f * 4 + w, "\n  namespace: team-", f % 5,
                      "\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n",
                      "        image: registry.example.com/team/app-", f * 4 + w, ":1.0.0\n");
    }
    files[absl::StrCat("apps/team-", f, ".yaml")] = content;
  }
  return files;
}

}  // namespace

// A gauge of the git-writer's /metrics in KiB, -1 when missing.
long GaugeKib(int metrics_port, absl::string_view name) {
  auto response =
      ferry::testing::HttpGet(absl::StrCat("http://127.0.0.1:", metrics_port, "/metrics"));
  if (!response.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(response->body, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return static_cast<long>(value / 1024);
  }
  return -1;
}

int main(int argc, char** argv) {
  const int fetches = ferry::bench::IntFlag(argc, argv, "fetches", 10000);
  const int releases = ferry::bench::IntFlag(argc, argv, "releases", 1000);
  // A git server packs what it received every so often (git's gc.autoPackLimit is 50 packs);
  // the file:// upstream here is a plain folder, so the soak does it. 0: never.
  const int upstream_gc_every = ferry::bench::IntFlag(argc, argv, "upstream_gc_every", 50);
  const bool ssh = std::find(argv + 1, argv + argc, std::string("--ssh")) != argv + argc;
  auto upstream = GitRepo::Create(RepoFiles());
  if (!upstream.ok()) {
    std::fprintf(stderr, "repo setup failed: %s\n", upstream.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<ferry::testing::Sshd> sshd;
  std::vector<std::string> remote_flags = {"--git_url=" + (*upstream)->url()};
  if (ssh) {
    auto started = ferry::testing::Sshd::Start((*upstream)->dir() + "/sshd");
    if (!started.ok()) {
      std::fprintf(stderr, "sshd: %s\n", started.status().ToString().c_str());
      return 2;
    }
    sshd = *std::move(started);
    const std::string known_hosts = (*upstream)->dir() + "/known_hosts";
    std::ofstream(known_hosts) << sshd->KnownHostsLine() << "\n";
    remote_flags = {"--git_url=" + sshd->Url((*upstream)->dir() + "/upstream.git"),
                    "--git_ssh_key_path=" + sshd->client_key_path(),
                    "--git_known_hosts_path=" + known_hosts};
  }
  // FERRY_SOAK_WRAPPER runs git-writer under a profiler, e.g. "/usr/bin/heaptrack" (RSS figures are
  // then the wrapper's).
  std::vector<std::string> command = ferry::bench::WrapperCommand("FERRY_SOAK_WRAPPER");
  for (std::string arg :
       {std::string(FERRY_GIT_WRITER_BIN), std::string("--grpc_address=127.0.0.1:0"),
        std::string("--metrics_address=127.0.0.1:0"),
        "--state_dir=" + (*upstream)->dir() + "/state", std::string("--git_poll_interval=1h")}) {
    command.push_back(std::move(arg));
  }
  command.insert(command.end(), remote_flags.begin(), remote_flags.end());
  auto process = Subprocess::Start(command);
  if (!process.ok()) return 2;
  std::optional<std::string> line = (*process)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "grpc_port="); }, absl::Seconds(30));
  std::optional<int> port = line ? ferry::testing::IntField(*line, "grpc_port") : std::nullopt;
  if (!port) {
    std::fprintf(stderr, "git-writer did not start:\n%s\n", (*process)->Output().c_str());
    return 2;
  }
  auto stub = ferry::v1::GitWriter::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", *port), grpc::InsecureChannelCredentials()));
  const pid_t pid = (*process)->pid();
  const int metrics_port = ferry::testing::IntField(*line, "metrics_port").value_or(0);

  int failed = 0;
  auto notify = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::HeadResponse head;
    if (!stub->Notify(&ctx, {}, &head).ok()) ++failed;
  };
  int released = 0;
  auto release = [&] {
    ferry::v1::ApplyUpdatesRequest request;
    ferry::v1::Edit* edit = request.add_edits();
    edit->set_workload("team-0:deployment/app-0");
    edit->mutable_image()->set_container("app");
    edit->mutable_image()->set_to_image(
        absl::StrCat("registry.example.com/team/app-0:2.0.", ++released));
    request.mutable_cause()->set_user("Soak <soak@example.com>");
    request.mutable_job()->set_id(absl::StrCat("soak-", released));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ferry::v1::ApplyUpdatesResponse response;
    grpc::Status status = stub->ApplyUpdates(&ctx, request, &response);
    if (upstream_gc_every > 0 && released % upstream_gc_every == 0) {
      (*upstream)->Git("repack -a -d -q");
    }
    if (!status.ok()) {
      ++failed;
      std::fprintf(stderr, "release %d: %s\n", released, status.error_message().c_str());
    }
  };

  const int warm_fetches = fetches > 0 ? std::max(10, fetches / 100) : 0;
  const int warm_releases = releases > 0 ? std::max(50, releases / 100) : 0;
  for (int i = 0; i < warm_fetches; ++i) notify();
  for (int i = 0; i < warm_releases; ++i) release();
  // FERRY_SOAK_SMAPS=prefix: copies /proc/<pid>/smaps to prefix.start and prefix.end, to see
  // which mappings grew.
  const char* smaps_prefix = std::getenv("FERRY_SOAK_SMAPS");
  auto copy_smaps = [&](const char* suffix) {
    if (smaps_prefix == nullptr) return;
    std::ifstream in(absl::StrCat("/proc/", pid, "/smaps"));
    std::ofstream out(absl::StrCat(smaps_prefix, suffix));
    out << in.rdbuf();
  };
  copy_smaps(".start");
  const long start_kib = RssKib(pid);
  const long start_in_use_kib = GaugeKib(metrics_port, "ferry_process_heap_in_use_bytes");
  const long start_anon_kib = RssKib(pid, "RssAnon:");
  const long start_file_kib = RssKib(pid, "RssFile:");
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < fetches; ++i) notify();
  const long after_fetches_kib = RssKib(pid);
  // FERRY_SOAK_SERIES=1: the heap (RssAnon, KiB) after every release, on stderr.
  const bool series = std::getenv("FERRY_SOAK_SERIES") != nullptr;
  std::vector<double> release_ms;
  for (int i = 0; i < releases; ++i) {
    const auto release_start = std::chrono::steady_clock::now();
    release();
    release_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - release_start)
            .count());
    if (series) {
      std::fprintf(stderr, "release %d heap %ld in use %ld ms %.1f\n", i + 1,
                   RssKib(pid, "RssAnon:"),
                   GaugeKib(metrics_port, "ferry_process_heap_in_use_bytes"), release_ms.back());
    }
  }
  // Does a release cost more as the history grows? The mean of the first and last tenth.
  auto mean_ms = [&release_ms](size_t from, size_t to) {
    double sum = 0;
    for (size_t i = from; i < to; ++i) sum += release_ms[i];
    return to > from ? sum / static_cast<double>(to - from) : 0.0;
  };
  const size_t tenth = std::max<size_t>(1, release_ms.size() / 10);
  const long end_kib = RssKib(pid);
  const long end_in_use_kib = GaugeKib(metrics_port, "ferry_process_heap_in_use_bytes");
  const long end_free_kib = GaugeKib(metrics_port, "ferry_process_heap_free_bytes");
  copy_smaps(".end");
  const long end_anon_kib = RssKib(pid, "RssAnon:");
  const long end_file_kib = RssKib(pid, "RssFile:");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double growth = start_kib > 0 ? 100.0 * (end_kib - start_kib) / start_kib : 0;
  const double own_growth = start_kib > 0 ? 100.0 * (end_anon_kib - start_anon_kib) / start_kib : 0;
  std::printf(
      "git-writer soak over %s: %d fetches, %d releases (%d failed) in %.1f s\n"
      "RSS start %ld KiB, after fetches %ld KiB, end %ld KiB: growth %.1f%%\n"
      "  of which heap (RssAnon) %ld -> %ld KiB, mapped files (RssFile) %ld -> %ld KiB\n"
      "  allocated and not freed (mallinfo2) %ld -> %ld KiB, freed and kept %ld KiB at the end\n",
      ssh ? "ssh" : "file://", fetches, releases, failed, seconds, start_kib, after_fetches_kib,
      end_kib, growth, start_anon_kib, end_anon_kib, start_file_kib, end_file_kib, start_in_use_kib,
      end_in_use_kib, end_free_kib);
  (*process)->Signal(SIGTERM);
  (void)(*process)->Wait(absl::Seconds(60));
  std::printf("own memory (RssAnon) growth: %.1f%% of the starting RSS\n", own_growth);
  if (!release_ms.empty()) {
    std::printf("a release took %.1f ms on average over the first tenth, %.1f ms over the last\n",
                mean_ms(0, tenth), mean_ms(release_ms.size() - tenth, release_ms.size()));
  }
  return failed == 0 && own_growth < 5.0 ? 0 : 1;
}
