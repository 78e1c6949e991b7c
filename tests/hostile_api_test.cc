// ferry-api against hostile requests and peers that are down or stuck, as deployed: the real
// api and git-writer binaries on loopback, a real git repo, and in place of cluster-syncer
// either a port that refuses connections, a listener that never completes a connection, or
// a gRPC server that takes SyncNow calls and never answers them.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/ports.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using testing::Running;
using testing::StartArgv;

constexpr char kWorkload[] = "shop:deployment/web";

std::string Deployment() {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n"
         "spec:\n  replicas: 0\n  selector: {matchLabels: {app: web}}\n  template:\n"
         "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
         "      - name: app\n        image: registry.example.com/team/web:1.0.0\n";
}

// A cluster-syncer that lists the workload as running and takes SyncNow calls without ever
// answering them (until the caller gives up or the server shuts down).
class StuckSyncer final : public ferry::v1::ClusterSyncer::Service {
 public:
  StuckSyncer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~StuckSyncer() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  grpc::Status ListWorkloads(grpc::ServerContext*, const ferry::v1::ListClusterWorkloadsRequest*,
                             ferry::v1::ListClusterWorkloadsResponse* response) override {
    response->add_workloads()->set_id(kWorkload);
    return grpc::Status::OK;
  }

  grpc::Status SyncNow(grpc::ServerContext* context, const ferry::v1::SyncNowRequest*,
                       ferry::v1::SyncResult*) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++sync_calls_;
    changed_.notify_all();
    // The caller's deadline or cancellation, or the server's shutdown, ends the call.
    while (!context->IsCancelled()) changed_.wait_for(lock, std::chrono::milliseconds(20));
    return grpc::Status(grpc::StatusCode::CANCELLED, "given up");
  }

  // Waits until `n` SyncNow calls arrived; false after `timeout`.
  bool WaitForSyncCalls(int n, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                             [&] { return sync_calls_ >= n; });
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::condition_variable changed_;
  int sync_calls_ = 0;
};

// A TCP listener that never accepts: connections complete in the kernel, but no gRPC
// handshake ever answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 64) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~SilentListener() { close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A loopback address that refuses connections (a port bound and closed again).
std::string Refusing() { return "127.0.0.1:" + std::to_string(testing::FreeLoopbackPort()); }

// A real git-writer on a repo with one workload, and an api in front of it.
struct Stack {
  std::unique_ptr<testing::GitRepo> repo;
  Running git, api;
  std::unique_ptr<ferry::v1::Ferry::Stub> stub;

  void StartGitWriter() {
    auto created = testing::GitRepo::Create({{"apps/web.yaml", Deployment()}});
    FERRY_ASSERT_OK(created);
    repo = *std::move(created);
    StartArgv({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
               "--git_url=" + repo->url(), "--state_dir=" + repo->dir() + "/state",
               "--git_poll_interval=1h"},
              git);
    ASSERT_GT(git.grpc_port, 0);
  }

  // Starts the api with `git_writer` and `cluster_syncer` addresses and `extra` flags; the
  // registry-scanner address refuses connections (nothing here needs it).
  void StartApi(const std::string& git_writer, const std::string& cluster_syncer,
                const std::vector<std::string>& extra) {
    api.process.reset();
    std::vector<std::string> argv = {FERRY_API_BIN,
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--git_writer_address=" + git_writer,
                                     "--cluster_syncer_address=" + cluster_syncer,
                                     "--registry_scanner_address=" + Refusing(),
                                     "--no_automation"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    StartArgv(argv, api);
    ASSERT_GT(api.grpc_port, 0);
    stub = ferry::v1::Ferry::NewStub(api.Channel());
  }

  // Both, the api in front of `cluster_syncer`.
  void StartGitWriterAndApi(const std::string& cluster_syncer) {
    StartGitWriter();
    if (git.grpc_port > 0) StartApi(git.GrpcTarget(), cluster_syncer, {});
  }

  grpc::Status UpdatePolicy(const ferry::v1::UpdatePolicyRequest& request, ferry::v1::Job* job) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub->UpdatePolicy(&ctx, request, job);
  }

  // A policy job that sets the app container's tag filter to `pattern`.
  grpc::Status SetFilter(const std::string& pattern, ferry::v1::Job* job) {
    ferry::v1::UpdatePolicyRequest request;
    auto* w = request.add_changes();
    w->set_workload(kWorkload);
    auto* filter = w->add_changes()->mutable_set_tag_filter();
    filter->set_container("app");
    filter->set_pattern(pattern);
    request.mutable_cause()->set_user("Alice <alice@example.com>");
    return UpdatePolicy(request, job);
  }

