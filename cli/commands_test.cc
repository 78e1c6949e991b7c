// ferryctl's api commands against a generated mock of ferry.v1.Ferry: golden outputs (table
// and json), argument checks before any call, exit codes, job following, the Drone mapping.
// FERRY_UPDATE_GOLDEN=1 rewrites the golden files.
#include "cli/commands.h"

#include <gmock/gmock.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/exit_codes.h"
#include "ferry/v1/api_mock.grpc.pb.h"
#include "lib/status/status_matchers.h"

namespace ferry::cli {
namespace {

using ::ferry::testing::IsOk;
using ::testing::_;
using ::testing::Contains;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Not;
using ::testing::Return;
using ::testing::SaveArg;
using ::testing::SetArgPointee;

// Compares `actual` with testdata/<name>, or rewrites it when FERRY_UPDATE_GOLDEN is set.
void ExpectGolden(const std::string& actual, const std::string& name) {
  const std::string path = std::string(FERRYCTL_TESTDATA) + "/" + name;
  if (std::getenv("FERRY_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << actual;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "no golden file " << path << " (run with FERRY_UPDATE_GOLDEN=1)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(actual, want.str()) << "golden file " << name;
}

google::protobuf::Timestamp At(int64_t seconds, int32_t millis = 0) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(millis * 1000000);
  return t;
}

class CommandsTest : public ::testing::Test {
 protected:
  int Run(const std::function<int(Env&)>& command) {
    out_.str("");
    err_.str("");
    Env env{stub_, client_, out_, err_, false};
    return command(env);
  }

  // A WatchJob stream answering `states` in turn.
  void StreamJob(const std::vector<ferry::v1::Job>& states) {
    auto* reader = new grpc::testing::MockClientReader<ferry::v1::Job>();
    auto& read = EXPECT_CALL(*reader, Read(_));
    for (const auto& s : states) read.WillOnce(DoAll(SetArgPointee<0>(s), Return(true)));
    read.WillRepeatedly(Return(false));
    EXPECT_CALL(*reader, Finish()).WillOnce(Return(grpc::Status::OK));
    EXPECT_CALL(stub_, WatchJobRaw(_, _)).WillOnce(Return(reader));
  }

  static ferry::v1::JobStage Stage(ferry::v1::JobStageKind kind, int millis,
                                   const std::string& message = "",
                                   const std::string& revision = "") {
    ferry::v1::JobStage s;
    s.set_kind(kind);
    *s.mutable_time() = At(1700000000, millis);
    s.set_message(message);
    s.set_revision(revision);
    return s;
  }

  // A release job in three steps: planning, committed, done.
  std::vector<ferry::v1::Job> ReleaseStates(bool fail_one = false) {
    ferry::v1::Job job;
    job.set_id("5f0c7c7e-1b2a-4c3d-8e9f-0a1b2c3d4e5f");
    job.set_kind(ferry::v1::JOB_KIND_RELEASE);
    job.set_state(ferry::v1::JOB_STATE_RUNNING);
    *job.mutable_submitted() = At(1700000000);
    *job.add_stages() = Stage(ferry::v1::JOB_STAGE_KIND_SUBMITTED, 0);
    *job.add_stages() =
        Stage(ferry::v1::JOB_STAGE_KIND_PLANNING, 4, "reading git, the cluster and the registry");
    std::vector<ferry::v1::Job> states = {job};
    auto* ok = job.add_results();
    ok->set_workload("default:deployment/helloworld");
    ok->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
    auto* u = ok->add_updates();
    u->set_container("helloworld");
    u->set_from_image("quay.io/weaveworks/helloworld:master-a000001");
    u->set_to_image("quay.io/weaveworks/helloworld:master-a000002");
    auto* locked = job.add_results();
    locked->set_workload("default:deployment/locked");
    locked->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED);
    locked->set_reason("locked");
    auto* other = job.add_results();
    other->set_workload("sock-shop:deployment/front-end");
    other->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED);
    other->set_reason("not included");
    const std::string rev = "35e789d64067ef55a810c96cd053b0cc106852df";
    *job.add_stages() = Stage(ferry::v1::JOB_STAGE_KIND_COMMIT_PUSHED, 166, "", rev);
    job.set_revision(rev);
    states.push_back(job);
    *job.add_stages() =
        Stage(ferry::v1::JOB_STAGE_KIND_APPLIED, 207, "1 applied, 3 unchanged, 0 failed", rev);
    if (fail_one) {
      ok->set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
      ok->set_reason("committed, but the cluster refused it: admission webhook denied the request");
      job.mutable_results(0)->CopyFrom(*ok);
    }
    *job.add_stages() =
        Stage(ferry::v1::JOB_STAGE_KIND_DONE, 208, "committed and applied 35e789d64067");
    job.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
    *job.mutable_finished() = At(1700000000, 208);
    states.push_back(job);
    return states;
  }

