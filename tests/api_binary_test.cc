// ferry-api as deployed, in front of the real git-writer, registry-scanner and
// cluster-syncer, with a real git repo, registry and Kubernetes API: lists, releases,
// policies, jobs (also after a restart), versions, and the automation loop end to end.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"
#include "tests/support/http.h"
#include "tests/support/ports.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

using testing::Deployment;
using testing::FirstSync;
using testing::Image;
using testing::kImageConfig;
using testing::Running;
using testing::Stack;
using testing::StartArgv;
using testing::StartGitWriterAndSyncer;
using testing::StartStack;
using testing::TempDir;

// ferry-api over TLS with tokens, in front of a real git-writer and cluster-syncer: workloads
// from git merged with their state in the cluster.
TEST(ApiBinaryTest, ListsWorkloadsFromGitAndClusterOverTlsWithTokens) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  const std::string app = "apiVersion: v1\nkind: Namespace\nmetadata: {name: api-e2e}\n---\n" +
                          Deployment("api-e2e", "web", "registry.example.com/team/web:1.0.0");
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, testing::GitRepo::Create({{"apps/web.yaml", app}}));
  Running git, syncer;
  StartGitWriterAndSyncer(*repo, **cluster, {"--sync_set=api"}, git, syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  // Wait for the first sync, then add a workload to the cluster that git does not have.
  std::optional<ferry::v1::SyncResult> first = FirstSync(syncer);
  ASSERT_TRUE(first.has_value()) << syncer.process->Output();
  ASSERT_EQ(first->failed(), 0);
  int status = 0;
  (*cluster)->Kubectl(
      "-n api-e2e create deployment manual --image=registry.example.com/manual:1 --replicas=0",
      &status);
  ASSERT_EQ(status, 0);

  const std::string dir = repo->dir();
  testing::RunCommand(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=ferry-api "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
          dir + "/api.key -out " + dir + "/api.crt 2>&1",
      &status);
  ASSERT_EQ(status, 0);
  std::ofstream(dir + "/tokens") << "read read-token-0123456789\nwrite write-token-0123456789 ci\n";
  Running api;
  StartArgv({FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_writer_address=" + git.GrpcTarget(),
             "--cluster_syncer_address=" + syncer.GrpcTarget(), "--tokens_path=" + dir + "/tokens",
             "--tls_cert_path=" + dir + "/api.crt", "--tls_key_path=" + dir + "/api.key"},
            api);
  ASSERT_GT(api.grpc_port, 0);
  grpc::SslCredentialsOptions tls;
  std::ifstream cert_in(dir + "/api.crt");
  tls.pem_root_certs.assign(std::istreambuf_iterator<char>(cert_in), {});
  auto stub =
      ferry::v1::Ferry::NewStub(grpc::CreateChannel(api.GrpcTarget(), grpc::SslCredentials(tls)));
  ferry::v1::ListWorkloadsRequest request;
  request.set_namespace_("api-e2e");
  ferry::v1::ListWorkloadsResponse response;
  {
    grpc::ClientContext anonymous;
    anonymous.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    EXPECT_THAT(stub->ListWorkloads(&anonymous, request, &response),
                StatusIs(absl::StatusCode::kUnauthenticated));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx.AddMetadata("authorization", "Bearer read-token-0123456789");
  grpc::Status s = stub->ListWorkloads(&ctx, request, &response);
  FERRY_ASSERT_OK(s);
  EXPECT_EQ(response.revision(), repo->Head());
  ASSERT_EQ(response.workloads_size(), 2) << response.DebugString();
  const ferry::v1::Workload& manual = response.workloads(0);
  EXPECT_EQ(manual.id(), "api-e2e:deployment/manual");
  EXPECT_EQ(manual.read_only(), ferry::v1::READ_ONLY_REASON_NOT_IN_REPO);
  EXPECT_TRUE(manual.path().empty());
  const ferry::v1::Workload& web = response.workloads(1);
  EXPECT_EQ(web.id(), "api-e2e:deployment/web");
  EXPECT_EQ(web.path(), "apps/web.yaml");
  EXPECT_EQ(web.read_only(), ferry::v1::READ_ONLY_REASON_UNSPECIFIED);
  EXPECT_EQ(web.containers(0).image(), "registry.example.com/team/web:1.0.0");
  EXPECT_NE(web.rollout().state(), ferry::v1::ROLLOUT_STATE_UNSPECIFIED);
  EXPECT_TRUE(web.rollout().messages_size() == 0 ||
              web.rollout().messages(0) != "not in the cluster");

  // The cluster-syncer goes away: git still answers, marked not ready (once the page the
  // readers of that second shared, at most 1 s old, is read again).
  syncer.process.reset();
  ferry::v1::ListWorkloadsResponse partial;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        grpc::ClientContext later;
        later.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        later.AddMetadata("authorization", "Bearer read-token-0123456789");
        partial.Clear();
        return stub->ListWorkloads(&later, request, &partial).ok() && partial.workloads_size() == 1;
      },
      absl::Seconds(10)))
      << partial.DebugString();
  EXPECT_EQ(partial.workloads(0).read_only(), ferry::v1::READ_ONLY_REASON_NOT_READY);
}

