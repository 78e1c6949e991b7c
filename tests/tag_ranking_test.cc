// Tag ranking across processes: a real registry holds the tags, the registry-scanner lists
// them, and the api ranks them by each container's tag filter with lib/policy's one rule.
// ListImages' latest_filtered, a release of every container's latest tag and the automation
// must all name the same tag, for filters whose right answer is neither the newest tag nor
// the last by name: numbers and text in a capture group, versions with a "v", and a glob
// whose newest tag has no creation time.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ferry/v1/api.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/stack.h"
#include "tests/support/http.h"

namespace ferry {
namespace {

using testing::Deployment;
using testing::Image;
using testing::Stack;
using testing::StartStack;

// An image config created on 2024-01-<day>; day 0: no creation time at all (the scanner
// marks its metadata incomplete).
std::string Config(int day) {
  if (day == 0) return R"({"architecture":"amd64","os":"linux"})";
  return absl::StrCat(R"({"architecture":"amd64","os":"linux","created":"2024-01-)",
                      absl::Dec(day, absl::kZeroPad2), R"(T00:00:00Z"})");
}

// One workload per filter kind: the repository's tags with their creation day, the running
// tag, the filter, and the tag it must move to.
struct Case {
  std::string name;  // workload and repository name
  std::vector<std::pair<std::string, int>> tags;
  std::string running;
  std::string filter;
  std::string want;
  std::vector<std::string> listed;  // ListImages' order of the tags
};

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      // Newest by time: build-1; last by name: build-2; by the captured number: build-12.
      {"numbers",
       {{"build-12", 1}, {"build-2", 2}, {"build-1", 3}, {"latest", 4}},
       "build-1",
       "numerical:^build-(\\d+)$",
       "build-12",
       {"build-12", "build-2", "build-1"}},
      // Newest by time and last by name: zeta-20240101; by the captured date: alpha-20240301.
      {"names",
       {{"alpha-20240301", 1}, {"mid-20240201", 2}, {"zeta-20240101", 3}},
       "zeta-20240101",
       "alphabetical:^[a-z]+-(\\d{8})$",
       "alpha-20240301",
       {"alpha-20240301", "mid-20240201", "zeta-20240101"}},
      // Newest: v2.0.0 (outside ~1), then v1.9.0; the highest version within ~1: v1.10.0.
      {"versions",
       {{"v1.2.0", 1}, {"v1.10.0", 2}, {"v1.9.0", 3}, {"v2.0.0", 4}, {"edge", 5}},
       "v1.2.0",
       "semver:~1",
       "v1.10.0",
       {"v2.0.0", "v1.10.0", "v1.9.0", "v1.2.0"}},
      // The newest push, main-c, has no creation time: passed over, main-b is the newest
      // that can be ranked.
      {"globs",
       {{"main-a", 1}, {"main-b", 2}, {"main-c", 0}},
       "main-a",
       "glob:main-*",
       "main-b",
       {"main-b", "main-a", "main-c"}},
  };
  return cases;
}

constexpr char kNamespace[] = "ranking";

std::string Id(const Case& c) { return absl::StrCat(kNamespace, ":deployment/", c.name); }

std::string Manifest(const Stack& stack, const Case& c, const std::string& tag) {
  return Deployment(kNamespace, c.name, Image(stack, "team/" + c.name, tag),
                    "    ferry.dev/automated: \"true\"\n    ferry.dev/tag.app: " + c.filter + "\n");
}