  ::testing::StrictMock<ferry::v1::MockFerryStub> stub_;
  ClientOptions client_;
  std::ostringstream out_;
  std::ostringstream err_;
};

ferry::v1::ListWorkloadsResponse Workloads() {
  ferry::v1::ListWorkloadsResponse r;
  r.set_revision("35e789d64067ef55a810c96cd053b0cc106852df");
  auto add = [&](const std::string& id,
                 std::vector<std::pair<std::string, std::string>> containers) {
    auto* w = r.add_workloads();
    w->set_id(id);
    for (const auto& [name, image] : containers) {
      auto* c = w->add_containers();
      c->set_name(name);
      c->set_image(image);
    }
    return w;
  };
  auto* hello = add("default:deployment/helloworld",
                    {{"helloworld", "quay.io/weaveworks/helloworld:master-a000001"},
                     {"sidecar", "quay.io/weaveworks/sidecar:master-a000001"}});
  hello->mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_READY);
  hello->mutable_policy()->set_automated(true);
  auto* rolling = add("default:deployment/a-workload-with-a-rather-long-name-for-the-column",
                      {{"app", "registry.example.com:5000/team/app:1.2.3"}});
  rolling->mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_UPDATING);
  rolling->mutable_rollout()->set_desired(3);
  rolling->mutable_rollout()->set_updated(1);
  rolling->mutable_rollout()->set_ready(2);
  rolling->mutable_policy()->set_locked(true);
  rolling->set_sync_error("admission webhook denied the request");
  auto* broken = add("default:statefulset/db", {{"postgres", "postgres:15"}});
  broken->mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_ERROR);
  broken->mutable_rollout()->add_messages("progress deadline exceeded");
  broken->mutable_policy()->set_ignore(ferry::v1::IGNORE_MODE_SYNC_ONLY);
  auto* manual = add("default:deployment/manual", {{"manual", "nginx:1.25"}});
  manual->set_read_only(ferry::v1::READ_ONLY_REASON_NOT_IN_REPO);
  manual->mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_READY);
  return r;
}

TEST_F(CommandsTest, ListWorkloadsTableAndJson) {
  ferry::v1::ListWorkloadsRequest asked;
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .Times(3)
      .WillRepeatedly(
          DoAll(SaveArg<1>(&asked), SetArgPointee<2>(Workloads()), Return(grpc::Status::OK)));
  ListWorkloadsOptions options;
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk);
  EXPECT_EQ(asked.namespace_(), "default");
  ExpectGolden(out_.str(), "list_workloads.txt");
  options.all_namespaces = true;
  options.output = "json";
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk);
  EXPECT_EQ(asked.namespace_(), "");
  ExpectGolden(out_.str(), "list_workloads.json");
  options.output = "table";
  options.no_headers = true;
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk);
  EXPECT_EQ(out_.str().rfind("default:deployment/helloworld", 0), 0u) << "no header line";
}

// git-writer's --git_verify_signatures held an unsigned head back: a warning on stderr (the
// table and -o json stay as they are), none without it.
TEST_F(CommandsTest, ListWorkloadsWarnsWhenTheGitHeadIsNotVerified) {
  ferry::v1::ListWorkloadsResponse held = Workloads();
  held.set_git_verify_error("upstream head 0123456789ab is not served: the commit is not signed");
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(held), Return(grpc::Status::OK)))
      .WillOnce(DoAll(SetArgPointee<2>(Workloads()), Return(grpc::Status::OK)));
  ListWorkloadsOptions options;
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk);
  EXPECT_EQ(err_.str(),
            "ferryctl: warning: signature check (--git_verify_signatures): upstream head "
            "0123456789ab is not served: the commit is not signed; listing the last verified "
            "revision 35e789d64067\n");
  ExpectGolden(out_.str(), "list_workloads.txt");
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk);
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CommandsTest, ListWorkloadsFollowsEveryPageAndPrintsOneList) {
  // The api answers in pages: the first two workloads, then the other two.
  ferry::v1::ListWorkloadsResponse first = Workloads();
  ferry::v1::ListWorkloadsResponse second = first;
  first.mutable_workloads()->DeleteSubrange(2, 2);
  first.set_next_page_token("page-2");
  second.mutable_workloads()->DeleteSubrange(0, 2);
  second.set_revision("later");
  std::vector<ferry::v1::ListWorkloadsRequest> asked;
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(Invoke([&](auto*, const auto& r, auto*) { asked.push_back(r); }),
                      SetArgPointee<2>(first), Return(grpc::Status::OK)))
      .WillOnce(DoAll(Invoke([&](auto*, const auto& r, auto*) { asked.push_back(r); }),
                      SetArgPointee<2>(second), Return(grpc::Status::OK)));
  ListWorkloadsOptions options;
  options.output = "json";
  options.all_namespaces = true;
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk) << err_.str();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[0].page_token(), "");
  EXPECT_EQ(asked[1].page_token(), "page-2");
  // The same output as one answer of the four: the first page's revision, no token.
  ExpectGolden(out_.str(), "list_workloads.json");

  // A failing page fails the command; nothing is printed as if the list were whole.
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(first), Return(grpc::Status::OK)))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: stale")));
  EXPECT_NE(Run([&](Env& env) { return RunListWorkloads(options, env); }), kExitOk);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), HasSubstr("page_token: stale"));
}

TEST_F(CommandsTest, ListImagesTree) {
  ferry::v1::ListImagesResponse r;
  auto* w = r.add_workloads();
  w->set_workload("default:deployment/helloworld");
  auto* c = w->add_containers();
  c->set_container("helloworld");
  c->set_current_image("quay.io/weaveworks/helloworld:master-a000003");
  // 8 tags, the running one sixth: limit 3 shows 3, "(2 image(s) omitted)", the running
  // one, then "(2 image(s) omitted)" for the rest.
  for (int i = 8; i >= 1; --i) {
    auto* t = c->add_tags();
    t->mutable_info()->set_tag("master-a00000" + std::to_string(i));
    *t->mutable_info()->mutable_created() = At(1468999140 + i * 3600);
    t->set_current(i == 3);
    t->set_matches_filter(true);
  }
  auto* side = w->add_containers();
  side->set_container("sidecar");
  side->set_current_image("quay.io/weaveworks/sidecar:gone");
  auto* t = side->add_tags();
  t->mutable_info()->set_tag("master-a000001");
  auto* missing = w->add_containers();
  missing->set_container("private");
  missing->set_current_image("registry.example.com/private/app:1");
  missing->set_error("registry-scanner: registry.example.com: 401 Unauthorized");
  ferry::v1::ListImagesRequest asked;
  EXPECT_CALL(stub_, ListImages(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(r), Return(grpc::Status::OK)));
  ListImagesOptions options;
  options.workload = "deployment/helloworld";
  options.limit = 3;
  EXPECT_EQ(Run([&](Env& env) { return RunListImages(options, env); }), kExitOk) << err_.str();
  EXPECT_EQ(asked.workload(), "default:deployment/helloworld");
  EXPECT_EQ(asked.limit(), 0) << "the table places the running tag itself";
  ExpectGolden(out_.str(), "list_images.txt");
}

