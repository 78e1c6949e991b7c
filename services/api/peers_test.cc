// The peer layer: the deadline each budget puts on a call, the peer named in every failure,
// a peer that is down never reached, and cancellation at shutdown and with the caller (over
// real loopback channels).
#include "services/api/peers.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "ferry/v1/cluster_syncer_mock.grpc.pb.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "ferry/v1/registry_scanner_mock.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/support/ports.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Invoke;

class PeersTest : public ::testing::Test {
 protected:
  PeerClients Clients(JobTimeouts timeouts = {}, PeerLinks links = {}) {
    return PeerClients(Peers{git_, registry_, cluster_}, cancel_, timeouts, std::move(links));
  }

  ::testing::StrictMock<ferry::v1::MockGitWriterStub> git_;
  ::testing::StrictMock<ferry::v1::MockRegistryScannerStub> registry_;
  ::testing::StrictMock<ferry::v1::MockClusterSyncerStub> cluster_;
  CancelSet cancel_;
};

TEST_F(PeersTest, AStageBudgetPutsItsFlagsTimeoutOnTheCall) {
  JobTimeouts timeouts;
  timeouts.commit = absl::Seconds(7);
  timeouts.apply = absl::Seconds(40);
  PeerClients clients = Clients(timeouts);
  std::chrono::system_clock::time_point deadline;
  EXPECT_CALL(git_, Head(_, _, _))
      .WillOnce(Invoke([&](grpc::ClientContext* ctx, const ferry::v1::HeadRequest&,
                           ferry::v1::HeadResponse* out) {
        deadline = ctx->deadline();
        out->set_revision("abc");
        return grpc::Status::OK;
      }));
  const absl::Time before = absl::Now();
  absl::StatusOr<ferry::v1::HeadResponse> head = clients.git.Call(
      &GitWriterStub::Head, ferry::v1::HeadRequest(), clients.ForStage(Stage::kCommit));
  FERRY_ASSERT_OK(head);
  EXPECT_EQ(head->revision(), "abc");
  EXPECT_GE(absl::FromChrono(deadline), before + absl::Seconds(7));
  EXPECT_LE(absl::FromChrono(deadline), absl::Now() + absl::Seconds(7));

  CallBudget apply = clients.ForStage(Stage::kApply);
  EXPECT_EQ(apply.timeout, absl::Seconds(40));
  EXPECT_EQ(apply.limit, &limits::kJobApplyTimeout);
  EXPECT_TRUE(apply.await_peer);
  EXPECT_EQ(apply.caller, nullptr) << "a job's calls are cancelled at shutdown, not by a caller";
}

TEST_F(PeersTest, AtMostShortensABudgetAndDropsTheLimitItNoLongerIs) {
  PeerClients clients = Clients();
  const CallBudget planning = clients.ForStage(Stage::kPlanning);  // 120 s
  const CallBudget shorter = planning.AtMost(absl::Seconds(30));
  EXPECT_LT(shorter.deadline, planning.deadline);
  EXPECT_EQ(shorter.timeout, absl::Seconds(30));
  EXPECT_EQ(shorter.limit, nullptr);
  EXPECT_TRUE(shorter.await_peer);
  const CallBudget same = planning.AtMost(absl::Minutes(10));
  EXPECT_EQ(same.deadline, planning.deadline) << "a longer bound changes nothing";
  EXPECT_EQ(same.limit, &limits::kJobPlanningTimeout);
}