// A dry run of "release every container's latest tag": workload id -> "status reason updates".
std::map<std::string, std::string> PlanAllLatest(Stack& stack) {
  ferry::v1::ReleaseSpec spec;
  spec.set_all_workloads(true);
  spec.set_all_latest(true);
  spec.set_dry_run(true);
  ferry::v1::Job submitted;
  grpc::Status s = stack.Release(spec, &submitted);
  FERRY_EXPECT_OK(s);
  if (!s.ok()) return {};
  ferry::v1::Job done = stack.Follow(submitted.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  std::map<std::string, std::string> out;
  for (const ferry::v1::WorkloadResult& r : done.results()) {
    std::string line =
        absl::StrCat(ferry::v1::WorkloadResultStatus_Name(r.status()), " ", r.reason());
    for (const ferry::v1::ContainerUpdate& u : r.updates()) {
      absl::StrAppend(&line, " ", u.container(), "->", u.to_image());
    }
    out[r.workload()] = line;
  }
  return out;
}

// The value of an unlabelled counter on a /metrics page; -1 when absent.
double Counter(const std::string& page, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::ConsumePrefix(&line, name + " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

TEST(TagRankingTest, ListImagesReleaseAndAutomationPickTheSameTag) {
  Stack stack;
  auto registry = testing::RegistryServer::Start(stack.dir.path + "/registry");
  FERRY_ASSERT_OK(registry);
  stack.registry = *std::move(registry);
  std::map<std::string, std::string> files = {
      {"ns.yaml",
       absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ", kNamespace, "}\n")}};
  for (const Case& c : Cases()) {
    for (const auto& [tag, day] : c.tags) {
      FERRY_ASSERT_OK(stack.registry->PushImage("team/" + c.name, tag, Config(day))) << tag;
    }
    files["apps/" + c.name + ".yaml"] = Manifest(stack, c, c.running);
  }
  StartStack(stack, files, kNamespace);
  if (HasFatalFailure()) return;
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  const std::string initial = stack.repo->Head();

  // ListImages: each container's tags in its filter's order, and the tag it would move to.
  ferry::v1::ListImagesRequest request;
  request.set_namespace_(kNamespace);
  ferry::v1::ListImagesResponse images;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Status s = stack.stub->ListImages(&ctx, request, &images);
  FERRY_ASSERT_OK(s);
  std::map<std::string, const ferry::v1::ContainerImages*> by_workload;
  for (const ferry::v1::WorkloadImages& w : images.workloads()) {
    ASSERT_EQ(w.containers_size(), 1) << w.workload();
    by_workload[w.workload()] = &w.containers(0);
  }
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(by_workload.count(Id(c)));
    const ferry::v1::ContainerImages& ci = *by_workload[Id(c)];
    EXPECT_TRUE(ci.error().empty()) << ci.error();
    EXPECT_EQ(ci.tag_filter(), c.filter);
    EXPECT_EQ(ci.latest_filtered(), c.want);
    EXPECT_EQ(ci.total(), static_cast<int>(c.tags.size()));
    std::vector<std::string> listed;
    for (const ferry::v1::ImageTag& t : ci.tags()) {
      listed.push_back(t.info().tag());
      EXPECT_EQ(t.current(), t.info().tag() == c.running) << t.info().tag();
      // The scanner reports the missing creation time; the api passes the tag over.
      EXPECT_EQ(t.info().incomplete_reason().empty(), t.info().tag() != "main-c") << t.info().tag();
    }
    EXPECT_EQ(listed, c.listed);
  }

  // A release of every container's latest tag plans the same moves.
  std::map<std::string, std::string> plan = PlanAllLatest(stack);
  for (const Case& c : Cases()) {
    EXPECT_EQ(plan[Id(c)],
              "WORKLOAD_RESULT_STATUS_SUCCESS  app->" + Image(stack, "team/" + c.name, c.want));
  }
  EXPECT_EQ(stack.repo->Head(), initial) << "a dry run commits nothing";

  // The automation makes them, in one commit.
  stack.StartApi({"--automation_interval=1h"});
  ASSERT_GT(stack.api.grpc_port, 0);
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (stack.repo->Head() == initial && absl::Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(stack.repo->Git("log -1 --format=%s"), "Auto-release multiple (4) images\n")
      << stack.api.process->Output();
  for (const Case& c : Cases()) {
    EXPECT_EQ(stack.repo->Show("HEAD", "apps/" + c.name + ".yaml"), Manifest(stack, c, c.want))
        << c.name;
  }
  // The pass is counted once its job is done (after the commit: applied in the cluster).
  const std::string metrics_url =
      "http://127.0.0.1:" + std::to_string(stack.api.metrics_port) + "/metrics";
  absl::StatusOr<testing::HttpResponse> metrics = testing::HttpGet(metrics_url);
  while (metrics.ok() && Counter(metrics->body, "ferry_automation_releases_total") < 4 &&
         absl::Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    metrics = testing::HttpGet(metrics_url);
  }
  FERRY_ASSERT_OK(metrics);
  EXPECT_EQ(Counter(metrics->body, "ferry_automation_releases_total"), 4) << metrics->body;
  EXPECT_GE(Counter(metrics->body, "ferry_automation_incomplete_tags_total"), 1)
      << "main-c was passed over, and counted";

  // At the top of their rankings, nothing moves again: a release finds them up to date.
  plan = PlanAllLatest(stack);
  for (const Case& c : Cases()) {
    EXPECT_EQ(plan[Id(c)], "WORKLOAD_RESULT_STATUS_SKIPPED image up to date") << c.name;
  }
}

}  // namespace
}  // namespace ferry