// A server's answer with a value the JSON mapping cannot write (a creation time past year 9999):
// -o json and -o yaml fail with a message and write nothing; the table still shows it.
TEST_F(CommandsTest, AnAnswerWithNoJsonFormFailsStructuredOutputOnly) {
  ferry::v1::ListImagesResponse r;
  auto* w = r.add_workloads();
  w->set_workload("default:deployment/helloworld");
  auto* c = w->add_containers();
  c->set_container("helloworld");
  c->set_current_image("quay.io/weaveworks/helloworld:1");
  auto* t = c->add_tags();
  t->mutable_info()->set_tag("1");
  *t->mutable_info()->mutable_created() = At(int64_t{1} << 40);
  EXPECT_CALL(stub_, ListImages(_, _, _))
      .Times(3)
      .WillRepeatedly(DoAll(SetArgPointee<2>(r), Return(grpc::Status::OK)));
  ListImagesOptions options;
  options.workload = "deployment/helloworld";
  for (const char* output : {"json", "yaml"}) {
    options.output = output;
    EXPECT_EQ(Run([&](Env& env) { return RunListImages(options, env); }), kExitError) << output;
    EXPECT_EQ(out_.str(), "") << output;
    EXPECT_THAT(err_.str(), HasSubstr("no JSON form")) << output;
  }
  options.output = "table";
  EXPECT_EQ(Run([&](Env& env) { return RunListImages(options, env); }), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("helloworld"));
}

TEST_F(CommandsTest, ReleaseFollowsTheJobAndPrintsItsResults) {
  ferry::v1::ReleaseRequest asked;
  ferry::v1::Job submitted = ReleaseStates()[0];
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(submitted), Return(grpc::Status::OK)));
  StreamJob(ReleaseStates());
  ReleaseOptions options;
  options.workloads = {"deployment/helloworld"};
  options.image = "quay.io/weaveworks/helloworld:master-a000002";
  options.user = "Alice <alice@example.com>";
  options.message = "build 42";
  options.verbosity = 1;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitOk);
  EXPECT_THAT(asked.spec().workloads(), ::testing::ElementsAre("default:deployment/helloworld"));
  EXPECT_EQ(asked.spec().image(), options.image);
  EXPECT_EQ(asked.cause().user(), "Alice <alice@example.com>");
  EXPECT_EQ(asked.cause().message(), "build 42");
  ExpectGolden(out_.str(), "release.txt");
  ExpectGolden(err_.str(), "release.stderr.txt");
}

TEST_F(CommandsTest, AFailedWorkloadFailsTheCommand) {
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(ReleaseStates()[0]), Return(grpc::Status::OK)));
  StreamJob(ReleaseStates(/*fail_one=*/true));
  ReleaseOptions options;
  options.all = true;
  options.update_all_images = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitJobFailed);
  EXPECT_THAT(out_.str(), HasSubstr("admission webhook denied"));
}

// -o json of a job whose JSON cannot be written: the error on stderr, and the job's failure
// still decides the exit code; a job that succeeded exits 1 (its output could not be given).
TEST_F(CommandsTest, AJobWithNoJsonFormKeepsItsExitCode) {
  for (const bool fail : {true, false}) {
    EXPECT_CALL(stub_, Release(_, _, _))
        .WillOnce(DoAll(SetArgPointee<2>(ReleaseStates()[0]), Return(grpc::Status::OK)));
    std::vector<ferry::v1::Job> states = ReleaseStates(/*fail_one=*/fail);
    states.back().mutable_finished()->set_seconds(int64_t{1} << 40);
    StreamJob(states);
    ReleaseOptions options;
    options.all = true;
    options.update_all_images = true;
    options.output = "json";
    EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }),
              fail ? kExitJobFailed : kExitError);
    EXPECT_EQ(out_.str(), "");
    EXPECT_THAT(err_.str(), HasSubstr("no JSON form"));
  }
}

