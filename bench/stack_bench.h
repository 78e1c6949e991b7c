// Ferry's service binaries as child processes for the cross-process benchmarks
// (e2e_bench, scale_bench, kustomize_bench): each started on loopback, its ports read from its
// "listening" log line, its memory read from /proc and its metrics from /metrics while it runs.
#pragma once

#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "lib/limits/limits.h"
#include "tests/support/http.h"
#include "tests/support/kube.h"
#include "tests/support/subprocess.h"

namespace ferry::bench {

// A running service binary and the ports it logged.
struct Service {
  std::unique_ptr<testing::Subprocess> process;
  int grpc_port = 0;
  int metrics_port = 0;

  // "127.0.0.1:PORT" of its gRPC server.
  std::string target() const { return absl::StrCat("127.0.0.1:", grpc_port); }
};

// Starts `argv` (a service binary with --grpc_address and --metrics_address, port 0 or a
// chosen one) and waits up to `timeout` for its "listening" line. Unavailable with the
// process's output when it exits or stays silent.
inline absl::StatusOr<Service> StartService(const std::vector<std::string>& argv,
                                            absl::Duration timeout = absl::Seconds(30)) {
  absl::StatusOr<std::unique_ptr<testing::Subprocess>> process = testing::Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  std::optional<std::string> line = (*process)->WaitForLine(
      [](const std::string& l) {
        return absl::StrContains(l, " listening ") && absl::StrContains(l, "grpc_port=");
      },
      timeout);
  if (!line) {
    return absl::UnavailableError(
        absl::StrCat(argv[0], " did not start listening: ", (*process)->Output()));
  }
  Service s;
  s.grpc_port = testing::IntField(*line, "grpc_port").value_or(0);
  s.metrics_port = testing::IntField(*line, "metrics_port").value_or(0);
  s.process = *std::move(process);
  return s;
}

// Starts `argv` as StartService does into `service`, unless `error` is already set; sets
// `error` when the service does not start.
inline void StartServiceInto(Service* service, const std::vector<std::string>& argv,
                             absl::Duration timeout, std::string* error) {
  if (!error->empty()) return;
  absl::StatusOr<Service> s = StartService(argv, timeout);
  if (!s.ok()) {
    *error = s.status().ToString();
    return;
  }
  *service = *std::move(s);
}

// What a benchmark against the Kubernetes API starts with.
struct BenchRun {
  std::string dir;     // a new temporary folder, for the caller to remove
  std::string run_id;  // for the names of this run's namespaces, also in a cluster that
                       // outlives it
  testing::KubeCluster* cluster = nullptr;  // tests/support/kube.h SharedKubeCluster
  std::string error;                        // why the run cannot go on; empty when it can
};

// A temporary folder /tmp/ferry-NAME-XXXXXX, a run id and the shared cluster.
inline BenchRun StartBenchRun(const std::string& name) {
  BenchRun run;
  std::string tmpl = absl::StrCat("/tmp/ferry-", name, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    run.error = "mkdtemp failed";
    return run;
  }
  run.dir = tmpl;
  run.run_id = absl::StrCat(absl::Hex(absl::ToUnixSeconds(absl::Now()) % 0x100000));
  absl::StatusOr<testing::KubeCluster*> cluster = testing::SharedKubeCluster();
  if (!cluster.ok()) {
    run.error = "no Kubernetes API: " + cluster.status().ToString() +
                " (build it once with: bash tests/kube/build.sh)";
    return run;
  }
  run.cluster = *cluster;
  return run;
}

// Writes `files` (path -> content) under `dir`: the copy of a repo that kubectl applies.
inline void WriteTree(const std::string& dir, const std::map<std::string, std::string>& files) {
  for (const auto& [path, content] : files) {
    std::filesystem::path p = std::filesystem::path(dir) / path;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
}

// A "Vm...:" figure of /proc/PID/status (VmHWM: peak resident set; VmRSS: now) in MB;
// -1 when the process or the field is gone.
inline double ProcStatusMb(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (!absl::StartsWith(line, field + ":")) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line.substr(field.size() + 1), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    double kb = 0;
    if (!parts.empty() && absl::SimpleAtod(parts[0], &kb)) return kb / 1024;
  }
  return -1;
}

// CPU time (user + system) process `pid` has used so far, in seconds; -1 when it is gone.
inline double ProcCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces: state is the
  // first, utime the 12th and stime the 13th.
  const size_t end = stat.rfind(')');
  if (end == std::string::npos) return -1;
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(end + 1), ' ', absl::SkipWhitespace());
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return -1;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The CPU seconds each of the test cluster's own processes (etcd, kube-apiserver,
// kube-controller-manager: the pids file tests/kube/cluster.sh writes) has used so far, by
// name; empty when the file or a process is missing.
inline std::map<std::string, double> ClusterCpuSeconds(const ferry::testing::KubeCluster& cluster) {
  std::ifstream in(cluster.dir() + "/pids");
  std::map<std::string, double> out;
  for (std::string name, pid; in >> name >> pid;) {
    int id = 0;
    const double seconds = absl::SimpleAtoi(pid, &id) ? ProcCpuSeconds(id) : -1;
    if (seconds < 0) return {};
    out[name] = seconds;
  }
  return out.size() == 3 ? out : std::map<std::string, double>{};
}