TEST_F(PeersTest, EveryFailureNamesThePeer) {
  JobTimeouts timeouts;
  timeouts.commit = absl::Seconds(90);
  PeerClients clients = Clients(timeouts, {{"127.0.0.1:3031", nullptr}, {}, {}});
  const CallBudget commit = clients.ForStage(Stage::kCommit);
  const CallBudget background = clients.Until(absl::Now() + absl::Seconds(30), false);
  struct Case {
    const PeerBase* peer;
    grpc::Status status;
    CallBudget budget;
    absl::StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {&clients.git,
       {grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"},
       commit,
       absl::StatusCode::kUnavailable,
       "git-writer at 127.0.0.1:3031 did not answer: job commit stage over the limit of 90 "
       "seconds (raise it with --job_commit_timeout)"},
      {&clients.git,
       {grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"},
       background,
       absl::StatusCode::kUnavailable,
       "git-writer at 127.0.0.1:3031 did not answer within 30s"},
      {&clients.git,
       {grpc::StatusCode::UNAVAILABLE, "connection refused"},
       commit,
       absl::StatusCode::kUnavailable,
       "git-writer at 127.0.0.1:3031: connection refused"},
      {&clients.git,
       {grpc::StatusCode::NOT_FOUND, "no job x"},
       commit,
       absl::StatusCode::kNotFound,
       "git-writer: no job x"},
      {&clients.registry,
       {grpc::StatusCode::UNAVAILABLE, "connection refused"},
       commit,
       absl::StatusCode::kUnavailable,
       "registry-scanner: connection refused"},
      {&clients.cluster,
       {grpc::StatusCode::FAILED_PRECONDITION, "not synced"},
       background,
       absl::StatusCode::kFailedPrecondition,
       "cluster-syncer: not synced"},
  };
  for (const Case& c : cases) {
    absl::Status s = c.peer->Failed(c.status, c.budget);
    EXPECT_THAT(s, StatusIs(c.code, Eq(c.message)));
  }
}

TEST_F(PeersTest, AnAnswerWithAnErrorComesBackNamingThePeerAndKeepsItsCode) {
  PeerClients clients = Clients();
  EXPECT_CALL(cluster_, SyncNow(_, _, _))
      .WillOnce(::testing::Return(grpc::Status(grpc::StatusCode::ABORTED, "sync in progress")));
  absl::StatusOr<ferry::v1::SyncResult> synced = clients.cluster.Call(
      &ClusterSyncerStub::SyncNow, ferry::v1::SyncNowRequest(), clients.ForStage(Stage::kApply));
  EXPECT_THAT(synced, StatusIs(absl::StatusCode::kAborted, Eq("cluster-syncer: sync in progress")));
}

// A peer that refuses connections is waited for --peer_wait, then named with its address;
// the call is never made. A read does not wait.
TEST_F(PeersTest, APeerThatIsDownIsWaitedForThenNamedAndNeverCalled) {
  const std::string address = absl::StrCat("127.0.0.1:", ferry::testing::FreeLoopbackPort());
  JobTimeouts timeouts;
  timeouts.peer_wait = absl::Milliseconds(600);
  PeerClients clients = Clients(
      timeouts,
      {{address, grpc::CreateChannel(address, grpc::InsecureChannelCredentials())}, {}, {}});
  EXPECT_CALL(git_, ListWorkloads(_, _, _)).Times(0);
  const absl::Time start = absl::Now();
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> listed =
      clients.git.Call(&GitWriterStub::ListWorkloads, ferry::v1::ListManifestWorkloadsRequest(),
                       clients.ForStage(Stage::kPlanning));
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(
      listed,
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(HasSubstr(absl::StrCat("git-writer at ", address, " is not reachable")),
                     HasSubstr("(--peer_wait)"))));
  EXPECT_GE(took, absl::Milliseconds(600));
  EXPECT_LT(took, absl::Seconds(5));
}

// A fake git-writer on a loopback port: ListJobNotes holds until its caller cancels (or
// 20 s pass), recording what it saw; Head asks ListJobNotes of `forward` as a request's own
// call of the api does, and answers with that call's status.
class HoldingGitWriter final : public ferry::v1::GitWriter::Service {
 public:
  grpc::Status ListJobNotes(grpc::ServerContext* ctx, const ferry::v1::ListJobNotesRequest*,
                            ferry::v1::ListJobNotesResponse*) override {
    std::unique_lock<std::mutex> lock(mu_);
    holding_ = true;
    deadline_ = absl::FromChrono(ctx->deadline());
    changed_.notify_all();
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (!ctx->IsCancelled() && absl::Now() < give_up) {
      changed_.wait_for(lock, std::chrono::milliseconds(5));
    }
    cancelled_ = ctx->IsCancelled();
    holding_ = false;
    changed_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status Head(grpc::ServerContext* ctx, const ferry::v1::HeadRequest*,
                    ferry::v1::HeadResponse*) override {
    absl::StatusOr<ferry::v1::ListJobNotesResponse> notes =
        forward->git.Call(&GitWriterStub::ListJobNotes, ferry::v1::ListJobNotesRequest(),
                          forward->ForRequest(*ctx, /*await_peer=*/false));
    return grpc::Status(static_cast<grpc::StatusCode>(notes.status().code()),
                        std::string(notes.status().message()));
  }

  // Waits until ListJobNotes holds (true) or ended (false); false when that did not happen.
  bool WaitHolding(bool holding) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(20), [&] { return holding_ == holding; });
  }
  bool cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }
  absl::Time deadline() {
    std::lock_guard<std::mutex> lock(mu_);
    return deadline_;
  }

  PeerClients* forward = nullptr;

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool holding_ = false;
  bool cancelled_ = false;
  absl::Time deadline_;
};