TEST_F(CommandsTest, BadArgumentsAreRefusedBeforeAnyCall) {
  // StrictMock: any call fails the test.
  struct Case {
    std::function<void(ReleaseOptions&)> change;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](ReleaseOptions& o) { o.workloads.clear(); }, "--workload=namespace:kind/name"},
      {[](ReleaseOptions& o) { o.all = true; }, "not both"},
      {[](ReleaseOptions& o) { o.image.clear(); },
       "--update-image=repo:tag or --update-all-images"},
      {[](ReleaseOptions& o) { o.update_all_images = true; }, "not both"},
      {[](ReleaseOptions& o) { o.workloads = {"helloworld"}; }, "helloworld"},
      {[](ReleaseOptions& o) { o.output = "xml"; }, "table, json or yaml"},
  };
  for (const Case& c : cases) {
    ReleaseOptions options;
    options.workloads = {"default:deployment/helloworld"};
    options.image = "quay.io/weaveworks/helloworld:master-a000002";
    c.change(options);
    EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitUsage) << c.message;
    EXPECT_THAT(err_.str(), HasSubstr(c.message));
  }
  PolicyOptions policy;
  policy.workloads = {"default:deployment/helloworld"};
  policy.automate = policy.deautomate = true;
  EXPECT_EQ(Run([&](Env& env) { return RunPolicy(policy, env); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--automate and --deautomate contradict each other"));
  policy = PolicyOptions();
  policy.workloads = {"default:deployment/helloworld"};
  policy.tags = {"app"};
  EXPECT_EQ(Run([&](Env& env) { return RunPolicy(policy, env); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("CONTAINER=PATTERN"));
  client_.timeout = "soon";
  EXPECT_EQ(Run([&](Env& env) { return RunSync(SyncOptions(), env); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--timeout"));
}

TEST_F(CommandsTest, ServerErrorsMapToExitCodesWithHints) {
  struct Case {
    grpc::StatusCode code;
    int exit;
    std::string hint;
  };
  for (const Case& c : std::vector<Case>{
           {grpc::StatusCode::NOT_FOUND, kExitNotFound, "namespace nope has no workloads"},
           {grpc::StatusCode::UNAUTHENTICATED, kExitDenied, "--token or FERRY_TOKEN"},
           {grpc::StatusCode::PERMISSION_DENIED, kExitDenied, "namespace nope has no workloads"},
           {grpc::StatusCode::UNAVAILABLE, kExitUnavailable,
            "cannot reach the api at 127.0.0.1:3030"},
           {grpc::StatusCode::DEADLINE_EXCEEDED, kExitUnavailable, "may still complete"}}) {
    EXPECT_CALL(stub_, ListWorkloads(_, _, _))
        .WillOnce(Return(grpc::Status(c.code, "namespace nope has no workloads")));
    EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(ListWorkloadsOptions(), env); }), c.exit);
    EXPECT_THAT(err_.str(), HasSubstr("ferryctl: namespace nope has no workloads"));
    EXPECT_THAT(err_.str(), HasSubstr(c.hint));
  }
}

TEST_F(CommandsTest, PolicyCommandsSendOneRequestForEveryWorkload) {
  ferry::v1::UpdatePolicyRequest asked;
  ferry::v1::Job job;
  job.set_id("job-1");
  EXPECT_CALL(stub_, UpdatePolicy(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(job), Return(grpc::Status::OK)));
  ferry::v1::Job done = job;
  done.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
  StreamJob({done});
  PolicyOptions options;
  options.workloads = {"deployment/a", "prod:deployment/b"};
  options.lock = true;
  options.user = "bob";
  options.message = "incident 7";
  // "*" and "glob:*" (the default filter) both remove a filter, as set-policy does.
  options.tags = {"app=semver:~1", "sidecar=*", "web=glob:*"};
  options.wait = true;
  EXPECT_EQ(Run([&](Env& env) { return RunPolicy(options, env); }), kExitOk) << err_.str();
  ASSERT_EQ(asked.changes_size(), 2);
  EXPECT_EQ(asked.changes(0).workload(), "default:deployment/a");
  EXPECT_EQ(asked.changes(1).workload(), "prod:deployment/b");
  ASSERT_EQ(asked.changes(0).changes_size(), 4);
  EXPECT_EQ(asked.changes(0).changes(0).lock().user(), "bob");
  EXPECT_EQ(asked.changes(0).changes(1).set_tag_filter().pattern(), "semver:~1");
  EXPECT_EQ(asked.changes(0).changes(2).remove_tag_filter(), "sidecar");
  EXPECT_EQ(asked.changes(0).changes(3).remove_tag_filter(), "web");
}

// Safe automation (issue 19): soak times, rollback and rejected tags in one request, checked
// by lib/policy's parsers before anything is sent.
TEST_F(CommandsTest, SafeAutomationPolicyFlags) {
  ferry::v1::UpdatePolicyRequest asked;
  ferry::v1::Job job;
  job.set_id("job-2");
  EXPECT_CALL(stub_, UpdatePolicy(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(job), Return(grpc::Status::OK)));
  ferry::v1::Job done = job;
  done.set_state(ferry::v1::JOB_STATE_SUCCEEDED);
  StreamJob({done});
  PolicyOptions options;
  options.workloads = {"default:deployment/a"};
  options.min_ages = {"2h", "app=1d12h"};
  options.remove_min_ages = {"sidecar"};
  options.rollback = "auto";
  options.remove_rollback_timeout = true;
  options.rejects = {"app=1.4.2"};
  options.clear_rejected = {""};
  EXPECT_EQ(Run([&](Env& env) { return RunPolicy(options, env); }), kExitOk) << err_.str();
  ASSERT_EQ(asked.changes_size(), 1);
  std::vector<std::string> got;
  for (const ferry::v1::PolicyChange& c : asked.changes(0).changes()) {
    got.push_back(c.ShortDebugString());
  }
  EXPECT_THAT(got, ::testing::ElementsAre("set_min_age { duration: \"2h\" }",
                                          "set_min_age { container: \"app\" duration: \"1d12h\" }",
                                          "remove_min_age: \"sidecar\"", "set_rollback: \"auto\"",
                                          "remove_rollback_timeout: true", "clear_rejected: \"\"",
                                          "reject_tag { container: \"app\" tag: \"1.4.2\" }"));

  // Refused before any call (StrictMock), exit 2, the message naming the flag.
  struct Case {
    std::function<void(PolicyOptions&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](PolicyOptions& o) { o.min_ages = {"2x"}; }, "--min-age '2x'"},
      {[](PolicyOptions& o) { o.min_ages = {"0s"}; }, "--min-age '0s'"},
      {[](PolicyOptions& o) { o.min_ages = {"app="}; }, "DURATION or CONTAINER=DURATION"},
      {[](PolicyOptions& o) {
         o.min_ages = {"1h", "2h"};
       },
       "given twice"},
      {[](PolicyOptions& o) {
         o.min_ages = {"app=1h"};
         o.remove_min_ages = {"app"};
       },
       "--min-age and --remove-min-age contradict each other for container app"},
      {[](PolicyOptions& o) { o.rollback = "maybe"; }, "--rollback 'maybe'"},
      {[](PolicyOptions& o) {
         o.rollback = "off";
         o.remove_rollback = true;
       },
       "--rollback and --remove-rollback contradict"},
      {[](PolicyOptions& o) { o.rollback_timeout = "0m"; }, "--rollback-timeout '0m'"},
      {[](PolicyOptions& o) { o.rejects = {"1.4.2"}; }, "CONTAINER=TAG"},
      {[](PolicyOptions& o) { o.rejects = {"app=no tag"}; }, "--reject 'app=no tag'"},
      {[](PolicyOptions& o) { o.rejects = {"app=1.4.2,1.4.3"}; }, "--reject 'app=1.4.2,1.4.3'"},
      {[](PolicyOptions& o) { o.rejects = {"app=1.4.2=job"}; }, "--reject 'app=1.4.2=job'"},
      {[](PolicyOptions&) {}, "nothing to change"},
  };
  for (const Case& c : cases) {
    PolicyOptions policy;
    policy.workloads = {"default:deployment/a"};
    c.change(policy);
    EXPECT_EQ(Run([&](Env& env) { return RunPolicy(policy, env); }), kExitUsage) << c.message;
    EXPECT_THAT(err_.str(), HasSubstr(c.message));
  }
}

TEST_F(CommandsTest, ListWorkloadsShowsSoakRollbackAndPolicyErrors) {
  ferry::v1::ListWorkloadsResponse r;
  ferry::v1::Workload* w = r.add_workloads();
  w->set_id("default:deployment/app");
  w->mutable_policy()->set_automated(true);
  w->mutable_policy()->set_min_age_all("2h");
  (*w->mutable_policy()->mutable_min_ages())["web"] = "30m";
  (*w->mutable_policy()->mutable_min_ages())["db"] = "1d";
  w->mutable_policy()->set_rollback("auto");
  w->mutable_policy()->add_errors("ferry.dev/rollback-timeout: \"0s\" is out of range");
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(r), Return(grpc::Status::OK)));
  EXPECT_EQ(Run([&](Env& env) { return RunListWorkloads(ListWorkloadsOptions(), env); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("automated,min-age=2h,min-age.db=1d,min-age.web=30m,"
                                    "rollback=auto,policy-error(1)"));
}

TEST_F(CommandsTest, ReleaseRespectsMinAgeOnlyForTheLatestImages) {
  ReleaseOptions options;
  options.all = true;
  options.image = "quay.io/weaveworks/helloworld:master-a000002";
  options.respect_min_age = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--respect-min-age goes with --update-all-images"));

  ferry::v1::ReleaseRequest asked;
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(ReleaseStates()[0]),
                      Return(grpc::Status::OK)));
  StreamJob(ReleaseStates());
  options.image.clear();
  options.update_all_images = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitOk) << err_.str();
  EXPECT_TRUE(asked.spec().respect_min_age());
  EXPECT_TRUE(asked.spec().all_latest());
}