// ferry-api's ListImages in front of a real git-writer, registry-scanner and registry: tags
// in the container's ordering, which pass its filter, the current and the latest one.
TEST(ApiBinaryTest, ListsImagesUnderEachContainersFilter) {
  TempDir dir;
  FERRY_ASSERT_OK_AND_ASSIGN(auto registry, testing::RegistryServer::Start(dir.path + "/registry"));
  const std::string config =
      R"({"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z"})";
  for (const char* tag : {"1.0.0", "1.0.1", "1.1.0", "latest"}) {
    FERRY_ASSERT_OK(registry->PushImage("team/app", tag, config));
  }
  const std::string image = registry->host() + "/team/app";
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto repo,
      testing::GitRepo::Create(
          {{"apps/app.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\n"
            "  annotations:\n    ferry.dev/tag.app: semver:~1.0\nspec:\n  template:\n    spec:\n"
            "      containers:\n      - name: app\n        image: " +
                image +
                ":1.0.0\n"
                "      - name: proxy\n        image: " +
                image + ":latest\n"}}));
  Running git, scanner, api;
  StartArgv({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_url=" + repo->url(), "--state_dir=" + repo->dir() + "/state"},
            git);
  StartArgv(
      {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
       "--state_dir=" + dir.path + "/scanner", "--registry_insecure_hosts=" + registry->host()},
      scanner);
  ASSERT_GT(git.grpc_port, 0);
  ASSERT_GT(scanner.grpc_port, 0);
  StartArgv({FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_writer_address=" + git.GrpcTarget(),
             "--registry_scanner_address=" + scanner.GrpcTarget(),
             "--cluster_syncer_address=127.0.0.1:1"},
            api);
  ASSERT_GT(api.grpc_port, 0);
  auto stub = ferry::v1::Ferry::NewStub(api.Channel());
  ferry::v1::ListImagesRequest request;
  request.set_workload("shop:deployment/app");
  ferry::v1::ListImagesResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Status s = stub->ListImages(&ctx, request, &response);
  FERRY_ASSERT_OK(s);
  ASSERT_EQ(response.workloads_size(), 1);
  ASSERT_EQ(response.workloads(0).containers_size(), 2);
  const ferry::v1::ContainerImages& app = response.workloads(0).containers(0);
  EXPECT_EQ(app.container(), "app");
  EXPECT_EQ(app.repository(), image);
  EXPECT_EQ(app.tag_filter(), "semver:~1.0");
  EXPECT_TRUE(app.error().empty()) << app.error();
  std::vector<std::string> order;
  std::vector<std::string> passing;
  for (const auto& t : app.tags()) {
    order.push_back(t.info().tag());
    if (t.matches_filter()) passing.push_back(t.info().tag());
    EXPECT_EQ(t.current(), t.info().tag() == "1.0.0") << t.info().tag();
  }
  EXPECT_EQ(order, (std::vector<std::string>{"1.1.0", "1.0.1", "1.0.0"}));  // versions only
  EXPECT_EQ(passing, (std::vector<std::string>{"1.0.1", "1.0.0"}));
  EXPECT_EQ(app.latest_filtered(), "1.0.1");
  EXPECT_EQ(app.filtered(), 2);
  const ferry::v1::ContainerImages& proxy = response.workloads(0).containers(1);
  EXPECT_EQ(proxy.tag_filter(), "glob:*");
  EXPECT_EQ(proxy.tags_size(), 4);  // by creation time, all of them
  EXPECT_EQ(proxy.filtered(), 3);   // "latest" only passes a filter that names it

  // A limit, a workload that is not in git, a malformed id.
  request.set_limit(1);
  grpc::ClientContext limited_ctx;
  ferry::v1::ListImagesResponse limited;
  FERRY_ASSERT_OK(stub->ListImages(&limited_ctx, request, &limited));
  EXPECT_EQ(limited.workloads(0).containers(0).tags_size(), 1);
  EXPECT_EQ(limited.workloads(0).containers(0).omitted(), 2);
  request.set_workload("shop:deployment/nope");
  grpc::ClientContext missing_ctx;
  EXPECT_THAT(stub->ListImages(&missing_ctx, request, &limited),
              StatusIs(absl::StatusCode::kNotFound));
  request.set_workload("nope");
  grpc::ClientContext bad_ctx;
  EXPECT_THAT(stub->ListImages(&bad_ctx, request, &limited),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A release from request to running spec: plan, commit with note, apply, rollout; the locked
// workload is skipped until forced; policies; the job survives an api restart.
TEST(ApiBinaryTest, ReleasesThroughGitIntoTheClusterAndAnswersForJobsAfterARestart) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  for (const char* tag : {"1.0.0", "1.1.0"}) {
    FERRY_ASSERT_OK(stack.registry->PushImage("team/web", tag, kImageConfig));
  }
  const std::string old_image = Image(stack, "team/web", "1.0.0");
  StartStack(stack,
             {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: rel}\n"},
              {"apps/web.yaml", "# the shop's front end\n" + Deployment("rel", "web", old_image)},
              {"apps/frozen.yaml",
               Deployment("rel", "frozen", old_image,
                          "    ferry.dev/locked: \"true\"\n    ferry.dev/locked_msg: freeze\n")}},
             "rel");
  if (HasFatalFailure()) return;
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);

  ferry::v1::ReleaseSpec spec;
  spec.set_all_workloads(true);
  spec.set_image(Image(stack, "team/web", "1.1.0"));
  spec.set_wait_rollout(true);
  spec.set_rollout_timeout_seconds(60);
  ferry::v1::Job submitted;
  grpc::Status s = stack.Release(spec, &submitted);
  FERRY_ASSERT_OK(s);
  ferry::v1::Job done = stack.Follow(submitted.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED)
      << done.DebugString() << stack.api.process->Output();
  const std::string revision = stack.repo->Head();
  EXPECT_EQ(done.revision(), revision) << "the commit was pushed upstream";
  std::vector<ferry::v1::JobStageKind> stages;
  for (const auto& stage : done.stages()) stages.push_back(stage.kind());
  EXPECT_EQ(stages.front(), ferry::v1::JOB_STAGE_KIND_SUBMITTED);
  EXPECT_EQ(stages[2], ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED);
  EXPECT_EQ(stages[3], ferry::v1::JOB_STAGE_KIND_APPLIED);
  EXPECT_EQ(stages[4], ferry::v1::JOB_STAGE_KIND_ROLLOUT);
  EXPECT_EQ(stages.back(), ferry::v1::JOB_STAGE_KIND_DONE);
  ASSERT_EQ(done.results_size(), 2);
  EXPECT_EQ(done.results(0).workload(), "rel:deployment/frozen");
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED);
  EXPECT_EQ(done.results(0).reason(), "locked");
  EXPECT_EQ(done.results(1).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);

  // Git: only the image's bytes changed, the comment stays; the author and the note.
  EXPECT_EQ(
      stack.repo->Show(revision, "apps/web.yaml"),
      "# the shop's front end\n" + Deployment("rel", "web", Image(stack, "team/web", "1.1.0")));
  EXPECT_EQ(stack.repo->Git("diff --stat HEAD~1 HEAD -- apps/frozen.yaml"), "");
  EXPECT_EQ(stack.repo->Git("log -1 --format=%an%n%s " + revision),
            "Alice\nRelease " + Image(stack, "team/web", "1.1.0") + " to rel:deployment/web\n");
  stack.repo->Git("fetch -q origin refs/notes/ferry:refs/notes/ferry");
  EXPECT_TRUE(
      absl::StrContains(stack.repo->Git("notes --ref=ferry show " + revision), submitted.id()));
  // The cluster runs it.
  auto cluster = testing::SharedKubeCluster();
  EXPECT_EQ((*cluster)->Kubectl(
                "-n rel get deploy web -o jsonpath={.spec.template.spec.containers[0].image}"),
            Image(stack, "team/web", "1.1.0"));

  // An image the registry does not have: refused, nothing written.
  spec.set_image(Image(stack, "team/web", "9.9.9"));
  ferry::v1::Job refused;
  EXPECT_THAT(stack.Release(spec, &refused), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(stack.repo->Head(), revision);

  // Forced: the locked workload moves too.
  spec.set_image(Image(stack, "team/web", "1.1.0"));
  spec.set_force(true);
  spec.set_wait_rollout(false);
  FERRY_ASSERT_OK(stack.Release(spec, &submitted));
  done = stack.Follow(submitted.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(done.results(1).reason(), "image up to date");
  const std::string forced_job = submitted.id();

  // Policy: automate with a semver filter, in one commit.
  ferry::v1::UpdatePolicyRequest policy;
  auto* changes = policy.add_changes();
  changes->set_workload("rel:deployment/web");
  changes->add_changes()->set_automate(true);
  auto* filter = changes->add_changes()->mutable_set_tag_filter();
  filter->set_container("app");
  filter->set_pattern("semver:~1");
  {
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stack.stub->UpdatePolicy(&ctx, policy, &submitted));
  }
  done = stack.Follow(submitted.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  const std::string web = stack.repo->Show(stack.repo->Head(), "apps/web.yaml");
  EXPECT_TRUE(absl::StrContains(web, "ferry.dev/automated: \"true\"")) << web;
  EXPECT_TRUE(absl::StrContains(web, "ferry.dev/tag.app: semver:~1")) << web;
  EXPECT_TRUE(absl::StrContains(
      (*cluster)->Kubectl("-n rel get deploy web -o jsonpath={.metadata.annotations}"),
      "\"ferry.dev/automated\":\"true\""))
      << "the policy is applied to the cluster too";

  // A sync job: fetch now, apply the head.
  {
    grpc::ClientContext ctx;
    FERRY_ASSERT_OK(stack.stub->Sync(&ctx, {}, &submitted));
  }
  done = stack.Follow(submitted.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.revision(), stack.repo->Head());
  EXPECT_EQ(done.results_size(), 0) << "no resource failed";

  // Versions of everything behind the api.
  {
    grpc::ClientContext ctx;
    ferry::v1::VersionInfo version;
    FERRY_ASSERT_OK(stack.stub->GetVersion(&ctx, {}, &version));
    EXPECT_FALSE(version.version().empty());
    for (const char* service : {"git-writer", "registry-scanner", "cluster-syncer"}) {
      EXPECT_EQ(version.services().at(service), version.version()) << service;
    }
  }

  // A new api process knows the finished jobs from the git notes.
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  ferry::v1::GetJobRequest get;
  get.set_id(forced_job);
  ferry::v1::Job recovered;
  grpc::ClientContext get_ctx;
  s = stack.stub->GetJob(&get_ctx, get, &recovered);
  FERRY_ASSERT_OK(s);
  EXPECT_EQ(recovered.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(recovered.release_spec().force());
  EXPECT_EQ(recovered.results_size(), 2);
  grpc::ClientContext list_ctx;
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stack.stub->ListJobs(&list_ctx, {}, &jobs));
  EXPECT_EQ(jobs.jobs_size(), 3) << "two releases and a policy change committed";
}

// Automation end to end: a tag pushed to the registry reaches the cluster through the
// registry's notification, the scanner's event, the api's automated release, git and the
// syncer; nothing polls (every interval is an hour).
TEST(ApiBinaryTest, AutomationReleasesANewlyPushedTag) {
  Stack stack;
  const int webhook_port = testing::FreeLoopbackPort();
  std::ofstream(stack.dir.path + "/secret") << "hook-secret\n";
  auto registry = testing::RegistryServer::StartWithNotifications(
      stack.dir.path + "/registry", "http://127.0.0.1:" + std::to_string(webhook_port) + "/webhook",
      "hook-secret");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  FERRY_ASSERT_OK(stack.registry->PushImage("team/auto", "1.0.0", kImageConfig));
  StartStack(
      stack,
      {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: auto}\n"},
       {"apps/auto.yaml",
        Deployment("auto", "auto", Image(stack, "team/auto", "1.0.0"),
                   "    ferry.dev/automated: \"true\"\n    ferry.dev/tag.app: semver:~1\n")}},
      "auto",
      {"--scan_interval=1h", "--webhook_address=127.0.0.1:" + std::to_string(webhook_port),
       "--webhook_secret_path=" + stack.dir.path + "/secret"});
  if (HasFatalFailure()) return;
  stack.StartApi({"--automation_interval=1h"});
  ASSERT_GT(stack.api.grpc_port, 0);

  // The api's first pass hands the repository to the scanner.
  const std::string repository = stack.registry->host() + "/team/auto";
  auto scanner = ferry::v1::RegistryScanner::NewStub(stack.scanner.Channel());
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  bool watched = false;
  while (!watched && absl::Now() < give_up) {
    grpc::ClientContext ctx;
    ferry::v1::StatusResponse status;
    if (scanner->Status(&ctx, {}, &status).ok()) {
      for (const auto& r : status.repositories()) watched |= r.repository() == repository;
    }
    if (!watched) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(watched) << stack.api.process->Output();

  // 2.0.0 does not pass semver:~1; 1.1.0 does.
  FERRY_ASSERT_OK(stack.registry->PushImage("team/auto", "2.0.0", kImageConfig));
  const absl::Time pushed = absl::Now();
  FERRY_ASSERT_OK(stack.registry->PushImage("team/auto", "1.1.0", kImageConfig));
  auto cluster = testing::SharedKubeCluster();
  const std::string want = Image(stack, "team/auto", "1.1.0");
  std::string running;
  while (absl::Now() < pushed + absl::Seconds(60)) {
    running = (*cluster)->Kubectl(
        "-n auto get deploy auto -o jsonpath={.spec.template.spec.containers[0].image}");
    if (running == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(running, want) << stack.api.process->Output() << stack.scanner.process->Output();
  std::cerr << "push -> running spec: " << absl::FormatDuration(absl::Now() - pushed) << "\n";
  EXPECT_EQ(stack.repo->Git("log -1 --format=%s"), "Auto-release " + want + "\n");
  // The diff is the image's bytes, nothing else; the note records the job.
  EXPECT_EQ(
      stack.repo->Git("diff -U0 HEAD~1 HEAD -- apps/auto.yaml | grep '^[-+] '"),
      "-        image: " + Image(stack, "team/auto", "1.0.0") + "\n+        image: " + want + "\n");
  stack.repo->Git("fetch -q origin refs/notes/ferry:refs/notes/ferry");
  EXPECT_TRUE(absl::StrContains(stack.repo->Git("notes --ref=ferry show HEAD"),
                                "JOB_KIND_AUTOMATED_RELEASE"));
  // ferryctl shows it.
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto p, testing::Subprocess::Start({FERRYCTL_BIN, "list-workloads", "-n", "auto",
                                          "--url=" + stack.api.GrpcTarget()}));
  EXPECT_EQ(p->Wait(absl::Seconds(30)), 0);
  EXPECT_TRUE(absl::StrContains(p->Output(), "auto:deployment/auto  app        " + want))
      << p->Output();

  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stack.stub->ListJobs(&ctx, {}, &jobs));
  ASSERT_GE(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).kind(), ferry::v1::JOB_KIND_AUTOMATED_RELEASE);
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto metrics,
      testing::HttpGet("http://127.0.0.1:" + std::to_string(stack.api.metrics_port) + "/metrics"));
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_automation_releases_total 1")) << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_workloads{policy=\"automated\"} 1"));
}

