// Leader election of ferry-git-writer through the real binaries and a real kube-apiserver
// (issue 21): two git-writers with --leader_elect on one Lease (lease 8 s, renew deadline 5 s,
// retry 1 s, as leader_syncer_binary_test), each with its own mirror of the same bare repo
// over file://. Exactly one leads (its metric, its readiness, the Lease's holderIdentity); the
// standby refuses ApplyUpdates naming the leader and serves Head and ListWorkloads from its
// own mirror; a release sent while the SIGKILLed leader is being replaced lands exactly once;
// a leader paused (SIGSTOP) past its renew deadline and resumed after the other took over
// pushes nothing, not even the release that waited for it while it slept.
//
// The test's client reaches the two through one channel (runtime::ChannelTo with the replica
// list "ipv4:A,B"), which sends calls only to the replica whose "leader" health check is
// SERVING, and retries a call that fails UNAVAILABLE, as the api's job runner would.
//
// What the assertions rest on: the bare repo's history (git log: one commit per job id, by
// the Ferry-Job trailer) and each process's own push counter (ferry_git_commits_total), not
// exact counts of lease transitions (a renewal lost to a slow API server is a legitimate
// extra transition).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/runtime/channel.h"
#include "tests/binaries.h"
#include "tests/support/http.h"

namespace ferry {
namespace {

using testing::Running;

std::string Deployment(const std::string& image) {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\n"
         "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: " +
         image + "\n";
}

std::string Trimmed(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

// A release of web's container to `image` as job `job`.
ferry::v1::ApplyUpdatesRequest Release(const std::string& job, const std::string& image,
                                       const std::string& from = "") {
  ferry::v1::ApplyUpdatesRequest request;
  ferry::v1::Edit* edit = request.add_edits();
  edit->set_workload("apps:deployment/web");
  edit->mutable_image()->set_container("web");
  edit->mutable_image()->set_to_image(image);
  edit->mutable_image()->set_from_image(from);
  request.mutable_job()->set_id(job);
  return request;
}

grpc::Status Apply(const std::shared_ptr<grpc::Channel>& channel,
                   const ferry::v1::ApplyUpdatesRequest& request,
                   ferry::v1::ApplyUpdatesResponse* response, absl::Duration timeout,
                   bool wait_for_ready = false) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(timeout));
  ctx.set_wait_for_ready(wait_for_ready);
  return ferry::v1::GitWriter::NewStub(channel)->ApplyUpdates(&ctx, request, response);
}

class LeaderGitWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
  }

  // Two git-writers on the Lease `lease`, on one repo holding apps:deployment/web.
  void StartPair(const std::string& lease) {
    lease_ = lease;
    auto repo = testing::GitRepo::Create({{"apps/web.yaml", Deployment("nginx:1.25")}});
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
    for (auto [r, name] : {std::pair{&a_, "a"}, std::pair{&b_, "b"}}) {
      testing::StartArgv(
          {FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
           "--git_url=" + repo_->url(), "--state_dir=" + repo_->dir() + "/state-" + name,
           "--git_poll_interval=1s", "--kubeconfig=" + cluster_->kubeconfig(), "--leader_elect",
           "--leader_elect_namespace=default", "--leader_elect_lease_name=" + lease,
           "--leader_elect_lease_duration=8s", "--leader_elect_renew_deadline=5s",
           "--leader_elect_retry_period=1s"},
          *r);
      ASSERT_GT(r->grpc_port, 0);
    }
    // Both replicas behind one channel: calls go to the ready one (the leader).
    both_ = runtime::ChannelTo(absl::StrCat("ipv4:", a_.GrpcTarget(), ",", b_.GrpcTarget()),
                               runtime::PeerOptions{});
  }

  double Leading(const Running& r) {
    return testing::ScrapedMetric(r, "ferry_leader", "lease=\"default/" + lease_);
  }

  // Waits until exactly one of the two leads; returns it (nullptr when none did).
  Running* WaitForOneLeader(absl::Duration timeout) {
    return testing::WaitForOneLeader(a_, b_, "default/" + lease_, timeout);
  }

  std::string IdentityOf(Running& r) { return testing::LeaderIdentity(r); }

  std::string Holder() { return testing::LeaseHolder(*cluster_, "default", lease_); }

  // Sends `request` through the replica channel until it is not UNAVAILABLE (a replica
  // stopping, or none ready while a leader is elected), for up to `timeout`.
  grpc::Status ApplyRetrying(const ferry::v1::ApplyUpdatesRequest& request,
                             ferry::v1::ApplyUpdatesResponse* response, absl::Duration timeout,
                             int* attempts = nullptr) {
    const absl::Time deadline = absl::Now() + timeout;
    grpc::Status s;
    int n = 0;
    do {
      ++n;
      response->Clear();
      s = Apply(both_, request, response, absl::Seconds(10), /*wait_for_ready=*/true);
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
          s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(200));
    } while (absl::Now() < deadline);
    if (attempts != nullptr) *attempts = n;
    return s;
  }

  int CommitsOf(const std::string& job) { return testing::CommitsOfJob(*repo_, job); }

  testing::KubeCluster* cluster_ = nullptr;
  std::unique_ptr<testing::GitRepo> repo_;
  std::string lease_;
  Running a_, b_;
  std::shared_ptr<grpc::Channel> both_;
};

