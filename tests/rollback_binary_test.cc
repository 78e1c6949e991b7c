// Rollouts that revert themselves (rollback: auto), through the real binaries: a Deployment
// whose new pods never become ready (no kubelet here, the real controller manager fires its
// progressDeadlineSeconds) is reverted in git by a REVERT job, locked with the reason and its
// tag rejected; the automation does not pick the tag again; ferryctl unlock + release put a
// person back in charge, and that healthy rollout is not reverted.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "ferry/v1/api.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"
#include "tests/support/http.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using testing::Image;
using testing::kImageConfig;
using testing::Stack;
using testing::StartStack;

constexpr char kWorkload[] = "rb:deployment/web";

// One replica (its pods never become ready here), a 5 s progress deadline, automated on
// semver:~1 with rollback: auto.
std::string Web(const std::string& image) {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: rb\n"
         "  annotations:\n"
         "    ferry.dev/automated: \"true\"\n"
         "    ferry.dev/tag.app: semver:~1\n"
         "    ferry.dev/rollback: auto\n"
         "    ferry.dev/rollback-timeout: 2m\n"
         "spec:\n  replicas: 1\n  progressDeadlineSeconds: 5\n"
         "  selector: {matchLabels: {app: web}}\n  template:\n"
         "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
         "      - name: app\n        image: " +
         image + "\n";
}

// Waits (up to `timeout`) until `done` holds; returns whether it did.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

std::string Metrics(const Stack& stack) {
  auto got =
      testing::HttpGet("http://127.0.0.1:" + std::to_string(stack.api.metrics_port) + "/metrics");
  return got.ok() ? got->body : "";
}

