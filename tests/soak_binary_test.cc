// Soak time end to end (issue 19): the real api, scanner, git-writer and cluster-syncer
// against a real registry, git repo and Kubernetes API, the automation interval an hour (so
// the wake-up at eligibility does each late release). Two workloads soak at once:
// - app (min-age 30s): tags created just outside and inside min-age; automation releases the
//   old one first and the young one only once it has soaked.
// - side (min-age 60s): a tag whose image has no creation time soaks from when the scanner
//   first saw it, and that sighting survives a scanner killed and started again on the same
//   cache.
// The assertions are about order and eligibility (never released before eligible_at,
// released after it), not about how fast a loaded machine gets there.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"
#include "tests/support/ports.h"
#include "tests/support/registry.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::FirstSync;
using testing::Running;
using testing::StartArgv;
using testing::StartGitWriterAndSyncer;
using testing::TempDir;

constexpr absl::Duration kAppMinAge = absl::Seconds(30);
// Longer: the side tag's soak spans a scanner restart and its rescan.
constexpr absl::Duration kSideMinAge = absl::Seconds(60);

// An image config created at `created` (none: the config has no creation time).
std::string Config(std::optional<absl::Time> created) {
  if (!created) return R"({"architecture":"amd64","os":"linux"})";
  return absl::StrCat(R"({"architecture":"amd64","os":"linux","created":")",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", *created, absl::UTCTimeZone()),
                      R"("})");
}

