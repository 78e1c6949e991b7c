#include "services/api/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

absl::StatusOr<Config> Parse(std::vector<std::string> args) {
  CLI::App app;
  Flags flags;
  AddFlags(app, flags);
  args.insert(args.begin(), {"ferry-api", "--grpc_address=127.0.0.1:0"});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return ToConfig(flags);
}

TEST(ConfigTest, JobDeadlinesAndPeerWaitDefaultToTheirLimits) {
  absl::StatusOr<Config> config = Parse({});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->timeouts.peer_wait, absl::Seconds(10));
  EXPECT_EQ(config->timeouts.planning, absl::Seconds(limits::kJobPlanningTimeout.default_value));
  EXPECT_EQ(config->timeouts.commit, absl::Seconds(limits::kJobCommitTimeout.default_value));
  EXPECT_EQ(config->timeouts.apply, absl::Seconds(limits::kJobApplyTimeout.default_value));
  EXPECT_EQ(config->timeouts.rollout, absl::Seconds(limits::kJobRolloutTimeout.default_value));

  config = Parse({"--peer_wait=0", "--job_planning_timeout=5", "--job_commit_timeout=6",
                  "--job_apply_timeout=7", "--job_rollout_timeout=8"});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->timeouts.peer_wait, absl::ZeroDuration());
  EXPECT_EQ(config->timeouts.planning, absl::Seconds(5));
  EXPECT_EQ(config->timeouts.commit, absl::Seconds(6));
  EXPECT_EQ(config->timeouts.apply, absl::Seconds(7));
  EXPECT_EQ(config->timeouts.rollout, absl::Seconds(8));
}

TEST(ConfigTest, LeaderElectionIsOffByDefaultAndItsLeaseIsPerGitWriter) {
  absl::StatusOr<Config> config = Parse({});
  FERRY_ASSERT_OK(config);
  EXPECT_FALSE(config->leader.enabled);
  EXPECT_EQ(config->leader.lease_name, LeaseNameFor({{"", "127.0.0.1:3031", "127.0.0.1:3033"}}));
  // One unnamed source keeps the Lease it had before sources existed.
  EXPECT_EQ(config->leader.lease_name, kube::DefaultLeaseName("api", "git-writer=127.0.0.1:3031"));
  config = Parse({"--leader_elect", "--git_writer_address=git-writer:3031",
                  "--kubeconfig=/k/config", "--context=kind", "--leader_elect_lease_duration=8s",
                  "--leader_elect_renew_deadline=5s", "--leader_elect_retry_period=1s"});
  FERRY_ASSERT_OK(config);
  EXPECT_TRUE(config->leader.enabled);
  EXPECT_EQ(config->leader.lease_name, LeaseNameFor({{"", "git-writer:3031", "127.0.0.1:3033"}}));
  EXPECT_NE(LeaseNameFor({{"", "git-writer:3031", "s:1"}}),
            LeaseNameFor({{"", "other-git-writer:3031", "s:1"}}));
  // Several sources: one Lease for the set, whatever the order of the flags.
  absl::StatusOr<Config> a =
      Parse({"--source=b=gw-b:3031,cs-b:3033", "--source=a=gw-a:3031,cs-a:3033"});
  absl::StatusOr<Config> b =
      Parse({"--source=a=gw-a:3031,cs-a:3033", "--source=b=gw-b:3031,cs-b:3033"});
  FERRY_ASSERT_OK(a);
  FERRY_ASSERT_OK(b);
  EXPECT_EQ(a->leader.lease_name, b->leader.lease_name);
  EXPECT_NE(a->leader.lease_name, config->leader.lease_name);
  EXPECT_EQ(config->leader.lease_duration, absl::Seconds(8));
  EXPECT_EQ(config->leader.renew_deadline, absl::Seconds(5));
  EXPECT_EQ(config->leader.retry_period, absl::Seconds(1));
  EXPECT_EQ(config->kubeconfig, "/k/config");
  EXPECT_EQ(config->context, "kind");
}

