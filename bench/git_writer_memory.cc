// The memory of a real ferry-git-writer at scale, step by step, without a cluster: the
// generated repo of scale_bench (bench/scale_repo.h) in a bare repo over file://, and the
// calls the other services make at that size.
//
//   build/bench/git_writer_memory [--workloads=10000] [--releases=3]
//
// Steps, each followed by a line of the process's memory (VmHWM: the peak so far; VmRSS;
// RssAnon: heap and stacks; RssFile: mapped files, mostly the mirror's packs) and the live
// heap git-writer reports (ferry_process_heap_in_use_bytes):
//   start         the first fetch (Head answers a revision)
//   read          ReadManifests of the head, streamed to the end (cluster-syncer's first
//                 sync): the head's index is built here
//   list          ListWorkloads of everything in pages of 500 (the api's ListWorkloads)
//   release K     ApplyUpdates of one image for the N/10 workloads that use it (the api's
//                 release), then ReadManifests and ListWorkloads of the new head (the syncer
//                 and the next planning)
//
// FERRY_BENCH_WRAPPER runs git-writer under a profiler, e.g. "/usr/bin/heaptrack -o FILE" (the
// figures are then the wrapper's process's). Exit code 0 when every call succeeded.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_args.h"
#include "bench/scale_repo.h"
#include "bench/stack_bench.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "tests/support/git_repo.h"

namespace {

constexpr char kRegistry[] = "registry.example.com";
constexpr char kPrefix[] = "bench-";

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoNanoseconds(d);
}

class Run {
 public:
  Run(ferry::bench::Service& service, absl::Duration step_timeout)
      : service_(service),
        timeout_(step_timeout),
        stub_(ferry::v1::GitWriter::NewStub(ferry::bench::ServiceChannel(service))) {}

  int failed() const { return failed_; }

  // Waits until git-writer serves a head; its revision, empty on timeout.
  std::string Head() {
    const absl::Time deadline = absl::Now() + timeout_;
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(timeout_));
      ferry::v1::HeadResponse head;
      if (stub_->Head(&ctx, {}, &head).ok() && !head.revision().empty()) return head.revision();
      absl::SleepFor(absl::Milliseconds(50));  // polling a peer that is starting, not a test
    }
    Fail("head", "no revision served");
    return "";
  }

  // ReadManifests of `revision` to the end; the number of files.
  int Read(const std::string& revision) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(timeout_));
    ferry::v1::ReadManifestsRequest request;
    request.set_revision(revision);
    auto stream = stub_->ReadManifests(&ctx, request);
    ferry::v1::ManifestFile file;
    int files = 0;
    while (stream->Read(&file)) ++files;
    if (grpc::Status status = stream->Finish(); !status.ok()) Fail("read", status.error_message());
    return files;
  }

  // ListWorkloads of `revision` in pages of 500; the number of workloads.
  int List(const std::string& revision) {
    int workloads = 0;
    std::string after;
    for (;;) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(timeout_));
      ferry::v1::ListManifestWorkloadsRequest request;
      request.set_revision(revision);
      request.set_start_after(after);
      request.set_limit(500);
      ferry::v1::ListManifestWorkloadsResponse response;
      if (grpc::Status status = stub_->ListWorkloads(&ctx, request, &response); !status.ok()) {
        Fail("list", status.error_message());
        return workloads;
      }
      workloads += response.workloads_size();
      if (!response.more()) return workloads;
      after = response.workloads(response.workloads_size() - 1).id();
    }
  }

  // Moves the image bench/app-0 of its workloads (every I with (I / 10) % 10 == 0) to tag
  // `tag`; the new head, empty on failure.
  std::string Release(int workloads, const std::string& from, const std::string& to) {
    ferry::v1::ApplyUpdatesRequest request;
    for (int i = 0; i < workloads; ++i) {
      if ((i / ferry::bench::kScaleNamespaces) % ferry::bench::kScaleImages != 0) continue;
      ferry::v1::Edit* edit = request.add_edits();
      edit->set_workload(
          absl::StrCat(kPrefix, i % ferry::bench::kScaleNamespaces, ":deployment/app-", i));
      edit->mutable_image()->set_container("app");
      edit->mutable_image()->set_from_image(from);
      edit->mutable_image()->set_to_image(to);
    }
    request.mutable_cause()->set_user("Bench <bench@example.com>");
    request.set_omit_diff(true);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(timeout_));
    ferry::v1::ApplyUpdatesResponse response;
    if (grpc::Status status = stub_->ApplyUpdates(&ctx, request, &response); !status.ok()) {
      Fail("release", status.error_message());
      return "";
    }
    int applied = 0;
    for (const ferry::v1::EditResult& result : response.results()) applied += result.code() == 0;
    if (response.revision().empty() || applied != request.edits_size()) {
      Fail("release", absl::StrCat(applied, " of ", request.edits_size(),
                                   " edits applied, commit \"", response.revision(), "\""));
      return "";
    }
    return response.revision();
  }

  // Counts a failure when `step` saw `got` items instead of `want`.
  void Check(const std::string& step, int got, int want) {
    if (got != want) Fail(step, absl::StrCat(got, " items instead of ", want));
  }

  // One line of figures after `step`.
  void Report(const std::string& step, double seconds) {
    const pid_t pid = service_.process->pid();
    std::printf(
        "%-10s %7.2f s  peak %6.1f MB  rss %6.1f MB  anon %6.1f MB  file %6.1f MB  "
        "heap in use %6.1f MB\n",
        step.c_str(), seconds, ferry::bench::ProcStatusMb(pid, "VmHWM"),
        ferry::bench::ProcStatusMb(pid, "VmRSS"), ferry::bench::ProcStatusMb(pid, "RssAnon"),
        ferry::bench::ProcStatusMb(pid, "RssFile"),
        ferry::bench::MetricSum(service_, "ferry_process_heap_in_use_bytes ") / 1e6);
    std::fflush(stdout);
  }

 private:
  void Fail(const std::string& step, const std::string& error) {
    ++failed_;
    std::fprintf(stderr, "%s failed: %s\n", step.c_str(), error.c_str());
  }

  ferry::bench::Service& service_;
  const absl::Duration timeout_;
  std::unique_ptr<ferry::v1::GitWriter::Stub> stub_;
  int failed_ = 0;
};

