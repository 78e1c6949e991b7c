#include "lib/runtime/flags.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

namespace ferry::runtime {
namespace {

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
  ASSERT_TRUE(options.ok()) << options.status();
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
    ASSERT_FALSE(options.ok()) << c.prefix;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(options.status().message().substr(0, std::string_view(c.prefix).size()), c.prefix)
        << options.status().message();
  }
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
