// Leader election of ferry-cluster-syncer through the real binaries and a real kube-apiserver
// (issue 21): two syncers with --leader_elect on one Lease (lease 8 s, renew deadline 5 s,
// retry 1 s: short for a test, yet long enough that one slow etcd write on a loaded machine
// does not cost the leader its lease). Exactly one leads (its metric, its readiness, the
// Lease's holderIdentity); the standby refuses SyncNow naming the leader and applies nothing;
// a SIGKILLed leader is replaced within a lease duration (plus slack) and the new leader
// applies; a leader paused (SIGSTOP) past its renew deadline and resumed after the other took
// over applies nothing.
//
// The assertions are facts that hold however the scheduler treats us, not exact counts of
// lease transitions (a renewal lost to a slow API server is a legitimate extra transition):
// at least one transition, exactly one holder at the end, the standby's / paused leader's
// write count unchanged.
//
// The issue asks the pause test to assert on the API server's managedFields. Both syncers
// apply with the same field manager (ferry-cluster-syncer), so managedFields cannot tell
// which process wrote: an entry's manager and operation are the same for either. The test
// asserts instead on each process's own count of write requests sent
// (ferry_kube_requests_total{verb="apply"|"delete"}), which counts every request it sends,
// answered or not, so a write sent after the lease was lost would show there.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/http.h"

namespace ferry {
namespace {

using testing::Running;

std::string ConfigMap(const std::string& ns, const std::string& name) {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\ndata: {a: b}\n";
}

std::string Trimmed(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

class LeaderSyncerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
  }

  // git-writer on a repo with namespace `ns` and ConfigMap "first", and two syncers on the
  // Lease `lease`.
  void StartPair(const std::string& ns, const std::string& lease) {
    lease_ = lease;
    auto repo = testing::GitRepo::Create(
        {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n"},
         {"first.yaml", ConfigMap(ns, "first")}});
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
    const std::vector<std::string> args = {"--sync_set=" + ns,
                                           "--leader_elect",
                                           "--leader_elect_namespace=default",
                                           "--leader_elect_lease_name=" + lease,
                                           "--leader_elect_lease_duration=8s",
                                           "--leader_elect_renew_deadline=5s",
                                           "--leader_elect_retry_period=1s"};
    testing::StartGitWriterAndSyncer(*repo_, *cluster_, args, git_, a_);
    ASSERT_GT(a_.grpc_port, 0);
    std::vector<std::string> argv = {FERRY_CLUSTER_SYNCER_BIN,
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--kubeconfig=" + cluster_->kubeconfig(),
                                     "--git_writer_address=" + git_.GrpcTarget(),
                                     "--sync_interval=1h"};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::StartArgv(argv, b_);
    ASSERT_GT(b_.grpc_port, 0);
  }

  double Leading(const Running& r) {
    return testing::ScrapedMetric(r, "ferry_leader", "lease=\"default/" + lease_);
  }

  // Waits until exactly one of the syncers leads; returns it (nullptr when none did).
  Running* WaitForOneLeader(absl::Duration timeout) {
    return testing::WaitForOneLeader(a_, b_, "default/" + lease_, timeout);
  }

  std::string IdentityOf(Running& r) { return testing::LeaderIdentity(r); }

  std::string Holder() { return testing::LeaseHolder(*cluster_, "default", lease_); }

  bool Exists(const std::string& ns, const std::string& name) {
    int status = 0;
    cluster_->Kubectl("-n " + ns + " get configmap " + name, &status);
    return status == 0;
  }