TEST_F(CommandsTest, ListImagesShowsSoakingAndRejectedTags) {
  ferry::v1::ListImagesResponse r;
  auto* w = r.add_workloads();
  w->set_workload("default:deployment/app");
  auto* c = w->add_containers();
  c->set_container("app");
  c->set_current_image("registry.test/team/app:1.0.0");
  c->set_min_age("2h");
  const struct {
    const char* tag;
    int64_t eligible_at;
    const char* rejected_by;
    bool rejected;
  } tags[] = {{"1.3.0", 1796140800, "", false},
              {"1.2.0", 0, "job-7", true},
              {"1.1.0", 0, "", true},
              {"1.0.0", 0, "", false}};
  for (const auto& tag : tags) {
    auto* t = c->add_tags();
    t->mutable_info()->set_tag(tag.tag);
    *t->mutable_info()->mutable_created() = At(1796133600);
    if (tag.eligible_at > 0) *t->mutable_eligible_at() = At(tag.eligible_at);
    t->set_rejected_by_job(tag.rejected_by);
    t->set_rejected(tag.rejected);
    t->set_matches_filter(true);
    t->set_current(std::string(tag.tag) == "1.0.0");
  }
  EXPECT_CALL(stub_, ListImages(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(r), Return(grpc::Status::OK)));
  ListImagesOptions options;
  options.workload = "deployment/app";
  EXPECT_EQ(Run([&](Env& env) { return RunListImages(options, env); }), kExitOk) << err_.str();
  ExpectGolden(out_.str(), "list_images_soak.txt");
}

