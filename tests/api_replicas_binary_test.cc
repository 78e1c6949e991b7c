// Two ferry-api replicas behind one git-writer, registry-scanner and cluster-syncer, on one
// Lease, against a real kube-apiserver (issue 21): a job submitted to one replica is read
// (GetJob, ListJobs) and watched to its end (WatchJob) on the other, through the shared job
// records (ConfigMaps in the Lease's namespace); the automation runs on one replica only and
// commits once per new tag; exactly one replica's ferry_leader is 1. Lease 8 s, renew
// deadline 5 s, retry 1 s, as leader_syncer_binary_test has them (short, yet a slow etcd write
// on a loaded machine does not cost the leader its lease).
//
// The assertions are facts that hold however the scheduler treats us: conditions waited for
// with bounds, never a fixed sleep; "once per tag" is checked after the automation passes
// of both replicas together ran at least twice more since the commit.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ferry/v1/api.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::Image;
using testing::Running;
using testing::Stack;

constexpr char kNamespace[] = "api-replicas";
constexpr char kLease[] = "ferry-test-api-replicas";
constexpr char kManagedBy[] = "app.kubernetes.io/managed-by=ferry-api";

// Lines of `text` that are not empty.
int CountLines(const std::string& text) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    n += !absl::StripAsciiWhitespace(line).empty();
  }
  return n;
}

class ApiReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
  }
  void TearDown() override {
    if (cluster_ != nullptr) {
      cluster_->Kubectl(absl::StrCat("-n ", kNamespace, " delete configmap -l ", kManagedBy));
    }
  }

  // The api flags of both replicas.
  std::vector<std::string> ReplicaFlags() const {
    return {"--kubeconfig=" + cluster_->kubeconfig(),
            "--leader_elect",
            absl::StrCat("--leader_elect_namespace=", kNamespace),
            absl::StrCat("--leader_elect_lease_name=", kLease),
            "--leader_elect_lease_duration=8s",
            "--leader_elect_renew_deadline=5s",
            "--leader_elect_retry_period=1s",
            "--automation_interval=2s"};
  }

  // The second replica, on the same peers.
  void StartReplicaB() {
    std::vector<std::string> argv = {FERRY_API_BIN,
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--git_writer_address=" + stack_.git.GrpcTarget(),
                                     "--registry_scanner_address=" + stack_.scanner.GrpcTarget(),
                                     "--cluster_syncer_address=" + stack_.syncer.GrpcTarget()};
    for (const std::string& f : ReplicaFlags()) argv.push_back(f);
    testing::StartArgv(argv, b_);
    b_stub_ = ferry::v1::Ferry::NewStub(b_.Channel());
  }

  // Automation passes both replicas ran so far.
  double Passes() {
    return std::max(0.0, testing::ScrapedMetric(stack_.api, "ferry_automation_runs_total")) +
           std::max(0.0, testing::ScrapedMetric(b_, "ferry_automation_runs_total"));
  }

  // The automated release commits that name `image`.
  int AutoReleases(const std::string& image) {
    return CountLines(stack_.repo->Git("log --format=%H -F --grep=Auto-release --grep=" + image +
                                       " --all-match " + stack_.repo->branch()));
  }

  testing::KubeCluster* cluster_ = nullptr;
  Stack stack_;
  Running b_;
  std::unique_ptr<ferry::v1::Ferry::Stub> b_stub_;
};

