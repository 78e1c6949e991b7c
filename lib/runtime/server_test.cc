#include "lib/runtime/server.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "ferry/v1/api.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "lib/runtime/channel.h"
#include "lib/runtime/signals.h"
#include "lib/runtime/version_header.h"
#include "lib/status/status_matchers.h"
#include "tests/support/http.h"

namespace ferry::runtime {
namespace {

using ::ferry::testing::StatusIs;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

ServerOptions LoopbackOptions() {
  ServerOptions options;
  options.component = "test";
  options.grpc_address = {"127.0.0.1", 0};
  options.metrics_address = {"127.0.0.1", 0};
  options.drain_timeout = absl::Milliseconds(300);
  return options;
}

std::unique_ptr<Health::Stub> HealthStub(int port) {
  return Health::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

TEST(ServerTest, ServesHealthAndMetricsOnPickedPorts) {
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(LoopbackOptions(), {}, registry);
  FERRY_ASSERT_OK(server);
  ASSERT_GT((*server)->grpc_port(), 0);
  ASSERT_GT((*server)->metrics_port(), 0);

  grpc::ClientContext ctx;
  HealthCheckResponse response;
  grpc::Status status = HealthStub((*server)->grpc_port())->Check(&ctx, {}, &response);
  FERRY_ASSERT_OK(status);
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  absl::StatusOr<testing::HttpResponse> metrics = testing::HttpGet(
      "http://127.0.0.1:" + std::to_string((*server)->metrics_port()) + "/metrics");
  FERRY_ASSERT_OK(metrics);
  EXPECT_EQ(metrics->status, 200);
  const std::string& body = metrics->body;
  EXPECT_NE(body.find("ferry_grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Check\","
                      "grpc_service=\"grpc.health.v1.Health\",grpc_type=\"unary\"} 1"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("ferry_grpc_server_handling_seconds_count{grpc_method=\"Check\""),
            std::string::npos);
  EXPECT_NE(body.find("ferry_build_info{component=\"test\""), std::string::npos);
  EXPECT_NE(body.find("process_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(body.find("process_open_fds "), std::string::npos);
  EXPECT_NE(body.find("ferry_process_heap_in_use_bytes "), std::string::npos);
  EXPECT_NE(body.find("ferry_process_heap_free_bytes "), std::string::npos);
}

TEST(ServerTest, UnbuiltRpcsAnswerUnimplementedNamingTheMethodAndAnswersCarryTheVersion) {
  // The generated base class: every RPC is "not built".
  ferry::v1::Ferry::Service bare;
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(LoopbackOptions(), {{&bare, ferry::v1::Ferry::service_full_name()}}, registry);
  FERRY_ASSERT_OK(server);
  auto stub = ferry::v1::Ferry::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->grpc_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ferry::v1::Job job;
  grpc::Status status = stub->GetJob(&ctx, ferry::v1::GetJobRequest(), &job);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnimplemented,
                               HasSubstr("ferry.v1.Ferry/GetJob is not implemented in this build "
                                         "of Ferry (" +
                                         std::string(Version()) + ")")));

  grpc::ClientContext health_ctx;
  HealthCheckResponse response;
  FERRY_ASSERT_OK(HealthStub((*server)->grpc_port())->Check(&health_ctx, {}, &response));
  auto version = health_ctx.GetServerInitialMetadata().find(kVersionHeader);
  ASSERT_NE(version, health_ctx.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(version->second.data(), version->second.size()), Version());
}

TEST(ServerTest, ACallerTokenIsRequiredFromEveryCallButHealth) {
  ferry::v1::Ferry::Service bare;
  ServerOptions options = LoopbackOptions();
  options.caller_token = "peer-token-0123456789";
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(options, {{&bare, ferry::v1::Ferry::service_full_name()}}, registry);
  FERRY_ASSERT_OK(server);
  const std::string target = "127.0.0.1:" + std::to_string((*server)->grpc_port());
  auto call = [&](const std::string& token) {
    PeerOptions peer;
    peer.token = token;
    auto stub = ferry::v1::Ferry::NewStub(ChannelTo(target, peer));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ferry::v1::Job job;
    return stub->GetJob(&ctx, ferry::v1::GetJobRequest(), &job);
  };
  grpc::Status none = call("");
  EXPECT_THAT(none, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("--peer_token_path")));
  grpc::Status wrong = call("peer-token-9999999999");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("peer-token"))));
  // Past the check: the service itself answers.
  EXPECT_THAT(call("peer-token-0123456789"), StatusIs(absl::StatusCode::kUnimplemented));

