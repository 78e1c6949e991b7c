// Each service killed (SIGKILL, as a crash or an evicted pod would) in the middle of an
// operation, not while idle, and started again over the same state: git-writer while its push
// is inside the git server, the api while its job follows a rollout, the cluster-syncer
// half-way through applying a revision, the registry-scanner while it is reading manifests.
// Nothing is lost, nothing happens twice, and the restarted service finishes the work.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/git_writer_process.h"
#include "tests/stack.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/git_repo.h"
#include "tests/support/kube.h"
#include "tests/support/registry.h"
#include "tests/support/sshd.h"

namespace ferry::testing {
namespace {

// Polls `condition` every 20 ms for up to `timeout`; true as soon as it holds.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

// A pre-receive hook in the upstream that, once armed, holds the next push inside the git
// server (the pack received, the ref not yet updated) until the test tells it how to end:
// "accept" lets git update the ref, "refuse" rejects the push.
class HeldPush {
 public:
  explicit HeldPush(const GitRepo& repo) : dir_(repo.dir() + "/hook") {
    std::filesystem::create_directories(dir_);
    const std::string hook = repo.dir() + "/upstream.git/hooks/pre-receive";
    std::ofstream(hook) << "#!/bin/sh\n"
                        << "cat >/dev/null\n"
                        << "[ -e " << dir_ << "/armed ] || exit 0\n"
                        << "rm -f " << dir_ << "/armed\n"
                        << "touch " << dir_ << "/held\n"
                        << "while [ ! -e " << dir_ << "/verdict ]; do sleep 0.02; done\n"
                        << "[ \"$(cat " << dir_ << "/verdict)\" = accept ]\n";
    std::filesystem::permissions(hook, std::filesystem::perms::owner_all);
  }
  void Arm() { std::ofstream(dir_ + "/armed") << "1\n"; }
  bool WaitUntilHeld() {
    return WaitFor([this] { return std::filesystem::exists(dir_ + "/held"); });
  }
  void End(const std::string& verdict) { std::ofstream(dir_ + "/verdict") << verdict; }

 private:
  std::string dir_;
};

// git-writer over ssh (the git server runs hooks; a file:// push does not), on the upstream of
// a GitWriterProcess, restartable over the same mirror.
class SshGitWriter {
 public:
  SshGitWriter() {
    auto sshd = Sshd::Start(upstream_.repo().dir() + "/sshd");
    EXPECT_TRUE(sshd.ok()) << sshd.status();
    if (sshd.ok()) sshd_ = *std::move(sshd);
  }

  bool Start() {
    if (sshd_ == nullptr) return false;
    running_ = Running();
    StartArgv(SshGitWriterArgv(upstream_.repo(), *sshd_, upstream_.state_dir()), running_);
    if (running_.grpc_port == 0) return false;
    stub_ = ferry::v1::GitWriter::NewStub(running_.Channel());
    return true;
  }
  void Kill() { running_.process.reset(); }

  grpc::Status Apply(const std::string& image, ferry::v1::ApplyUpdatesResponse* response) {
    ferry::v1::ApplyUpdatesRequest request;
    *request.add_edits() = WebRelease(image);
    request.mutable_cause()->set_user("Alice <alice@example.com>");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->ApplyUpdates(&ctx, request, response);
  }

  GitRepo& repo() { return upstream_.repo(); }
  std::string mirror_dir() const { return upstream_.mirror_dir(); }
  std::string Output() { return running_.process ? running_.process->Output() : ""; }

 private:
  GitWriterProcess upstream_;  // only its upstream repo and state folder are used
  std::unique_ptr<Sshd> sshd_;
  Running running_;
  std::unique_ptr<ferry::v1::GitWriter::Stub> stub_;
};

// The upstream commits that set the web Deployment's image to `image`.
int CommitsSetting(GitRepo& repo, const std::string& image) {
  const std::string log = repo.Git("log --format=%H " + repo.branch());
  int count = 0;
  for (absl::string_view revision : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    const std::string r(revision);
    const std::string parent = repo.Git("rev-parse --verify -q " + r + "^");
    const bool sets = absl::StrContains(repo.Show(r, "apps/web.yaml"), "image: " + image + "\n");
    const bool had = !parent.empty() && absl::StrContains(repo.Show(r + "^", "apps/web.yaml"),
                                                          "image: " + image + "\n");
    count += sets && !had;
  }
  return count;
}

// No lock file is left in the mirror and git finds it whole.
void ExpectMirrorHealthy(const std::string& mirror) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(mirror)) {
    EXPECT_NE(entry.path().extension(), ".lock") << entry.path();
  }
  int status = -1;
  const std::string fsck = RunCommand("git -C " + mirror + " fsck --no-dangling 2>&1", &status);
  EXPECT_EQ(status, 0) << fsck;
}

