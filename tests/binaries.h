// Running Ferry's binaries in cross-process tests: each started as a process on loopback
// port 0, its ports read from its "listening" log line. Included by the tests/*_test.cc
// files, which are compiled with the binaries' paths (FERRY_*_BIN).
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/git_repo.h"
#include "tests/support/http.h"
#include "tests/support/kube.h"
#include "tests/support/sshd.h"
#include "tests/support/subprocess.h"

namespace ferry::testing {

inline const absl::Duration kStartTimeout = absl::Seconds(20);

// A temporary folder, removed with its contents.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/ferry-binary-test-XXXXXX";
    path = mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

// A running binary with the ports it logged.
struct Running {
  std::unique_ptr<TempDir> state;          // --state_dir
  std::unique_ptr<testing::GitRepo> repo;  // for git-writer
  std::unique_ptr<Subprocess> process;
  int grpc_port = 0;
  int metrics_port = 0;

  std::string GrpcTarget() const { return "127.0.0.1:" + std::to_string(grpc_port); }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(GrpcTarget(), grpc::InsecureChannelCredentials());
  }
};

// Starts `argv` and waits for its "listening" line with the bound ports.
inline void StartArgv(const std::vector<std::string>& argv, Running& r) {
  auto process = Subprocess::Start(argv);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return;
  r.process = *std::move(process);
  std::optional<std::string> line = r.process->WaitForLine(
      [](const std::string& l) {
        return absl::StrContains(l, " listening ") && absl::StrContains(l, "grpc_port=");
      },
      kStartTimeout);
  EXPECT_TRUE(line.has_value()) << r.process->Output();
  if (!line) return;
  r.grpc_port = IntField(*line, "grpc_port").value_or(0);
  r.metrics_port = IntField(*line, "metrics_port").value_or(0);
  EXPECT_GT(r.grpc_port, 0) << *line;
  EXPECT_GT(r.metrics_port, 0) << *line;
}

// The health status the server reports for `service` ("" for the whole server).
inline grpc::health::v1::HealthCheckResponse::ServingStatus CheckHealth(
    const Running& r, const std::string& service) {
  using grpc::health::v1::Health;
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;

  auto stub = Health::NewStub(r.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&ctx, request, &response);
  EXPECT_TRUE(status.ok()) << service << ": " << status.error_message();
  return response.status();
}

// The command line of a git-writer reaching `repo`'s upstream through `sshd` with its client
// key, keeping its state in `state_dir`, polling off. Writes `repo.dir()`/known_hosts with
// sshd's host key first.
inline std::vector<std::string> SshGitWriterArgv(const testing::GitRepo& repo,
                                                 const testing::Sshd& sshd,
                                                 const std::string& state_dir) {
  const std::string known_hosts = repo.dir() + "/known_hosts";
  std::ofstream(known_hosts) << sshd.KnownHostsLine() << "\n";
  return {FERRY_GIT_WRITER_BIN,
          "--grpc_address=127.0.0.1:0",
          "--metrics_address=127.0.0.1:0",
          "--git_url=" + sshd.Url(repo.dir() + "/upstream.git"),
          "--git_ssh_key_path=" + sshd.client_key_path(),
          "--git_known_hosts_path=" + known_hosts,
          "--state_dir=" + state_dir,
          "--git_poll_interval=1h"};
}