TEST_F(CommandsTest, ATimeoutWhileFollowingSaysHowToCheck) {
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(ReleaseStates()[0]), Return(grpc::Status::OK)));
  auto* reader = new grpc::testing::MockClientReader<ferry::v1::Job>();
  EXPECT_CALL(*reader, Read(_))
      .WillOnce(DoAll(SetArgPointee<0>(ReleaseStates()[0]), Return(true)))
      .WillOnce(Return(false));
  EXPECT_CALL(*reader, Finish())
      .WillOnce(Return(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded")));
  EXPECT_CALL(stub_, WatchJobRaw(_, _)).WillOnce(Return(reader));
  ReleaseOptions options;
  options.all = true;
  options.update_all_images = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitUnavailable);
  EXPECT_THAT(err_.str(), HasSubstr("is still running after --timeout 60s; it may still complete: "
                                    "follow it with `ferryctl jobs 5f0c7c7e-"));
}

TEST_F(CommandsTest, SaveWritesOneFilePerResourceIntoAFolder) {
  auto* reader = new grpc::testing::MockClientReader<ferry::v1::ExportedResource>();
  ferry::v1::ExportedResource ns, deploy;
  ns.set_id("<cluster>:namespace/shop");
  ns.set_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  deploy.set_id("shop:deployment/front-end");
  deploy.set_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: front-end\n");
  EXPECT_CALL(*reader, Read(_))
      .WillOnce(DoAll(SetArgPointee<0>(ns), Return(true)))
      .WillOnce(DoAll(SetArgPointee<0>(deploy), Return(true)))
      .WillOnce(Return(false));
  EXPECT_CALL(*reader, Finish()).WillOnce(Return(grpc::Status::OK));
  ferry::v1::ExportRequest asked;
  EXPECT_CALL(stub_, ExportRaw(_, _)).WillOnce(DoAll(SaveArg<1>(&asked), Return(reader)));
  char tmpl[] = "/tmp/ferryctl-save-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  SaveOptions options;
  options.output = dir + "/";
  options.namespaces = {"shop"};
  EXPECT_EQ(Run([&](Env& env) { return RunSave(options, env); }), kExitOk) << err_.str();
  EXPECT_THAT(asked.namespaces(), ::testing::ElementsAre("shop"));
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  EXPECT_EQ(read(dir + "/_cluster/shop-namespace.yaml"), ns.yaml());
  EXPECT_EQ(read(dir + "/shop/front-end-deployment.yaml"), deploy.yaml());
  std::filesystem::remove_all(dir);
}

// Without -v, Ferry's own lines: full commit ids, the time on stderr with the job id.
TEST_F(CommandsTest, ReleaseWithoutVerboseKeepsFerrysLines) {
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(ReleaseStates()[0]), Return(grpc::Status::OK)));
  StreamJob(ReleaseStates());
  ReleaseOptions options;
  options.workloads = {"deployment/helloworld"};
  options.image = "quay.io/weaveworks/helloworld:master-a000002";
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Commit pushed:  35e789d64067ef55a810c96cd053b0cc106852df\n"
                                    "Commit applied: 35e789d64067ef55a810c96cd053b0cc106852df\n"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("Release job submitted")));
  EXPECT_THAT(err_.str(), HasSubstr("Took 0.21s (job 5f0c7c7e-1b2a-4c3d-8e9f-0a1b2c3d4e5f)"));
}

// git-writer's --git_push_branch: the job says which branch holds the change, and ferryctl
// says it is not applied until merged (no "Commit applied" line).
TEST_F(CommandsTest, AReleaseToAReleaseBranchSaysWhichBranchHoldsIt) {
  std::vector<ferry::v1::Job> states = ReleaseStates();
  ferry::v1::Job& done = states.back();
  done.set_pushed_branch("ferry/releases");
  done.mutable_stages()->DeleteSubrange(3, 1);  // no APPLIED stage
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(states[0]), Return(grpc::Status::OK)));
  StreamJob(states);
  ReleaseOptions options;
  options.workloads = {"deployment/helloworld"};
  options.image = "quay.io/weaveworks/helloworld:master-a000002";
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(),
              HasSubstr("Commit pushed:  35e789d64067ef55a810c96cd053b0cc106852df\n"
                        "Pushed to branch ferry/releases (not applied until merged)\n"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("Commit applied")));
}

// fluxctl's --controller and --service: the same request as --workload, a note on stderr only.
TEST_F(CommandsTest, DeprecatedWorkloadFlagsWorkWithANoteOnStderr) {
  ferry::v1::ReleaseRequest asked;
  EXPECT_CALL(stub_, Release(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(ReleaseStates()[0]),
                      Return(grpc::Status::OK)));
  StreamJob(ReleaseStates());
  ReleaseOptions options;
  options.controllers = {"default:deployment/helloworld"};
  options.image = "quay.io/weaveworks/helloworld:master-a000002";
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(options, env); }), kExitOk) << err_.str();
  EXPECT_THAT(asked.spec().workloads(), ::testing::ElementsAre("default:deployment/helloworld"));
  EXPECT_THAT(err_.str(), HasSubstr("ferryctl: --controller is deprecated; use --workload (-w)\n"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("deprecated")));

  ferry::v1::ListImagesRequest images;
  EXPECT_CALL(stub_, ListImages(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&images), Return(grpc::Status::OK)));
  ListImagesOptions list;
  list.service = "default:deployment/helloworld";
  EXPECT_EQ(Run([&](Env& env) { return RunListImages(list, env); }), kExitOk) << err_.str();
  EXPECT_EQ(images.workload(), "default:deployment/helloworld");
  EXPECT_THAT(err_.str(), HasSubstr("--service is deprecated"));
}

