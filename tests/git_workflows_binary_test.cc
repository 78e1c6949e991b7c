// Git workflows teams require (issue 20), through the real binaries against a real
// kube-apiserver and git CLI:
//   - verified reads: git-writer with --git_verify_signatures serves, and the cluster-syncer
//     applies, only heads signed by an allowed key; an unsigned head and one signed by a
//     stranger are reported (git-writer's Head and ListWorkloads, the api's ListWorkloads and
//     GetVersion, ferryctl list-workloads) while the last verified revision stays applied,
//     also by a person's sync; the next signed head is applied by the syncer on its own;
//   - release branches: with --git_push_branch a release lands on that branch (the job and
//     ferryctl say which), main and the cluster stay as they were, and once a person merges
//     the branch with the git CLI the syncer applies the release.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"
#include "tests/support/git_repo.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::Image;
using testing::kImageConfig;
using testing::RunCommand;
using testing::Stack;

std::chrono::system_clock::time_point Deadline(int seconds = 60) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// An ed25519 key pair without a passphrase made by ssh-keygen; returns the private key's path.
std::string MakeKey(const std::string& dir, const std::string& name) {
  const std::string path = absl::StrCat(dir, "/", name);
  int status = 0;
  const std::string out = RunCommand(
      absl::StrCat("ssh-keygen -q -t ed25519 -N '' -C ", name, " -f ", path, " 2>&1"), &status);
  EXPECT_EQ(status, 0) << out;
  return path;
}

// The public half of `key` (one line, no newline).
std::string PublicKey(const std::string& key) {
  std::ifstream in(key + ".pub");
  std::string line;
  std::getline(in, line);
  return line;
}

// `git <commands>` as Bob in a scratch clone of `repo`'s upstream (branch main checked out);
// `files` are written into the clone first. Returns the output; fails the test on error.
std::string InClone(testing::GitRepo& repo, const std::map<std::string, std::string>& files,
                    const std::string& commands) {
  static int clones = 0;
  const std::string work = absl::StrCat(repo.dir(), "/bob-", clones++);
  const std::string env =
      "export GIT_AUTHOR_NAME=Bob GIT_AUTHOR_EMAIL=bob@example.com GIT_COMMITTER_NAME=Bob "
      "GIT_COMMITTER_EMAIL=bob@example.com GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent; ";
  int status = 0;
  std::string out = RunCommand(
      absl::StrCat(env, "git clone -q -b main ", repo.url(), " ", work, " 2>&1"), &status);
  EXPECT_EQ(status, 0) << out;
  for (const auto& [path, content] : files) {
    std::filesystem::create_directories(std::filesystem::path(work + "/" + path).parent_path());
    std::ofstream(work + "/" + path, std::ios::binary) << content;
  }
  out = RunCommand(absl::StrCat(env, "cd ", work, " && ", commands, " 2>&1"), &status);
  EXPECT_EQ(status, 0) << commands << "\n" << out;
  std::filesystem::remove_all(work);
  return out;
}

// Commits `files` to main and pushes, signed with the SSH key `key` (as `git commit -S` with
// gpg.format=ssh does), unsigned when `key` is empty. Returns the new head.
std::string Commit(testing::GitRepo& repo, const std::map<std::string, std::string>& files,
                   const std::string& key, const std::string& message) {
  const std::string sign =
      key.empty() ? "" : absl::StrCat("-c gpg.format=ssh -c user.signingkey=", key, " ");
  InClone(repo, files,
          absl::StrCat("git add -A && git ", sign, "commit -q --allow-empty ",
                       key.empty() ? "" : "-S ", "-m '", message, "' && git push -q origin main"));
  return repo.Head();
}

// The image of the Deployment's container in the API server.
std::string ImageInCluster(const std::string& ns, const std::string& name) {
  auto cluster = testing::SharedKubeCluster();
  if (!cluster.ok()) return "(no cluster)";
  return (*cluster)->Kubectl(absl::StrCat(
      "-n ", ns, " get deploy ", name, " -o jsonpath={.spec.template.spec.containers[0].image}"));
}

// Runs ferryctl against the stack's api; its exit code and output (stdout and stderr).
std::pair<int, std::string> Ferryctl(const Stack& stack, std::vector<std::string> args) {
  args.insert(args.begin(), FERRYCTL_BIN);
  args.push_back("--url=" + stack.api.GrpcTarget());
  auto p = testing::Subprocess::Start(args);
  if (!p.ok()) return {-1, p.status().ToString()};
  std::optional<int> code = (*p)->Wait(absl::Seconds(60));
  return {code.value_or(-1), (*p)->Output()};
}