// A real git-writer on `repo` (with `git_args`) and a cluster-syncer on `cluster` with
// `syncer_args`.
inline void StartGitWriterAndSyncer(const testing::GitRepo& repo,
                                    const testing::KubeCluster& cluster,
                                    const std::vector<std::string>& syncer_args, Running& git,
                                    Running& syncer,
                                    const std::vector<std::string>& git_args = {}) {
  std::vector<std::string> git_argv = {FERRY_GIT_WRITER_BIN,
                                       "--grpc_address=127.0.0.1:0",
                                       "--metrics_address=127.0.0.1:0",
                                       "--git_url=" + repo.url(),
                                       "--state_dir=" + repo.dir() + "/state",
                                       "--git_poll_interval=1h"};
  git_argv.insert(git_argv.end(), git_args.begin(), git_args.end());
  StartArgv(git_argv, git);
  if (git.grpc_port == 0) return;
  std::vector<std::string> argv = {FERRY_CLUSTER_SYNCER_BIN,
                                   "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0",
                                   "--kubeconfig=" + cluster.kubeconfig(),
                                   "--git_writer_address=" + git.GrpcTarget(),
                                   "--sync_interval=1h"};
  argv.insert(argv.end(), syncer_args.begin(), syncer_args.end());
  StartArgv(argv, syncer);
}

// The first sync result a running cluster-syncer reports (waiting up to 60 s).
inline std::optional<ferry::v1::SyncResult> FirstSync(const Running& syncer) {
  auto stub = ferry::v1::ClusterSyncer::NewStub(syncer.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto watch = stub->WatchSync(&ctx, {});
  ferry::v1::SyncResult result;
  if (!watch->Read(&result)) return std::nullopt;
  ctx.TryCancel();
  return result;
}

// The sum of the samples of metric `name` whose label text contains `label` ("" for all) on
// `r`'s /metrics; -1 when it cannot be scraped.
inline double ScrapedMetric(const Running& r, const std::string& name,
                            const std::string& label = "") {
  absl::StatusOr<HttpResponse> got =
      HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics");
  if (!got.ok() || got->status != 200) return -1;
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(got->body, '\n')) {
    if (!absl::StartsWith(line, name + "{") && !absl::StartsWith(line, name + " ")) continue;
    if (!label.empty() && !absl::StrContains(line, label)) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) sum += value;
  }
  return sum;
}

// Waits up to `timeout` for `done()`, looking every 100 ms; returns done().
inline bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return true;
}

// Of two processes electing a leader on Lease `ns`/`lease`, the one whose ferry_leader is 1
// while the other's is 0, waiting up to `timeout`; nullptr when that did not happen.
inline Running* WaitForOneLeader(Running& a, Running& b, const std::string& lease,
                                 absl::Duration timeout) {
  Running* leader = nullptr;
  WaitUntil(
      [&] {
        const double x = ScrapedMetric(a, "ferry_leader", "lease=\"" + lease + "\"");
        const double y = ScrapedMetric(b, "ferry_leader", "lease=\"" + lease + "\"");
        leader = x == 1 && y == 0 ? &a : y == 1 && x == 0 ? &b : nullptr;
        return leader != nullptr;
      },
      timeout);
  return leader;
}

// The identity `r` logged when it started leading ("" when it did not within 5 s).
inline std::string LeaderIdentity(Running& r) {
  std::optional<std::string> line = r.process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "started leading"); },
      absl::Seconds(5));
  if (!line) return "";
  const size_t at = line->find("identity=");
  if (at == std::string::npos) return "";
  std::string id = line->substr(at + 9);
  return id.substr(0, id.find(' '));
}

// The holderIdentity of Lease `lease` in namespace `ns`, as kubectl reads it.
inline std::string LeaseHolder(KubeCluster& cluster, const std::string& ns,
                               const std::string& lease) {
  return std::string(absl::StripAsciiWhitespace(
      cluster.Kubectl("-n " + ns + " get lease " + lease + " -o jsonpath={.spec.holderIdentity}")));
}

// How many commits of `repo`'s branch carry the trailer "Ferry-Job: `job`" (how often a job
// committed: exactly once, or not at all).
inline int CommitsOfJob(GitRepo& repo, const std::string& job) {
  int n = 0;
  for (absl::string_view line :
       absl::StrSplit(repo.Git("log --format=%B " + repo.branch()), '\n')) {
    if (absl::StripAsciiWhitespace(line) == "Ferry-Job: " + job) ++n;
  }
  return n;
}

}  // namespace ferry::testing