TEST(ConfigTest, WithoutSourceFlagsThereIsOneUnnamedSource) {
  absl::StatusOr<Config> config =
      Parse({"--git_writer_address=gw:1", "--cluster_syncer_address=cs:2"});
  FERRY_ASSERT_OK(config);
  ASSERT_EQ(config->sources.size(), 1u);
  EXPECT_EQ(config->sources[0].name, "");
  EXPECT_EQ(config->sources[0].git_writer_address, "gw:1");
  EXPECT_EQ(config->sources[0].cluster_syncer_address, "cs:2");
}

TEST(ConfigTest, SourceFlagsNameSeveralSourcesInNameOrder) {
  absl::StatusOr<Config> config = Parse({"--source=prod=dns:///gw-prod:3031,cs-prod:3033",
                                         "--source", "dev=127.0.0.1:4031,127.0.0.1:4033"});
  FERRY_ASSERT_OK(config);
  ASSERT_EQ(config->sources.size(), 2u);
  EXPECT_EQ(config->sources[0].name, "dev");
  EXPECT_EQ(config->sources[0].git_writer_address, "127.0.0.1:4031");
  EXPECT_EQ(config->sources[0].cluster_syncer_address, "127.0.0.1:4033");
  EXPECT_EQ(config->sources[1].name, "prod");
  EXPECT_EQ(config->sources[1].git_writer_address, "dns:///gw-prod:3031");
  EXPECT_EQ(config->sources[1].cluster_syncer_address, "cs-prod:3033");
  // Replica lists: the cluster-syncer's starts with a target of its own.
  absl::StatusOr<SourceConfig> lists =
      ParseSource("prod=ipv4:10.0.0.5:3031,10.0.0.6:3031,ipv4:10.0.0.7:3033,10.0.0.8:3033");
  FERRY_ASSERT_OK(lists);
  EXPECT_EQ(lists->git_writer_address, "ipv4:10.0.0.5:3031,10.0.0.6:3031");
  EXPECT_EQ(lists->cluster_syncer_address, "ipv4:10.0.0.7:3033,10.0.0.8:3033");
  lists = ParseSource("prod=ipv4:10.0.0.5:3031,10.0.0.6:3031,dns:///cs-prod:3033");
  FERRY_ASSERT_OK(lists);
  EXPECT_EQ(lists->git_writer_address, "ipv4:10.0.0.5:3031,10.0.0.6:3031");
  EXPECT_EQ(lists->cluster_syncer_address, "dns:///cs-prod:3033");
}

