#include "lib/runtime/start_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ferry::runtime {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const ComponentDefaults kDefaults{"test-service", 3030, 9791};

struct TestFlags {
  ServerFlags server;
  std::string greeting = "hello";
};

struct TestConfig {
  ServerOptions server;
  std::string greeting;
};

void AddTestFlags(CLI::App& app, TestFlags& flags) {
  AddServerFlags(app, kDefaults, flags.server);
  app.add_option("--greeting", flags.greeting, "What to say");
}

absl::StatusOr<TestConfig> ToTestConfig(const TestFlags& flags) {
  absl::StatusOr<ServerOptions> server = ToServerOptions(kDefaults, flags.server);
  if (!server.ok()) return server.status();
  if (flags.greeting == "bye")
    return absl::InvalidArgumentError("--greeting: 'bye' is no greeting");
  return TestConfig{*std::move(server), flags.greeting};
}

using Start = ServiceStart<TestFlags, TestConfig>;

constexpr char kDescription[] = "ferry-test-service: a service for ServiceStart's tests";

// Runs a ServiceStart over `args` (without the program name) with `options`, capturing
// stdout and stderr into `out` and `err`, and whether SIGTERM was blocked then into
// `sigterm_blocked`. The test thread's signal mask is restored afterwards.
struct Launch {
  explicit Launch(std::vector<const char*> args, const Start::Options& options = {}) {
    args.insert(args.begin(), "ferry-test-service");
    sigset_t before;
    pthread_sigmask(SIG_SETMASK, nullptr, &before);
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    start = std::make_unique<Start>(static_cast<int>(args.size()), const_cast<char**>(args.data()),
                                    kDefaults, kDescription, AddTestFlags, ToTestConfig, options);
    out = ::testing::internal::GetCapturedStdout();
    err = ::testing::internal::GetCapturedStderr();
    sigset_t after;
    pthread_sigmask(SIG_SETMASK, &before, &after);
    sigterm_blocked = sigismember(&after, SIGTERM) == 1;
  }
  std::unique_ptr<Start> start;
  std::string out;
  std::string err;
  bool sigterm_blocked = false;
};

// A file holding `content` in the test's temporary directory.
std::string WriteFile(const std::string& name, const std::string& content) {
  const std::filesystem::path path = std::filesystem::path(::testing::TempDir()) / name;
  std::ofstream(path) << content;
  return path.string();
}

TEST(ServiceStartTest, ValidFlagsStartWithTheServicesConfig) {
  Launch r({"--grpc_address=127.0.0.1:0", "--greeting=hi"});
  ASSERT_TRUE(r.start->ok()) << r.err;
  EXPECT_EQ(r.start->config().greeting, "hi");
  EXPECT_EQ(r.start->config().server.grpc_address.ToString(), "127.0.0.1:0");
  EXPECT_EQ(r.start->config().server.component, "test-service");
  EXPECT_EQ(r.start->program(), "ferry-test-service");
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(r.sigterm_blocked) << "BlockShutdownSignals() is the start's first step";
}

TEST(ServiceStartTest, UnknownFlagIsAUsageErrorExitTwo) {
  Launch r({"--greting=hi"});
  EXPECT_FALSE(r.start->ok());
  EXPECT_EQ(r.start->exit_code(), 2);
  EXPECT_THAT(r.err, StartsWith("ferry-test-service: "));
  EXPECT_THAT(r.err, HasSubstr("--greting"));
  EXPECT_THAT(r.err, HasSubstr("Run with --help for usage."));
}

TEST(ServiceStartTest, HelpAndVersionExitZero) {
  Launch help({"--help"});
  EXPECT_FALSE(help.start->ok());
  EXPECT_EQ(help.start->exit_code(), 0);
  EXPECT_THAT(help.out, HasSubstr(kDescription));
  EXPECT_THAT(help.out, HasSubstr("--greeting"));
  Launch version({"--version"});
  EXPECT_FALSE(version.start->ok());
  EXPECT_EQ(version.start->exit_code(), 0);
  EXPECT_NE(version.out, "");
}

TEST(ServiceStartTest, InvalidConfigurationExitsTwoWithTheProgramAndMessage) {
  Launch bye({"--grpc_address=127.0.0.1:0", "--greeting=bye"});
  EXPECT_FALSE(bye.start->ok());
  EXPECT_EQ(bye.start->exit_code(), 2);
  EXPECT_EQ(bye.err, "ferry-test-service: --greeting: 'bye' is no greeting\n");
  Launch address({"--grpc_address=nonsense"});
  EXPECT_EQ(address.start->exit_code(), 2);
  EXPECT_THAT(address.err,
              StartsWith("ferry-test-service: --grpc_address: invalid address 'nonsense'"));
}