  grpc::ClientContext health_ctx;
  HealthCheckResponse response;
  grpc::Status health = HealthStub((*server)->grpc_port())->Check(&health_ctx, {}, &response);
  FERRY_ASSERT_OK(health);
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
}

TEST(ServerTest, AHealthOnlyPortServesHealthAndNothingElse) {
  ferry::v1::Ferry::Service bare;
  ServerOptions options = LoopbackOptions();
  options.health_address = ListenAddress{"127.0.0.1", 0};
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(options, {{&bare, ferry::v1::Ferry::service_full_name()}}, registry);
  FERRY_ASSERT_OK(server);
  ASSERT_GT((*server)->health_port(), 0);
  grpc::ClientContext ctx;
  HealthCheckRequest request;
  request.set_service(ferry::v1::Ferry::service_full_name());
  HealthCheckResponse response;
  FERRY_ASSERT_OK(HealthStub((*server)->health_port())->Check(&ctx, request, &response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  auto stub = ferry::v1::Ferry::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->health_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext job_ctx;
  ferry::v1::Job job;
  grpc::Status status = stub->GetJob(&job_ctx, ferry::v1::GetJobRequest(), &job);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kUnimplemented, Not(HasSubstr("in this build of Ferry"))))
      << "the Ferry service must not be on the health port";
}

TEST(ServerTest, AMessageOverTheLimitFailsNamingTheFlag) {
  ServerOptions options = LoopbackOptions();
  options.max_message_bytes = 1024;
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, {}, registry);
  FERRY_ASSERT_OK(server);
  PeerOptions peer;
  peer.max_message_bytes = 1 << 20;
  auto stub =
      Health::NewStub(ChannelTo("127.0.0.1:" + std::to_string((*server)->grpc_port()), peer));
  HealthCheckRequest request;
  request.set_service(std::string(2000, 'x'));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&ctx, request, &response);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("--grpc_max_message_bytes")));
  // Within the limit, the same call goes through.
  request.set_service(std::string(100, 'x'));
  grpc::ClientContext small_ctx;
  EXPECT_THAT(stub->Check(&small_ctx, request, &response), StatusIs(absl::StatusCode::kNotFound));
}

TEST(ServerTest, UnknownServiceHealthIsNotFound) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = Server::Start(LoopbackOptions(), {}, registry);
  FERRY_ASSERT_OK(server);
  grpc::ClientContext ctx;
  HealthCheckRequest request;
  request.set_service("ferry.v1.NoSuchService");
  HealthCheckResponse response;
  grpc::Status status = HealthStub((*server)->grpc_port())->Check(&ctx, request, &response);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound));
}

TEST(ServerTest, PortInUseIsFailedPreconditionNamingTheAddress) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = Server::Start(LoopbackOptions(), {}, registry);
  FERRY_ASSERT_OK(first);

  ServerOptions grpc_clash = LoopbackOptions();
  grpc_clash.grpc_address.port = (*first)->grpc_port();
  auto second = Server::Start(grpc_clash, {}, std::make_shared<prometheus::Registry>());
  ASSERT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr(grpc_clash.grpc_address.ToString())));

  ServerOptions metrics_clash = LoopbackOptions();
  metrics_clash.metrics_address.port = (*first)->metrics_port();
  auto third = Server::Start(metrics_clash, {}, std::make_shared<prometheus::Registry>());
  EXPECT_THAT(third, StatusIs(absl::StatusCode::kFailedPrecondition,
                              HasSubstr("cannot serve metrics on " +
                                        metrics_clash.metrics_address.ToString())));
}