TEST(ConfigTest, BadSourceFlagsNameTheFlag) {
  for (const char* bad :
       {"--source=prod", "--source==gw:1,cs:2", "--source=Prod=gw:1,cs:2",
        "--source=prod_1=gw:1,cs:2", "--source=prod=gw:1", "--source=prod=gw:1,",
        "--source=prod=gw:1,cs:2,x:3", "--source=-prod=gw:1,cs:2", "--source=prod=ipv4:a:1,b:1,c:2",
        "--source=prod=ipv4:a:1,ipv4:b:1,ipv4:c:2", "--source=prod=gw:1, cs:2",
        "--source=prod=gw:1,,cs:2", "--source=prod=ipv4:10.0.0.5:3031,10.0.0.6:3031"}) {
    EXPECT_THAT(Parse({bad}),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--source: ")))
        << bad;
  }
  EXPECT_THAT(Parse({"--source=a=gw:1,cs:2", "--source=a=gw:3,cs:4"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith("--source: "), HasSubstr("two sources are named 'a'"))));
  EXPECT_THAT(Parse({"--source=a=gw:1,cs:2", "--source=b=gw:1,cs:3"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith("--source: "), HasSubstr("git-writer gw:1"))));
  EXPECT_THAT(Parse({"--source=a=gw:1,cs:2", "--git_writer_address=gw:9"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith("--source: "), HasSubstr("--git_writer_address"))));
  std::vector<std::string> many;
  for (size_t i = 0; i <= kMaxSources; ++i) {
    many.push_back(absl::StrCat("--source=s", i, "=gw:", i, ",cs:", i));
  }
  EXPECT_THAT(Parse(many), StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--source: ")));
}

TEST(ConfigTest, BadLeaderElectionFlagsNameTheFlag) {
  EXPECT_THAT(
      Parse({"--leader_elect", "--leader_elect_renew_deadline=15s"}),
      StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--leader_elect_renew_deadline")));
  EXPECT_THAT(
      Parse({"--leader_elect", "--leader_elect_lease_duration=forever"}),
      StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--leader_elect_lease_duration")));
}

TEST(ConfigTest, OutOfRangeDeadlinesNameTheirFlag) {
  for (const auto& [arg, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--peer_wait=-1", "--peer_wait"},
           {"--peer_wait=3601", "--peer_wait"},
           {"--job_planning_timeout=0", "--job_planning_timeout"},
           {"--job_apply_timeout=86401", "--job_apply_timeout"}}) {
    absl::StatusOr<Config> config = Parse({arg});
    EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(flag + ":")))
        << arg;
  }
}

// A file holding `content`, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/ferry-config-test-XXXXXX";
    const int fd = mkstemp(tmpl);
    path_ = tmpl;
    std::ofstream(path_) << content;
    if (fd >= 0) close(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigTest, NotifyUrlsWithAndWithoutTokenFiles) {
  TempFile token("  s3cret-token\n");
  absl::StatusOr<Config> config =
      Parse({"--notify_url=https://hooks.slack.com/services/T0/B0/xyz",
             "--notify_url=http://127.0.0.1:8080/ferry?x=1,token_file=" + token.path()});
  FERRY_ASSERT_OK(config);
  ASSERT_EQ(config->notify.size(), 2u);
  EXPECT_EQ(config->notify[0].url, "https://hooks.slack.com/services/T0/B0/xyz");
  EXPECT_EQ(config->notify[0].host, "hooks.slack.com");
  EXPECT_EQ(config->notify[0].token, "");
  EXPECT_EQ(config->notify[0].Describe(), "notify_url #1 (host hooks.slack.com)");
  EXPECT_EQ(config->notify[1].url, "http://127.0.0.1:8080/ferry?x=1");
  EXPECT_EQ(config->notify[1].host, "127.0.0.1:8080");
  EXPECT_EQ(config->notify[1].token, "s3cret-token");
  EXPECT_EQ(config->notify[1].index, 2u);
  FERRY_ASSERT_OK_AND_ASSIGN(Config none, Parse({}));
  EXPECT_TRUE(none.notify.empty());
}

// The URL (a secret: Slack's webhook path) read from a file mounted from a Secret, so that it
// is in neither the command line nor the Deployment spec; checked as an inline URL is.
TEST(ConfigTest, NotifyUrlFromAFileWithAndWithoutATokenFile) {
  TempFile url("https://hooks.slack.com/services/T0/B0/s3cret-path\n");
  TempFile token("s3cret-token\n");
  FERRY_ASSERT_OK_AND_ASSIGN(Config config, Parse({"--notify_url=url_file=" + url.path(),
                                                   "--notify_url=url_file=" + url.path() +
                                                       ",token_file=" + token.path()}));
  ASSERT_EQ(config.notify.size(), 2u);
  EXPECT_EQ(config.notify[0].url, "https://hooks.slack.com/services/T0/B0/s3cret-path");
  EXPECT_EQ(config.notify[0].host, "hooks.slack.com");
  EXPECT_EQ(config.notify[0].token, "");
  EXPECT_EQ(config.notify[1].url, config.notify[0].url);
  EXPECT_EQ(config.notify[1].token, "s3cret-token");
  EXPECT_EQ(config.notify[1].Describe(), "notify_url #2 (host hooks.slack.com)");
}

TEST(ConfigTest, BadNotifyUrlFilesNameTheFileButNotItsContent) {
  TempFile empty("\n");
  TempFile two_lines("https://hooks.example/s3cret-path\nhttps://other.example/s3cret\n");
  TempFile not_http("ftp://hooks.example/s3cret-path\n");
  TempFile with_credentials("https://user:s3cret@hooks.example/x\n");
  TempFile too_large("https://hooks.example/" + std::string(kMaxNotifyUrlBytes, 's') + "\n");
  for (const std::string& bad : {
           std::string("url_file="),
           std::string("url_file=/nonexistent/url"),
           "url_file=" + empty.path(),
           "url_file=" + two_lines.path(),
           "url_file=" + not_http.path(),
           "url_file=" + with_credentials.path(),
           "url_file=" + too_large.path(),
           "url_file=" + not_http.path() + ",token_file=/nonexistent/token",
       }) {
    absl::StatusOr<Config> config = Parse({"--notify_url=" + bad});
    EXPECT_THAT(config,
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--notify_url #1: ")))
        << bad;
    EXPECT_THAT(config.status().message(), Not(HasSubstr("s3cret"))) << bad;
  }
  // A file that cannot be read is named by its path.
  EXPECT_THAT(Parse({"--notify_url=url_file=/nonexistent/url"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/nonexistent/url")));
}

TEST(ConfigTest, BadNotifyUrlsNameTheFlagButNeitherThePathNorTheToken) {
  TempFile empty("\n");
  TempFile two_lines("s3cret\nmore\n");
  const std::string large(kMaxNotifyTokenBytes + 1, 'x');
  TempFile too_large(large);
  for (const std::string& bad : {
           std::string("ftp://hooks.example/secret-path"),
           std::string("hooks.example/secret-path"),
           std::string("https:///secret-path"),
           std::string("https://:443/secret-path"),
           std::string("https://user:pw@hooks.example/secret-path"),
           std::string("https://hooks.example:0/secret-path"),
           std::string("https://hooks.example:http/secret-path"),
           std::string("https://hooks.example:/secret-path"),
           std::string("https://hooks.example/secret-path with space"),
           std::string("https://[::1/secret-path"),
           "https://hooks.example/" + std::string(kMaxNotifyUrlBytes, 'a'),
           std::string("https://hooks.example/secret-path,token_file="),
           std::string("https://hooks.example/secret-path,token_file=/nonexistent/token"),
           "https://hooks.example/secret-path,token_file=" + empty.path(),
           "https://hooks.example/secret-path,token_file=" + two_lines.path(),
           "https://hooks.example/secret-path,token_file=" + too_large.path(),
       }) {
    absl::StatusOr<Config> config = Parse({"--notify_url=" + bad});
    EXPECT_THAT(config,
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--notify_url #1: ")))
        << bad;
    EXPECT_THAT(config.status().message(), Not(HasSubstr("secret-path"))) << bad;
    EXPECT_THAT(config.status().message(), Not(HasSubstr("s3cret"))) << bad;
  }
  std::vector<std::string> many;
  for (size_t i = 0; i <= kMaxNotifyUrls; ++i) many.push_back("--notify_url=https://h.example/");
  EXPECT_THAT(Parse(many),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("--notify_url:")));
  // IPv6 literals with a port are URLs like any other.
  FERRY_ASSERT_OK_AND_ASSIGN(Config v6, Parse({"--notify_url=http://[::1]:8080/x"}));
  EXPECT_EQ(v6.notify[0].host, "[::1]:8080");
  // The host ends where the query or the fragment starts, as lib/http's HostOfUrl has it.
  FERRY_ASSERT_OK_AND_ASSIGN(Config query, Parse({"--notify_url=http://h.example:1?key=S",
                                                  "--notify_url=https://h.example#S"}));
  EXPECT_EQ(query.notify[0].host, "h.example:1");
  EXPECT_EQ(query.notify[1].host, "h.example");
}

}  // namespace
}  // namespace ferry::api