// The legacy id "namespace/name" is looked up with one ListWorkloads call.
TEST_F(CommandsTest, LegacyIdsAreResolvedThroughTheApi) {
  ferry::v1::ListWorkloadsRequest listed;
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(
          DoAll(SaveArg<1>(&listed), SetArgPointee<2>(Workloads()), Return(grpc::Status::OK)));
  ferry::v1::UpdatePolicyRequest asked;
  ferry::v1::Job job;
  job.set_id("5f0c7c7e-1b2a-4c3d-8e9f-0a1b2c3d4e5f");
  EXPECT_CALL(stub_, UpdatePolicy(_, _, _))
      .WillOnce(DoAll(SaveArg<1>(&asked), SetArgPointee<2>(job), Return(grpc::Status::OK)));
  PolicyOptions policy;
  policy.services = {"default/helloworld"};
  policy.automate = true;
  policy.wait = false;
  EXPECT_EQ(Run([&](Env& env) { return RunPolicy(policy, env); }), kExitOk) << err_.str();
  EXPECT_EQ(listed.namespace_(), "");
  ASSERT_EQ(asked.changes_size(), 1);
  EXPECT_EQ(asked.changes(0).workload(), "default:deployment/helloworld");

  // Not there: not found with the closest ids.
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(Workloads()), Return(grpc::Status::OK)));
  ListImagesOptions list;
  list.workload = "default/hellowrld";
  EXPECT_EQ(Run([&](Env& env) { return RunListImages(list, env); }), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("workload \"default/hellowrld\" not found; closest: "
                                    "default:deployment/helloworld"));
}

// Bad input: usage errors naming what to fix, and nothing submitted (StrictMock).
TEST_F(CommandsTest, MixedOrUnresolvableWorkloadsSubmitNothing) {
  ReleaseOptions both;
  both.workloads = {"default:deployment/helloworld"};
  both.services = {"default/helloworld"};
  both.update_all_images = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(both, env); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--workload and --service both name workloads"));

  ferry::v1::ListWorkloadsResponse two = Workloads();
  two.add_workloads()->set_id("default:statefulset/helloworld");
  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(two), Return(grpc::Status::OK)));
  ReleaseOptions ambiguous;
  ambiguous.services = {"default/helloworld"};
  ambiguous.update_all_images = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(ambiguous, env); }), kExitUsage);
  EXPECT_THAT(err_.str(),
              HasSubstr("\"default/helloworld\" is ambiguous: name one of "
                        "default:deployment/helloworld, default:statefulset/helloworld"));

  EXPECT_CALL(stub_, ListWorkloads(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(Workloads()), Return(grpc::Status::OK)));
  ReleaseOptions nowhere;
  nowhere.controllers = {"sock-shop/front-end"};
  nowhere.update_all_images = true;
  EXPECT_EQ(Run([&](Env& env) { return RunRelease(nowhere, env); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("no workload in namespace \"sock-shop\"; namespaces with "
                                    "workloads: default"));
}

TEST(DroneTest, FluxctlPluginSettingNamesAreAliases) {
  std::map<std::string, std::string> env = {{"PLUGIN_SERVICE", "sock-shop/front-end"},
                                            {"PLUGIN_UPDATE_ALL_IMAGES", "true"}};
  ReleaseOptions release;
  ClientOptions client;
  FERRY_ASSERT_OK(DroneToRelease(env, release, client));
  EXPECT_EQ(release.services, (std::vector<std::string>{"sock-shop/front-end"}));
  env = {{"PLUGIN_CONTROLLER", "default:deployment/helloworld, default:deployment/other"},
         {"PLUGIN_IMAGE", "quay.io/weaveworks/helloworld:master-a000002"}};
  release = ReleaseOptions();
  FERRY_ASSERT_OK(DroneToRelease(env, release, client));
  EXPECT_EQ(release.controllers, (std::vector<std::string>{"default:deployment/helloworld",
                                                           "default:deployment/other"}));
}

TEST(DroneTest, MapsAFullPluginEnvironmentOntoARelease) {
  std::map<std::string, std::string> env = {
      {"DRONE", "true"},
      {"PLUGIN_URL", "ferry.example.com:443"},
      {"PLUGIN_TOKEN", "write-token-0123456789"},
      {"PLUGIN_TLS", "true"},
      {"PLUGIN_WORKLOADS", "deployment/helloworld, prod:deployment/api"},
      {"PLUGIN_NAMESPACE", "shop"},
      {"PLUGIN_IMAGE", "quay.io/weaveworks/helloworld:master-a000002"},
      {"PLUGIN_EXCLUDE", "shop:deployment/legacy"},
      {"PLUGIN_DRY_RUN", "false"},
      {"PLUGIN_FORCE", "true"},
      {"PLUGIN_WAIT", "true"},
      {"PLUGIN_TIMEOUT", "5m"},
      {"PLUGIN_SOURCE", "prod"},
      {"DRONE_COMMIT_AUTHOR", "alice"},
      {"DRONE_COMMIT_AUTHOR_EMAIL", "alice@example.com"},
      {"DRONE_BUILD_LINK", "https://drone.example.com/shop/helloworld/42"},
      {"DRONE_REPO", "shop/helloworld"},
      {"DRONE_COMMIT_SHA", "9a16ff945b9e"},
  };
  EXPECT_TRUE(IsDronePlugin(env));
  ReleaseOptions release;
  ClientOptions client;
  FERRY_ASSERT_OK(DroneToRelease(env, release, client));
  EXPECT_EQ(client.url, "ferry.example.com:443");
  EXPECT_EQ(client.token, "write-token-0123456789");
  EXPECT_TRUE(client.tls);
  EXPECT_EQ(client.timeout, "5m");
  EXPECT_EQ(client.source, "prod");
  EXPECT_EQ(release.workloads,
            (std::vector<std::string>{"deployment/helloworld", "prod:deployment/api"}));
  EXPECT_EQ(release.namespace_, "shop");
  EXPECT_EQ(release.image, "quay.io/weaveworks/helloworld:master-a000002");
  EXPECT_EQ(release.excludes, (std::vector<std::string>{"shop:deployment/legacy"}));
  EXPECT_FALSE(release.dry_run);
  EXPECT_TRUE(release.force);
  EXPECT_TRUE(release.watch);
  EXPECT_EQ(release.user, "alice <alice@example.com>");
  EXPECT_EQ(release.message,
            "Drone build https://drone.example.com/shop/helloworld/42, commit "
            "shop/helloworld@9a16ff945b9e");
  // The step's own user and message win; bad booleans and missing settings are named.
  env["PLUGIN_USER"] = "ci-bot";
  env["PLUGIN_MESSAGE"] = "nightly";
  release = ReleaseOptions();
  FERRY_ASSERT_OK(DroneToRelease(env, release, client));
  EXPECT_EQ(release.user, "ci-bot");
  EXPECT_EQ(release.message, "nightly");
  env["PLUGIN_FORCE"] = "maybe";
  release = ReleaseOptions();
  EXPECT_THAT(std::string(DroneToRelease(env, release, client).message()),
              HasSubstr("setting force: 'maybe' is not true or false"));
  env["PLUGIN_FORCE"] = "false";
  env.erase("PLUGIN_WORKLOADS");
  release = ReleaseOptions();
  EXPECT_THAT(std::string(DroneToRelease(env, release, client).message()),
              HasSubstr("setting workload"));
  EXPECT_FALSE(IsDronePlugin({{"HOME", "/root"}}));
}

// Every subcommand (at any depth) of the app AddApiCommands builds, with its names and its
// flags ("--long", "-s").
struct CommandFlags {
  std::vector<std::string> names;
  std::vector<std::string> flags;
};

void CollectCommands(const CLI::App& app, std::vector<CommandFlags>& out) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    CommandFlags c;
    c.names.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) c.names.push_back(alias);
    for (const CLI::Option* opt : sub->get_options()) {
      for (const std::string& l : opt->get_lnames()) c.flags.push_back("--" + l);
      for (const std::string& s : opt->get_snames()) c.flags.push_back("-" + s);
    }
    out.push_back(c);
    CollectCommands(*sub, out);
  }
}

