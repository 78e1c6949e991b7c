#include "lib/runtime/address.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::runtime {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ParseListenAddressTest, AcceptsHostPortForms) {
  struct Case {
    const char* text;
    const char* host;
    int port;
  };
  for (const Case& c :
       {Case{"127.0.0.1:3030", "127.0.0.1", 3030}, Case{"0.0.0.0:0", "0.0.0.0", 0},
        Case{"localhost:9791", "localhost", 9791}, Case{"[::1]:65535", "::1", 65535},
        Case{"ferry-api.ferry.svc:3030", "ferry-api.ferry.svc", 3030}}) {
    absl::StatusOr<ListenAddress> a = ParseListenAddress(c.text);
    FERRY_ASSERT_OK(a) << c.text;
    EXPECT_EQ(a->host, c.host);
    EXPECT_EQ(a->port, c.port);
    EXPECT_EQ(a->ToString(), c.text);
  }
}

TEST(ParseListenAddressTest, RejectsWithReason) {
  struct Case {
    const char* text;
    const char* reason;
  };
  for (const Case& c :
       {Case{"3030", "no port"}, Case{"127.0.0.1", "no port"}, Case{":3030", "no host"},
        Case{"127.0.0.1:", "port must be a number"},
        Case{"127.0.0.1:70000", "port must be a number"},
        Case{"127.0.0.1:-1", "port must be a number"},
        Case{"127.0.0.1:30x", "port must be a number"},
        Case{"::1:3030", "IPv6 hosts need brackets"}, Case{"[::1:3030", "missing ']'"},
        Case{"[::1]3030", "missing ':PORT'"}, Case{"[zz]:1", "not an IPv6 address"},
        Case{"ho st:1", "characters not allowed"}}) {
    absl::StatusOr<ListenAddress> a = ParseListenAddress(c.text);
    EXPECT_THAT(a, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr(c.reason), HasSubstr("expected HOST:PORT"))))
        << c.text;
  }
}

}  // namespace
}  // namespace ferry::runtime
