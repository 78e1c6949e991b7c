// Several sources behind one api (issue 21): two git repos, each with its own git-writer
// and cluster-syncer, one registry-scanner and one api started with two --source flags,
// against a real registry and kube-apiserver. Releases route to the repo that defines the
// workload, lists name each workload's source, the automation of each source commits to
// its own repo, and one source down does not block the other.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/stack.h"
#include "tests/support/subprocess.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::GitRepo;
using testing::Running;

// One source: its repo, git-writer and cluster-syncer; its namespace is "src-<name>".
struct SourceUnderTest {
  std::string name;
  std::unique_ptr<GitRepo> repo;
  Running git, syncer;

  std::string ns() const { return "src-" + name; }
  std::string Flag() const {
    return absl::StrCat("--source=", name, "=", git.GrpcTarget(), ",", syncer.GrpcTarget());
  }
};

std::string RunningImage(const std::string& ns, const std::string& deployment) {
  auto cluster = testing::SharedKubeCluster();
  return (*cluster)->Kubectl("-n " + ns + " get deploy " + deployment +
                             " -o jsonpath={.spec.template.spec.containers[0].image}");
}

class SourcesBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = testing::RegistryServer::Start(dir_.path + "/registry");
    FERRY_ASSERT_OK(registry);
    registry_ = *std::move(registry);
    // The web images to release by hand; each automated image has only its running tag.
    for (const std::string repository : {"team/web-a", "team/web-b"}) {
      for (const char* tag : {"1.0.0", "1.1.0"}) {
        FERRY_ASSERT_OK(registry_->PushImage(repository, tag, testing::kImageConfig));
      }
    }
    for (const char* repository : {"team/auto-a", "team/auto-b"}) {
      FERRY_ASSERT_OK(registry_->PushImage(repository, "1.0.0", testing::kImageConfig));
    }
    auto cluster = testing::SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    for (SourceUnderTest* s : {&a_, &b_}) {
      // "web" is released by hand; "auto" follows its repository.
      auto repo = GitRepo::Create(
          {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + s->ns() + "}\n"},
           {"apps/web.yaml", Deployment(s->ns(), "web", Image("web-" + s->name, "1.0.0"))},
           {"apps/auto.yaml", Deployment(s->ns(), "auto", Image("auto-" + s->name, "1.0.0"),
                                         "    ferry.dev/automated: \"true\"\n"
                                         "    ferry.dev/tag.app: semver:~1\n")}});
      ASSERT_TRUE(repo.ok()) << repo.status();
      s->repo = *std::move(repo);
      // Both sources share one cluster: each syncer keeps to its namespace (else each lists
      // the other's workloads as running without being in its repo).
      testing::StartGitWriterAndSyncer(*s->repo, **cluster,
                                       {"--sync_set=" + s->ns(), "--allow_namespace=" + s->ns()},
                                       s->git, s->syncer);
      ASSERT_GT(s->syncer.grpc_port, 0);
      std::optional<ferry::v1::SyncResult> first = testing::FirstSync(s->syncer);
      ASSERT_TRUE(first.has_value()) << s->syncer.process->Output();
      ASSERT_EQ(first->failed(), 0) << first->DebugString();
    }
    testing::StartArgv({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                        "--metrics_address=127.0.0.1:0", "--state_dir=" + dir_.path + "/scanner",
                        "--registry_insecure_hosts=" + registry_->host(), "--scan_interval=1s"},
                       scanner_);
    ASSERT_GT(scanner_.grpc_port, 0);
    // Flags in the "wrong" order: the api sorts its sources by name.
    testing::StartArgv(
        {FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
         "--automation_interval=1h", "--peer_wait=300",
         "--registry_scanner_address=" + scanner_.GrpcTarget(), b_.Flag(), a_.Flag()},
        api_);
    ASSERT_GT(api_.grpc_port, 0);
    stub_ = ferry::v1::Ferry::NewStub(api_.Channel());
  }

  std::string Image(const std::string& repository, const std::string& tag) const {
    return registry_->host() + "/team/" + repository + ":" + tag;
  }

  // Follows job `id` to its end.
  ferry::v1::Job Follow(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    auto stream = stub_->WatchJob(&ctx, request);
    ferry::v1::Job job, last;
    while (stream->Read(&job)) last = job;
    EXPECT_TRUE(stream->Finish().ok());
    return last;
  }

  grpc::Status Release(const std::string& workload, const std::string& image,
                       const std::string& source, ferry::v1::Job* job) {
    ferry::v1::ReleaseRequest request;
    request.mutable_spec()->add_workloads(workload);
    request.mutable_spec()->set_image(image);
    request.set_source(source);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Release(&ctx, request, job);
  }

  // Every workload of ListWorkloads as (source, id), read `page_size` at a time.
  std::vector<std::pair<std::string, std::string>> ListAll(int page_size,
                                                           std::vector<std::string>* passed_over) {
    std::vector<std::pair<std::string, std::string>> out;
    ferry::v1::ListWorkloadsRequest request;
    request.set_page_size(page_size);
    for (int page = 0; page < 20; ++page) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      ferry::v1::ListWorkloadsResponse response;
      grpc::Status s = stub_->ListWorkloads(&ctx, request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const auto& w : response.workloads()) out.emplace_back(w.source(), w.id());
      for (const auto& u : response.unavailable_sources()) passed_over->push_back(u);
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::RegistryServer> registry_;
  SourceUnderTest a_{"a", nullptr, {}, {}}, b_{"b", nullptr, {}, {}};
  Running scanner_, api_;
  std::unique_ptr<ferry::v1::Ferry::Stub> stub_;
};

