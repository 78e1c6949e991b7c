// The real binaries on loopback for rules that only the whole process shows: a read token is
// refused on every write RPC of ferry-api and nothing is written; git-writer's --git_ci_skip
// marks the commits Ferry makes (and only when set); cluster-syncer's
// --sync_force_conflicts=false leaves a field another field manager owns and reports the
// conflict, while the default takes the field back.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/git_writer_process.h"
#include "tests/stack.h"
#include "tests/support/registry.h"
#include "tests/sync_steps.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

using testing::Deployment;
using testing::Running;
using testing::Stack;
using testing::StartArgv;
using testing::StartStack;

constexpr char kReadToken[] = "read-token-0123456789";
constexpr char kWriteToken[] = "write-token-0123456789";

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

// A client context carrying `token`.
void Authorize(grpc::ClientContext& ctx, const std::string& token) {
  ctx.set_deadline(Deadline());
  ctx.AddMetadata("authorization", "Bearer " + token);
}

// A job's state once it ended (polled with GetJob, up to 60 s).
ferry::v1::Job AwaitJob(ferry::v1::Ferry::Stub& stub, const std::string& id) {
  ferry::v1::Job job;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until) {
    grpc::ClientContext ctx;
    Authorize(ctx, kReadToken);
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    if (!stub.GetJob(&ctx, request, &job).ok()) break;
    if (job.state() == ferry::v1::JOB_STATE_SUCCEEDED ||
        job.state() == ferry::v1::JOB_STATE_FAILED) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return job;
}

// Release, UpdatePolicy and Sync with a read token: PERMISSION_DENIED naming the role the
// call needs, no job, no commit. The same UpdatePolicy with the write
// token then commits, so "nothing written" is a check that could fail.
TEST(WriteAccessBinaryTest, AReadTokenIsRefusedOnEveryWriteRpcAndNothingIsWritten) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.1.0", testing::kImageConfig));
  StartStack(
      stack,
      {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ro}\n"},
       {"apps/web.yaml", Deployment("ro", "web", testing::Image(stack, "team/web", "1.0.0"))}},
      "ro");
  if (HasFatalFailure()) return;
  const std::string tokens = stack.dir.path + "/tokens";
  std::ofstream(tokens) << "read " << kReadToken << " viewer\nwrite " << kWriteToken << " ci\n";
  stack.StartApi({"--no_automation", "--tokens_path=" + tokens});
  ASSERT_GT(stack.api.grpc_port, 0);
  const std::string head = stack.repo->Head();

  ferry::v1::ReleaseRequest release;
  release.mutable_spec()->set_all_workloads(true);
  release.mutable_spec()->set_image(testing::Image(stack, "team/web", "1.1.0"));
  ferry::v1::UpdatePolicyRequest policy;
  auto* changes = policy.add_changes();
  changes->set_workload("ro:deployment/web");
  changes->add_changes()->set_automate(true);
  std::vector<std::pair<std::string, grpc::Status>> refused;
  ferry::v1::Job job;
  {
    grpc::ClientContext ctx;
    Authorize(ctx, kReadToken);
    refused.emplace_back("Release", stack.stub->Release(&ctx, release, &job));
  }
  {
    grpc::ClientContext ctx;
    Authorize(ctx, kReadToken);
    refused.emplace_back("UpdatePolicy", stack.stub->UpdatePolicy(&ctx, policy, &job));
  }
  {
    grpc::ClientContext ctx;
    Authorize(ctx, kReadToken);
    refused.emplace_back("Sync", stack.stub->Sync(&ctx, {}, &job));
  }
  for (const auto& [rpc, status] : refused) {
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr("needs write"), HasSubstr("'viewer' has the read role"))))
        << rpc;
  }
  // No job was recorded, nothing was pushed.
  {
    grpc::ClientContext ctx;
    Authorize(ctx, kReadToken);
    ferry::v1::ListJobsResponse jobs;
    grpc::Status s = stack.stub->ListJobs(&ctx, {}, &jobs);
    FERRY_ASSERT_OK(s);
    EXPECT_EQ(jobs.jobs_size(), 0) << jobs.DebugString();
  }
  EXPECT_EQ(stack.repo->Head(), head);

  // The write token may: the same policy change is committed.
  grpc::ClientContext ctx;
  Authorize(ctx, kWriteToken);
  grpc::Status s = stack.stub->UpdatePolicy(&ctx, policy, &job);
  FERRY_ASSERT_OK(s);
  ferry::v1::Job done = AwaitJob(*stack.stub, job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_NE(stack.repo->Head(), head);
}

// Applies `edit` and returns the full message of the commit git-writer pushed.
std::string CommitMessage(testing::GitWriterProcess& git, const ferry::v1::Edit& edit) {
  ferry::v1::ApplyUpdatesResponse response;
  grpc::Status s = git.Apply(edit, &response);
  FERRY_EXPECT_OK(s);
  EXPECT_FALSE(response.no_changes());
  EXPECT_EQ(response.revision(), git.repo().Head());
  return git.repo().Git("log -1 --format=%B " + response.revision());
}