// The CPU seconds each process used between two readings of ClusterCpuSeconds; empty when
// either is.
inline std::map<std::string, double> CpuUsed(const std::map<std::string, double>& before,
                                             const std::map<std::string, double>& after) {
  std::map<std::string, double> used;
  if (before.size() != after.size()) return used;
  for (const auto& [name, seconds] : after) {
    auto b = before.find(name);
    if (b == before.end()) return {};
    used[name] = seconds - b->second;
  }
  return used;
}

// A channel to the service's gRPC server that takes answers as large as the services may send
// each other (their --grpc_max_message_bytes default), as ferryctl does.
inline std::shared_ptr<grpc::Channel> ServiceChannel(const Service& service) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(ferry::limits::kGrpcMessageBytes.default_value));
  return grpc::CreateCustomChannel(service.target(), grpc::InsecureChannelCredentials(), args);
}

// The sum of the samples on the service's /metrics whose line starts with `series` (a family
// name and "{") and holds any of `labels` (every such line when `labels` is empty); -1 when the
// page cannot be read.
inline double MetricSum(const Service& service, absl::string_view series,
                        const std::vector<std::string>& labels = {}) {
  auto page =
      ferry::testing::HttpGet(absl::StrCat("http://127.0.0.1:", service.metrics_port, "/metrics"));
  if (!page.ok() || page->status != 200) return -1;
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(page->body, '\n')) {
    if (!absl::StartsWith(line, series)) continue;
    bool wanted = labels.empty();
    for (const std::string& label : labels) wanted = wanted || absl::StrContains(line, label);
    double value = 0;
    if (wanted && absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) sum += value;
  }
  return sum;
}

// Write requests (apply, patch, delete) a cluster-syncer sent to the API server so far, from
// its /metrics; -1 when they cannot be read.
inline double SyncerWrites(const Service& syncer) {
  return MetricSum(syncer, "ferry_kube_requests_total{",
                   {"verb=\"apply\"", "verb=\"patch\"", "verb=\"delete\""});
}

// SyncNow of git-writer's head (after a fetch) on a cluster-syncer. Unavailable when the call
// fails or the sync stopped as a whole.
inline absl::StatusOr<ferry::v1::SyncResult> SyncNow(const Service& syncer,
                                                     absl::Duration timeout) {
  auto stub = ferry::v1::ClusterSyncer::NewStub(ServiceChannel(syncer));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  ferry::v1::SyncResult result;
  grpc::Status s = stub->SyncNow(&ctx, ferry::v1::SyncNowRequest(), &result);
  if (!s.ok()) return absl::UnavailableError("SyncNow: " + s.error_message());
  if (!result.error().empty()) return absl::UnavailableError("SyncNow: " + result.error());
  return result;
}

// The first sync of a cluster-syncer that covers every object.
struct CompleteSync {
  ferry::v1::SyncResult result;
  double seconds = 0;       // from the `start` given to WaitForCompleteSync
  int failed_syncs = 0;     // syncs stopped as a whole before it (the syncer retries them)
  std::string first_error;  // the first of those syncs' error
};

// Follows the syncer's sync results until one applied or found unchanged `objects` objects or
// more. A sync that stopped as a whole is retried by the syncer (with backoff): counted,
// logged to stderr with `bench` as the prefix, and the time runs on. Aborted when a sync
// result has failed objects (retried only at the next interval); Unavailable when no sync
// covers them within `timeout`.
inline absl::StatusOr<CompleteSync> WaitForCompleteSync(const Service& syncer, int objects,
                                                        absl::Time start, absl::Duration timeout,
                                                        const std::string& bench) {
  auto stub = ferry::v1::ClusterSyncer::NewStub(ServiceChannel(syncer));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto watch = stub->WatchSync(&ctx, ferry::v1::WatchSyncRequest());
  CompleteSync sync;
  ferry::v1::SyncResult& result = sync.result;
  while (watch->Read(&result)) {
    if (!result.error().empty()) {
      if (sync.failed_syncs++ == 0) sync.first_error = result.error();
      std::fprintf(stderr, "%s: a first sync failed, the syncer retries: %s\n", bench.c_str(),
                   result.error().c_str());
      continue;
    }
    if (result.failed() > 0) {
      return absl::AbortedError("first sync failed: " + result.errors(0).ShortDebugString());
    }
    if (result.applied() + result.unchanged() >= objects) {
      sync.seconds = absl::ToDoubleSeconds(absl::Now() - start);
      ctx.TryCancel();
      return sync;
    }
  }
  return absl::UnavailableError("no sync of every object within " + absl::FormatDuration(timeout) +
                                ": " + watch->Finish().error_message() +
                                "; last result: " + result.ShortDebugString());
}

}  // namespace ferry::bench