  std::optional<ferry::v1::Job> Get(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    ferry::v1::Job job;
    if (!stub->GetJob(&ctx, request, &job).ok()) return std::nullopt;
    return job;
  }

  // Follows a job until it finishes, or until `until` says stop, at most `timeout`.
  ferry::v1::Job Follow(const std::string& id, absl::Duration timeout,
                        const std::function<bool(const ferry::v1::Job&)>& until = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    ferry::v1::GetJobRequest request;
    request.set_id(id);
    auto stream = stub->WatchJob(&ctx, request);
    ferry::v1::Job job, last;
    while (stream->Read(&job)) {
      last = job;
      if (until && until(job)) {
        ctx.TryCancel();
        break;
      }
    }
    stream->Finish();
    return last;
  }

  int Commits() { return std::stoi(repo->Git("rev-list --count " + repo->branch())); }
};

bool Finished(const ferry::v1::Job& job) {
  return job.state() == ferry::v1::JOB_STATE_SUCCEEDED ||
         job.state() == ferry::v1::JOB_STATE_FAILED;
}

double Seconds(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to) {
  return static_cast<double>(to.seconds() - from.seconds()) + (to.nanos() - from.nanos()) / 1e9;
}

// With every worker on a job whose apply never answers, one more job queues, a dry run goes
// on at once in its own lane, and every stuck job fails at --job_apply_timeout with the
// peer, its address and the flag; none holds its worker longer.
TEST(HostileApiTest, JobsStuckOnAPeerEndAtTheirStageDeadlineAndADryRunDoesNotWait) {
  Stack stack;
  stack.StartGitWriter();
  if (HasFatalFailure()) return;
  StuckSyncer syncer;
  const int kApplyTimeout = 6;
  stack.StartApi(
      stack.git.GrpcTarget(), syncer.address(),
      {"--job_workers=2", "--peer_wait=2", "--job_apply_timeout=" + std::to_string(kApplyTimeout)});
  if (HasFatalFailure()) return;

  const absl::Time start = absl::Now();
  std::vector<std::string> ids;
  for (const char* pattern : {"semver:~1.1", "semver:~1.2", "semver:~1.3"}) {
    ferry::v1::Job job;
    grpc::Status s = stack.SetFilter(pattern, &job);
    FERRY_ASSERT_OK(s);
    ids.push_back(job.id());
  }
  // Both workers are now (or soon) stuck in SyncNow; the third job waits for one.
  ASSERT_TRUE(syncer.WaitForSyncCalls(2, absl::Seconds(30))) << stack.api.process->Output();

  ferry::v1::ReleaseRequest dry;
  dry.mutable_spec()->add_workloads(kWorkload);
  dry.mutable_spec()->set_image("registry.example.com/team/web:2.0.0");
  dry.mutable_spec()->set_force(true);  // no registry lookup
  dry.mutable_spec()->set_dry_run(true);
  ferry::v1::Job dry_job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status s = stack.stub->Release(&ctx, dry, &dry_job);
    FERRY_ASSERT_OK(s);
  }
  ferry::v1::Job planned = stack.Follow(dry_job.id(), absl::Seconds(30));
  EXPECT_EQ(planned.state(), ferry::v1::JOB_STATE_SUCCEEDED) << planned.DebugString();
  EXPECT_EQ(planned.results_size(), 1);
  EXPECT_EQ(planned.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  // It did not wait for a worker: the third policy job is still queued or running.
  std::optional<ferry::v1::Job> third = stack.Get(ids[2]);
  ASSERT_TRUE(third.has_value());
  EXPECT_FALSE(Finished(*third)) << "the dry run finished only after a stuck job: "
                                 << third->DebugString();
  EXPECT_LT(Seconds(planned.submitted(), planned.finished()), kApplyTimeout);

  for (const std::string& id : ids) {
    ferry::v1::Job done = stack.Follow(id, absl::Seconds(60));
    ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_FAILED) << done.DebugString();
    EXPECT_TRUE(absl::StrContains(done.error(), "committed ")) << done.error();
    EXPECT_TRUE(absl::StrContains(done.error(), "cluster-syncer at " + syncer.address() +
                                                    " did not answer: job apply stage over the "
                                                    "limit of 6 seconds (raise it with "
                                                    "--job_apply_timeout)"))
        << done.error();
  }
  // Two rounds of at most the apply timeout each (plus the commits), never more.
  const absl::Duration all = absl::Now() - start;
  EXPECT_LT(all, absl::Seconds(2 * kApplyTimeout + 10)) << all;
  EXPECT_EQ(stack.Commits(), 4) << "the three policy changes were committed, the dry run was not";
  std::cerr << "3 stuck jobs on 2 workers ended after " << all << "; the dry run took "
            << Seconds(planned.submitted(), planned.finished()) << "s\n";
}