TEST(RollbackBinaryTest, AFailedRolloutIsRevertedLockedAndItsTagRejected) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  for (const char* tag : {"1.0.0", "1.1.0"}) {
    FERRY_ASSERT_OK(stack.registry->PushImage("team/web", tag, kImageConfig));
  }
  const std::string old_image = Image(stack, "team/web", "1.0.0");
  const std::string new_image = Image(stack, "team/web", "1.1.0");
  StartStack(stack,
             {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: rb}\n"},
              {"apps/web.yaml", Web(old_image)}},
             "rb");
  if (HasFatalFailure()) return;
  // The automation's first pass releases 1.1.0.
  stack.StartApi({"--automation_interval=1h"});
  ASSERT_GT(stack.api.grpc_port, 0);

  // The rollout fails (progress deadline exceeded), and the revert lands in git.
  std::string web;
  ASSERT_TRUE(WaitFor(
      [&] {
        web = stack.repo->Show(stack.repo->Head(), "apps/web.yaml");
        return absl::StrContains(web, "ferry.dev/locked");
      },
      absl::Seconds(120)))
      << web << stack.api.process->Output();
  EXPECT_TRUE(absl::StrContains(web, "image: " + old_image + "\n")) << web;
  EXPECT_TRUE(absl::StrContains(stack.repo->Git("log -1 --format=%B"), "progress deadline"))
      << stack.repo->Git("log -1 --format=%B");
  // The previous commit is the automated release it reverts.
  EXPECT_TRUE(absl::StrContains(stack.repo->Git("log -1 --format=%s HEAD~1"), "Auto-release"));

  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stack.stub->ListJobs(&ctx, {}, &jobs));
  ferry::v1::Job revert, release;
  for (const auto& j : jobs.jobs()) {
    if (j.kind() == ferry::v1::JOB_KIND_REVERT) revert = j;
    if (j.kind() == ferry::v1::JOB_KIND_AUTOMATED_RELEASE) release = j;
  }
  ASSERT_FALSE(revert.id().empty()) << jobs.DebugString();
  revert = stack.Follow(revert.id());
  EXPECT_EQ(revert.state(), ferry::v1::JOB_STATE_SUCCEEDED) << revert.DebugString();
  EXPECT_EQ(revert.reverts_job(), release.id());
  EXPECT_EQ(revert.revision(), stack.repo->Head());
  EXPECT_EQ(revert.cause().user(), "ferry");
  EXPECT_EQ(stack.repo->Git("log -1 --format=%an%n%s"),
            "ferry\nRevert rb:deployment/web (rollout of job " + release.id() + " failed)\n");
  // Locked by ferry with the job, the tag and the reason; the tag rejected by the revert.
  EXPECT_TRUE(absl::StrContains(web, "ferry.dev/locked: \"true\"")) << web;
  EXPECT_TRUE(absl::StrContains(web, "ferry.dev/locked_user: ferry")) << web;
  EXPECT_TRUE(absl::StrContains(web, "automatic revert of job " + release.id() + ": app 1.1.0"))
      << web;
  EXPECT_TRUE(absl::StrContains(web, "progress deadline exceeded")) << web;
  EXPECT_TRUE(absl::StrContains(web, "ferry.dev/rejected.app: 1.1.0=" + revert.id())) << web;
  EXPECT_TRUE(
      absl::StrContains(Metrics(stack), "ferry_automatic_reverts_total{outcome=\"reverted\"} 1"))
      << Metrics(stack);

  // ferryctl shows the revert.
  auto ferryctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), FERRYCTL_BIN);
    args.push_back("--url=" + stack.api.GrpcTarget());
    auto p = testing::Subprocess::Start(args);
    FERRY_EXPECT_OK(p);
    std::optional<int> code = (*p)->Wait(absl::Seconds(60));
    return std::make_pair(code.value_or(-1), (*p)->Output());
  };
  auto [list_code, list] = ferryctl({"jobs"});
  EXPECT_EQ(list_code, 0) << list;
  EXPECT_TRUE(absl::StrContains(list, revert.id())) << list;
  EXPECT_TRUE(absl::StrContains(list, "revert")) << list;
  auto [job_code, job] = ferryctl({"jobs", revert.id()});
  EXPECT_EQ(job_code, 0) << job;
  EXPECT_TRUE(absl::StrContains(job, "Reverts job:    " + release.id())) << job;

  // A person takes over: scales the workload to what this cluster can run, unlocks. The
  // automation (its first pass after a restart) does not pick the rejected tag again.
  std::string scaled = absl::StrReplaceAll(web, {{"replicas: 1", "replicas: 0"}});
  FERRY_ASSERT_OK(stack.repo->CommitWithCli({{"apps/web.yaml", scaled}}, "scale to zero"));
  auto [unlock_code, unlocked] = ferryctl({"unlock", "-w", kWorkload, "-m", "investigated"});
  ASSERT_EQ(unlock_code, 0) << unlocked;
  const std::string after_unlock = stack.repo->Head();
  stack.StartApi({"--automation_interval=1h"});
  ASSERT_GT(stack.api.grpc_port, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(stack.api.process->Output(),
                                 "app: 1.1.0 was rejected by job " + revert.id());
      },
      absl::Seconds(60)))
      << stack.api.process->Output();
  EXPECT_TRUE(absl::StrContains(Metrics(stack), "ferry_automation_releases_total 0"));
  EXPECT_EQ(stack.repo->Head(), after_unlock) << "the automation released nothing";

  // A manual release of the tag works, rolls out (zero replicas: ready) and stays.
  auto [release_code, released] =
      ferryctl({"release", "-w", kWorkload, "-i", new_image, "--watch", "-m", "fixed"});
  EXPECT_EQ(release_code, 0) << released << stack.api.process->Output();
  EXPECT_TRUE(absl::StrContains(stack.repo->Show(stack.repo->Head(), "apps/web.yaml"),
                                "image: " + new_image + "\n"));
  // The reverter followed it and found it healthy.
  ASSERT_TRUE(
      WaitFor([&] { return absl::StrContains(stack.api.process->Output(), "rollout healthy"); },
              absl::Seconds(60)))
      << stack.api.process->Output();
  EXPECT_TRUE(absl::StrContains(stack.repo->Show(stack.repo->Head(), "apps/web.yaml"),
                                "image: " + new_image + "\n"));
  EXPECT_TRUE(
      absl::StrContains(Metrics(stack), "ferry_automatic_reverts_total{outcome=\"reverted\"} 0"))
      << "a new process; nothing reverted";
}

}  // namespace
}  // namespace ferry