TEST(ServiceStartTest, MainsOwnConfigurationErrorsExitTwoTheSameWay) {
  Launch r({"--grpc_address=127.0.0.1:0"});
  ASSERT_TRUE(r.start->ok()) << r.err;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(r.start->ConfigError(absl::InvalidArgumentError("--tokens_path: unreadable")), 2);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "ferry-test-service: --tokens_path: unreadable\n");
}

TEST(ServiceStartTest, InternalServiceRefusesUnauthenticatedCallersBeyondLoopback) {
  Launch refused({"--grpc_address=0.0.0.0:0"}, {.internal = true});
  EXPECT_FALSE(refused.start->ok());
  EXPECT_EQ(refused.start->exit_code(), 2);
  EXPECT_THAT(refused.err,
              StartsWith("ferry-test-service: --grpc_address 0.0.0.0:0 is not a loopback"));
  // The same flags start a service that authenticates its callers itself.
  Launch open({"--grpc_address=0.0.0.0:0"});
  EXPECT_TRUE(open.start->ok()) << open.err;
  // With a peer token, the internal service requires it of its callers.
  const std::string token_flag =
      "--peer_token_path=" + WriteFile("peer_token", "0123456789abcdef0123\n");
  Launch authenticated({"--grpc_address=0.0.0.0:0", token_flag.c_str()}, {.internal = true});
  ASSERT_TRUE(authenticated.start->ok()) << authenticated.err;
  EXPECT_EQ(authenticated.start->config().server.caller_token, "0123456789abcdef0123");
}

TEST(ServiceStartTest, TheConfigurationIsCheckedBeforeTheCallers) {
  Launch r({"--grpc_address=0.0.0.0:0", "--greeting=bye"}, {.internal = true});
  EXPECT_EQ(r.start->exit_code(), 2);
  EXPECT_EQ(r.err, "ferry-test-service: --greeting: 'bye' is no greeting\n");
}

TEST(ServiceStartTest, PeerOptionsAreReadOnlyForAServiceThatCallsPeers) {
  const std::string token_flag =
      "--peer_token_path=" + WriteFile("peer_token_for_peers", "abcdefghijklmnopqrstuvwxyz");
  Launch r({"--grpc_address=127.0.0.1:0", token_flag.c_str(), "--grpc_max_message_bytes=1048576"},
           {.calls_peers = true});
  ASSERT_TRUE(r.start->ok()) << r.err;
  EXPECT_EQ(r.start->peer().token, "abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(r.start->peer().max_message_bytes, 1048576);
  EXPECT_EQ(r.start->peer().tls_ca_path, "");

  const std::vector<const char*> unreadable = {"--grpc_address=127.0.0.1:0",
                                               "--peer_tls_ca_path=/nonexistent/ca.pem"};
  Launch refused(unreadable, {.calls_peers = true});
  EXPECT_EQ(refused.start->exit_code(), 2);
  EXPECT_THAT(refused.err, StartsWith("ferry-test-service: --peer_tls_ca_path"));
  // A service that calls no peer does not read the --peer_* flags.
  Launch ignored(unreadable);
  EXPECT_TRUE(ignored.start->ok()) << ignored.err;
}

TEST(ServiceStartTest, AfterParseRunsBeforeTheConfigurationAndItsExitCodeEndsTheStart) {
  std::string seen;
  const Start::Options child{.after_parse = [&seen](const TestFlags& flags) -> std::optional<int> {
    seen = flags.greeting;
    if (flags.greeting == "child") return 7;
    return std::nullopt;
  }};
  // An invalid configuration would exit 2: the hook's code comes first.
  Launch ended({"--grpc_address=nonsense", "--greeting=child"}, child);
  EXPECT_FALSE(ended.start->ok());
  EXPECT_EQ(ended.start->exit_code(), 7);
  EXPECT_EQ(seen, "child");
  EXPECT_EQ(ended.err, "");
  Launch went_on({"--grpc_address=127.0.0.1:0", "--greeting=service"}, child);
  EXPECT_EQ(seen, "service");
  ASSERT_TRUE(went_on.start->ok()) << went_on.err;
  EXPECT_EQ(went_on.start->config().greeting, "service");
}

}  // namespace
}  // namespace ferry::runtime
