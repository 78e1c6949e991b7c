// The whole path through replicas (issue 21): two git-writers and two cluster-syncers, each
// pair on its own Lease, against a real kube-apiserver; the api reaches each pair as a replica
// list (only the ready replica, the leader, gets calls; lib/runtime/channel.h) and the syncers
// reach git-writer the same way. Both leaders are SIGKILLed at once and a release is
// submitted at that moment: the job waits for the new leaders within its deadlines, commits
// exactly once and the cluster converges to it. No test client retries anything.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"

namespace ferry {
namespace {

using testing::Running;

constexpr char kNs[] = "ha-failover";

std::string Deployment(const std::string& image) {
  return absl::StrCat(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: ", kNs,
      "\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web}\n"
      "  template:\n    metadata:\n      labels: {app: web}\n    spec:\n"
      "      containers:\n      - name: web\n        image: ",
      image, "\n");
}

std::vector<std::string> LeaderFlags(const testing::KubeCluster& cluster,
                                     const std::string& lease) {
  return {"--kubeconfig=" + cluster.kubeconfig(), "--leader_elect",
          "--leader_elect_namespace=default",     "--leader_elect_lease_name=" + lease,
          "--leader_elect_lease_duration=8s",     "--leader_elect_renew_deadline=5s",
          "--leader_elect_retry_period=1s"};
}

std::string ReplicaList(const Running& a, const Running& b) {
  return absl::StrCat("ipv4:", a.GrpcTarget(), ",", b.GrpcTarget());
}

class HaFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    auto registry = testing::RegistryServer::Start(stack_.dir.path + "/registry");
    ASSERT_TRUE(registry.ok()) << registry.status();
    stack_.registry = *std::move(registry);
    for (const std::string tag : {"1.25", "1.26", "1.27"}) {
      FERRY_ASSERT_OK(
          stack_.registry->PushImage("team/web", tag, R"({"created":"2026-01-01T00:00:00Z"})")
              .status());
    }
    auto repo = testing::GitRepo::Create(
        {{"ns.yaml",
          absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ", kNs, "}\n")},
         {"web.yaml", Deployment(Web("1.25"))}});
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
    for (int i = 0; i < 2; ++i) {
      std::vector<std::string> argv = {
          FERRY_GIT_WRITER_BIN,
          "--grpc_address=127.0.0.1:0",
          "--metrics_address=127.0.0.1:0",
          "--git_url=" + repo_->url(),
          "--state_dir=" + repo_->dir() + "/state-" + std::to_string(i),
          "--git_poll_interval=1s"};
      for (const std::string& f : LeaderFlags(*cluster_, "ferry-test-ha-git")) argv.push_back(f);
      testing::StartArgv(argv, git_[i]);
      ASSERT_GT(git_[i].grpc_port, 0);
    }
    for (int i = 0; i < 2; ++i) {
      std::vector<std::string> argv = {FERRY_CLUSTER_SYNCER_BIN,
                                       "--grpc_address=127.0.0.1:0",
                                       "--metrics_address=127.0.0.1:0",
                                       "--git_writer_address=" + ReplicaList(git_[0], git_[1]),
                                       "--sync_interval=1h",
                                       std::string("--sync_set=") + kNs};
      for (const std::string& f : LeaderFlags(*cluster_, "ferry-test-ha-sync")) argv.push_back(f);
      testing::StartArgv(argv, syncer_[i]);
      ASSERT_GT(syncer_[i].grpc_port, 0);
    }
    testing::StartArgv(
        {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
         "--state_dir=" + stack_.dir.path + "/scanner",
         "--registry_insecure_hosts=" + stack_.registry->host()},
        stack_.scanner);
    ASSERT_GT(stack_.scanner.grpc_port, 0);
    testing::StartArgv(
        {FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
         "--git_writer_address=" + ReplicaList(git_[0], git_[1]),
         "--registry_scanner_address=" + stack_.scanner.GrpcTarget(),
         "--cluster_syncer_address=" + ReplicaList(syncer_[0], syncer_[1]), "--no_automation",
         "--peer_wait=60"},
        stack_.api);
    ASSERT_GT(stack_.api.grpc_port, 0);
    stack_.stub = ferry::v1::Ferry::NewStub(stack_.api.Channel());
  }

