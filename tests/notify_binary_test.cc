// Notifications through the real binaries: ferry-api started with --notify_url (the URL and
// a token from files) in front of a real registry, git repo and Kubernetes API; a release and
// a lock each reach an HTTP receiver on 127.0.0.1 exactly once, in order, with the bearer
// token, and the api's logs name the URL by its host only.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"
#include "tests/support/loopback_http_server.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::Stack;
using testing::StartStack;

constexpr char kToken[] = "notify-token-0123456789";
constexpr char kPath[] = "/services/T000/B000/secret-webhook-path";

// An HTTP receiver on 127.0.0.1 that records every POST to kPath.
class Receiver {
 public:
  Receiver() {
    http_.server().Post(kPath, [this](const httplib::Request& req, httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      bodies_.push_back(req.body);
      auth_.push_back(req.get_header_value("Authorization"));
      res.status = 200;
    });
    EXPECT_TRUE(http_.Start().ok());
  }
  std::string Url() const { return absl::StrCat("http://", http_.host(), kPath); }

  // Waits up to 60 s for `n` events; returns those received.
  std::vector<nlohmann::json> Await(size_t n) {
    absl::MutexLock lock(&mu_);
    want_ = n;
    mu_.AwaitWithTimeout(absl::Condition(this, &Receiver::HasWanted), absl::Seconds(60));
    std::vector<nlohmann::json> out;
    for (const std::string& b : bodies_) out.push_back(nlohmann::json::parse(b));
    return out;
  }
  // Every event received so far.
  std::vector<nlohmann::json> All() {
    absl::MutexLock lock(&mu_);
    std::vector<nlohmann::json> out;
    for (const std::string& b : bodies_) out.push_back(nlohmann::json::parse(b));
    return out;
  }
  std::vector<std::string> Auth() {
    absl::MutexLock lock(&mu_);
    return auth_;
  }

 private:
  bool HasWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return bodies_.size() >= want_; }

  absl::Mutex mu_;
  size_t want_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> auth_ ABSL_GUARDED_BY(mu_);
  // Last: stopped before the members its handler uses go.
  testing::LoopbackHttpServer http_;
};

// Waits (60 s at most) until cluster-syncer has synced `revision`, as its WatchSync says.
bool AwaitSynced(const testing::Running& syncer, const std::string& revision) {
  auto stub = ferry::v1::ClusterSyncer::NewStub(syncer.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto watch = stub->WatchSync(&ctx, {});
  ferry::v1::SyncResult result;
  while (watch->Read(&result)) {
    if (result.revision() == revision) {
      ctx.TryCancel();
      watch->Finish();
      return true;
    }
  }
  return false;
}

// The events the api sent before it stopped: SIGTERM once cluster-syncer has synced the last
// commit (its sync results reach the api's watch then), so that an event a late sync would
// add is queued before the api stops; the api sends what it queued before exiting.
std::vector<nlohmann::json> EventsAtStop(Stack& stack, Receiver& receiver,
                                         const std::string& last_revision) {
  EXPECT_TRUE(AwaitSynced(stack.syncer, last_revision)) << last_revision;
  stack.api.process->Signal(SIGTERM);
  EXPECT_TRUE(stack.api.process->Wait(absl::Seconds(20)).has_value());
  return receiver.All();
}

std::vector<std::string> Names(const std::vector<nlohmann::json>& events) {
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.value("event", "?"));
  return names;
}

