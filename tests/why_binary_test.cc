// `ferryctl why` end to end (issue 19): a real registry holds the tags, the registry-scanner
// lists them, git-writer reads the workload with its tag filter and soak time from a real
// git repo, and the api explains every tag through the real ferryctl binary.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/status/status_matchers.h"
#include "tests/stack.h"
#include "tests/support/subprocess.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::Image;
using testing::Stack;
using testing::StartStack;

std::string Config(absl::Time created) {
  return absl::StrCat(R"({"architecture":"amd64","os":"linux","created":")",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", created, absl::UTCTimeZone()),
                      R"("})");
}

TEST(WhyBinaryTest, FerryctlWhyExplainsEveryTagAndWhatAutomationDoesNext) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  const absl::Time day = absl::FromCivil(absl::CivilDay(2024, 1, 1), absl::UTCTimeZone());
  // The running 1.2.1; 1.2.5 the best old enough under ~1.2; 1.2.0 below the running one;
  // 1.3.0 outside the filter; 1.2.9 pushed just now, soaking for an hour.
  const std::vector<std::pair<std::string, absl::Time>> tags = {{"1.2.0", day},
                                                                {"1.2.1", day + absl::Hours(24)},
                                                                {"1.2.5", day + absl::Hours(48)},
                                                                {"1.3.0", day + absl::Hours(72)},
                                                                {"1.2.9", absl::Now()}};
  for (const auto& [tag, created] : tags) {
    FERRY_ASSERT_OK(stack.registry->PushImage("team/why", tag, Config(created))) << tag;
  }
  StartStack(stack,
             {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: why}\n"},
              {"apps/app.yaml", Deployment("why", "app", Image(stack, "team/why", "1.2.1"),
                                           "    ferry.dev/automated: \"true\"\n"
                                           "    ferry.dev/tag.app: semver:~1.2\n"
                                           "    ferry.dev/min-age: 1h\n")}},
             "why");
  if (HasFatalFailure()) return;
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);

  FERRY_ASSERT_OK_AND_ASSIGN(
      auto p, testing::Subprocess::Start({FERRYCTL_BIN, "why", "-w", "deployment/app", "-n", "why",
                                          "--url=" + stack.api.GrpcTarget()}));
  ASSERT_EQ(p->Wait(absl::Seconds(60)), 0) << p->Output();
  const std::string out = p->Output();
  for (const std::string& want : {
           std::string("Workload:   why:deployment/app\n"),
           std::string("Automation: on\n"),
           std::string("Filter:    semver:~1.2\n"),
           std::string("Min age:   1h\n"),
           std::string("Next:      release 1.2.5 at automation's next pass; then 1.2.9 once it "
                       "has soaked, at "),
           std::string("1.2.5  chosen              1     03 Jan 24 00:00 UTC  the best eligible "
                       "tag under semver:~1.2, above the running 1.2.1\n"),
           std::string("1.2.1  current             2     "),
           std::string("1.2.9  too-young           -     "),
           std::string("1.2.0  older-than-current  3     "),
           std::string("1.3.0  filtered            -     04 Jan 24 00:00 UTC  outside "
                       "semver:~1.2"),
       }) {
    EXPECT_TRUE(absl::StrContains(out, want)) << "want: " << want << "\n" << out;
  }
  // The chosen tag first, the filtered one last.
  EXPECT_LT(out.find("1.2.5  chosen"), out.find("1.2.1  current")) << out;
  EXPECT_LT(out.find("1.2.0  older"), out.find("1.3.0  filtered")) << out;

  // An unknown container: exit code 3 (not found), naming the containers there are.
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto missing,
      testing::Subprocess::Start({FERRYCTL_BIN, "why", "-w", "why:deployment/app", "-c", "sidecar",
                                  "--url=" + stack.api.GrpcTarget()}));
  EXPECT_EQ(missing->Wait(absl::Seconds(60)), 3) << missing->Output();
  EXPECT_TRUE(absl::StrContains(missing->Output(), "(its containers: app)")) << missing->Output();
}

}  // namespace
}  // namespace ferry
