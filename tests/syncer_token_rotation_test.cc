// The cluster-syncer's token file (a kubeconfig "tokenFile", as an in-cluster projected
// service-account token is) is read again after it changes: once the file holds a token the
// kube-apiserver does not accept, its calls to the API fail with HTTP 401. The syncer re-reads
// the file at most once a minute, so this test takes a little over a minute.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"

namespace ferry {
namespace {

using testing::Running;

TEST(SyncerTokenRotationTest, ARewrittenTokenFileIsUsed) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto repo, testing::GitRepo::Create(
                     {{"cm.yaml",
                       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rotated, namespace: "
                       "default}\ndata: {a: b}\n"}}));
  const std::string token_path = repo->dir() + "/token";
  std::ofstream(repo->dir() + "/kubeconfig")
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: "
      << (*cluster)->server() << "\n    certificate-authority: " << (*cluster)->ca_path()
      << "\nusers:\n- name: u\n  user:\n    tokenFile: " << token_path
      << "\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n";
  std::ofstream(token_path) << (*cluster)->token() << "\n";
  Running git, syncer;
  testing::StartArgv({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0",
                      "--metrics_address=127.0.0.1:0", "--git_url=" + repo->url(),
                      "--state_dir=" + repo->dir() + "/state", "--git_poll_interval=1h"},
                     git);
  ASSERT_GT(git.grpc_port, 0);
  testing::StartArgv(
      {FERRY_CLUSTER_SYNCER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
       "--kubeconfig=" + repo->dir() + "/kubeconfig", "--git_writer_address=" + git.GrpcTarget(),
       "--sync_interval=1h", "--sync_set=rotation"},
      syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = testing::FirstSync(syncer);
  ASSERT_TRUE(first.has_value()) << syncer.process->Output();
  ASSERT_EQ(first->failed(), 0) << first->DebugString();
  ASSERT_TRUE(first->error().empty()) << first->error();

  // The token rotates to one the API server does not know.
  std::ofstream(token_path) << "rotated-token-the-apiserver-refuses\n";
  auto stub = ferry::v1::ClusterSyncer::NewStub(syncer.Channel());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  bool refused = false;
  grpc::Status s;
  while (!refused && std::chrono::steady_clock::now() < until) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::ListClusterWorkloadsResponse workloads;
    // A read of now (max_age_ms under 1 s) goes to the API: the syncer's watch of the
    // workloads, opened with the old token, would answer a plain ListWorkloads.
    ferry::v1::ListClusterWorkloadsRequest now;
    now.add_ids("default:deployment/rotated");
    now.set_max_age_ms(1);
    s = stub->ListWorkloads(&ctx, now, &workloads);
    refused = absl::StrContains(s.error_message(), "rejected the credentials (HTTP 401)");
    if (!refused) std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  EXPECT_TRUE(refused) << "the syncer kept its old token: " << s.error_message();
}

}  // namespace
}  // namespace ferry