// The real ferryctl binary against the running stack, as a person or a CI step uses it.
TEST(ApiBinaryTest, FerryctlDrivesTheStack) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  for (const char* tag : {"1.0.0", "1.1.0", "1.2.0"}) {
    FERRY_ASSERT_OK(stack.registry->PushImage("team/web", tag, kImageConfig));
  }
  const std::string image = stack.registry->host() + "/team/web";
  StartStack(stack,
             {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ctl}\n"},
              {"apps/web.yaml", Deployment("ctl", "web", image + ":1.0.0")},
              {"apps/frozen.yaml", Deployment("ctl", "frozen", image + ":1.0.0")}},
             "ctl");
  if (HasFatalFailure()) return;
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  auto ferryctl = [&](std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), FERRYCTL_BIN);
    if (env.empty()) args.push_back("--url=" + stack.api.GrpcTarget());
    auto p = testing::Subprocess::Start(args, env);
    FERRY_EXPECT_OK(p);
    std::optional<int> code = (*p)->Wait(absl::Seconds(60));
    return std::make_pair(code.value_or(-1), (*p)->Output());
  };

  auto [list_code, list] = ferryctl({"list-workloads", "-n", "ctl"});
  EXPECT_EQ(list_code, 0) << list;
  EXPECT_TRUE(absl::StrContains(list, "WORKLOAD")) << list;
  EXPECT_TRUE(absl::StrContains(list, "ctl:deployment/web")) << list;
  EXPECT_TRUE(absl::StrContains(list, image + ":1.0.0")) << list;

  auto [images_code, images] = ferryctl({"list-images", "-w", "ctl:deployment/web"});
  EXPECT_EQ(images_code, 0) << images;
  EXPECT_TRUE(absl::StrContains(images, "'-> 1.0.0")) << images;
  EXPECT_TRUE(absl::StrContains(images, "|   1.2.0")) << images;

  auto [lock_code, lock] =
      ferryctl({"lock", "-w", "deployment/frozen", "-n", "ctl", "--user", "bob", "-m", "freeze"});
  EXPECT_EQ(lock_code, 0) << lock;
  EXPECT_TRUE(absl::StrContains(stack.repo->Show(stack.repo->Head(), "apps/frozen.yaml"),
                                "ferry.dev/locked_user: bob"));

  auto [release_code, release] =
      ferryctl({"release", "--workload=ctl:deployment/web", "--workload=ctl:deployment/frozen",
                "--update-image=" + image + ":1.1.0", "-v", "--user", "Alice", "-m", "ci 9"});
  EXPECT_EQ(release_code, 0) << release;
  EXPECT_TRUE(absl::StrContains(
      release, "ctl:deployment/web     success  app: " + image + ":1.0.0 -> 1.1.0"))
      << release;
  EXPECT_TRUE(absl::StrContains(release, "ctl:deployment/frozen  skipped  locked")) << release;
  EXPECT_TRUE(absl::StrContains(release, "commit pushed")) << "the stages as they happen";
  // -v: fluxctl's lines for scripts, with the job id, the commit and the time taken.
  EXPECT_TRUE(absl::StrContains(release, "Release job submitted, ID ")) << release;
  EXPECT_TRUE(
      absl::StrContains(release, "\nCommit pushed: " + stack.repo->Head().substr(0, 7) + "\n"))
      << release;
  EXPECT_TRUE(absl::StrContains(release, "\nTook ")) << release;

  auto [missing_code, missing] = ferryctl({"release", "--all", "-i", image + ":9.9.9"});
  EXPECT_EQ(missing_code, 3) << missing;  // not found
  EXPECT_TRUE(absl::StrContains(missing, "push it first, or force")) << missing;

  auto [bad_code, bad] = ferryctl({"release", "--all"});
  EXPECT_EQ(bad_code, 2) << bad;  // usage

  // The Drone plugin: no arguments, the step's settings in PLUGIN_*; a forced release.
  auto [drone_code, drone] =
      ferryctl({}, {"DRONE=true", "PLUGIN_URL=" + stack.api.GrpcTarget(),
                    "PLUGIN_WORKLOAD=ctl:deployment/frozen", "PLUGIN_IMAGE=" + image + ":1.2.0",
                    "PLUGIN_FORCE=true", "DRONE_COMMIT_AUTHOR=carol",
                    "DRONE_BUILD_LINK=https://drone.example.com/x/1", "DRONE_COMMIT_SHA=abc123"});
  EXPECT_EQ(drone_code, 0) << drone;
  EXPECT_TRUE(absl::StrContains(drone, "ctl:deployment/frozen  success")) << drone;
  // The body ends with the trailer naming the release job (issue 20).
  const std::string body = stack.repo->Git("log -1 --format=%an%n%b");
  EXPECT_TRUE(absl::StartsWith(body, "carol\n - ctl:deployment/frozen app: " + image +
                                         ":1.0.0 -> " + image +
                                         ":1.2.0\n\nDrone build https://drone.example.com/x/1, "
                                         "commit abc123\n\nFerry-Job: "))
      << body;

  auto [sync_code, sync] = ferryctl({"sync"});
  EXPECT_EQ(sync_code, 0) << sync;
  EXPECT_TRUE(absl::StrContains(sync, "Revision applied: " + stack.repo->Head())) << sync;

  auto [version_code, version] = ferryctl({"version"});
  EXPECT_EQ(version_code, 0) << version;
  EXPECT_TRUE(absl::StrContains(version, "cluster-syncer: ")) << version;
  EXPECT_FALSE(absl::StrContains(version, "unavailable")) << version;

  auto [jobs_code, jobs] = ferryctl({"jobs"});
  EXPECT_EQ(jobs_code, 0) << jobs;
  EXPECT_TRUE(absl::StrContains(jobs, "release")) << jobs;

  // --tag-all through the api and git-writer, written as Flux v1 wrote it: one filter per
  // container, and Ferry reads it back for that container.
  auto [tag_all_code, tag_all] =
      ferryctl({"policy", "--service", "ctl/web", "--tag-all", "glob:1.*"});
  EXPECT_EQ(tag_all_code, 0) << tag_all;
  const std::string web = stack.repo->Show(stack.repo->Head(), "apps/web.yaml");
  EXPECT_TRUE(absl::StrContains(web, "    fluxcd.io/tag.app: glob:1.*\n")) << web;
  EXPECT_FALSE(absl::StrContains(web, "tag_all")) << web;
  auto [filtered_code, filtered] =
      ferryctl({"list-images", "-w", "ctl:deployment/web", "-o", "json"});
  EXPECT_EQ(filtered_code, 0) << filtered;
  EXPECT_TRUE(absl::StrContains(filtered, "\"tagFilter\": \"glob:1.*\"")) << filtered;

  auto cluster = testing::SharedKubeCluster();
  EXPECT_EQ((*cluster)->Kubectl(
                "-n ctl get deploy frozen -o jsonpath={.spec.template.spec.containers[0].image}"),
            image + ":1.2.0");
}