TEST(NotifyBinaryTest, AReleaseAndALockArePostedOnceInOrderWithTheToken) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.1.0", testing::kImageConfig));
  StartStack(
      stack,
      {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: notify}\n"},
       {"apps/web.yaml", Deployment("notify", "web", testing::Image(stack, "team/web", "1.0.0"))}},
      "notify");
  if (HasFatalFailure()) return;
  Receiver receiver;
  // The URL (its path is the secret) and the token from files, as mounted from a Secret.
  const std::string token_file = stack.dir.path + "/notify-token";
  std::ofstream(token_file) << kToken << "\n";
  const std::string url_file = stack.dir.path + "/notify-url";
  std::ofstream(url_file) << receiver.Url() << "\n";
  stack.StartApi(
      {"--no_automation", "--notify_url=url_file=" + url_file + ",token_file=" + token_file});
  ASSERT_GT(stack.api.grpc_port, 0);

  ferry::v1::ReleaseSpec spec;
  spec.add_workloads("notify:deployment/web");
  spec.set_image(testing::Image(stack, "team/web", "1.1.0"));
  ferry::v1::Job job;
  grpc::Status s = stack.Release(spec, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ferry::v1::Job released = stack.Follow(job.id());
  ASSERT_EQ(released.state(), ferry::v1::JOB_STATE_SUCCEEDED) << released.DebugString();

  ferry::v1::UpdatePolicyRequest policy;
  auto* changes = policy.add_changes();
  changes->set_workload("notify:deployment/web");
  changes->add_changes()->mutable_lock()->set_message("incident 42");
  policy.mutable_cause()->set_user("bob");
  ferry::v1::Job lock_job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    s = stack.stub->UpdatePolicy(&ctx, policy, &lock_job);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const ferry::v1::Job locked = stack.Follow(lock_job.id());
  ASSERT_EQ(locked.state(), ferry::v1::JOB_STATE_SUCCEEDED);

  // Stopped once the lock's commit is synced, the api has sent these two events, once each;
  // its logs never held the path or the token.
  std::vector<nlohmann::json> events = EventsAtStop(stack, receiver, locked.revision());
  ASSERT_EQ(Names(events), (std::vector<std::string>{"release", "lock"}))
      << stack.api.process->Output();
  EXPECT_EQ(events[0]["event"], "release");
  EXPECT_EQ(events[0]["job"], job.id());
  EXPECT_EQ(events[0]["revision"], released.revision());
  const std::string text = events[0]["text"];
  EXPECT_TRUE(absl::StartsWith(
      text, absl::StrCat("Ferry: release of notify:deployment/web (app: ",
                         testing::Image(stack, "team/web", "1.0.0"), " -> 1.1.0) pushed at ",
                         released.revision().substr(0, 7), " by Alice &lt;alice@example.com&gt;")))
      << text;
  EXPECT_EQ(events[1]["event"], "lock");
  EXPECT_EQ(events[1]["job"], lock_job.id());
  EXPECT_EQ(events[1]["text"], "Ferry: notify:deployment/web locked by bob: incident 42");
  for (const std::string& auth : receiver.Auth()) EXPECT_EQ(auth, std::string("Bearer ") + kToken);
  const std::string output = stack.api.process->Output();
  EXPECT_TRUE(absl::StrContains(output, "notify_url #1 (host 127.0.0.1:")) << output;
  EXPECT_FALSE(absl::StrContains(output, "secret-webhook-path")) << output;
  EXPECT_FALSE(absl::StrContains(output, kToken)) << output;
}

// A revision the cluster refuses part of, synced by the cluster-syncer on its own (no job):
// one "sync_failed" from its WatchSync stream. A sync job that then meets the same failure,
// and the sync of the lock's commit that follows, add none: once that commit is synced and
// the api stopped, the lock is the only other event.
TEST(NotifyBinaryTest, ABackgroundSyncFailureIsPostedOnce) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  const std::string ns_yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: notify-sync}\n";
  StartStack(stack,
             {{"ns.yaml", ns_yaml},
              {"apps/web.yaml",
               Deployment("notify-sync", "web", testing::Image(stack, "team/web", "1.0.0"))}},
             "notify-sync");
  if (HasFatalFailure()) return;
  Receiver receiver;
  stack.StartApi({"--no_automation", "--notify_url=" + receiver.Url()});
  ASSERT_GT(stack.api.grpc_port, 0);

  // An object name the API server refuses (422), pushed by someone else.
  FERRY_ASSERT_OK_AND_ASSIGN(
      std::string pushed,
      stack.repo->CommitWithCli(
          {{"apps/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name, namespace: "
            "notify-sync}\ndata: {a: b}\n"}},
          "A ConfigMap the cluster refuses"));
  {
    auto git = ferry::v1::GitWriter::NewStub(stack.git.Channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::HeadResponse head;
    FERRY_ASSERT_OK(git->Notify(&ctx, {}, &head));
  }
  std::vector<nlohmann::json> events = receiver.Await(1);
  ASSERT_EQ(events.size(), 1u) << stack.api.process->Output();
  EXPECT_EQ(events[0]["event"], "sync_failed");
  EXPECT_EQ(events[0]["source"], "cluster-syncer");
  EXPECT_EQ(events[0]["revision"], pushed);
  EXPECT_EQ(events[0]["failed"], 1);
  const std::string text = events[0]["text"];
  EXPECT_TRUE(absl::StartsWith(text, absl::StrCat("Ferry: cluster-syncer's sync of ",
                                                  pushed.substr(0, 7), " failed for 1 object")))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "Bad_Name")) << text;

  // A person's sync of the same revision fails the same way: not announced again.
  ferry::v1::Job sync_job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status s = stack.stub->Sync(&ctx, {}, &sync_job);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ferry::v1::Job synced = stack.Follow(sync_job.id());
  EXPECT_EQ(synced.revision(), pushed);
  ferry::v1::UpdatePolicyRequest policy;
  auto* changes = policy.add_changes();
  changes->set_workload("notify-sync:deployment/web");
  changes->add_changes()->mutable_lock()->set_message("until the ConfigMap is fixed");
  policy.mutable_cause()->set_user("bob");
  ferry::v1::Job lock_job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status s = stack.stub->UpdatePolicy(&ctx, policy, &lock_job);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const ferry::v1::Job locked = stack.Follow(lock_job.id());
  ASSERT_EQ(locked.state(), ferry::v1::JOB_STATE_SUCCEEDED);
  events = EventsAtStop(stack, receiver, locked.revision());
  ASSERT_EQ(Names(events), (std::vector<std::string>{"sync_failed", "lock"}))
      << stack.api.process->Output();
  EXPECT_EQ(events[1]["job"], lock_job.id());
}

}  // namespace
}  // namespace ferry