// Both kinds of commit Ferry makes (a release, a policy change): with --git_ci_skip their
// message ends with the CI-skip marker, without it the marker is absent.
TEST(GitCiSkipBinaryTest, CommitsCarryTheMarkerOnlyWhenTheFlagIsSet) {
  ferry::v1::Edit policy;
  policy.set_workload("default:deployment/web");
  policy.mutable_policy()->set_automate(true);
  for (bool ci_skip : {true, false}) {
    SCOPED_TRACE(ci_skip ? "--git_ci_skip" : "no flag");
    testing::GitWriterProcess git;
    ASSERT_TRUE(git.Start(ci_skip ? std::vector<std::string>{"--git_ci_skip"}
                                  : std::vector<std::string>{}));
    for (const ferry::v1::Edit& edit : {testing::WebRelease("nginx:1.26"), policy}) {
      const std::string message = CommitMessage(git, edit);
      EXPECT_EQ(absl::EndsWith(message, "\n\n[ci skip]\n"), ci_skip) << message;
      EXPECT_EQ(absl::StrContains(message, "[ci skip]"), ci_skip) << message;
    }
  }
}

// The image of the synced Deployment, as the cluster holds it.
std::string LiveImage(const testing::KubeCluster& cluster, const std::string& ns) {
  return cluster.Kubectl("-n " + ns +
                         " get deploy web -o jsonpath={.spec.template.spec.containers[0].image}");
}

// Another field manager takes the image of a Deployment Ferry applied; git then changes a
// label (so the object is applied again). With --sync_force_conflicts=false the image stays
// the other manager's and the sync reports the conflict; with the default Ferry takes it back.
TEST(SyncForceConflictsBinaryTest, AFieldOwnedByAnotherManagerIsKeptOnlyWithoutForce) {
  FERRY_ASSERT_OK_AND_ASSIGN(auto cluster, testing::SharedKubeCluster());
  for (bool force : {false, true}) {
    SCOPED_TRACE(force ? "default (force)" : "--sync_force_conflicts=false");
    const std::string ns = force ? "conflict-forced" : "conflict-kept";
    const std::string app = "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n---\n" +
                            Deployment(ns, "web", "registry.example.com/web:1.0.0");
    FERRY_ASSERT_OK_AND_ASSIGN(auto repo, testing::GitRepo::Create({{"app.yaml", app}}));
    Running git, syncer;
    std::vector<std::string> flags = {"--sync_set=" + ns};
    if (!force) flags.push_back("--sync_force_conflicts=false");
    testing::StartGitWriterAndSyncer(*repo, *cluster, flags, git, syncer);
    ASSERT_GT(syncer.grpc_port, 0);
    std::optional<ferry::v1::SyncResult> first = testing::FirstSync(syncer);
    ASSERT_TRUE(first.has_value()) << syncer.process->Output();
    ASSERT_EQ(first->failed(), 0) << first->DebugString();
    ASSERT_EQ(LiveImage(*cluster, ns), "registry.example.com/web:1.0.0");

    // Someone else takes the image with their own field manager.
    const std::string other =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: " + ns +
        "}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n"
        "        image: registry.example.com/web:6.6.6\n";
    int status = 0;
    std::string out = cluster->Kubectl(
        "apply --server-side --force-conflicts --validate=false --field-manager=someone-else -f -",
        &status, other);
    ASSERT_EQ(status, 0) << out;
    ASSERT_EQ(LiveImage(*cluster, ns), "registry.example.com/web:6.6.6");

    // Git changes another field; git-writer is told, the syncer syncs that revision.
    ferry::v1::SyncResult result;
    testing::PushAndSync(*repo, git, syncer,
                         {{"app.yaml", absl::StrReplaceAll(app, {{"  replicas: 0\n",
                                                                  "  replicas: 0\n"
                                                                  "  minReadySeconds: 1\n"}})}},
                         &result);
    if (HasFatalFailure()) return;
    EXPECT_EQ(
        cluster->Kubectl("-n " + ns + " get deploy web -o jsonpath={.spec.minReadySeconds}") == "1",
        force);
    if (force) {
      EXPECT_EQ(result.failed(), 0) << result.DebugString();
      EXPECT_EQ(LiveImage(*cluster, ns), "registry.example.com/web:1.0.0");
    } else {
      EXPECT_EQ(LiveImage(*cluster, ns), "registry.example.com/web:6.6.6");
      ASSERT_EQ(result.failed(), 1) << result.DebugString();
      ASSERT_EQ(result.errors_size(), 1);
      EXPECT_EQ(result.errors(0).path(), "app.yaml");
      EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(result.errors(0).error()), "conflict"))
          << result.errors(0).DebugString();
      EXPECT_TRUE(absl::StrContains(result.errors(0).error(), "someone-else"))
          << result.errors(0).DebugString();
    }
    cluster->Kubectl("delete namespace " + ns + " --wait=false");
  }
}

}  // namespace
}  // namespace ferry