// A service on a fixed loopback port, so it can be killed and started again where its peers
// expect it.
struct Restartable {
  explicit Restartable(std::vector<std::string> a) : argv(std::move(a)) {}
  std::vector<std::string> argv;
  Running running;
  void Start() {
    running.process.reset();
    StartArgv(argv, running);
  }
  void Kill() { running.process.reset(); }  // SIGKILL: nothing is shut down cleanly
  std::string target() const { return running.GrpcTarget(); }
};

std::string Port(int port) { return "127.0.0.1:" + std::to_string(port); }

// Waits up to 60 s until `deployment` in `ns` runs `image`; returns what it runs.
std::string WaitForImage(const std::string& ns, const std::string& deployment,
                         const std::string& image) {
  auto cluster = testing::SharedKubeCluster();
  std::string running;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up) {
    running = (*cluster)->Kubectl("-n " + ns + " get deploy " + deployment +
                                  " -o jsonpath={.spec.template.spec.containers[0].image}");
    if (running == image) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return running;
}

// Each service killed (SIGKILL) and started again in the middle of the loop; nothing is lost:
// a tag pushed while the api is down is released when it is back, the scanner's and
// git-writer's restarts are ridden out by their peers, and every job is still answered for.
TEST(EndToEndTest, KillingEachServiceMidLoopLosesNothing) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  TempDir dir;
  const int webhook_port = testing::FreeLoopbackPort();
  std::ofstream(dir.path + "/secret") << "hook-secret\n";
  auto registry = testing::RegistryServer::StartWithNotifications(
      dir.path + "/registry", "http://127.0.0.1:" + std::to_string(webhook_port) + "/webhook",
      "hook-secret");
  FERRY_ASSERT_OK(registry);
  FERRY_ASSERT_OK((*registry)->PushImage("team/auto", "1.0.0", kImageConfig));
  FERRY_ASSERT_OK((*registry)->PushImage("team/web", "1.0.0", kImageConfig));
  FERRY_ASSERT_OK((*registry)->PushImage("team/web", "2.0.0", kImageConfig));
  const std::string auto_image = (*registry)->host() + "/team/auto";
  const std::string web_image = (*registry)->host() + "/team/web";
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto repo, testing::GitRepo::Create(
                     {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: restart}\n"},
                      {"apps/auto.yaml", Deployment("restart", "auto", auto_image + ":1.0.0",
                                                    "    ferry.dev/automated: \"true\"\n"
                                                    "    ferry.dev/tag.app: semver:~1\n")},
                      {"apps/web.yaml", Deployment("restart", "web", web_image + ":1.0.0")}}));

  const int git_port = testing::FreeLoopbackPort(), scanner_port = testing::FreeLoopbackPort(),
            syncer_port = testing::FreeLoopbackPort(), api_port = testing::FreeLoopbackPort();
  Restartable git({FERRY_GIT_WRITER_BIN, "--grpc_address=" + Port(git_port),
                   "--metrics_address=127.0.0.1:0", "--git_url=" + repo->url(),
                   "--state_dir=" + dir.path + "/git", "--git_poll_interval=1h"});
  Restartable scanner({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=" + Port(scanner_port),
                       "--metrics_address=127.0.0.1:0", "--state_dir=" + dir.path + "/scanner",
                       "--registry_insecure_hosts=" + (*registry)->host(), "--scan_interval=1h",
                       "--webhook_address=127.0.0.1:" + std::to_string(webhook_port),
                       "--webhook_secret_path=" + dir.path + "/secret"});
  Restartable syncer({FERRY_CLUSTER_SYNCER_BIN, "--grpc_address=" + Port(syncer_port),
                      "--metrics_address=127.0.0.1:0", "--kubeconfig=" + (*cluster)->kubeconfig(),
                      "--git_writer_address=" + Port(git_port), "--sync_interval=1h",
                      "--sync_set=restart"});
  Restartable api({FERRY_API_BIN, "--grpc_address=" + Port(api_port),
                   "--metrics_address=127.0.0.1:0", "--git_writer_address=" + Port(git_port),
                   "--registry_scanner_address=" + Port(scanner_port),
                   "--cluster_syncer_address=" + Port(syncer_port), "--automation_interval=1h"});
  for (Restartable* s : {&git, &scanner, &syncer, &api}) {
    s->Start();
    ASSERT_GT(s->running.grpc_port, 0);
  }
  ASSERT_EQ(WaitForImage("restart", "web", web_image + ":1.0.0"), web_image + ":1.0.0")
      << syncer.running.process->Output();
  auto stub = ferry::v1::Ferry::NewStub(api.running.Channel());
  auto release_web = [&](const std::string& tag) {
    ferry::v1::ReleaseRequest request;
    request.mutable_spec()->add_workloads("restart:deployment/web");
    request.mutable_spec()->set_image(web_image + ":" + tag);
    ferry::v1::Job job;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status s = stub->Release(&ctx, request, &job);
    FERRY_EXPECT_OK(s);
    grpc::ClientContext watch_ctx;
    watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ferry::v1::GetJobRequest get;
    get.set_id(job.id());
    auto stream = stub->WatchJob(&watch_ctx, get);
    ferry::v1::Job last;
    while (stream->Read(&job)) last = job;
    return last;
  };

  // 1. The api is down while a tag is pushed; back up, it looks and releases it.
  api.Kill();
  FERRY_ASSERT_OK((*registry)->PushImage("team/auto", "1.1.0", kImageConfig));
  api.Start();
  ASSERT_GT(api.running.grpc_port, 0);
  EXPECT_EQ(WaitForImage("restart", "auto", auto_image + ":1.1.0"), auto_image + ":1.1.0")
      << api.running.process->Output();

  // 2. The scanner is killed and started again (its cache on disk); the next push is still
  // seen through the registry's notification and released.
  scanner.Kill();
  scanner.Start();
  ASSERT_GT(scanner.running.grpc_port, 0);
  FERRY_ASSERT_OK((*registry)->PushImage("team/auto", "1.2.0", kImageConfig));
  EXPECT_EQ(WaitForImage("restart", "auto", auto_image + ":1.2.0"), auto_image + ":1.2.0")
      << api.running.process->Output() << scanner.running.process->Output();

  // 3. git-writer is killed and started again (it clones its mirror anew); a release works.
  git.Kill();
  git.Start();
  ASSERT_GT(git.running.grpc_port, 0);
  ferry::v1::Job done = release_web("2.0.0");
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(WaitForImage("restart", "web", web_image + ":2.0.0"), web_image + ":2.0.0");

  // 4. The cluster-syncer is killed and started again; the next release is applied.
  syncer.Kill();
  syncer.Start();
  ASSERT_GT(syncer.running.grpc_port, 0);
  done = release_web("1.0.0");
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  bool applied = false;
  for (const auto& stage : done.stages())
    applied |= stage.kind() == ferry::v1::JOB_STAGE_KIND_APPLIED;
  EXPECT_TRUE(applied);
  EXPECT_EQ(WaitForImage("restart", "web", web_image + ":1.0.0"), web_image + ":1.0.0");

  // Every commit is in git once: three automated releases and two manual ones, no duplicate.
  EXPECT_EQ(repo->Git("log --format=%s --grep=^Auto-release --grep=^Release"),
            "Release " + web_image +
                ":1.0.0 to restart:deployment/web\n"
                "Release " +
                web_image +
                ":2.0.0 to restart:deployment/web\n"
                "Auto-release " +
                auto_image +
                ":1.2.0\n"
                "Auto-release " +
                auto_image + ":1.1.0\n");
  // And the api, killed once, still answers for every committed job.
  api.Kill();
  api.Start();
  stub = ferry::v1::Ferry::NewStub(api.running.Channel());
  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stub->ListJobs(&ctx, {}, &jobs));
  EXPECT_EQ(jobs.jobs_size(), 4) << jobs.DebugString();
}