// A cluster-syncer that refuses connections fails each job after --peer_wait, not after the
// stage's deadline; a git-writer that is down (refusing, or never completing a connection)
// makes UpdatePolicy answer UNAVAILABLE after --peer_wait, naming it and its address.
TEST(HostileApiTest, PeersThatAreDownFailJobsAndRequestsAfterPeerWait) {
  Stack stack;
  stack.StartGitWriter();
  if (HasFatalFailure()) return;
  const std::string refused = Refusing();
  stack.StartApi(stack.git.GrpcTarget(), refused, {"--job_workers=2", "--peer_wait=2"});
  if (HasFatalFailure()) return;

  const absl::Time start = absl::Now();
  std::vector<std::string> ids;
  for (const char* pattern : {"semver:~2.1", "semver:~2.2", "semver:~2.3"}) {
    ferry::v1::Job job;
    grpc::Status s = stack.SetFilter(pattern, &job);
    FERRY_ASSERT_OK(s);
    ids.push_back(job.id());
  }
  for (const std::string& id : ids) {
    ferry::v1::Job done = stack.Follow(id, absl::Seconds(60));
    ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_FAILED) << done.DebugString();
    EXPECT_TRUE(absl::StrContains(
        done.error(), "cluster-syncer at " + refused + " is not reachable: it refuses connections"))
        << done.error();
    EXPECT_TRUE(absl::StrContains(done.error(), "waited 2s (--peer_wait)")) << done.error();
  }
  const absl::Duration jobs = absl::Now() - start;
  EXPECT_LT(jobs, absl::Seconds(2 * 2 + 10)) << jobs;

  // git-writer down: the request's own check against git fails fast enough to answer.
  SilentListener silent;
  ASSERT_GT(silent.port(), 0);
  for (const std::string& down : {refused, silent.address()}) {
    stack.StartApi(down, refused, {"--peer_wait=2"});
    if (HasFatalFailure()) return;
    ferry::v1::Job job;
    const absl::Time asked = absl::Now();
    grpc::Status s = stack.SetFilter("semver:~3", &job);
    const absl::Duration took = absl::Now() - asked;
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                            AllOf(HasSubstr("git-writer at " + down + " is not reachable"),
                                  HasSubstr("(--peer_wait)"))));
    EXPECT_GE(took, absl::Seconds(1.9)) << "a peer that may be restarting is waited for";
    EXPECT_LT(took, absl::Seconds(2 + 4)) << took;
    std::cerr << "UpdatePolicy with git-writer at " << down << " down answered after " << took
              << "\n";
  }
}

// Misspelled filter kinds and control characters are refused before anything is committed.
TEST(HostileApiTest, UpdatePolicyRefusesFiltersThatWouldNeverMatch) {
  Stack stack;
  stack.StartGitWriterAndApi(Refusing());
  if (HasFatalFailure()) return;
  const std::string head = stack.repo->Head();
  struct Case {
    std::string pattern;
    bool tag_all;
    std::string message;
  };
  const Case cases[] = {
      {"semvr:^1.0", false, "unknown filter kind \"semvr\" (use glob:, semver:, regexp:"},
      {"foo:bar", false, "unknown filter kind \"foo\" (use glob:, semver:, regexp:"},
      {"foo:bar", true, "unknown filter kind \"foo\""},
      {"glob:semvr:^1.0", false, "has ':', which no tag contains"},
      {"main-*\nferry.dev/automated: \"true\"", false, "control character (\\n)"},
      {"regexp:^v\r", true, "control character (\\r)"},
  };
  for (const Case& c : cases) {
    ferry::v1::UpdatePolicyRequest request;
    auto* w = request.add_changes();
    w->set_workload(kWorkload);
    if (c.tag_all) {
      w->add_changes()->set_set_tag_all(c.pattern);
    } else {
      auto* filter = w->add_changes()->mutable_set_tag_filter();
      filter->set_container("app");
      filter->set_pattern(c.pattern);
    }
    ferry::v1::Job job;
    grpc::Status s = stack.UpdatePolicy(request, &job);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message))) << c.pattern;
    EXPECT_TRUE(job.id().empty()) << "no job for " << c.pattern;
  }
  // The same through ferryctl, as a person would type it.
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto ferryctl,
      testing::Subprocess::Start({FERRYCTL_BIN, "policy", "-w", kWorkload, "--tag",
                                  "app=semvr:^1.0", "--url=" + stack.api.GrpcTarget()}));
  std::optional<int> code = ferryctl->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0) << ferryctl->Output();
  EXPECT_TRUE(absl::StrContains(ferryctl->Output(),
                                "unknown filter kind \"semvr\" (use glob:, semver:, regexp:"))
      << ferryctl->Output();

  EXPECT_EQ(stack.repo->Head(), head) << "nothing committed";
  EXPECT_EQ(stack.Commits(), 1);
}