class PeersOverLoopbackTest : public PeersTest {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_GT(port_, 0);
    address_ = absl::StrCat("127.0.0.1:", port_);
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = ferry::v1::GitWriter::NewStub(channel_);
    clients_ =
        std::make_unique<PeerClients>(Peers{*stub_, registry_, cluster_}, cancel_, JobTimeouts{},
                                      PeerLinks{{address_, channel_}, {}, {}});
    fake_.forward = clients_.get();
  }
  void TearDown() override { server_->Shutdown(); }

  HoldingGitWriter fake_;
  int port_ = 0;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ferry::v1::GitWriter::Stub> stub_;
  std::unique_ptr<PeerClients> clients_;
};

// A job's call in progress ends CANCELLED when the api shuts down, and no later one starts.
TEST_F(PeersOverLoopbackTest, JobCallsAreCancelledAtShutdown) {
  absl::Status status;
  std::thread job([&] {
    status = clients_->git
                 .Call(&GitWriterStub::ListJobNotes, ferry::v1::ListJobNotesRequest(),
                       clients_->ForStage(Stage::kCommit))
                 .status();
  });
  ASSERT_TRUE(fake_.WaitHolding(true));
  cancel_.CancelAll();
  job.join();
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kCancelled, ::testing::StartsWith("git-writer: ")));
  ASSERT_TRUE(fake_.WaitHolding(false));
  EXPECT_TRUE(fake_.cancelled()) << "the peer saw the cancellation";

  absl::StatusOr<ferry::v1::HeadResponse> later = clients_->git.Call(
      &GitWriterStub::Head, ferry::v1::HeadRequest(), clients_->ForStage(Stage::kPlanning));
  EXPECT_THAT(later, StatusIs(absl::StatusCode::kCancelled));
}

// A request's own call carries the caller's (earlier) deadline and ends when the caller
// hangs up.
TEST_F(PeersOverLoopbackTest, ARequestsCallsFollowTheirCaller) {
  grpc::ClientContext caller;
  caller.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ferry::v1::HeadResponse head;
  grpc::Status status;
  std::thread request([&] { status = stub_->Head(&caller, ferry::v1::HeadRequest(), &head); });
  ASSERT_TRUE(fake_.WaitHolding(true));
  // (gRPC rounds a deadline it sends up a little.)
  EXPECT_LE(fake_.deadline(), absl::Now() + absl::Seconds(11)) << "the caller's deadline, not 30 s";
  EXPECT_GT(fake_.deadline(), absl::Now() + absl::Seconds(5));
  caller.TryCancel();
  request.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
  ASSERT_TRUE(fake_.WaitHolding(false));
  EXPECT_TRUE(fake_.cancelled()) << "the caller's cancellation reached the peer";
}

}  // namespace
}  // namespace ferry::api