  // Commits `files` upstream and tells git-writer, which streams the new head to the syncers.
  void Push(const std::map<std::string, std::string>& files) {
    absl::StatusOr<std::string> pushed = repo_->CommitWithCli(files, "change");
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ferry::v1::HeadResponse head;
    grpc::Status s = ferry::v1::GitWriter::NewStub(git_.Channel())->Notify(&ctx, {}, &head);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  testing::KubeCluster* cluster_ = nullptr;
  std::unique_ptr<testing::GitRepo> repo_;
  std::string lease_;
  Running git_, a_, b_;
};

TEST_F(LeaderSyncerTest, OneLeadsTheStandbyRefusesWritesAndAKilledLeaderIsReplaced) {
  const std::string ns = "leader-kill";
  StartPair(ns, "ferry-test-leader-kill");
  if (HasFatalFailure()) return;
  Running* leader = WaitForOneLeader(absl::Seconds(30));
  ASSERT_NE(leader, nullptr) << a_.process->Output() << b_.process->Output();
  Running* standby = leader == &a_ ? &b_ : &a_;
  const std::string identity = IdentityOf(*leader);
  ASSERT_TRUE(absl::StartsWith(identity, "ferry-cluster-syncer/")) << identity;
  EXPECT_EQ(Holder(), identity);
  // The leader applies; it is ready, the standby is not.
  ASSERT_TRUE(testing::WaitUntil([&] { return Exists(ns, "first"); }, absl::Seconds(30)))
      << leader->process->Output();
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return testing::CheckHealth(*leader, "readiness") ==
               grpc::health::v1::HealthCheckResponse::SERVING;
      },
      absl::Seconds(20)));
  EXPECT_EQ(testing::CheckHealth(*standby, "readiness"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(testing::CheckHealth(*standby, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ferry::v1::SyncResult result;
    grpc::Status s = ferry::v1::ClusterSyncer::NewStub(standby->Channel())
                         ->SyncNow(&ctx, ferry::v1::SyncNowRequest(), &result);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), identity)) << s.error_message();
  }
  // The sync results are the leader's: the standby refuses the stream.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto results = ferry::v1::ClusterSyncer::NewStub(standby->Channel())
                       ->WatchSync(&ctx, ferry::v1::WatchSyncRequest());
    ferry::v1::SyncResult result;
    EXPECT_FALSE(results->Read(&result));
    EXPECT_EQ(results->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  EXPECT_EQ(testing::CheckHealth(*standby, "leader"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(testing::CheckHealth(*leader, "leader"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(testing::ScrapedMetric(*standby, "ferry_kube_requests_total", "verb=\"apply\""), 0);

  // SIGKILL: no release; the standby takes over once the Lease has stood unchanged for its
  // duration (8 s, counted from the last change it saw, up to a retry period before the
  // kill), and applies what is pushed next. The slack covers a retry period, a slow Lease
  // request or two and scraping on a loaded machine.
  leader->process->Signal(SIGKILL);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(testing::WaitUntil([&] { return Leading(*standby) == 1; }, absl::Seconds(25)))
      << standby->process->Output();
  const absl::Duration takeover = absl::Now() - killed;
  EXPECT_LT(takeover, absl::Seconds(8) + absl::Seconds(7)) << takeover;
  EXPECT_EQ(Holder(), IdentityOf(*standby));
  EXPECT_GE(testing::ScrapedMetric(*standby, "ferry_leader_transitions_total",
                                   "lease=\"default/" + lease_),
            1);
  Push({{"second.yaml", ConfigMap(ns, "second")}});
  if (HasFatalFailure()) return;
  EXPECT_TRUE(testing::WaitUntil([&] { return Exists(ns, "second"); }, absl::Seconds(30)))
      << standby->process->Output();
}

TEST_F(LeaderSyncerTest, APausedLeaderAppliesNothingAfterLosingTheLease) {
  const std::string ns = "leader-pause";
  StartPair(ns, "ferry-test-leader-pause");
  if (HasFatalFailure()) return;
  Running* leader = WaitForOneLeader(absl::Seconds(30));
  ASSERT_NE(leader, nullptr) << a_.process->Output() << b_.process->Output();
  Running* other = leader == &a_ ? &b_ : &a_;
  ASSERT_TRUE(testing::WaitUntil([&] { return Exists(ns, "first"); }, absl::Seconds(30)))
      << leader->process->Output();
  // Its first sync is over (nothing else runs: the interval is an hour).
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return testing::ScrapedMetric(*leader, "ferry_sync_total") >= 1; }, absl::Seconds(30)));
  const double writes_before =
      testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"apply\"") +
      testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"delete\"");
  ASSERT_GT(writes_before, 0);

  leader->process->Signal(SIGSTOP);
  const double other_writes =
      testing::ScrapedMetric(*other, "ferry_kube_requests_total", "verb=\"apply\"");
  ASSERT_TRUE(testing::WaitUntil([&] { return Leading(*other) == 1; }, absl::Seconds(25)))
      << other->process->Output();
  // A new head while the old leader sleeps: its WatchHead stream holds it for when it wakes.
  Push({{"second.yaml", ConfigMap(ns, "second")}});
  if (HasFatalFailure()) return;
  ASSERT_TRUE(testing::WaitUntil([&] { return Exists(ns, "second"); }, absl::Seconds(30)))
      << other->process->Output();

  leader->process->Signal(SIGCONT);
  // It wakes past its renew deadline: it notices it lost the lease...
  std::optional<std::string> stopped = leader->process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "stopped leading"); },
      absl::Seconds(10));
  ASSERT_TRUE(stopped.has_value()) << leader->process->Output();
  EXPECT_EQ(Leading(*leader), 0);
  // ...and, with another head to sync, its elector having run again (it reads the Lease),
  // still applies nothing.
  Push({{"third.yaml", ConfigMap(ns, "third")}});
  if (HasFatalFailure()) return;
  ASSERT_TRUE(testing::WaitUntil([&] { return Exists(ns, "third"); }, absl::Seconds(30)));
  const double reads =
      testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"lease\"");
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"lease\"") >=
               reads + 2;
      },
      absl::Seconds(10)));
  EXPECT_EQ(testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"apply\"") +
                testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"delete\""),
            writes_before)
      << leader->process->Output();
  EXPECT_EQ(Holder(), IdentityOf(*other));
  // The Lease passed at least once (the other instance's acquisition; a renewal lost to a slow
  // API server may add more), and the other instance, a standby until then, applied only
  // once it led.
  const std::string transitions = Trimmed(cluster_->Kubectl(
      "-n default get lease " + lease_ + " -o jsonpath={.spec.leaseTransitions}"));
  int64_t passed = 0;
  EXPECT_TRUE(absl::SimpleAtoi(transitions, &passed)) << transitions;
  EXPECT_GE(passed, 1);
  EXPECT_EQ(other_writes, 0);
  EXPECT_EQ(Leading(*other), 1);
}

TEST(LeaderSyncerFlagsTest, BadDurationsExitWithStatus2NamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--leader_elect_lease_duration=10s", "--leader_elect_renew_deadline=10s"},
       "--leader_elect_renew_deadline"},
      {{"--leader_elect_renew_deadline=5s", "--leader_elect_retry_period=5s"},
       "--leader_elect_retry_period"},
      {{"--leader_elect_lease_duration=soon"}, "--leader_elect_lease_duration"},
      {{"--leader_elect_lease_name=Not_A_Name"}, "--leader_elect_lease_name"},
  };
  for (const auto& [flags, named] : cases) {
    std::vector<std::string> argv = {FERRY_CLUSTER_SYNCER_BIN, "--leader_elect",
                                     "--kubeconfig=/nonexistent"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto process = testing::Subprocess::Start(argv);
    ASSERT_TRUE(process.ok()) << process.status();
    EXPECT_EQ((*process)->Wait(absl::Seconds(20)), 2) << named;
    EXPECT_TRUE(absl::StrContains((*process)->Output(), named)) << (*process)->Output();
  }
}

}  // namespace
}  // namespace ferry
