// The whole stack for end-to-end tests: a real registry, git repo and Kubernetes API with
// the four services on loopback, and the manifests the tests put in git. Shared by the
// tests/*_test.cc files that drive the stack (compiled with the binaries' paths).
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/v1/api.grpc.pb.h"
#include "tests/binaries.h"
#include "tests/support/registry.h"

namespace ferry::testing {

// A Deployment with no replicas (nothing to schedule) and one container "app".
inline std::string Deployment(const std::string& ns, const std::string& name,
                              const std::string& image, const std::string& annotations = "") {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name +
         "\n  namespace: " + ns + "\n" +
         (annotations.empty() ? "" : "  annotations:\n" + annotations) +
         "spec:\n  replicas: 0\n  selector: {matchLabels: {app: " + name +
         "}}\n  template:\n"
         "    metadata: {labels: {app: " +
         name +
         "}}\n    spec:\n      containers:\n"
         "      - name: app\n        image: " +
         image + "\n";
}

inline constexpr char kImageConfig[] =
    R"({"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z"})";

// The four services on loopback in front of a real registry, git repo and cluster.
struct Stack {
  TempDir dir;
  std::unique_ptr<RegistryServer> registry;
  std::unique_ptr<GitRepo> repo;
  Running git, syncer, scanner, api;
  std::unique_ptr<ferry::v1::Ferry::Stub> stub;

  // Starts (or restarts) the api with `extra` flags.
  void StartApi(const std::vector<std::string>& extra) {
    api.process.reset();
    std::vector<std::string> argv = {FERRY_API_BIN,
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--git_writer_address=" + git.GrpcTarget(),
                                     "--registry_scanner_address=" + scanner.GrpcTarget(),
                                     "--cluster_syncer_address=" + syncer.GrpcTarget()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    StartArgv(argv, api);
    stub = ferry::v1::Ferry::NewStub(api.Channel());
  }

  // Follows a job to its end.
  ferry::v1::Job Follow(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    auto stream = stub->WatchJob(&ctx, request);
    ferry::v1::Job job, last;
    while (stream->Read(&job)) last = job;
    grpc::Status s = stream->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return last;
  }

  grpc::Status Release(const ferry::v1::ReleaseSpec& spec, ferry::v1::Job* job) {
    ferry::v1::ReleaseRequest request;
    *request.mutable_spec() = spec;
    request.mutable_cause()->set_user("Alice <alice@example.com>");
    request.mutable_cause()->set_message("ci build 7");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->Release(&ctx, request, job);
  }
};

// Starts registry, git repo (with `files`), git-writer (with `git_args`), scanner, syncer for
// `sync_set`.
inline void StartStack(Stack& stack, const std::map<std::string, std::string>& files,
                       const std::string& sync_set,
                       const std::vector<std::string>& scanner_args = {},
                       const std::vector<std::string>& git_args = {}) {
  auto cluster = SharedKubeCluster();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto repo = GitRepo::Create(files);
  ASSERT_TRUE(repo.ok()) << repo.status();
  stack.repo = *std::move(repo);
  StartGitWriterAndSyncer(*stack.repo, **cluster, {"--sync_set=" + sync_set}, stack.git,
                          stack.syncer, git_args);
  ASSERT_GT(stack.syncer.grpc_port, 0);
  std::vector<std::string> argv = {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0",
                                   "--state_dir=" + stack.dir.path + "/scanner",
                                   "--registry_insecure_hosts=" + stack.registry->host()};
  argv.insert(argv.end(), scanner_args.begin(), scanner_args.end());
  StartArgv(argv, stack.scanner);
  ASSERT_GT(stack.scanner.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = FirstSync(stack.syncer);
  ASSERT_TRUE(first.has_value()) << stack.syncer.process->Output();
  ASSERT_EQ(first->failed(), 0) << first->DebugString();
}

inline std::string Image(const Stack& stack, const std::string& repository,
                         const std::string& tag) {
  return stack.registry->host() + "/" + repository + ":" + tag;
}

}  // namespace ferry::testing
