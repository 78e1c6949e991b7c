// Hostile manifests in the config repo, against the real binaries: an alias bomb, a nest
// 100,000 levels deep, duplicate keys, control characters in images and text that is not
// UTF-8. Each such file is
// a load error of its own, named with its file, line and the limit's flag; ferry-git-writer
// keeps serving the other files and ferry-cluster-syncer keeps applying them, both with
// bounded memory and no crash.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/git_repo.h"
#include "tests/support/kube_fixture.h"

namespace ferry {
namespace {

using testing::GitRepo;
using testing::Running;
using testing::StartArgv;

// Bytes of memory a process has used at most (VmHWM), 0 when unknown.
uint64_t PeakRssBytes(const Running& r) {
  std::ifstream in(absl::StrCat("/proc/", r.process->pid(), "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "VmHWM:")) continue;
    uint64_t kib = 0;
    std::string value(absl::StripAsciiWhitespace(line.substr(6)));
    value = std::string(absl::StripSuffix(value, " kB"));
    if (absl::SimpleAtoi(value, &kib)) return kib * 1024;
  }
  return 0;
}

constexpr uint64_t kPeakRssBound = 500ull * 1024 * 1024;

// The alias bomb of lib/manifest/testdata: 880 bytes that expand to 3.5 billion scalars.
std::string AliasBomb() {
  const std::filesystem::path here = std::filesystem::path(__FILE__).parent_path();
  std::ifstream in(here.parent_path() / "lib/manifest/testdata/hostile/alias_bomb.yaml");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Deployment(const std::string& ns, const std::string& name, const std::string& image,
                       const std::string& extra_container_lines = "") {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ", name,
                      ", namespace: ", ns,
                      "}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: ", name,
                      "}}\n  template:\n    metadata: {labels: {app: ", name,
                      "}}\n    spec:\n      containers:\n      - name: ", name,
                      "\n        image: ", image, "\n", extra_container_lines);
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(60);
}

// The hostile files, by path, with what their load error must say.
const std::map<std::string, std::vector<std::string>>& HostileErrors() {
  static const auto* errors = new std::map<std::string, std::vector<std::string>>{
      {"apps/bomb.yaml",
       {"apps/bomb.yaml:11:", ": document 0: alias *a4",
        "over the limit of 200000 nodes (raise it with --max_manifest_nodes)"}},
      {"apps/deep.yaml",
       {"apps/deep.yaml:4:", ": document 0: manifest nesting depth over the limit of 100 levels",
        "--max_manifest_depth"}},
      {"apps/dup.yaml",
       {"apps/dup.yaml:13:9: document 0: duplicate key \"image\" in a mapping (first at line 12)"}},
      {"apps/nul.yaml",
       {"apps/nul.yaml:12: document 0: the image of container nul \"web:1\\x00evil\" has a "
        "control character (\\x00)"}},
      // Latin-1 text: nlohmann::json::dump() throws on it (type_error.316), which crashed
      // the syncer on every sync; now a load error of its file.
      {"apps/latin1.yaml",
       {"apps/latin1.yaml:5:", ": document 0: the value \"caf\\xe9\" is not valid UTF-8",
        "re-save the file as UTF-8"}},
  };
  return *errors;
}

std::map<std::string, std::string> HostileFiles(const std::string& ns) {
  return {
      {"apps/bomb.yaml", AliasBomb()},
      {"apps/deep.yaml", absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n"
                                      "data: ",
                                      std::string(100'000, '['), "\n")},
      {"apps/dup.yaml", Deployment(ns, "dup", "web:1", "        image: evil:2\n")},
      {"apps/nul.yaml", Deployment(ns, "nul", "\"web:1\\0evil\"")},
      {"apps/latin1.yaml", absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: latin1, "
                                        "namespace: ",
                                        ns, "}\ndata:\n  greeting: caf\xe9\n")},
  };
}

// Every hostile file's error is reported, once, with its file, line, document and fix.
void ExpectHostileErrors(const std::vector<std::string>& errors) {
  for (const auto& [path, parts] : HostileErrors()) {
    int found = 0;
    for (const std::string& e : errors) {
      if (!absl::StrContains(e, path)) continue;
      ++found;
      for (const std::string& part : parts) {
        EXPECT_TRUE(absl::StrContains(e, part)) << e << "\nmissing: " << part;
      }
    }
    EXPECT_EQ(found, 1) << path << " in:\n" << absl::StrJoin(errors, "\n");
  }
}

TEST(HostileManifestGitWriterTest, ReportsEachHostileFileAndServesTheOthers) {
  std::map<std::string, std::string> files = HostileFiles("hostile");
  files["apps/web.yaml"] = Deployment("hostile", "web", "nginx:1.25");
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, GitRepo::Create(files));
  Running git;
  StartArgv({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_url=" + repo->url(), "--state_dir=" + repo->dir() + "/state",
             "--git_poll_interval=1h"},
            git);
  ASSERT_GT(git.grpc_port, 0);
  auto stub = ferry::v1::GitWriter::NewStub(git.Channel());

  ferry::v1::ListManifestWorkloadsResponse listed;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::Status status = stub->ListWorkloads(&ctx, {}, &listed);
    FERRY_ASSERT_OK(status) << git.process->Output();
  }
  ASSERT_EQ(listed.workloads_size(), 1);
  EXPECT_EQ(listed.workloads(0).id(), "hostile:deployment/web");
  ExpectHostileErrors({listed.load_errors().begin(), listed.load_errors().end()});

  // An edit of the bomb fails at once (the document is not indexed: nothing expands it); an
  // edit of the healthy workload beside it is committed.
  ferry::v1::ApplyUpdatesRequest request;
  for (const char* workload : {"hostile:deployment/bomb", "hostile:deployment/web"}) {
    ferry::v1::Edit* edit = request.add_edits();
    edit->set_workload(workload);
    edit->mutable_image()->set_container(absl::EndsWith(workload, "bomb") ? "bomb" : "web");
    edit->mutable_image()->set_to_image("nginx:1.26");
  }
  request.mutable_cause()->set_user("Alice <alice@example.com>");
  ferry::v1::ApplyUpdatesResponse applied;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::Status status = stub->ApplyUpdates(&ctx, request, &applied);
    FERRY_ASSERT_OK(status);
  }
  ASSERT_EQ(applied.results_size(), 2);
  EXPECT_EQ(applied.results(0).code(), grpc::StatusCode::NOT_FOUND) << applied.results(0).error();
  EXPECT_EQ(applied.results(1).code(), grpc::StatusCode::OK) << applied.results(1).error();
  EXPECT_FALSE(applied.revision().empty());
  EXPECT_EQ(repo->Head(), applied.revision());

  // ReadManifests serves every file as it is (the reader loads it under its own limits).
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auto stream = stub->ReadManifests(&ctx, {});
    ferry::v1::ManifestFile file;
    std::map<std::string, std::string> served;
    while (stream->Read(&file)) served[file.path()] = file.content();
    FERRY_ASSERT_OK(stream->Finish());
    EXPECT_EQ(served.size(), 6u);
    EXPECT_EQ(served["apps/bomb.yaml"], files["apps/bomb.yaml"]);
    EXPECT_TRUE(absl::StrContains(served["apps/web.yaml"], "nginx:1.26"));
  }
  EXPECT_EQ(testing::CheckHealth(git, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  const uint64_t peak = PeakRssBytes(git);
  EXPECT_GT(peak, 0u);
  EXPECT_LT(peak, kPeakRssBound) << "git-writer peaked at " << peak / (1024 * 1024) << " MiB";
}

class HostileManifestSyncerTest : public testing::KubeSuite {};

// The probe's crash loop: the bomb pushed to a repo the syncer applies. The syncer reports
// the file and applies the rest, again on every sync, and stays up.
TEST_F(HostileManifestSyncerTest, SurvivesTheAliasBombAndAppliesTheOtherFiles) {
  const std::string ns = "hostile-manifest";
  const std::string good = absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ", ns,
                                        "}\n---\n", Deployment(ns, "web", "nginx:1.25"));
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, GitRepo::Create({{"apps/web.yaml", good}}));
  Running git, syncer;
  testing::StartGitWriterAndSyncer(*repo, *cluster_, {"--sync_set=hostile-manifest"}, git, syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  auto stub = ferry::v1::ClusterSyncer::NewStub(syncer.Channel());
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(Deadline());
  auto watch = stub->WatchSync(&watch_ctx, {});
  ferry::v1::SyncResult result;
  ASSERT_TRUE(watch->Read(&result)) << syncer.process->Output();
  ASSERT_EQ(result.failed(), 0) << result.DebugString();

  // The hostile files land with a change to the healthy file.
  std::map<std::string, std::string> push = HostileFiles(ns);
  push["apps/web.yaml"] = absl::StrCat(good,
                                       "---\napiVersion: v1\nkind: ConfigMap\n"
                                       "metadata: {name: after-bomb, namespace: ",
                                       ns, "}\ndata: {a: b}\n");
  FERRY_ASSERT_OK_AND_ASSIGN(auto pushed, repo->CommitWithCli(push, "Hostile manifests"));
  {
    auto git_stub = ferry::v1::GitWriter::NewStub(git.Channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::HeadResponse head;
    FERRY_ASSERT_OK(git_stub->Notify(&ctx, {}, &head));
  }
  for (int i = 0; i < 10 && result.revision() != pushed; ++i) {
    ASSERT_TRUE(watch->Read(&result)) << syncer.process->Output();
  }
  ASSERT_EQ(result.revision(), pushed);
  watch_ctx.TryCancel();
  EXPECT_TRUE(result.error().empty()) << result.error();
  EXPECT_EQ(result.applied(), 1) << result.DebugString();  // the new ConfigMap
  EXPECT_EQ(result.failed(), 5) << result.DebugString();
  std::vector<std::string> errors;
  for (const auto& e : result.errors()) errors.push_back(absl::StrCat(e.path(), " ", e.error()));
  ExpectHostileErrors(errors);
  int status = 0;
  EXPECT_EQ(cluster_->Kubectl(absl::StrCat("-n ", ns, " get cm after-bomb -o jsonpath={.data.a}"),
                              &status),
            "b");

  // Again, as after a restart: same report, the process stays up and serving.
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::SyncResult again;
    grpc::Status s = stub->SyncNow(&ctx, {}, &again);
    FERRY_ASSERT_OK(s) << syncer.process->Output();
    EXPECT_EQ(again.failed(), 5);
    EXPECT_EQ(again.unchanged(), 3);
  }
  EXPECT_EQ(testing::CheckHealth(syncer, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_FALSE(syncer.process->Wait(absl::ZeroDuration()).has_value()) << "the syncer exited";
  for (const Running* r : {&syncer, &git}) {
    const uint64_t peak = PeakRssBytes(*r);
    EXPECT_GT(peak, 0u);
    EXPECT_LT(peak, kPeakRssBound) << "peaked at " << peak / (1024 * 1024) << " MiB";
  }
}

}  // namespace
}  // namespace ferry