TEST(ServerTest, ShutdownTurnsHealthNotServingThenStops) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = Server::Start(LoopbackOptions(), {}, registry);
  FERRY_ASSERT_OK(server);
  auto stub = HealthStub((*server)->grpc_port());

  grpc::ClientContext watch_ctx;
  auto watch = stub->Watch(&watch_ctx, {});
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);

  std::thread stopper([&] { (*server)->Shutdown(); });
  // The watcher is an in-flight RPC: it sees NOT_SERVING before the server goes away.
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  stopper.join();
  while (watch->Read(&update)) {
  }
  EXPECT_THAT(watch->Finish(), ::testing::Not(::ferry::testing::IsOk()));

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  HealthCheckResponse response;
  EXPECT_THAT(stub->Check(&ctx, {}, &response), StatusIs(absl::StatusCode::kUnavailable));
  (*server)->Shutdown();  // idempotent
}

// Streams dropped without Finish (their contexts destroyed right after a cancel) while
// CancelPeerCalls runs over and over on another thread: the set holds references on the
// calls, so a call is never cancelled after its context released it (with the contexts in
// the set, TryCancel could reach a freed call; AddressSanitizer reports that). Every call
// leaves the set.
TEST(ServerTest, CancelPeerCallsIsSafeWhileStreamsAreDroppedWithoutFinish) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = Server::Start(LoopbackOptions(), {}, registry);
  FERRY_ASSERT_OK(server);
  auto stub = Health::NewStub(
      ChannelTo("127.0.0.1:" + std::to_string((*server)->grpc_port()), PeerOptions{}));
  const size_t before = PeerCallsInProgress();
  std::atomic<bool> done{false};
  std::thread canceller([&] {
    while (!done.load()) CancelPeerCalls();
  });
  int read = 0;
  for (int i = 0; i < 300; ++i) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    auto watch = stub->Watch(ctx.get(), {});
    HealthCheckResponse update;
    if (watch->Read(&update)) ++read;  // false when the canceller got there first
    ctx->TryCancel();
    watch.reset();  // no Finish
    ctx.reset();
  }
  done.store(true);
  canceller.join();
  EXPECT_EQ(PeerCallsInProgress(), before);

  // A stream in progress is cancelled by CancelPeerCalls, and leaves the set with its status.
  grpc::ClientContext ctx;
  auto watch = stub->Watch(&ctx, {});
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(PeerCallsInProgress(), before + 1);
  CancelPeerCalls();
  while (watch->Read(&update)) {
  }
  EXPECT_THAT(watch->Finish(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(PeerCallsInProgress(), before);
}

// A clean stop whose process then takes longer than the drain deadline + kStopGrace (what
// runs after main() returns: static destructors, exit handlers) exits 0: the stop watchdog
// ends with the StopGuard main() keeps.
TEST(ServeUntilSignalDeathTest, TheStopWatchdogEndsWithItsGuard) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        BlockShutdownSignals();
        {
          StopGuard guard;
          ServerOptions options = LoopbackOptions();
          options.drain_timeout = absl::Milliseconds(100);
          kill(getpid(), SIGTERM);  // pending until ServeUntilSignal waits for it
          if (ServeUntilSignal(options, {}, std::make_shared<prometheus::Registry>()) != 0) {
            std::_Exit(3);
          }
        }
        absl::SleepFor(absl::Milliseconds(100) + kStopGrace + absl::Seconds(1));
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// While the guard lives, the watchdog bounds the stop, teardown in main() included: at the
// drain deadline it calls ServerOptions::at_drain_deadline, kStopGrace later it exits 1.
TEST(ServeUntilSignalDeathTest, WhileItsGuardLivesTheStopWatchdogBoundsTheTeardown) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        BlockShutdownSignals();
        StopGuard guard;
        ServerOptions options = LoopbackOptions();
        options.drain_timeout = absl::Milliseconds(100);
        options.at_drain_deadline = [] { std::fprintf(stderr, "at the drain deadline\n"); };
        kill(getpid(), SIGTERM);
        if (ServeUntilSignal(options, {}, std::make_shared<prometheus::Registry>()) != 0) {
          std::_Exit(3);
        }
        absl::SleepFor(absl::Milliseconds(100) + kStopGrace + absl::Seconds(10));  // hangs
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(1), "at the drain deadline.*stop took too long");
}

}  // namespace
}  // namespace ferry::runtime
