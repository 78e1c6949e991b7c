// Soak time end to end (issue 19): the real api, scanner, git-writer and cluster-syncer
// against a real registry, git repo and Kubernetes API. Tags pushed with creation times
// just outside and inside `min-age`: automation releases the old one at once and the young
// one when it has soaked (the automation interval is an hour: the wake-up at eligibility
// does it); a tag whose image has no creation time soaks from when the scanner first saw it,
// and that sighting survives a scanner killed and started again on the same cache.
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

constexpr absl::Duration kMinAge = absl::Seconds(15);

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
  // Waits (up to `timeout`) until the newest commit on the config repo's branch is an
  // automated release of `tag`; returns its commit time, or nullopt.
  std::optional<absl::Time> WaitForAutoRelease(const std::string& tag, absl::Duration timeout) {
    const std::string want = "Auto-release " + image_ + ":" + tag;
    const absl::Time give_up = absl::Now() + timeout;
    while (absl::Now() < give_up) {
      const std::string line = repo_->Git("log -1 --format=%ct%x20%s");
      const size_t space = line.find(' ');
      if (space != std::string::npos &&
          absl::StripTrailingAsciiWhitespace(line.substr(space + 1)) == want) {
        int64_t seconds = 0;
        if (absl::SimpleAtoi(line.substr(0, space), &seconds))
          return absl::FromUnixSeconds(seconds);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }

  // The scanner's TagInfo for `tag`, once it lists it (up to 30 s).
  std::optional<ferry::v1::TagInfo> ScannerTag(const std::string& tag) {
    auto stub = ferry::v1::RegistryScanner::NewStub(scanner_.Channel());
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (absl::Now() < give_up) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      ferry::v1::ListTagsRequest request;
      request.set_repository(image_);
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
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.0.0", Config(absl::FromUnixSeconds(1e9))));
  FERRY_ASSERT_OK_AND_ASSIGN(
      repo_, testing::GitRepo::Create(
                 {{"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: soak}\n"},
                  {"apps/app.yaml", Deployment("soak", "app", image_ + ":1.0.0",
                                               "    ferry.dev/automated: \"true\"\n"
                                               "    ferry.dev/tag.app: semver:~1\n"
                                               "    ferry.dev/min-age: 15s\n")}}));
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
  // The api's first pass hands the repository to the scanner, which lists it every second.
  auto scanner = ferry::v1::RegistryScanner::NewStub(scanner_.Channel());
  bool watched = false;
  for (absl::Time give_up = absl::Now() + absl::Seconds(30); !watched && absl::Now() < give_up;) {
    grpc::ClientContext ctx;
    ferry::v1::StatusResponse status;
    if (scanner->Status(&ctx, {}, &status).ok()) {
      for (const auto& r : status.repositories()) watched |= r.repository() == image_;
    }
    if (!watched) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(watched) << api_.process->Output() << scanner_.process->Output();

  // 1. Just outside the soak time (created 20 s ago) and inside it (created now).
  const absl::Time now = WholeSeconds(absl::Now());
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.1.0", Config(now - absl::Seconds(20))));
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.2.0", Config(now)));
  const absl::Time eligible = now + kMinAge;
  std::optional<absl::Time> released = WaitForAutoRelease("1.1.0", absl::Seconds(60));
  ASSERT_TRUE(released.has_value())
      << repo_->Git("log --format=%s") << api_.process->Output() << scanner_.process->Output();
  ASSERT_LT(absl::Now(), eligible) << "too slow to tell the two apart; the run proves nothing";
  // ListImages says the young one soaks, until when, and that automation holds to 1.1.0.
  ferry::v1::ContainerImages container;
  std::optional<ferry::v1::ImageTag> young = ListedTag("1.2.0", &container);
  ASSERT_TRUE(young.has_value());
  EXPECT_EQ(runtime::FromProtoTimestamp(young->eligible_at()), eligible);
  EXPECT_EQ(container.min_age(), "15s");
  EXPECT_EQ(container.latest_filtered(), "1.1.0");

  // 2. The young one once it has soaked, without the hourly pass and without a new push.
  released = WaitForAutoRelease("1.2.0", absl::Seconds(60));
  ASSERT_TRUE(released.has_value()) << repo_->Git("log --format=%s") << api_.process->Output();
  EXPECT_GE(*released, eligible - absl::Seconds(1)) << "released before it had soaked";

  // 3. No creation time: the scanner's first sighting counts, and survives its restart.
  FERRY_ASSERT_OK(registry_->PushImage("team/app", "1.3.0", Config(std::nullopt)));
  std::optional<ferry::v1::TagInfo> unseen = ScannerTag("1.3.0");
  ASSERT_TRUE(unseen.has_value()) << scanner_.process->Output();
  ASSERT_FALSE(unseen->has_created());
  ASSERT_TRUE(unseen->has_first_seen());
  const absl::Time first_seen = runtime::FromProtoTimestamp(unseen->first_seen());
  StartScanner();
  ASSERT_GT(scanner_.grpc_port, 0) << "the scanner came back on another port";
  std::optional<ferry::v1::TagInfo> again = ScannerTag("1.3.0");
  ASSERT_TRUE(again.has_value()) << scanner_.process->Output();
  EXPECT_EQ(runtime::FromProtoTimestamp(again->first_seen()), first_seen)
      << "the first sighting was lost with the scanner";
  ASSERT_LT(absl::Now(), first_seen + kMinAge) << "too slow: 1.3.0 soaked before the restart";
  released = WaitForAutoRelease("1.3.0", absl::Seconds(60));
  ASSERT_TRUE(released.has_value())
      << repo_->Git("log --format=%s") << api_.process->Output() << scanner_.process->Output();
  EXPECT_GE(*released, WholeSeconds(first_seen + kMinAge)) << "released before it had soaked";
  // Three automated releases, in order, none skipped or repeated.
  EXPECT_EQ(repo_->Git("log --format=%s --grep=^Auto-release"),
            absl::StrCat("Auto-release ", image_, ":1.3.0\nAuto-release ", image_,
                         ":1.2.0\nAuto-release ", image_, ":1.1.0\n"));
}

}  // namespace
}  // namespace ferry