// git-writer dies while its push waits in the git server's pre-receive hook. Whether the
// server then refuses the push or takes it, the restarted git-writer serves what upstream
// holds, the same release asked again ends with exactly one commit making it, and the next
// release is pushed on top.
class GitWriterKilledMidPush : public ::testing::TestWithParam<std::string> {};

TEST_P(GitWriterKilledMidPush, TheReleaseLandsOnceAndTheNextOneWorks) {
  SshGitWriter git;
  ASSERT_TRUE(git.Start()) << git.Output();
  HeldPush hold(git.repo());
  const std::string before = git.repo().Head();

  hold.Arm();
  auto interrupted = std::async(std::launch::async, [&git] {
    ferry::v1::ApplyUpdatesResponse response;
    return git.Apply("nginx:1.26", &response);
  });
  ASSERT_TRUE(hold.WaitUntilHeld()) << git.Output();
  git.Kill();
  // The caller learns that the call broke off; it is never told the release succeeded.
  EXPECT_FALSE(interrupted.get().ok());
  hold.End(GetParam());
  // The server finishes its side of the push (the hook returns, the ref is or is not moved).
  ASSERT_TRUE(WaitFor([&] {
    return RunCommand("pgrep -f 'receive-pac[k].*" + git.repo().dir() + "'").empty();
  })) << "git-receive-pack still running";
  const std::string after_kill = git.repo().Head();
  // git updates the ref once the hook accepts, even with the pushing client gone.
  if (GetParam() == "refuse") {
    EXPECT_EQ(after_kill, before) << "a refused push moved the branch";
  } else {
    EXPECT_NE(after_kill, before) << "the accepted push did not move the branch";
  }

  ASSERT_TRUE(git.Start()) << git.Output();
  ExpectMirrorHealthy(git.mirror_dir());
  ferry::v1::ApplyUpdatesResponse again;
  FERRY_ASSERT_OK(git.Apply("nginx:1.26", &again)) << git.Output();
  if (after_kill != before) {
    // The interrupted push landed: git already has the release, nothing is committed twice.
    EXPECT_TRUE(again.no_changes()) << again.DebugString();
    EXPECT_EQ(git.repo().Head(), after_kill);
  } else {
    EXPECT_FALSE(again.no_changes()) << again.DebugString();
    EXPECT_EQ(git.repo().Head(), again.revision());
  }
  EXPECT_EQ(CommitsSetting(git.repo(), "nginx:1.26"), 1) << git.repo().Git("log --stat");

  ferry::v1::ApplyUpdatesResponse next;
  FERRY_ASSERT_OK(git.Apply("nginx:1.27", &next)) << git.Output();
  EXPECT_EQ(git.repo().Head(), next.revision());
  EXPECT_TRUE(
      absl::StrContains(git.repo().Show(next.revision(), "apps/web.yaml"), "image: nginx:1.27\n"));
  ExpectMirrorHealthy(git.mirror_dir());
}

INSTANTIATE_TEST_SUITE_P(ServerVerdict, GitWriterKilledMidPush,
                         ::testing::Values("refuse", "accept"));

