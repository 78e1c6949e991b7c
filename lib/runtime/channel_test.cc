// ChannelTo with a replica list: calls go only to the replicas whose "leader" check is SERVING
// (gRPC client-side health checking), following changes, and fail UNAVAILABLE
// while none is.
// Two real servers on loopback; which one answered is told by the branch it reports.
#include "lib/runtime/channel.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/runtime/server.h"
#include "lib/status/status_matchers.h"

namespace ferry::runtime {
namespace {

// Answers Head with its own name as the branch.
class NamedGitWriter final : public ferry::v1::GitWriter::Service {
 public:
  explicit NamedGitWriter(std::string name) : name_(std::move(name)) {}
  grpc::Status Head(grpc::ServerContext*, const ferry::v1::HeadRequest*,
                    ferry::v1::HeadResponse* response) override {
    response->set_branch(name_);
    return grpc::Status::OK;
  }

 private:
  const std::string name_;
};

ServerOptions LoopbackOptions() {
  ServerOptions options;
  options.component = "test";
  options.grpc_address = {"127.0.0.1", 0};
  options.metrics_address = {"127.0.0.1", 0};
  options.drain_timeout = absl::Milliseconds(300);
  return options;
}

// Who answered Head on `channel` ("" with the failure's code in `code`).
std::string WhoAnswers(const std::shared_ptr<grpc::Channel>& channel, bool wait_for_ready,
                       grpc::StatusCode* code = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ctx.set_wait_for_ready(wait_for_ready);
  ferry::v1::HeadResponse head;
  grpc::Status s = ferry::v1::GitWriter::NewStub(channel)->Head(&ctx, {}, &head);
  if (code != nullptr) *code = s.error_code();
  return s.ok() ? head.branch() : "";
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

TEST(ChannelToTest, AReplicaListSendsCallsOnlyToTheReadyReplica) {
  EXPECT_FALSE(IsReplicaList("127.0.0.1:3031"));
  EXPECT_FALSE(IsReplicaList("ferry-git-writer:3031"));
  EXPECT_TRUE(IsReplicaList("ipv4:127.0.0.1:3031,127.0.0.1:3041"));
  EXPECT_TRUE(IsReplicaList("dns:///ferry-git-writer-replicas:3031"));

  NamedGitWriter a_service("a"), b_service("b");
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<Server>> a = Server::Start(
      LoopbackOptions(), {{&a_service, ferry::v1::GitWriter::service_full_name()}}, registry);
  FERRY_ASSERT_OK(a);
  absl::StatusOr<std::unique_ptr<Server>> b =
      Server::Start(LoopbackOptions(), {{&b_service, ferry::v1::GitWriter::service_full_name()}},
                    std::make_shared<prometheus::Registry>());
  FERRY_ASSERT_OK(b);
  (*a)->SetServingStatus(kLeaderHealthName, false);
  (*b)->SetServingStatus(kLeaderHealthName, true);

  auto channel = ChannelTo(
      absl::StrCat("ipv4:127.0.0.1:", (*a)->grpc_port(), ",127.0.0.1:", (*b)->grpc_port()),
      PeerOptions{});
  for (int i = 0; i < 8; ++i) EXPECT_EQ(WhoAnswers(channel, /*wait_for_ready=*/true), "b") << i;

  // Leadership moves: the calls follow the readiness.
  (*b)->SetServingStatus(kLeaderHealthName, false);
  (*a)->SetServingStatus(kLeaderHealthName, true);
  ASSERT_TRUE(WaitFor([&] { return WhoAnswers(channel, true) == "a"; }, absl::Seconds(10)));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(WhoAnswers(channel, true), "a") << i;

  // None ready (an election under way): UNAVAILABLE, at once without wait_for_ready.
  (*a)->SetServingStatus(kLeaderHealthName, false);
  grpc::StatusCode code = grpc::StatusCode::OK;
  EXPECT_TRUE(WaitFor(
      [&] {
        WhoAnswers(channel, /*wait_for_ready=*/false, &code);
        return code == grpc::StatusCode::UNAVAILABLE;
      },
      absl::Seconds(10)))
      << code;
}

// A DNS name (a headless Service in Kubernetes) is a replica list too: a replica that is not
// ready gets no call.
TEST(ChannelToTest, ADnsTargetSendsCallsOnlyToAReadyReplica) {
  NamedGitWriter service("only");
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(LoopbackOptions(), {{&service, ferry::v1::GitWriter::service_full_name()}},
                    std::make_shared<prometheus::Registry>());
  FERRY_ASSERT_OK(server);
  (*server)->SetServingStatus(kLeaderHealthName, false);
  auto channel =
      ChannelTo(absl::StrCat("dns:///127.0.0.1:", (*server)->grpc_port()), PeerOptions{});
  grpc::StatusCode code = grpc::StatusCode::OK;
  EXPECT_TRUE(WaitFor(
      [&] {
        EXPECT_EQ(WhoAnswers(channel, /*wait_for_ready=*/false, &code), "");
        return code == grpc::StatusCode::UNAVAILABLE;
      },
      absl::Seconds(10)))
      << code;
  (*server)->SetServingStatus(kLeaderHealthName, true);
  EXPECT_TRUE(WaitFor([&] { return WhoAnswers(channel, true) == "only"; }, absl::Seconds(10)));
}

}  // namespace
}  // namespace ferry::runtime