// `t` cut to whole seconds, as the configs above carry it.
absl::Time WholeSeconds(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

std::string Port(int port) { return "127.0.0.1:" + std::to_string(port); }

class SoakBinaryTest : public ::testing::Test {
 protected:
  // The commit time of the automated release that moved a container to `image` ("" when
  // none yet): found in the commit message, which names every image it released.
  std::optional<absl::Time> AutoReleaseTime(const std::string& image) {
    const std::string line =
        repo_->Git("log -1 --format=%ct -F --grep=Auto-release --grep=" + image + " --all-match");
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &seconds)) return std::nullopt;
    return absl::FromUnixSeconds(seconds);
  }

  // Waits (up to `timeout`) for the automated release of `image`; returns its commit time.
  std::optional<absl::Time> WaitForAutoRelease(const std::string& image, absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (absl::Now() < give_up) {
      if (std::optional<absl::Time> at = AutoReleaseTime(image)) return at;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }

  // The scanner's TagInfo for `tag` of `repository`, once it lists it (up to 30 s).
  std::optional<ferry::v1::TagInfo> ScannerTag(const std::string& repository,
                                               const std::string& tag) {
    auto stub = ferry::v1::RegistryScanner::NewStub(scanner_.Channel());
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (absl::Now() < give_up) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      ferry::v1::ListTagsRequest request;
      request.set_repository(repository);
      ferry::v1::ListTagsResponse listed;
      if (stub->ListTags(&ctx, request, &listed).ok()) {
        for (const ferry::v1::TagInfo& t : listed.tags()) {
          if (t.tag() == tag) return t;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }

  // ListImages' entry for `tag` of the workload's container.
  std::optional<ferry::v1::ImageTag> ListedTag(const std::string& tag,
                                               ferry::v1::ContainerImages* container = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::ListImagesRequest request;
    request.set_workload("soak:deployment/app");
    ferry::v1::ListImagesResponse images;
    grpc::Status s = api_stub_->ListImages(&ctx, request, &images);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok() || images.workloads_size() != 1 || images.workloads(0).containers_size() != 1) {
      return std::nullopt;
    }
    if (container != nullptr) *container = images.workloads(0).containers(0);
    for (const ferry::v1::ImageTag& t : images.workloads(0).containers(0).tags()) {
      if (t.info().tag() == tag) return t;
    }
    return std::nullopt;
  }

  void StartScanner() {
    scanner_.process.reset();  // SIGKILL: nothing is shut down cleanly
    StartArgv({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=" + Port(scanner_port_),
               "--metrics_address=127.0.0.1:0", "--state_dir=" + dir_.path + "/scanner",
               "--registry_insecure_hosts=" + registry_->host(), "--scan_interval=1s"},
              scanner_);
  }

  TempDir dir_;
  std::unique_ptr<testing::RegistryServer> registry_;
  std::unique_ptr<testing::GitRepo> repo_;
  std::string image_;  // "127.0.0.1:PORT/team/app"
  const int scanner_port_ = testing::FreeLoopbackPort();
  Running git_, syncer_, scanner_, api_;
  std::unique_ptr<ferry::v1::Ferry::Stub> api_stub_;
};

TEST_F(SoakBinaryTest, AutomationTakesATagOnceItHasSoakedAlsoAcrossAScannerRestart) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  FERRY_ASSERT_OK_AND_ASSIGN(registry_, testing::RegistryServer::Start(dir_.path + "/registry"));
  image_ = registry_->host() + "/team/app";
  const std::string side = registry_->host() + "/team/side";
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.0.0", Config(absl::FromUnixSeconds(1e9))));
  FERRY_ASSERT_OK(registry_->PushImage("team/side", "2.0.0", Config(absl::FromUnixSeconds(1e9))));
  FERRY_ASSERT_OK_AND_ASSIGN(
      repo_, testing::GitRepo::Create(
                 {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: soak}\n"},
                  {"apps/app.yaml", Deployment("soak", "app", image_ + ":1.0.0",
                                               "    ferry.dev/automated: \"true\"\n"
                                               "    ferry.dev/tag.app: semver:~1\n"
                                               "    ferry.dev/min-age: 30s\n")},
                  {"apps/side.yaml", Deployment("soak", "side", side + ":2.0.0",
                                                "    ferry.dev/automated: \"true\"\n"
                                                "    ferry.dev/tag.app: semver:~2\n"
                                                "    ferry.dev/min-age: 60s\n")}}));
  StartGitWriterAndSyncer(*repo_, **cluster, {"--sync_set=soak"}, git_, syncer_);
  ASSERT_GT(syncer_.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = FirstSync(syncer_);
  ASSERT_TRUE(first.has_value()) << syncer_.process->Output();
  StartScanner();
  ASSERT_GT(scanner_.grpc_port, 0);
  StartArgv({FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_writer_address=" + git_.GrpcTarget(),
             "--registry_scanner_address=" + Port(scanner_port_),
             "--cluster_syncer_address=" + syncer_.GrpcTarget(), "--automation_interval=1h"},
            api_);
  ASSERT_GT(api_.grpc_port, 0);
  api_stub_ = ferry::v1::Ferry::NewStub(api_.Channel());
  // The api's first pass hands the repositories to the scanner, which lists them every
  // second.
  auto scanner = ferry::v1::RegistryScanner::NewStub(scanner_.Channel());
  int watched = 0;
  for (absl::Time give_up = absl::Now() + absl::Seconds(30);
       watched < 2 && absl::Now() < give_up;) {
    grpc::ClientContext ctx;
    ferry::v1::StatusResponse status;
    watched = 0;
    if (scanner->Status(&ctx, {}, &status).ok()) {
      for (const auto& r : status.repositories()) {
        watched += r.repository() == image_ || r.repository() == side;
      }
    }
    if (watched < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(watched, 2) << api_.process->Output() << scanner_.process->Output();

  // app: just outside its soak time (created 40 s ago) and inside it (created now); side: a
  // tag without creation time, soaking from the scanner's first sighting.
  const absl::Time now = WholeSeconds(absl::Now());
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.1.0", Config(now - absl::Seconds(40))));
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.2.0", Config(now)));
  FERRY_ASSERT_OK(registry_->PushImage("team/side", "2.1.0", Config(std::nullopt)));
  const absl::Time eligible = now + kAppMinAge;

  // 1. The old app tag goes at once; while the young one soaks, ListImages says until when
  //    and that automation holds to 1.1.0.
  std::optional<absl::Time> released = WaitForAutoRelease(image_ + ":1.1.0", absl::Seconds(60));
  ASSERT_TRUE(released.has_value())
      << repo_->Git("log --format=%B") << api_.process->Output() << scanner_.process->Output();
  ferry::v1::ContainerImages container;
  std::optional<ferry::v1::ImageTag> young = ListedTag("1.2.0", &container);
  ASSERT_TRUE(young.has_value());
  EXPECT_EQ(container.min_age(), "30s");
  if (absl::Now() < eligible && !AutoReleaseTime(image_ + ":1.2.0").has_value()) {
    EXPECT_EQ(runtime::FromProtoTimestamp(young->eligible_at()), eligible);
    EXPECT_EQ(container.latest_filtered(), "1.1.0");
  }

  // 2. side: its first sighting, kept by a scanner killed and started again.
  std::optional<ferry::v1::TagInfo> unseen = ScannerTag(side, "2.1.0");
  ASSERT_TRUE(unseen.has_value()) << scanner_.process->Output();
  ASSERT_FALSE(unseen->has_created());
  ASSERT_TRUE(unseen->has_first_seen());
  const absl::Time first_seen = runtime::FromProtoTimestamp(unseen->first_seen());
  EXPECT_GE(first_seen, now - absl::Seconds(1)) << "seen before it was pushed";
  StartScanner();
  ASSERT_GT(scanner_.grpc_port, 0) << "the scanner came back on another port";
  std::optional<ferry::v1::TagInfo> again = ScannerTag(side, "2.1.0");
  ASSERT_TRUE(again.has_value()) << scanner_.process->Output();
  EXPECT_EQ(runtime::FromProtoTimestamp(again->first_seen()), first_seen)
      << "the first sighting was lost with the scanner";

  // 3. The young app tag once it has soaked, without the hourly pass and without a new push.
  released = WaitForAutoRelease(image_ + ":1.2.0", absl::Seconds(90));
  ASSERT_TRUE(released.has_value()) << repo_->Git("log --format=%B") << api_.process->Output();
  EXPECT_GE(*released, eligible) << "1.2.0 released before it had soaked";

  // 4. The side tag once it has soaked from its first sighting (restart or not).
  released = WaitForAutoRelease(side + ":2.1.0", absl::Seconds(90));
  ASSERT_TRUE(released.has_value())
      << repo_->Git("log --format=%B") << api_.process->Output() << scanner_.process->Output();
  EXPECT_GE(*released, WholeSeconds(first_seen + kSideMinAge)) << "2.1.0 released before it soaked";

  // Every release once, app's in order: 1.1.0 before 1.2.0.
  const std::string log = repo_->Git("log --reverse --format=%B --grep=^Auto-release");
  const size_t old_at = log.find(image_ + ":1.1.0"), young_at = log.find(image_ + ":1.2.0");
  ASSERT_NE(old_at, std::string::npos) << log;
  ASSERT_NE(young_at, std::string::npos) << log;
  EXPECT_LT(old_at, young_at) << log;
  EXPECT_EQ(log.find(image_ + ":1.1.0", old_at + 1), std::string::npos) << log;
  EXPECT_EQ(log.find(image_ + ":1.2.0", young_at + 1), std::string::npos) << log;
  const size_t side_at = log.find(side + ":2.1.0");
  ASSERT_NE(side_at, std::string::npos) << log;
  EXPECT_EQ(log.find(side + ":2.1.0", side_at + 1), std::string::npos) << log;
}

}  // namespace
}  // namespace ferry