// The api dies while its release job follows the rollout (a Deployment that never becomes
// ready: the test cluster runs no controllers). The commit is in git once and applied; the
// restarted api answers for the job from its git note, and the next release works.
TEST(ApiKilledMidJob, TheRestartedApiAnswersForTheJobAndReleasesAgain) {
  Stack stack;
  auto registry = RegistryServer::Start(stack.dir.path + "/registry");
  ASSERT_TRUE(registry.ok()) << registry.status();
  stack.registry = *std::move(registry);
  for (const char* tag : {"1.0.0", "1.1.0", "1.2.0"}) {
    FERRY_ASSERT_OK(stack.registry->PushImage("team/web", tag, kImageConfig));
  }
  const std::string image = stack.registry->host() + "/team/web";
  std::string web = Deployment("killapi", "web", image + ":1.0.0");
  web.replace(web.find("replicas: 0"), 11, "replicas: 1");
  StartStack(stack,
             {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: killapi}\n"},
              {"apps/web.yaml", web}},
             "killapi");
  stack.StartApi({});
  ASSERT_GT(stack.api.grpc_port, 0);

  ferry::v1::ReleaseSpec spec;
  spec.add_workloads("killapi:deployment/web");
  spec.set_image(image + ":1.1.0");
  spec.set_wait_rollout(true);
  spec.set_rollout_timeout_seconds(300);
  ferry::v1::Job job;
  FERRY_ASSERT_OK(stack.Release(spec, &job));
  const std::string id = job.id();
  // Follow the job until it waits for the rollout.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ferry::v1::GetJobRequest get;
    get.set_id(id);
    auto stream = stack.stub->WatchJob(&ctx, get);
    bool following = false;
    while (!following && stream->Read(&job)) {
      for (const auto& stage : job.stages()) {
        following |= stage.kind() == ferry::v1::JOB_STAGE_KIND_ROLLOUT;
      }
    }
    ASSERT_TRUE(following) << job.DebugString() << stack.api.process->Output();
    ASSERT_EQ(job.state(), ferry::v1::JOB_STATE_RUNNING) << job.DebugString();
    ctx.TryCancel();
  }
  const std::string revision = job.revision();
  ASSERT_FALSE(revision.empty()) << job.DebugString();
  stack.api.process.reset();  // SIGKILL

  stack.StartApi({});
  ASSERT_GT(stack.api.grpc_port, 0);
  ferry::v1::Job recorded;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::GetJobRequest get;
    get.set_id(id);
    FERRY_ASSERT_OK(stack.stub->GetJob(&ctx, get, &recorded));
  }
  EXPECT_EQ(recorded.id(), id);
  EXPECT_EQ(recorded.revision(), revision) << recorded.DebugString();
  ASSERT_EQ(recorded.results_size(), 1) << recorded.DebugString();
  EXPECT_EQ(recorded.results(0).workload(), "killapi:deployment/web");
  EXPECT_EQ(stack.repo->Git("log --format=%s --grep=^Release"),
            "Release " + image + ":1.1.0 to killapi:deployment/web\n");
  auto cluster = SharedKubeCluster();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_EQ((*cluster)->Kubectl(
                "-n killapi get deploy web -o jsonpath={.spec.template.spec.containers[0].image}"),
            image + ":1.1.0");

  spec.set_image(image + ":1.2.0");
  spec.set_wait_rollout(false);
  FERRY_ASSERT_OK(stack.Release(spec, &job));
  ferry::v1::Job next = stack.Follow(job.id());
  EXPECT_EQ(next.state(), ferry::v1::JOB_STATE_SUCCEEDED) << next.DebugString();
  EXPECT_EQ(stack.repo->Git("log --format=%s --grep=^Release"),
            "Release " + image + ":1.2.0 to killapi:deployment/web\n" + "Release " + image +
                ":1.1.0 to killapi:deployment/web\n");
}

// ConfigMaps labelled kill=mid-apply in namespace `ns`, `count` of them in files of 50.
std::map<std::string, std::string> ManyConfigMaps(const std::string& ns, int count) {
  std::map<std::string, std::string> files = {
      {"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n"}};
  for (int i = 0; i < count; ++i) {
    std::string& file = files[absl::StrCat("cm/", i / 50, ".yaml")];
    absl::StrAppend(&file, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-", i,
                    "\n  namespace: ", ns, "\n  labels: {kill: mid-apply}\ndata: {n: \"", i,
                    "\"}\n");
  }
  return files;
}

// How many of ManyConfigMaps' objects the cluster holds.
int ConfigMapsIn(KubeCluster& cluster, const std::string& ns) {
  const std::string names =
      cluster.Kubectl("-n " + ns + " get configmaps -l kill=mid-apply -o name");
  return static_cast<int>(std::count(names.begin(), names.end(), '\n'));
}