// git-writer's Notify, as a push webhook would call it: git-writer fetches now.
grpc::Status Notify(const Stack& stack, ferry::v1::HeadResponse* head) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  return ferry::v1::GitWriter::NewStub(stack.git.Channel())->Notify(&ctx, {}, head);
}

ferry::v1::HeadResponse GitHead(const Stack& stack) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  ferry::v1::HeadResponse head;
  grpc::Status s = ferry::v1::GitWriter::NewStub(stack.git.Channel())->Head(&ctx, {}, &head);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return head;
}

// A person's sync through the api (ferryctl sync), followed to its end.
ferry::v1::Job SyncThroughApi(Stack& stack) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  ferry::v1::Job job;
  grpc::Status s = stack.stub->Sync(&ctx, ferry::v1::SyncRequest(), &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return s.ok() ? stack.Follow(job.id()) : job;
}

ferry::v1::ListWorkloadsResponse ApiWorkloads(const Stack& stack, const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  ferry::v1::ListWorkloadsRequest request;
  request.set_namespace_(ns);
  ferry::v1::ListWorkloadsResponse response;
  grpc::Status s = stack.stub->ListWorkloads(&ctx, request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response;
}

std::string Namespace(const std::string& ns) {
  return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n";
}

// --git_verify_signatures: an unsigned head and a stranger's are not applied, by the syncer
// or by a person's sync; both are reported; a head signed by an allowed key is applied.
TEST(GitWorkflowsBinaryTest, OnlyHeadsSignedByAnAllowedKeyAreApplied) {
  constexpr char kNs[] = "gw-verify";
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  const std::string x = Image(stack, "team/web", "1.0.0");
  const std::string y = Image(stack, "team/web", "6.6.6");
  const std::string z = Image(stack, "team/web", "1.2.0");
  // Ferry's key signs its sync tag; the team's key signs what people push; the stranger's
  // key is in no allowed signers file.
  const std::string ferry_key = MakeKey(stack.dir.path, "ferry");
  const std::string team_key = MakeKey(stack.dir.path, "team");
  const std::string stranger_key = MakeKey(stack.dir.path, "stranger");
  const std::string allowed = stack.dir.path + "/allowed_signers";
  std::ofstream(allowed) << "ferry@example.com " << PublicKey(ferry_key) << "\n"
                         << "team@example.com " << PublicKey(team_key) << "\n";

  // Upstream's first commit (GitRepo's) is unsigned; the team signs the one Ferry starts from.
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  auto repo = testing::GitRepo::Create({{"ns.yaml", Namespace(kNs)}});
  FERRY_ASSERT_OK(repo);
  stack.repo = *std::move(repo);
  const std::string signed_x =
      Commit(*stack.repo, {{"apps/web.yaml", Deployment(kNs, "web", x)}}, team_key, "web");
  testing::StartGitWriterAndSyncer(
      *stack.repo, **cluster, {std::string("--sync_set=") + kNs}, stack.git, stack.syncer,
      {"--git_signing_key_path=" + ferry_key, "--git_verify_signatures",
       "--git_allowed_signers_path=" + allowed});
  ASSERT_GT(stack.syncer.grpc_port, 0);
  testing::StartArgv({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                      "--metrics_address=127.0.0.1:0", "--state_dir=" + stack.dir.path + "/scan",
                      "--registry_insecure_hosts=" + stack.registry->host()},
                     stack.scanner);
  ASSERT_GT(stack.scanner.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = testing::FirstSync(stack.syncer);
  ASSERT_TRUE(first.has_value()) << stack.syncer.process->Output() << stack.git.process->Output();
  EXPECT_EQ(first->revision(), signed_x);
  EXPECT_EQ(first->failed(), 0) << first->DebugString();
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  EXPECT_EQ(ImageInCluster(kNs, "web"), x);
  // The sync tag Ferry moved is signed with its key, which git accepts.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return absl::StripAsciiWhitespace(stack.repo->Git("rev-parse ferry-sync^{commit}")) ==
               signed_x;
      },
      absl::Seconds(30)));
  {
    int status = 0;
    const std::string out =
        RunCommand(absl::StrCat("cd ", stack.repo->dir(),
                                "/upstream.git && GIT_CONFIG_NOSYSTEM=1 "
                                "HOME=/nonexistent git -c gpg.ssh.allowedSignersFile=",
                                allowed, " verify-tag ferry-sync 2>&1"),
                   &status);
    EXPECT_EQ(status, 0) << out;
  }

  // Someone pushes an unsigned commit changing the image to Y.
  const std::string unsigned_y =
      Commit(*stack.repo, {{"apps/web.yaml", Deployment(kNs, "web", y)}}, "", "unsigned");
  ferry::v1::HeadResponse head;
  grpc::Status notified = Notify(stack, &head);
  EXPECT_EQ(notified.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(notified.error_message(), "is not signed"))
      << notified.error_message();
  // git-writer has observed it: the head it serves is X's, with the reason.
  head = GitHead(stack);
  EXPECT_EQ(head.revision(), signed_x);
  EXPECT_TRUE(absl::StrContains(head.verify_error(), unsigned_y.substr(0, 12)))
      << head.verify_error();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::ListManifestWorkloadsResponse listed;
    FERRY_ASSERT_OK(ferry::v1::GitWriter::NewStub(stack.git.Channel())
                        ->ListWorkloads(&ctx, ferry::v1::ListManifestWorkloadsRequest(), &listed));
    EXPECT_EQ(listed.revision(), signed_x);
    EXPECT_EQ(listed.verify_error(), head.verify_error());
  }
  // The api: ListWorkloads shows X's workloads with the reason, GetVersion carries it too.
  ferry::v1::ListWorkloadsResponse workloads = ApiWorkloads(stack, kNs);
  EXPECT_EQ(workloads.revision(), signed_x);
  EXPECT_EQ(workloads.git_verify_error(), head.verify_error());
  ASSERT_EQ(workloads.workloads_size(), 1) << workloads.DebugString();
  ASSERT_EQ(workloads.workloads(0).containers_size(), 1);
  EXPECT_EQ(workloads.workloads(0).containers(0).image(), x);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::VersionInfo version;
    FERRY_ASSERT_OK(stack.stub->GetVersion(&ctx, {}, &version));
    EXPECT_EQ(version.git_verify_error(), head.verify_error());
  }
  auto [version_code, version] = Ferryctl(stack, {"version"});
  EXPECT_EQ(version_code, 0) << version;
  EXPECT_TRUE(absl::StrContains(version, head.verify_error())) << version;
  auto [list_code, list] = Ferryctl(stack, {"list-workloads", "-n", kNs});
  EXPECT_EQ(list_code, 0) << list;
  EXPECT_TRUE(
      absl::StrContains(list, "warning: signature check (--git_verify_signatures): upstream head " +
                                  unsigned_y.substr(0, 12)))
      << list;
  EXPECT_TRUE(absl::StrContains(list, x)) << list;
  // A person's sync now applies what git-writer serves: still X.
  ferry::v1::Job synced = SyncThroughApi(stack);
  EXPECT_EQ(synced.state(), ferry::v1::JOB_STATE_SUCCEEDED) << synced.DebugString();
  EXPECT_EQ(synced.revision(), signed_x);
  EXPECT_TRUE(absl::StrContains(synced.stages().rbegin()->message(), "is not signed"))
      << synced.DebugString();
  EXPECT_EQ(ImageInCluster(kNs, "web"), x);

  // A commit signed by a key no allowed signers file names: the same.
  const std::string stranger = Commit(
      *stack.repo, {{"apps/web.yaml", Deployment(kNs, "web", y + "-2")}}, stranger_key, "stranger");
  notified = Notify(stack, &head);
  EXPECT_EQ(notified.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << notified.error_message();
  head = GitHead(stack);
  EXPECT_EQ(head.revision(), signed_x);
  EXPECT_TRUE(absl::StrContains(head.verify_error(), stranger.substr(0, 12)))
      << head.verify_error();
  synced = SyncThroughApi(stack);
  EXPECT_EQ(synced.state(), ferry::v1::JOB_STATE_SUCCEEDED) << synced.DebugString();
  EXPECT_EQ(synced.revision(), signed_x);
  EXPECT_EQ(ImageInCluster(kNs, "web"), x);

  // The team signs the next head (Z): git-writer serves it and the syncer applies it on its
  // own (WatchHead), with nothing reported any more.
  const std::string signed_z =
      Commit(*stack.repo, {{"apps/web.yaml", Deployment(kNs, "web", z)}}, team_key, "web Z");
  FERRY_ASSERT_OK(Notify(stack, &head));
  EXPECT_EQ(head.revision(), signed_z);
  EXPECT_EQ(head.verify_error(), "");
  EXPECT_TRUE(
      testing::WaitUntil([&] { return ImageInCluster(kNs, "web") == z; }, absl::Seconds(60)))
      << ImageInCluster(kNs, "web") << stack.syncer.process->Output();
  workloads = ApiWorkloads(stack, kNs);
  EXPECT_EQ(workloads.revision(), signed_z);
  EXPECT_EQ(workloads.git_verify_error(), "");
}