// A manifest the API refuses does not hold back the others: the release of a good workload
// is applied, and `ferryctl sync` names the bad one and fails.
TEST(EndToEndTest, ASyncErrorInOneManifestDoesNotBlockTheOthers) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.0.0", kImageConfig));
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.1.0", kImageConfig));
  const std::string image = stack.registry->host() + "/team/web";
  std::string bad = Deployment("broken", "bad", image + ":1.0.0");
  bad = absl::StrReplaceAll(bad, {{"replicas: 0", "replicas: -1"}});  // refused by the API
  FERRY_ASSERT_OK_AND_ASSIGN(auto cluster, testing::SharedKubeCluster());
  auto repo = testing::GitRepo::Create(
      {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: broken}\n"},
       {"apps/bad.yaml", bad},
       {"apps/good.yaml", Deployment("broken", "good", image + ":1.0.0")}});
  FERRY_ASSERT_OK(repo);
  stack.repo = *std::move(repo);
  StartGitWriterAndSyncer(*stack.repo, *cluster, {"--sync_set=broken"}, stack.git, stack.syncer);
  StartArgv({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
             "--metrics_address=127.0.0.1:0", "--state_dir=" + stack.dir.path + "/scanner",
             "--registry_insecure_hosts=" + stack.registry->host()},
            stack.scanner);
  std::optional<ferry::v1::SyncResult> first = FirstSync(stack.syncer);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->failed(), 1) << first->DebugString();
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);

  ferry::v1::ReleaseSpec spec;
  spec.add_workloads("broken:deployment/good");
  spec.set_image(image + ":1.1.0");
  ferry::v1::Job job;
  FERRY_ASSERT_OK(stack.Release(spec, &job));
  ferry::v1::Job done = stack.Follow(job.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  // A release of named workloads reads and reports only those.
  ASSERT_EQ(done.results_size(), 1) << done.DebugString();
  EXPECT_EQ(done.results(0).workload(), "broken:deployment/good");
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(WaitForImage("broken", "good", image + ":1.1.0"), image + ":1.1.0");

  FERRY_ASSERT_OK_AND_ASSIGN(
      auto p,
      testing::Subprocess::Start({FERRYCTL_BIN, "sync", "--url=" + stack.api.GrpcTarget()}));
  EXPECT_EQ(p->Wait(absl::Seconds(60)), 7);  // a resource failed
  const std::string out = p->Output();
  EXPECT_TRUE(absl::StrContains(out, "broken:deployment/bad")) << out;
  EXPECT_TRUE(absl::StrContains(out, "apps/bad.yaml")) << out;
  EXPECT_TRUE(absl::StrContains(out, "Revision applied: " + stack.repo->Head())) << out;
}

}  // namespace
}  // namespace ferry