TEST_F(LeaderGitWriterTest, OneLeadsTheStandbyServesReadsAndAReleaseDuringFailoverLandsOnce) {
  StartPair("ferry-test-git-writer-kill");
  if (HasFatalFailure()) return;
  Running* leader = WaitForOneLeader(absl::Seconds(30));
  ASSERT_NE(leader, nullptr) << a_.process->Output() << b_.process->Output();
  Running* standby = leader == &a_ ? &b_ : &a_;
  const std::string identity = IdentityOf(*leader);
  ASSERT_TRUE(absl::StartsWith(identity, "ferry-git-writer/")) << identity;
  EXPECT_EQ(Holder(), identity);
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return testing::CheckHealth(*leader, "readiness") ==
               grpc::health::v1::HealthCheckResponse::SERVING;
      },
      absl::Seconds(20)));
  EXPECT_EQ(testing::CheckHealth(*standby, "readiness"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(testing::CheckHealth(*standby, ""), grpc::health::v1::HealthCheckResponse::SERVING);

  // The standby refuses writes, naming itself and the leader...
  {
    ferry::v1::ApplyUpdatesResponse response;
    grpc::Status s = Apply(standby->Channel(), Release("job-standby", "nginx:1.26", "nginx:1.25"),
                           &response, absl::Seconds(20));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), identity)) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "is a standby")) << s.error_message();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ferry::v1::SetSyncMarkerRequest marker;
    marker.set_revision(repo_->Head());
    ferry::v1::SyncMarker answer;
    s = ferry::v1::GitWriter::NewStub(standby->Channel())->SetSyncMarker(&ctx, marker, &answer);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  // ...and a release through the replica channel goes to the leader.
  {
    ferry::v1::ApplyUpdatesResponse response;
    grpc::Status s =
        ApplyRetrying(Release("job-1", "nginx:1.26", "nginx:1.25"), &response, absl::Seconds(30));
    ASSERT_TRUE(s.ok()) << s.error_message() << leader->process->Output();
    EXPECT_EQ(response.revision(), Trimmed(repo_->Head()));
  }
  EXPECT_EQ(testing::ScrapedMetric(*leader, "ferry_git_commits_total"), 1);
  EXPECT_EQ(testing::ScrapedMetric(*standby, "ferry_git_commits_total"), 0);
  // The replica channel sends every call to the ready replica, not round robin over both: a
  // write that changes nothing (the leader answers no_changes, the standby would refuse it)
  // succeeds every time without a retry.
  for (int i = 0; i < 6; ++i) {
    ferry::v1::ApplyUpdatesResponse response;
    grpc::Status s = Apply(both_, Release("job-noop", "nginx:1.26"), &response, absl::Seconds(20),
                           /*wait_for_ready=*/true);
    EXPECT_TRUE(s.ok()) << i << ": " << s.error_message();
    EXPECT_TRUE(response.no_changes());
  }
  // The standby serves reads from its own mirror, which follows upstream.
  auto standby_git = ferry::v1::GitWriter::NewStub(standby->Channel());
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        ferry::v1::HeadResponse head;
        return standby_git->Head(&ctx, {}, &head).ok() && head.revision() == Trimmed(repo_->Head());
      },
      absl::Seconds(20)))
      << standby->process->Output();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ferry::v1::ListManifestWorkloadsResponse workloads;
    grpc::Status s = standby_git->ListWorkloads(&ctx, {}, &workloads);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(workloads.workloads_size(), 1);
    EXPECT_EQ(workloads.workloads(0).id(), "apps:deployment/web");
    ASSERT_EQ(workloads.workloads(0).containers_size(), 1);
    EXPECT_EQ(workloads.workloads(0).containers(0).image(), "nginx:1.26");
  }

  // SIGKILL: no release of the Lease. A release is sent at once, retried while no replica is
  // ready, and lands once the standby has taken over (a lease duration after the last
  // change it saw, plus slack for a retry period and a loaded machine).
  leader->process->Signal(SIGKILL);
  const absl::Time killed = absl::Now();
  {
    ferry::v1::ApplyUpdatesResponse response;
    int attempts = 0;
    grpc::Status s = ApplyRetrying(Release("job-switch", "nginx:1.27", "nginx:1.26"), &response,
                                   absl::Seconds(40), &attempts);
    ASSERT_TRUE(s.ok()) << s.error_message() << standby->process->Output();
    EXPECT_FALSE(response.revision().empty());
    const absl::Duration takeover = absl::Now() - killed;
    EXPECT_LT(takeover, absl::Seconds(8) + absl::Seconds(7)) << takeover;
    // Sent again, as a job runner that lost the answer would: the compare-and-set edit no
    // longer applies, nothing is committed twice.
    ferry::v1::ApplyUpdatesResponse again;
    s = ApplyRetrying(Release("job-switch", "nginx:1.27", "nginx:1.26"), &again, absl::Seconds(20));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  }
  EXPECT_EQ(Leading(*standby), 1);
  EXPECT_EQ(Holder(), IdentityOf(*standby));
  EXPECT_GE(testing::ScrapedMetric(*standby, "ferry_leader_transitions_total",
                                   "lease=\"default/" + lease_),
            1);
  EXPECT_EQ(testing::CheckHealth(*standby, "readiness"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(CommitsOf("job-1"), 1);
  EXPECT_EQ(CommitsOf("job-switch"), 1);
  EXPECT_EQ(CommitsOf("job-standby"), 0);
  EXPECT_EQ(Trimmed(repo_->Git("rev-list --count " + repo_->branch())), "3");
  EXPECT_EQ(repo_->Show(repo_->Head(), "apps/web.yaml"), Deployment("nginx:1.27"));
  EXPECT_EQ(testing::ScrapedMetric(*standby, "ferry_git_commits_total"), 1);
}

TEST_F(LeaderGitWriterTest, APausedLeaderPushesNothingAfterLosingTheLease) {
  StartPair("ferry-test-git-writer-pause");
  if (HasFatalFailure()) return;
  Running* leader = WaitForOneLeader(absl::Seconds(30));
  ASSERT_NE(leader, nullptr) << a_.process->Output() << b_.process->Output();
  Running* other = leader == &a_ ? &b_ : &a_;
  {
    ferry::v1::ApplyUpdatesResponse response;
    grpc::Status s =
        ApplyRetrying(Release("job-1", "nginx:1.26", "nginx:1.25"), &response, absl::Seconds(30));
    ASSERT_TRUE(s.ok()) << s.error_message() << leader->process->Output();
  }
  const double pushes_before = testing::ScrapedMetric(*leader, "ferry_git_commits_total");
  ASSERT_EQ(pushes_before, 1);

  leader->process->Signal(SIGSTOP);
  // A release that reaches the paused leader: it waits in its socket until it wakes.
  std::future<grpc::Status> paused = std::async(std::launch::async, [&] {
    ferry::v1::ApplyUpdatesResponse response;
    return Apply(leader->Channel(), Release("job-paused", "nginx:1.99"), &response,
                 absl::Seconds(90));
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return Leading(*other) == 1; }, absl::Seconds(25)))
      << other->process->Output();
  {
    ferry::v1::ApplyUpdatesResponse response;
    grpc::Status s =
        ApplyRetrying(Release("job-2", "nginx:1.27", "nginx:1.26"), &response, absl::Seconds(30));
    ASSERT_TRUE(s.ok()) << s.error_message() << other->process->Output();
  }

  leader->process->Signal(SIGCONT);
  // It wakes past its renew deadline: it refuses the release that waited for it...
  grpc::Status woke = paused.get();
  EXPECT_EQ(woke.error_code(), grpc::StatusCode::UNAVAILABLE) << woke.error_message();
  EXPECT_TRUE(absl::StrContains(woke.error_message(), "ferry-git-writer/")) << woke.error_message();
  std::cerr << "the paused leader answered: " << woke.error_message() << "\n";
  // ...notices it lost the lease, and, its elector having run again (it reads the Lease),
  // still has pushed nothing.
  std::optional<std::string> stopped = leader->process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "stopped leading"); },
      absl::Seconds(10));
  ASSERT_TRUE(stopped.has_value()) << leader->process->Output();
  EXPECT_EQ(Leading(*leader), 0);
  const double reads =
      testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"lease\"");
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return testing::ScrapedMetric(*leader, "ferry_kube_requests_total", "verb=\"lease\"") >=
               reads + 2;
      },
      absl::Seconds(10)));
  EXPECT_EQ(testing::ScrapedMetric(*leader, "ferry_git_commits_total"), pushes_before)
      << leader->process->Output();
  EXPECT_EQ(CommitsOf("job-paused"), 0);
  EXPECT_EQ(CommitsOf("job-1"), 1);
  EXPECT_EQ(CommitsOf("job-2"), 1);
  EXPECT_EQ(repo_->Show(repo_->Head(), "apps/web.yaml"), Deployment("nginx:1.27"));
  EXPECT_EQ(Holder(), IdentityOf(*other));
  EXPECT_EQ(Leading(*other), 1);
  EXPECT_EQ(testing::CheckHealth(*leader, "readiness"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST(LeaderGitWriterFlagsTest, WithoutElectionTheOneInstanceIsReady) {
  auto repo = testing::GitRepo::Create({{"apps/web.yaml", Deployment("nginx:1.25")}});
  ASSERT_TRUE(repo.ok()) << repo.status();
  Running git;
  testing::StartArgv({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0",
                      "--metrics_address=127.0.0.1:0", "--git_url=" + (*repo)->url(),
                      "--state_dir=" + (*repo)->dir() + "/state", "--git_poll_interval=1h"},
                     git);
  ASSERT_GT(git.grpc_port, 0);
  EXPECT_EQ(testing::CheckHealth(git, "readiness"), grpc::health::v1::HealthCheckResponse::SERVING);
  ferry::v1::ApplyUpdatesResponse response;
  grpc::Status s =
      Apply(git.Channel(), Release("job-1", "nginx:1.26"), &response, absl::Seconds(20));
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(testing::ScrapedMetric(git, "ferry_leader"), 0);  // no election, no leader metric
}

TEST(LeaderGitWriterFlagsTest, BadLeaderFlagsExitWithStatus2NamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--leader_elect_lease_duration=10s", "--leader_elect_renew_deadline=10s"},
       "--leader_elect_renew_deadline"},
      {{"--leader_elect_lease_name=Not_A_Name"}, "--leader_elect_lease_name"},
      {{"--kubeconfig=/nonexistent"}, "--leader_elect needs the Kubernetes API (--kubeconfig"},
  };
  testing::TempDir dir;
  for (const auto& [flags, named] : cases) {
    std::vector<std::string> argv = {FERRY_GIT_WRITER_BIN,
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--git_url=file://" + dir.path + "/none.git",
                                     "--state_dir=" + dir.path + "/state",
                                     "--leader_elect"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto process = testing::Subprocess::Start(argv);
    ASSERT_TRUE(process.ok()) << process.status();
    EXPECT_EQ((*process)->Wait(absl::Seconds(20)), 2) << named;
    EXPECT_TRUE(absl::StrContains((*process)->Output(), named)) << (*process)->Output();
  }
}

}  // namespace
}  // namespace ferry