double Seconds(absl::Time since) { return absl::ToDoubleSeconds(absl::Now() - since); }

}  // namespace

int main(int argc, char** argv) {
  const int workloads = ferry::bench::IntFlag(argc, argv, "workloads", 10000);
  const int releases = ferry::bench::IntFlag(argc, argv, "releases", 3);
  if (workloads < 100 || workloads > 100000) {
    std::fprintf(stderr, "git_writer_memory: --workloads: a number from 100 to 100000\n");
    return 2;
  }
  auto repo =
      ferry::testing::GitRepo::Create(ferry::bench::ScaleRepoFiles(workloads, kPrefix, kRegistry));
  if (!repo.ok()) {
    std::fprintf(stderr, "repo setup failed: %s\n", repo.status().ToString().c_str());
    return 2;
  }
  std::vector<std::string> command = ferry::bench::WrapperCommand("FERRY_BENCH_WRAPPER");
  for (std::string arg :
       {std::string(FERRY_GIT_WRITER_BIN), std::string("--grpc_address=127.0.0.1:0"),
        std::string("--metrics_address=127.0.0.1:0"), "--state_dir=" + (*repo)->dir() + "/state",
        std::string("--git_poll_interval=1h"), "--git_url=" + (*repo)->url()}) {
    command.push_back(std::move(arg));
  }
  // As scale_bench: a minute plus 60 ms per workload for any one step.
  const absl::Duration step_timeout = absl::Minutes(1) + absl::Milliseconds(60) * workloads;
  absl::StatusOr<ferry::bench::Service> service = ferry::bench::StartService(command, step_timeout);
  if (!service.ok()) {
    std::fprintf(stderr, "git-writer: %s\n", service.status().ToString().c_str());
    return 2;
  }
  std::printf("git-writer at %d workloads (%d objects)\n", workloads, 2 * workloads + 10);
  Run run(*service, step_timeout);
  absl::Time t = absl::Now();
  std::string head = run.Head();
  run.Report("start", Seconds(t));
  t = absl::Now();
  run.Check("read", run.Read(head), workloads + 1);
  run.Report("read", Seconds(t));
  t = absl::Now();
  run.Check("list", run.List(head), workloads);
  run.Report("list", Seconds(t));
  std::string from = absl::StrCat(kRegistry, "/bench/app-0:1.0.0");
  for (int k = 1; k <= releases && !head.empty(); ++k) {
    const std::string to = absl::StrCat(kRegistry, "/bench/app-0:1.0.", k);
    t = absl::Now();
    head = run.Release(workloads, from, to);
    if (head.empty()) break;
    run.Check("read", run.Read(head), workloads + 1);
    run.Check("list", run.List(head), workloads);
    run.Report(absl::StrCat("release ", k), Seconds(t));
    from = to;
  }
  service->process->Signal(SIGTERM);
  (void)service->process->Wait(absl::Seconds(60));
  return run.failed() == 0 ? 0 : 1;
}