// The requesting user and message become a commit's author and message: refused at the
// api's edge, before a job exists, when they could not be written.
TEST(HostileApiTest, ACauseThatCannotBeCommittedIsRefusedBeforeAJobExists) {
  Stack stack;
  stack.StartGitWriterAndApi(Refusing());
  if (HasFatalFailure()) return;
  const std::string head = stack.repo->Head();
  struct Case {
    std::string user;
    std::string message;
    std::string expected;
  };
  const Case cases[] = {
      {"Eve\ncommitter Mallory <m@example.com>", "", "cause.user: "},
      {"Eve <eve@example.com> <x@example.com>", "", "cause.user: "},
      {"<eve@example.com>", "", "cause.user: "},
      {"Alice", std::string("build\0 7", 8), "cause.message: "},
      {"Alice", std::string(70 * 1024, 'x'), "cause.message: "},
  };
  for (const Case& c : cases) {
    ferry::v1::UpdatePolicyRequest policy;
    auto* w = policy.add_changes();
    w->set_workload(kWorkload);
    w->add_changes()->set_automate(true);
    policy.mutable_cause()->set_user(c.user);
    policy.mutable_cause()->set_message(c.message);
    ferry::v1::Job job;
    grpc::Status s = stack.UpdatePolicy(policy, &job);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(c.expected))) << c.user;

    ferry::v1::ReleaseRequest release;
    release.mutable_spec()->add_workloads(kWorkload);
    release.mutable_spec()->set_image("registry.example.com/team/web:2.0.0");
    release.mutable_spec()->set_force(true);
    *release.mutable_cause() = policy.cause();
    grpc::ClientContext ctx;
    s = stack.stub->Release(&ctx, release, &job);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(c.expected))) << c.user;
  }
  grpc::ClientContext ctx;
  ferry::v1::ListJobsResponse jobs;
  FERRY_ASSERT_OK(stack.stub->ListJobs(&ctx, {}, &jobs));
  EXPECT_EQ(jobs.jobs_size(), 0) << "no job was created";
  EXPECT_EQ(stack.repo->Head(), head);
}

// SIGTERM while a job waits on a peer that never answers: the api cancels the job and exits
// within --drain_timeout, not after the job's apply timeout. Exit code 0 is the check: a stop
// still running kStopGrace after the drain is ended by the watchdog with code 1.
TEST(HostileApiTest, SigtermWithAJobStuckOnAPeerExitsWithinTheDrainTimeout) {
  Stack stack;
  stack.StartGitWriter();
  if (HasFatalFailure()) return;
  StuckSyncer syncer;
  stack.StartApi(stack.git.GrpcTarget(), syncer.address(), {"--drain_timeout=2s"});
  if (HasFatalFailure()) return;
  ferry::v1::Job job;
  grpc::Status s = stack.SetFilter("semver:~4", &job);
  FERRY_ASSERT_OK(s);
  ASSERT_TRUE(syncer.WaitForSyncCalls(1, absl::Seconds(30))) << stack.api.process->Output();

  const absl::Time signalled = absl::Now();
  stack.api.process->Signal(SIGTERM);
  // The drain, the watchdog's grace (runtime::kStopGrace, 5 s), and room for a busy machine.
  std::optional<int> code = stack.api.process->Wait(absl::Seconds(2 + 5 + 3));
  const absl::Duration took = absl::Now() - signalled;
  ASSERT_TRUE(code.has_value()) << "still running " << took << " after SIGTERM\n"
                                << stack.api.process->Output();
  EXPECT_EQ(*code, 0) << stack.api.process->Output();
  std::cerr << "exited " << took << " after SIGTERM with a stuck job\n";
}

}  // namespace
}  // namespace ferry