TEST_F(SourcesBinaryTest, ReleasesListsAndAutomationStayWithTheirSource) {
  // Lists read source after source, one page at a time, and name each workload's source.
  std::vector<std::string> passed_over;
  const std::vector<std::pair<std::string, std::string>> want = {{"a", "src-a:deployment/auto"},
                                                                 {"a", "src-a:deployment/web"},
                                                                 {"b", "src-b:deployment/auto"},
                                                                 {"b", "src-b:deployment/web"}};
  EXPECT_EQ(ListAll(1, &passed_over), want);
  EXPECT_EQ(ListAll(0, &passed_over), want);
  EXPECT_TRUE(passed_over.empty());

  // A release names a workload, not a source: it goes to the repo that defines it.
  const std::string a_head = a_.repo->Head(), b_head = b_.repo->Head();
  ferry::v1::Job job;
  FERRY_ASSERT_OK(Release("src-a:deployment/web", Image("web-a", "1.1.0"), "", &job));
  EXPECT_EQ(job.source(), "a");
  ferry::v1::Job done = Follow(job.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.source(), "a");
  EXPECT_NE(a_.repo->Head(), a_head);
  EXPECT_EQ(b_.repo->Head(), b_head);
  EXPECT_EQ(RunningImage("src-a", "web"), Image("web-a", "1.1.0"));
  // The same for a workload of the second source.
  FERRY_ASSERT_OK(Release("src-b:deployment/auto", Image("auto-b", "1.0.0"), "", &job));
  EXPECT_EQ(job.source(), "b");
  EXPECT_EQ(Follow(job.id()).source(), "b");
  // A workload named with a source that does not define it is not released (as a workload
  // missing from git is not), and the other source's repo is not touched.
  const std::string a_released = a_.repo->Head();
  FERRY_ASSERT_OK(Release("src-b:deployment/web", Image("web-b", "1.1.0"), "a", &job));
  done = Follow(job.id());
  ASSERT_EQ(done.results_size(), 1) << done.DebugString();
  EXPECT_NE(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(a_.repo->Head(), a_released);
  EXPECT_EQ(b_.repo->Head(), b_head);
  // A workload no source defines.
  grpc::Status unknown = Release("src-c:deployment/web", Image("web-b", "1.1.0"), "", &job);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND) << unknown.error_message();
  EXPECT_TRUE(absl::StrContains(unknown.error_message(), "no source's repository"))
      << unknown.error_message();

  // A sync needs a source.
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Sync(&ctx, ferry::v1::SyncRequest(), &job);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(s.error_message(), "a sync needs a source")) << s.error_message();
    ferry::v1::SyncRequest request;
    request.set_source("b");
    grpc::ClientContext ctx2;
    FERRY_ASSERT_OK(stub_->Sync(&ctx2, request, &job));
    EXPECT_EQ(Follow(job.id()).state(), ferry::v1::JOB_STATE_SUCCEEDED);
  }

  // ferryctl: a SOURCE column, and --source after the command.
  {
    FERRY_ASSERT_OK_AND_ASSIGN(
        auto p, testing::Subprocess::Start(
                    {FERRYCTL_BIN, "list-workloads", "-a", "--url=" + api_.GrpcTarget()}));
    ASSERT_EQ(p->Wait(absl::Seconds(30)), 0) << p->Output();
    const std::string out = p->Output();
    EXPECT_TRUE(absl::StartsWith(out, "SOURCE  WORKLOAD")) << out;
    EXPECT_TRUE(absl::StrContains(out, "\nb       src-b:deployment/web")) << out;
    FERRY_ASSERT_OK_AND_ASSIGN(
        auto r, testing::Subprocess::Start({FERRYCTL_BIN, "release", "--source", "b", "-w",
                                            "src-b:deployment/web", "-i", Image("web-b", "1.1.0"),
                                            "--url=" + api_.GrpcTarget()}));
    ASSERT_EQ(r->Wait(absl::Seconds(60)), 0) << r->Output();
    EXPECT_TRUE(absl::StrContains(r->Output(), "Source: b\n")) << r->Output();
    EXPECT_NE(b_.repo->Head(), b_head);
    EXPECT_EQ(RunningImage("src-b", "web"), Image("web-b", "1.1.0"));
  }

  // The scanner watches the repositories of both sources (the union of their lists).
  auto scanner = ferry::v1::RegistryScanner::NewStub(scanner_.Channel());
  std::set<std::string> watched;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        ferry::v1::StatusResponse status;
        watched.clear();
        if (!scanner->Status(&ctx, {}, &status).ok()) return false;
        for (const auto& r : status.repositories()) watched.insert(r.repository());
        return watched.size() == 4;
      },
      absl::Seconds(30)))
      << watched.size();
  // Each source's automation commits a new tag of its repository to its own repo.
  FERRY_ASSERT_OK(registry_->PushImage("team/auto-a", "1.2.0", testing::kImageConfig));
  FERRY_ASSERT_OK(registry_->PushImage("team/auto-b", "1.2.0", testing::kImageConfig));
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return RunningImage("src-a", "auto") == Image("auto-a", "1.2.0") &&
               RunningImage("src-b", "auto") == Image("auto-b", "1.2.0");
      },
      absl::Seconds(60)))
      << api_.process->Output();
  for (SourceUnderTest* s : {&a_, &b_}) {
    EXPECT_EQ(s->repo->Git("log -1 --format=%s -- apps/auto.yaml"),
              "Auto-release " + Image("auto-" + s->name, "1.2.0") + "\n");
  }
  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stub_->ListJobs(&ctx, {}, &jobs));
  std::set<std::string> automated;
  for (const auto& j : jobs.jobs()) {
    if (j.kind() == ferry::v1::JOB_KIND_AUTOMATED_RELEASE) automated.insert(j.source());
  }
  EXPECT_EQ(automated, (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(testing::ScrapedMetric(api_, "ferry_automation_releases_total", "source=\"a\""), 1);
  EXPECT_EQ(testing::ScrapedMetric(api_, "ferry_automation_releases_total", "source=\"b\""), 1);
}

TEST_F(SourcesBinaryTest, OneSourceDownDoesNotBlockTheOther) {
  a_.git.process->Signal(SIGKILL);
  const std::string b_head = b_.repo->Head();
  // Jobs for the source that is down wait for its git-writer (--peer_wait, 300 s here), as many
  // as the api runs at once (--job_workers, 4)...
  std::vector<std::string> stuck;
  for (int i = 0; i < 4; ++i) {
    ferry::v1::Job job;
    FERRY_ASSERT_OK(Release("src-a:deployment/web", Image("web-a", "1.1.0"), "a", &job));
    stuck.push_back(job.id());
  }
  // ... and do not hold the other source's jobs. Without a source, a release cannot tell
  // whether the source that is down defines the workload too: it must name its source.
  ferry::v1::Job job;
  grpc::Status unsure = Release("src-b:deployment/web", Image("web-b", "1.1.0"), "", &job);
  EXPECT_EQ(unsure.error_code(), grpc::StatusCode::UNAVAILABLE) << unsure.error_message();
  EXPECT_TRUE(absl::StrContains(unsure.error_message(), "source a: ")) << unsure.error_message();
  FERRY_ASSERT_OK(Release("src-b:deployment/web", Image("web-b", "1.1.0"), "b", &job));
  ferry::v1::Job done = Follow(job.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.source(), "b");
  EXPECT_NE(b_.repo->Head(), b_head);
  EXPECT_EQ(RunningImage("src-b", "web"), Image("web-b", "1.1.0"));
  // b's release did not wait behind a's jobs: they still wait for a's git-writer.
  for (const std::string& id : stuck) {
    grpc::ClientContext ctx;
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    ferry::v1::Job a_job;
    FERRY_ASSERT_OK(stub_->GetJob(&ctx, request, &a_job));
    EXPECT_NE(a_job.state(), ferry::v1::JOB_STATE_SUCCEEDED);
    EXPECT_NE(a_job.state(), ferry::v1::JOB_STATE_FAILED) << a_job.error();
  }
  // Lists pass it over and say so.
  std::vector<std::string> passed_over;
  const std::vector<std::pair<std::string, std::string>> want = {{"b", "src-b:deployment/auto"},
                                                                 {"b", "src-b:deployment/web"}};
  EXPECT_EQ(ListAll(1, &passed_over), want);
  ASSERT_EQ(passed_over.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(passed_over[0], "a: ")) << passed_over[0];
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto p, testing::Subprocess::Start(
                  {FERRYCTL_BIN, "list-workloads", "-a", "--url=" + api_.GrpcTarget()}));
  ASSERT_EQ(p->Wait(absl::Seconds(30)), 0) << p->Output();
  EXPECT_TRUE(absl::StrContains(p->Output(), "ferryctl: warning: source a: ")) << p->Output();
  EXPECT_TRUE(absl::StrContains(p->Output(), "src-b:deployment/web")) << p->Output();
}

TEST(SourcesFlagsTest, TwoSourcesWithOneNameExitTwoNamingTheFlag) {
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto p, testing::Subprocess::Start({FERRY_API_BIN, "--grpc_address=127.0.0.1:0",
                                          "--source=prod=127.0.0.1:1,127.0.0.1:2",
                                          "--source=prod=127.0.0.1:3,127.0.0.1:4"}));
  EXPECT_EQ(p->Wait(absl::Seconds(10)), 2);
  EXPECT_TRUE(absl::StrContains(p->Output(), "--source: two sources are named 'prod'"))
      << p->Output();
}

}  // namespace
}  // namespace ferry
