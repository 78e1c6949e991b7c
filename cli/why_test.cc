// ferryctl why against a generated mock of ferry.v1.Ferry: the request it sends, the table,
// json, and exit codes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "ferry/v1/api_mock.grpc.pb.h"

namespace ferry::cli {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::SaveArg;
using ::testing::SetArgPointee;

ferry::v1::ExplainTagsResponse Answer() {
  ferry::v1::ExplainTagsResponse r;
  r.set_workload("default:deployment/app");
  ferry::v1::ContainerExplanation* c = r.add_containers();
  c->set_container("app");
  c->set_current_image("registry.test/team/app:1.0.0");
  c->set_repository("registry.test/team/app");
  c->set_tag_filter("semver:~1");
  c->set_min_age("2h");
  c->set_next("release 1.2.0 at automation's next pass");
  c->set_omitted(7);
  auto add = [c](const std::string& tag, ferry::v1::TagVerdict v, int rank,
                 const std::string& reason) {
    ferry::v1::TagExplanation* t = c->add_tags();
    t->set_tag(tag);
    t->set_verdict(v);
    t->set_rank(rank);
    t->set_reason(reason);
    t->mutable_created()->set_seconds(1'468'934'340);  // 19 Jul 16 13:19 UTC
  };
  add("1.2.0", ferry::v1::TAG_VERDICT_CHOSEN, 1, "the best eligible tag under semver:~1");
  add("1.0.0", ferry::v1::TAG_VERDICT_CURRENT, 2, "running");
  add("1.3.0", ferry::v1::TAG_VERDICT_TOO_YOUNG, 0, "soaking until 2016-07-19T15:19:00Z");
  add("2.0.0", ferry::v1::TAG_VERDICT_FILTERED, 0, "outside semver:~1");
  return r;
}

class WhyTest : public ::testing::Test {
 protected:
  int Run(const WhyOptions& options) {
    Env env{stub_, client_, out_, err_, false};
    return RunWhy(options, env);
  }
  ferry::v1::MockFerryStub stub_;
  ClientOptions client_;
  std::stringstream out_, err_;
};

TEST_F(WhyTest, PrintsEachContainersNextStepAndItsTagsVerdicts) {
  ferry::v1::ExplainTagsRequest sent;
  EXPECT_CALL(stub_, ExplainTags(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&sent), SetArgPointee<2>(Answer()), Return(grpc::Status::OK)));
  WhyOptions options;
  options.workload = "deployment/app";  // the namespace from -n
  options.namespace_ = "default";
  options.container = "app";
  EXPECT_EQ(Run(options), kExitOk) << err_.str();
  EXPECT_EQ(sent.workload(), "default:deployment/app");
  EXPECT_EQ(sent.container(), "app");
  EXPECT_EQ(out_.str(),
            "Workload:   default:deployment/app\n"
            "Automation: on\n"
            "\n"
            "Container: app\n"
            "Image:     registry.test/team/app:1.0.0\n"
            "Filter:    semver:~1\n"
            "Min age:   2h\n"
            "Next:      release 1.2.0 at automation's next pass\n"
            "TAG    VERDICT    RANK  CREATED              DETAIL\n"
            "1.2.0  chosen     1     19 Jul 16 13:19 UTC  the best eligible tag under semver:~1\n"
            "1.0.0  current    2     19 Jul 16 13:19 UTC  running\n"
            "1.3.0  too-young  -     19 Jul 16 13:19 UTC  soaking until 2016-07-19T15:19:00Z\n"
            "2.0.0  filtered   -     19 Jul 16 13:19 UTC  outside semver:~1\n"
            "(7 more tag(s) omitted; --limit shows more)\n");
}

TEST_F(WhyTest, JsonIsTheAnswerAndBlockedAutomationIsSaid) {
  ferry::v1::ExplainTagsResponse blocked = Answer();
  blocked.set_automation_blocked("locked by alice: incident");
  EXPECT_CALL(stub_, ExplainTags(_, _, _))
      .WillRepeatedly(DoAll(SetArgPointee<2>(blocked), Return(grpc::Status::OK)));
  WhyOptions options;
  options.workload = "default:deployment/app";
  EXPECT_EQ(Run(options), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Automation: blocked: locked by alice: incident\n"));
  out_.str("");
  options.output = "json";
  EXPECT_EQ(Run(options), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\"verdict\": \"TAG_VERDICT_TOO_YOUNG\""));
  EXPECT_THAT(out_.str(), HasSubstr("\"automationBlocked\": \"locked by alice: incident\""));
}

TEST_F(WhyTest, ExitCodesSayWhatWentWrong) {
  WhyOptions options;
  EXPECT_EQ(Run(options), kExitUsage) << "no workload";
  options.workload = "default:deployment/app";
  options.output = "xml";
  EXPECT_EQ(Run(options), kExitUsage);
  options.output = "table";
  // The limit goes to the server as given; its range is the server's to check.
  options.limit = 1001;
  EXPECT_CALL(stub_, ExplainTags(_, _, _))
      .WillOnce(Invoke([](grpc::ClientContext*, const ferry::v1::ExplainTagsRequest& request,
                          ferry::v1::ExplainTagsResponse*) {
        EXPECT_EQ(request.limit(), 1001);
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: 0 (100) to 1000 tags");
      }))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    "workload default:deployment/app has no container x")))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")));
  EXPECT_EQ(Run(options), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("limit: 0 (100) to 1000 tags"));
  options.limit = 0;
  EXPECT_EQ(Run(options), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("has no container x"));
  EXPECT_EQ(Run(options), kExitUnavailable);
}

// Registered as main.cc does, `why` and its flags are in the completion scripts, and it
// runs.
TEST(WhyCommandTest, IsOfferedByShellCompletion) {
  CLI::App app{"ferryctl", "ferryctl"};
  ClientOptions client;
  int exit_code = 0;
  const StubFactory connect = [] {
    return absl::StatusOr<std::unique_ptr<ferry::v1::Ferry::StubInterface>>(
        absl::UnavailableError("not in this test"));
  };
  AddApiCommands(app, client, connect, exit_code, "test");
  AddWhyCommand(app, client, connect, exit_code);
  absl::StatusOr<std::string> bash = CompletionScript(app, "bash");
  ASSERT_TRUE(bash.ok()) << bash.status();
  size_t arm = bash->find("    why) COMPREPLY=");
  ASSERT_NE(arm, std::string::npos) << *bash;
  const std::string line = bash->substr(arm, bash->find('\n', arm) - arm);
  for (const char* flag : {"--workload", "-w", "--container", "-c", "--limit", "--output"}) {
    EXPECT_THAT(line, HasSubstr(std::string(" ") + flag)) << line;
  }
  // Run: it connects, and reports the connection's failure in its exit code.
  app.parse("why -w default:deployment/app", false);
  EXPECT_EQ(exit_code, kExitUnavailable);
}

}  // namespace
}  // namespace ferry::cli
