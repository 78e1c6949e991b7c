#include "lib/runtime/flags.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "lib/status/status_matchers.h"

namespace ferry::runtime {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const ComponentDefaults kDefaults{"api", 3030, 9791};

// Parses `args` (without program name) into flags; returns ParseCommandLine's result.
std::optional<int> Parse(std::vector<const char*> args, ServerFlags& flags) {
  CLI::App app{"test", "ferry-api"};
  AddServerFlags(app, kDefaults, flags);
  args.insert(args.begin(), "ferry-api");
  return ParseCommandLine(app, static_cast<int>(args.size()), const_cast<char**>(args.data()));
}

TEST(ServerFlagsTest, DefaultsListenOnEveryInterfaceOnComponentPorts) {
  ServerFlags flags;
  ASSERT_EQ(Parse({}, flags), std::nullopt);
  absl::StatusOr<ServerOptions> options = ToServerOptions(kDefaults, flags);
  FERRY_ASSERT_OK(options);
  EXPECT_EQ(options->grpc_address.ToString(), "0.0.0.0:3030");
  EXPECT_EQ(options->metrics_address.ToString(), "0.0.0.0:9791");
  EXPECT_EQ(options->drain_timeout, absl::Seconds(15));
  EXPECT_EQ(options->component, "api");
}

TEST(ServerFlagsTest, CommandLineBeatsEnvironment) {
  setenv("FERRY_GRPC_ADDRESS", "127.0.0.1:4000", 1);
  setenv("FERRY_METRICS_ADDRESS", "127.0.0.1:4001", 1);
  ServerFlags flags;
  ASSERT_EQ(Parse({"--grpc_address=127.0.0.1:0"}, flags), std::nullopt);
  unsetenv("FERRY_GRPC_ADDRESS");
  unsetenv("FERRY_METRICS_ADDRESS");
  EXPECT_EQ(flags.grpc_address, "127.0.0.1:0");
  EXPECT_EQ(flags.metrics_address, "127.0.0.1:4001");
}

TEST(ServerFlagsTest, InvalidValuesNameTheFlag) {
  struct Case {
    std::vector<const char*> args;
    const char* prefix;
  };
  for (const Case& c :
       {Case{{"--grpc_address=nonsense"}, "--grpc_address: invalid address 'nonsense'"},
        Case{{"--metrics_address=1.2.3.4:99999"}, "--metrics_address: invalid address"},
        Case{{"--drain_timeout=soon"}, "--drain_timeout: 'soon' is not a duration"},
        Case{{"--log_format=xml"}, "--log_format: unknown log format 'xml'"},
        Case{{"--log_level=loud"}, "--log_level: unknown log level 'loud'"},
        Case{{"--grpc_address=127.0.0.1:5000", "--metrics_address=127.0.0.1:5000"},
             "--metrics_address: 127.0.0.1:5000 is also the --grpc_address"}}) {
    ServerFlags flags;
    ASSERT_EQ(Parse(c.args, flags), std::nullopt);
    absl::StatusOr<ServerOptions> options = ToServerOptions(kDefaults, flags);
    EXPECT_THAT(options, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(c.prefix)));
  }
}

TEST(ServerFlagsTest, InternalServicesRefuseUnauthenticatedCallersBeyondLoopback) {
  ServerFlags flags;
  ASSERT_EQ(Parse({"--grpc_address=0.0.0.0:3031"}, flags), std::nullopt);
  absl::StatusOr<ServerOptions> options = ToServerOptions(kDefaults, flags);
  FERRY_ASSERT_OK(options);
  absl::Status refused = AuthenticateInternalCallers(flags, *options);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument));
  for (const char* flag : {"--tls_client_ca_path", "--peer_token_path",
                           "--insecure_allow_unauthenticated", "0.0.0.0:3031"}) {
    EXPECT_NE(refused.message().find(flag), std::string::npos) << refused.message();
  }
  flags.insecure_allow_unauthenticated = true;
  FERRY_EXPECT_OK(AuthenticateInternalCallers(flags, *options));

  // With a token file: required from callers, and sent to peers.
  char dir[] = "/tmp/ferry-flags-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string token_path = std::string(dir) + "/token";
  std::ofstream(token_path) << "peer-token-0123456789\n";
  flags.insecure_allow_unauthenticated = false;
  flags.peer_token_path = token_path;
  FERRY_EXPECT_OK(AuthenticateInternalCallers(flags, *options));
  EXPECT_EQ(options->caller_token, "peer-token-0123456789");
  absl::StatusOr<PeerOptions> peer = ToPeerOptions(flags);
  FERRY_ASSERT_OK(peer);
  EXPECT_EQ(peer->token, "peer-token-0123456789");
  EXPECT_EQ(peer->max_message_bytes, 16 << 20);

  std::ofstream(token_path) << "short\n";
  absl::Status short_token = ToPeerOptions(flags).status();
  EXPECT_THAT(short_token,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--peer_token_path"), Not(HasSubstr("short")))));
  std::filesystem::remove_all(dir);

  // Loopback (local mode, run-local.sh and the tests) needs nothing.
  ServerFlags local;
  ASSERT_EQ(Parse({"--grpc_address=127.0.0.1:0"}, local), std::nullopt);
  absl::StatusOr<ServerOptions> local_options = ToServerOptions(kDefaults, local);
  FERRY_ASSERT_OK(local_options);
  FERRY_EXPECT_OK(AuthenticateInternalCallers(local, *local_options));
}

TEST(ServerFlagsTest, TlsFilesAreCheckedAtStart) {
  ServerFlags flags;
  ASSERT_EQ(
      Parse({"--tls_cert_path=/nonexistent/tls.crt", "--tls_key_path=/nonexistent/tls.key"}, flags),
      std::nullopt);
  absl::Status unreadable = ToServerOptions(kDefaults, flags).status();
  EXPECT_THAT(unreadable, StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("--tls_cert_path: cannot read /nonexistent/tls.crt")));
  ServerFlags ca_only;
  ASSERT_EQ(Parse({"--tls_client_ca_path=/nonexistent/ca.crt"}, ca_only), std::nullopt);
  EXPECT_THAT(ToServerOptions(kDefaults, ca_only), StatusIs(absl::StatusCode::kInvalidArgument));
  ServerFlags peer_half;
  ASSERT_EQ(Parse({"--peer_tls_cert_path=/nonexistent/c.crt"}, peer_half), std::nullopt);
  EXPECT_THAT(ToPeerOptions(peer_half), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ServerFlagsTest, UnknownFlagIsUsageErrorExitTwo) {
  ServerFlags flags;
  EXPECT_EQ(Parse({"--no_such_flag=1"}, flags), 2);
}

TEST(ServerFlagsTest, HelpAndVersionExitZero) {
  ServerFlags flags;
  EXPECT_EQ(Parse({"--version"}, flags), 0);
  EXPECT_EQ(Parse({"--help"}, flags), 0);
}

}  // namespace
}  // namespace ferry::runtime