// The cluster-syncer dies half-way through applying a revision (one object at a time). Started
// again, it applies the rest and reports the revision synced, with nothing pruned (garbage
// collection is on); a further sync finds everything unchanged.
TEST(SyncerKilledMidApply, TheRestartedSyncerAppliesTheRest) {
  constexpr int kObjects = 400;
  auto cluster = SharedKubeCluster();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto repo = GitRepo::Create(ManyConfigMaps("killsync", kObjects));
  ASSERT_TRUE(repo.ok()) << repo.status();
  Running git, syncer;
  const std::vector<std::string> syncer_flags = {"--sync_set=killsync", "--sync_parallelism=1",
                                                 "--sync_garbage_collection"};
  StartGitWriterAndSyncer(**repo, **cluster, syncer_flags, git, syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  ASSERT_TRUE(WaitFor([&] { return ConfigMapsIn(**cluster, "killsync") > 0; }))
      << syncer.process->Output();
  syncer.process.reset();  // SIGKILL
  const int applied_after_kill = ConfigMapsIn(**cluster, "killsync");
  ASSERT_LT(applied_after_kill, kObjects) << "the sync finished before the kill";

  std::vector<std::string> argv = {FERRY_CLUSTER_SYNCER_BIN,
                                   "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0",
                                   "--kubeconfig=" + (*cluster)->kubeconfig(),
                                   "--git_writer_address=" + git.GrpcTarget(),
                                   "--sync_interval=1h"};
  argv.insert(argv.end(), syncer_flags.begin(), syncer_flags.end());
  Running restarted;
  StartArgv(argv, restarted);
  ASSERT_GT(restarted.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = FirstSync(restarted);
  ASSERT_TRUE(first.has_value()) << restarted.process->Output();
  EXPECT_EQ(first->failed(), 0) << first->DebugString();
  EXPECT_EQ(first->revision(), (*repo)->Head());
  EXPECT_GE(first->applied(), kObjects - applied_after_kill) << first->DebugString();
  EXPECT_EQ(first->pruned(), 0) << first->DebugString();
  EXPECT_EQ(ConfigMapsIn(**cluster, "killsync"), kObjects);

  auto stub = ferry::v1::ClusterSyncer::NewStub(restarted.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  ferry::v1::SyncNowRequest request;
  ferry::v1::SyncResult again;
  FERRY_ASSERT_OK(stub->SyncNow(&ctx, request, &again));
  EXPECT_EQ(again.applied(), 0) << again.DebugString();
  EXPECT_EQ(again.failed(), 0) << again.DebugString();
  EXPECT_EQ(ConfigMapsIn(**cluster, "killsync"), kObjects);
}

// The registry-scanner dies while manifests of a repository are being read (the registry
// holds the requests). Started again over the same cache, it opens the cache, finishes the
// scan and describes every tag.
TEST(ScannerKilledMidScan, TheRestartedScannerFinishesTheScanFromItsCache) {
  TempDir dir;
  auto registry = RegistryServer::Start(dir.path + "/registry");
  ASSERT_TRUE(registry.ok()) << registry.status();
  constexpr int kTags = 12;
  for (int i = 1; i <= kTags; ++i) {
    FERRY_ASSERT_OK((*registry)->PushImage("team/app", absl::StrCat("1.0.", i), kImageConfig));
  }
  auto proxy = FaultProxy::Start((*registry)->host());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const std::string repository = (*proxy)->host() + "/team/app";
  const std::vector<std::string> argv = {FERRY_REGISTRY_SCANNER_BIN,
                                         "--grpc_address=127.0.0.1:0",
                                         "--metrics_address=127.0.0.1:0",
                                         "--state_dir=" + dir.path + "/scanner",
                                         "--registry_insecure_hosts=" + (*proxy)->host(),
                                         "--scan_interval=1h"};
  auto watch = [&repository](const Running& scanner) {
    auto stub = ferry::v1::RegistryScanner::NewStub(scanner.Channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::WatchRequest request;
    request.add_repositories(repository);
    ferry::v1::WatchResponse response;
    return stub->Watch(&ctx, request, &response);
  };

  // The manifest of one tag is held; the tags described before it are cached meanwhile. A scan
  // fetches several tags at once (--registry_concurrency): the kill waits until every other
  // request of the scan (the list, the other tags' manifests and config blobs) has been sent.
  (*proxy)->Hold(1, absl::Seconds(60), "/manifests/1.0.7");
  Running scanner;
  StartArgv(argv, scanner);
  ASSERT_GT(scanner.grpc_port, 0);
  FERRY_ASSERT_OK(watch(scanner));
  ASSERT_TRUE(WaitFor([&] { return (*proxy)->held() > 0 && (*proxy)->requests() >= 2 * kTags; }))
      << scanner.process->Output();
  scanner.process.reset();  // SIGKILL
  (*proxy)->Release();

  const int before_restart = (*proxy)->requests();
  Running restarted;
  StartArgv(argv, restarted);
  ASSERT_GT(restarted.grpc_port, 0);
  FERRY_ASSERT_OK(watch(restarted));
  auto stub = ferry::v1::RegistryScanner::NewStub(restarted.Channel());
  ferry::v1::ListTagsResponse tags;
  auto described = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ferry::v1::ListTagsRequest request;
    request.set_repository(repository);
    if (!stub->ListTags(&ctx, request, &tags).ok() || tags.tags_size() != kTags) return false;
    for (const auto& tag : tags.tags()) {
      if (tag.digest().empty() || !tag.has_created()) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor(described, absl::Seconds(60)))
      << tags.DebugString() << restarted.process->Output();
  EXPECT_TRUE(tags.fresh()) << tags.DebugString();
  // Tags described before the kill come from the cache: a whole scan reads a manifest and a
  // config blob per tag.
  EXPECT_LT((*proxy)->requests() - before_restart, 2 * kTags)
      << "the restarted scanner described every tag again";
  int status = -1;
  const std::string check = RunCommand(
      "sqlite3 " + dir.path + "/scanner/cache.db 'PRAGMA integrity_check' 2>&1", &status);
  EXPECT_EQ(check, "ok\n");
}

}  // namespace
}  // namespace ferry::testing