TEST_F(ApiReplicasTest, AJobIsSharedAndTheAutomationCommitsOncePerTag) {
  // Records of an earlier run in this namespace would only add to ListJobs.
  cluster_->Kubectl(absl::StrCat("-n ", kNamespace, " delete configmap -l ", kManagedBy));
  auto registry = testing::RegistryServer::Start(stack_.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack_.registry = *std::move(registry);
  for (const char* repository : {"team/app", "team/manual"}) {
    FERRY_ASSERT_OK(stack_.registry->PushImage(repository, "1.0.0", testing::kImageConfig));
  }
  FERRY_ASSERT_OK(stack_.registry->PushImage("team/manual", "1.1.0", testing::kImageConfig));
  const std::map<std::string, std::string> files = {
      {"ns.yaml",
       absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ", kNamespace, "}\n")},
      {"app.yaml", Deployment(kNamespace, "app", Image(stack_, "team/app", "1.0.0"),
                              "    ferry.dev/automated: \"true\"\n")},
      {"manual.yaml", Deployment(kNamespace, "manual", Image(stack_, "team/manual", "1.0.0"))}};
  testing::StartStack(stack_, files, kNamespace, {"--scan_interval=1s"});
  if (HasFatalFailure()) return;
  stack_.StartApi(ReplicaFlags());
  ASSERT_GT(stack_.api.grpc_port, 0);
  StartReplicaB();
  ASSERT_GT(b_.grpc_port, 0);
  const std::string lease = absl::StrCat(kNamespace, "/", kLease);
  ASSERT_NE(testing::WaitForOneLeader(stack_.api, b_, lease, absl::Seconds(30)), nullptr)
      << "no single leader\nA:\n"
      << stack_.api.process->Output() << "\nB:\n"
      << b_.process->Output();

  // A release submitted on A...
  ferry::v1::ReleaseSpec spec;
  spec.add_workloads(absl::StrCat(kNamespace, ":deployment/manual"));
  spec.set_image(Image(stack_, "team/manual", "1.1.0"));
  ferry::v1::Job submitted;
  FERRY_ASSERT_OK(stack_.Release(spec, &submitted));
  // ...is read on B once its record is written (asynchronously, at once)...
  ferry::v1::Job got;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        ferry::v1::GetJobRequest request;
        request.set_id(submitted.id());
        return b_stub_->GetJob(&ctx, request, &got).ok();
      },
      absl::Seconds(20)))
      << b_.process->Output();
  EXPECT_EQ(got.id(), submitted.id());
  EXPECT_EQ(got.kind(), ferry::v1::JOB_KIND_RELEASE);
  // ...and watched on B to its end.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    ferry::v1::GetJobRequest request;
    request.set_id(submitted.id());
    auto stream = b_stub_->WatchJob(&ctx, request);
    ferry::v1::Job job, last;
    int updates = 0;
    while (stream->Read(&job)) {
      last = job;
      ++updates;
    }
    FERRY_ASSERT_OK(stream->Finish());
    EXPECT_GE(updates, 1);
    EXPECT_EQ(last.state(), ferry::v1::JOB_STATE_SUCCEEDED) << last.DebugString();
    ASSERT_FALSE(last.stages().empty());
    EXPECT_EQ(last.stages(last.stages_size() - 1).kind(), ferry::v1::JOB_STAGE_KIND_DONE);
    EXPECT_FALSE(last.revision().empty());
    EXPECT_EQ(
        last.revision(),
        stack_.repo->Git("rev-parse " + stack_.repo->branch()).substr(0, last.revision().size()));
  }
  // ListJobs on B has it.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::ListJobsResponse jobs;
    FERRY_ASSERT_OK(b_stub_->ListJobs(&ctx, {}, &jobs));
    // From its record: the git note of its commit (which ListJobs also reads) holds the job
    // as it was when it committed, without the DONE stage.
    const ferry::v1::Job* listed = nullptr;
    for (const ferry::v1::Job& j : jobs.jobs()) {
      if (j.id() == submitted.id()) listed = &j;
    }
    ASSERT_NE(listed, nullptr) << jobs.DebugString();
    ASSERT_FALSE(listed->stages().empty());
    EXPECT_EQ(listed->stages(listed->stages_size() - 1).kind(), ferry::v1::JOB_STAGE_KIND_DONE);
    EXPECT_GE(testing::ScrapedMetric(b_, "ferry_kube_requests_total", "verb=\"list\""), 1);
  }
  // The record is a ConfigMap in the Lease's namespace, labelled with the job's kind.
  int status = 0;
  const std::string records = cluster_->Kubectl(
      absl::StrCat("-n ", kNamespace, " get configmap -o name -l ferry.dev/job-kind=release"),
      &status);
  EXPECT_EQ(status, 0) << records;
  EXPECT_TRUE(absl::StrContains(records, "configmap/ferry-job-" + submitted.id())) << records;

  // A new tag of the automated workload: one automated release commit, with both replicas
  // running passes every 2 s...
  const std::string tagged = Image(stack_, "team/app", "1.1.0");
  FERRY_ASSERT_OK(stack_.registry->PushImage("team/app", "1.1.0", testing::kImageConfig));
  ASSERT_TRUE(testing::WaitUntil([&] { return AutoReleases(tagged) > 0; }, absl::Seconds(90)))
      << "no automated release of " << tagged << "\nA:\n"
      << stack_.api.process->Output() << "\nB:\n"
      << b_.process->Output();
  // ...and still one after at least two more passes.
  const double passes = Passes();
  ASSERT_TRUE(testing::WaitUntil([&] { return Passes() >= passes + 2; }, absl::Seconds(60)));
  EXPECT_EQ(AutoReleases(tagged), 1);
  EXPECT_EQ(AutoReleases("Auto-release"), 1);
  // Only the leader ran passes (the other stood by), and exactly one leads.
  Running* leader = testing::WaitForOneLeader(stack_.api, b_, lease, absl::Seconds(10));
  ASSERT_NE(leader, nullptr);
  Running* standby = leader == &stack_.api ? &b_ : &stack_.api;
  EXPECT_EQ(testing::ScrapedMetric(*leader, "ferry_leader", "lease=\"" + lease + "\""), 1);
  EXPECT_EQ(testing::ScrapedMetric(*standby, "ferry_leader", "lease=\"" + lease + "\""), 0);
  EXPECT_GE(testing::ScrapedMetric(*leader, "ferry_automation_runs_total"), 2);
  for (const char* outcome : {"released", "nothing", "error"}) {
    EXPECT_EQ(testing::ScrapedMetric(*standby, "ferry_automation_runs_total",
                                     absl::StrCat("outcome=\"", outcome, "\"")),
              0)
        << outcome;
  }
  // A wrote the records of the release it ran (submitted, changes, done).
  EXPECT_GE(testing::ScrapedMetric(stack_.api, "ferry_job_records_writes_total", "op=\"put\""), 1);
  EXPECT_EQ(testing::ScrapedMetric(stack_.api, "ferry_job_records_errors_total"), 0);
  EXPECT_EQ(testing::ScrapedMetric(b_, "ferry_job_records_errors_total"), 0);

  // The leader shut down (SIGTERM) exits cleanly and releases the Lease: the other replica
  // leads at its next retry (1 s), well before the lease would have expired (8 s after the
  // last renewal it saw).
  leader->process->Signal(SIGTERM);
  std::optional<int> code = leader->process->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << leader->process->Output();
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return testing::ScrapedMetric(*standby, "ferry_leader", "lease=\"" + lease + "\"") == 1;
      },
      absl::Seconds(6)))
      << standby->process->Output();
}

TEST_F(ApiReplicasTest, LeaderElectionWithoutAWayToTheKubernetesApiExits2) {
  auto process = testing::Subprocess::Start({FERRY_API_BIN, "--grpc_address=127.0.0.1:0",
                                             "--metrics_address=127.0.0.1:0", "--leader_elect",
                                             "--kubeconfig=/nonexistent/kubeconfig"});
  FERRY_ASSERT_OK(process);
  std::optional<int> code = (*process)->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "--leader_elect needs the Kubernetes API"))
      << (*process)->Output();
}

}  // namespace
}  // namespace ferry