  // The test registry's team/web at `tag`.
  std::string Web(const std::string& tag) { return testing::Image(stack_, "team/web", tag); }

  // Releases web to `image` and follows the job to its end.
  ferry::v1::Job Release(const std::string& image) {
    ferry::v1::ReleaseSpec spec;
    spec.add_workloads(absl::StrCat(kNs, ":deployment/web"));
    spec.set_image(image);
    ferry::v1::Job submitted;
    grpc::Status s = stack_.Release(spec, &submitted);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) return submitted;
    return stack_.Follow(submitted.id());
  }

  std::string ImageInCluster() {
    return cluster_->Kubectl(absl::StrCat(
        "-n ", kNs, " get deploy web -o jsonpath={.spec.template.spec.containers[0].image}"));
  }

  int CommitsOf(const std::string& job) { return testing::CommitsOfJob(*repo_, job); }

  testing::KubeCluster* cluster_ = nullptr;
  testing::Stack stack_;
  std::unique_ptr<testing::GitRepo> repo_;
  Running git_[2], syncer_[2];
};

TEST_F(HaFailoverTest, AReleaseDuringTheFailoverOfBothLeadersLandsOnceAndIsApplied) {
  Running* git_leader =
      testing::WaitForOneLeader(git_[0], git_[1], "default/ferry-test-ha-git", absl::Seconds(30));
  ASSERT_NE(git_leader, nullptr) << git_[0].process->Output() << git_[1].process->Output();
  Running* sync_leader = testing::WaitForOneLeader(syncer_[0], syncer_[1],
                                                   "default/ferry-test-ha-sync", absl::Seconds(30));
  ASSERT_NE(sync_leader, nullptr) << syncer_[0].process->Output() << syncer_[1].process->Output();
  ASSERT_TRUE(
      testing::WaitUntil([&] { return ImageInCluster() == Web("1.25"); }, absl::Seconds(60)))
      << sync_leader->process->Output();

  // Through the leaders.
  ferry::v1::Job first = Release(Web("1.26"));
  ASSERT_EQ(first.state(), ferry::v1::JOB_STATE_SUCCEEDED) << first.DebugString();
  EXPECT_TRUE(
      testing::WaitUntil([&] { return ImageInCluster() == Web("1.26"); }, absl::Seconds(60)));

  // Both leaders die at once (no Lease released); the release is submitted at that moment
  // and waits for the standbys to take over (a lease duration after the last change they saw).
  git_leader->process->Signal(SIGKILL);
  sync_leader->process->Signal(SIGKILL);
  const absl::Time killed = absl::Now();
  ferry::v1::Job second = Release(Web("1.27"));
  EXPECT_EQ(second.state(), ferry::v1::JOB_STATE_SUCCEEDED)
      << second.DebugString() << stack_.api.process->Output();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(60));
  EXPECT_TRUE(
      testing::WaitUntil([&] { return ImageInCluster() == Web("1.27"); }, absl::Seconds(60)))
      << ImageInCluster();
  // The standbys took over: the new git-writer leader made the commit, the new syncer leader
  // applied it.
  Running& git_standby = git_leader == &git_[0] ? git_[1] : git_[0];
  Running& sync_standby = sync_leader == &syncer_[0] ? syncer_[1] : syncer_[0];
  EXPECT_EQ(testing::ScrapedMetric(git_standby, "ferry_leader"), 1);
  EXPECT_EQ(testing::ScrapedMetric(git_standby, "ferry_git_commits_total"), 1);
  EXPECT_EQ(testing::ScrapedMetric(sync_standby, "ferry_leader"), 1);
  EXPECT_GE(testing::ScrapedMetric(sync_standby, "ferry_kube_requests_total", "verb=\"apply\""), 1);
  // Exactly once: one commit per job, nothing lost, nothing doubled.
  EXPECT_EQ(CommitsOf(first.id()), 1);
  EXPECT_EQ(CommitsOf(second.id()), 1);
  EXPECT_EQ(
      std::string(absl::StripAsciiWhitespace(repo_->Git("rev-list --count " + repo_->branch()))),
      "3");
}

}  // namespace
}  // namespace ferry