// The words of the bash case arm for `name` ("    a|b) COMPREPLY=($(compgen -W '...' ...").
std::vector<std::string> BashArmWords(const std::string& script, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(script, '\n')) {
    const size_t paren = line.find(") COMPREPLY=");
    if (paren == absl::string_view::npos) continue;
    std::vector<absl::string_view> pattern =
        absl::StrSplit(absl::StripAsciiWhitespace(line.substr(0, paren)), '|');
    if (std::find(pattern.begin(), pattern.end(), name) == pattern.end()) continue;
    const size_t open = line.find('\'', paren);
    const size_t close = line.find('\'', open + 1);
    return absl::StrSplit(line.substr(open + 1, close - open - 1), ' ', absl::SkipEmpty());
  }
  return {};
}

// The app as ferryctl builds it: every command and every flag of each is offered by each shell,
// for that command.
TEST(CompletionTest, CoversEveryCommandAndFlag) {
  CLI::App app{"ferryctl", "ferryctl"};
  ClientOptions client;
  int exit_code = 0;
  AddApiCommands(
      app, client,
      [] {
        return absl::StatusOr<std::unique_ptr<ferry::v1::Ferry::StubInterface>>(
            absl::UnavailableError("not in this test"));
      },
      exit_code, "test");
  std::vector<CommandFlags> commands;
  CollectCommands(app, commands);
  ASSERT_GE(commands.size(), 12u);  // list-workloads ... completion, drone

  for (const char* shell : {"bash", "zsh"}) {
    absl::StatusOr<std::string> script = CompletionScript(app, shell);
    FERRY_ASSERT_OK(script) << shell;
    const std::vector<std::string> top = BashArmWords(*script, "\"\"");
    for (const CommandFlags& c : commands) {
      for (const std::string& name : c.names) {
        EXPECT_THAT(top, Contains(name)) << shell << ": command " << name;
        const std::vector<std::string> words = BashArmWords(*script, name);
        for (const std::string& flag : c.flags) {
          EXPECT_THAT(words, Contains(flag)) << shell << ": " << name << " " << flag;
        }
      }
    }
  }

  absl::StatusOr<std::string> fish = CompletionScript(app, "fish");
  FERRY_ASSERT_OK(fish);
  for (const CommandFlags& c : commands) {
    const std::string seen =
        "-n '__fish_seen_subcommand_from " + absl::StrJoin(c.names, " ") + "' ";
    for (const std::string& name : c.names) {
      EXPECT_THAT(*fish,
                  HasSubstr("complete -c ferryctl -f -n __fish_use_subcommand -a " + name + " -d "))
          << "fish: command " << name;
    }
    for (const std::string& flag : c.flags) {
      const bool long_flag = absl::StartsWith(flag, "--");
      const std::string option =
          (long_flag ? "-l " : "-s ") + flag.substr(long_flag ? 2 : 1) + " -d ";
      EXPECT_THAT(*fish, HasSubstr(seen + option)) << "fish: " << c.names[0] << " " << flag;
    }
  }
  EXPECT_THAT(CompletionScript(app, "tcsh"), Not(IsOk()));
}

}  // namespace
}  // namespace ferry::cli