// --git_push_branch: a release waits on the release branch for a review; main and the cluster
// stay; a merge with the git CLI is applied.
TEST(GitWorkflowsBinaryTest, AReleaseOnAReleaseBranchIsAppliedOnceMerged) {
  constexpr char kNs[] = "gw-branch";
  constexpr char kBranch[] = "ferry/releases";
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  for (const char* tag : {"1.0.0", "1.1.0"}) {
    FERRY_ASSERT_OK(stack.registry->PushImage("team/web", tag, kImageConfig));
  }
  const std::string old_image = Image(stack, "team/web", "1.0.0");
  const std::string new_image = Image(stack, "team/web", "1.1.0");
  testing::StartStack(
      stack, {{"ns.yaml", Namespace(kNs)}, {"apps/web.yaml", Deployment(kNs, "web", old_image)}},
      kNs, {}, {std::string("--git_push_branch=") + kBranch});
  if (HasFatalFailure()) return;
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  const std::string main_before = stack.repo->Head();
  EXPECT_EQ(ImageInCluster(kNs, "web"), old_image);

  // ferryctl release (--watch: nothing to follow, the change is not applied) says where the
  // change is.
  auto [code, released] = Ferryctl(stack, {"release", "-w", std::string(kNs) + ":deployment/web",
                                           "-i", new_image, "--watch", "-m", "for review"});
  EXPECT_EQ(code, 0) << released << stack.api.process->Output();
  EXPECT_TRUE(absl::StrContains(
      released, absl::StrCat("Pushed to branch ", kBranch, " (not applied until merged)")))
      << released;
  grpc::ClientContext list_ctx;
  list_ctx.set_deadline(Deadline());
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stack.stub->ListJobs(&list_ctx, {}, &jobs));
  ferry::v1::Job release;
  for (const auto& j : jobs.jobs()) {
    if (j.kind() == ferry::v1::JOB_KIND_RELEASE) release = j;
  }
  ASSERT_FALSE(release.id().empty()) << jobs.DebugString();
  EXPECT_EQ(release.state(), ferry::v1::JOB_STATE_SUCCEEDED) << release.DebugString();
  EXPECT_EQ(release.pushed_branch(), kBranch);
  const std::string on_branch(
      absl::StripAsciiWhitespace(stack.repo->Git(absl::StrCat("rev-parse refs/heads/", kBranch))));
  EXPECT_EQ(release.revision(), on_branch);
  EXPECT_TRUE(absl::StrContains(stack.repo->Show(on_branch, "apps/web.yaml"), new_image));
  EXPECT_EQ(stack.repo->Head(), main_before) << "main is unchanged";
  auto [job_code, job_view] = Ferryctl(stack, {"jobs", release.id()});
  EXPECT_EQ(job_code, 0) << job_view;
  EXPECT_TRUE(absl::StrContains(
      job_view, absl::StrCat("Pushed to branch ", kBranch, " (not applied until merged)")))
      << job_view;

  // A sync of main's head: the cluster still runs the old image.
  ferry::v1::Job synced = SyncThroughApi(stack);
  EXPECT_EQ(synced.state(), ferry::v1::JOB_STATE_SUCCEEDED) << synced.DebugString();
  EXPECT_EQ(synced.revision(), main_before);
  EXPECT_EQ(ImageInCluster(kNs, "web"), old_image);

  // A reviewer merges the branch with the git CLI; git-writer hears of it (a webhook) and the
  // syncer applies it.
  InClone(*stack.repo, {},
          absl::StrCat("git fetch -q origin ", kBranch, " && git merge -q --no-ff -m 'Merge ",
                       kBranch, "' FETCH_HEAD && git push -q origin main"));
  const std::string merged = stack.repo->Head();
  ASSERT_NE(merged, main_before);
  ferry::v1::HeadResponse head;
  FERRY_ASSERT_OK(Notify(stack, &head));
  EXPECT_EQ(head.revision(), merged);
  EXPECT_TRUE(testing::WaitUntil([&] { return ImageInCluster(kNs, "web") == new_image; },
                                 absl::Seconds(60)))
      << ImageInCluster(kNs, "web") << stack.syncer.process->Output();
}

}  // namespace
}  // namespace ferry
