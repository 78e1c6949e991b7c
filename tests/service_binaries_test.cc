// The four service binaries as a user runs them: started as processes on loopback port 0,
// checked through gRPC health, server reflection, /metrics, signals and exit codes.
#include <arpa/inet.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/git_repo.h"
#include "tests/support/http.h"
#include "tests/support/kube.h"
#include "tests/support/ports.h"
#include "tests/support/registry.h"
#include "tests/support/sshd.h"
#include "tests/support/subprocess.h"
#include "tools/ferry-reflect/reflection_database.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using testing::CheckHealth;
using testing::FirstSync;
using testing::IntField;
using testing::kStartTimeout;
using testing::Running;
using testing::StartArgv;
using testing::StartGitWriterAndSyncer;
using testing::Subprocess;
using testing::TempDir;

struct Binary {
  const char* component;
  const char* path;
  const char* service;       // full name of the contract it serves
  const char* unary_method;  // a unary RPC of the contract
  bool needs_repo;           // started with --git_url of a real repo
};

// Names the parameter in test output.
void PrintTo(const Binary& binary, std::ostream* os) { *os << binary.component; }

const Binary kBinaries[] = {
    {"api", FERRY_API_BIN, "ferry.v1.Ferry", "GetJob", false},
    {"git-writer", FERRY_GIT_WRITER_BIN, "ferry.v1.GitWriter", "Head", true},
    {"registry-scanner", FERRY_REGISTRY_SCANNER_BIN, "ferry.v1.RegistryScanner", "Watch", false},
    {"cluster-syncer", FERRY_CLUSTER_SYNCER_BIN, "ferry.v1.ClusterSyncer", "ListWorkloads", false},
};

// Flags a binary needs besides addresses: git-writer gets a real repo (made in `r`).
std::vector<std::string> RequiredArgs(const Binary& binary, Running& r) {
  if (std::string(binary.component) == "registry-scanner") {
    r.state = std::make_unique<TempDir>();
    return {"--state_dir=" + r.state->path};
  }
  if (std::string(binary.component) == "cluster-syncer") {
    // Nothing listens at either address: the syncer serves anyway (and is not ready).
    r.state = std::make_unique<TempDir>();
    const std::string kubeconfig = r.state->path + "/kubeconfig";
    std::ofstream(kubeconfig)
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
           "    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n"
           "    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
           "current-context: x\n";
    return {"--kubeconfig=" + kubeconfig, "--git_writer_address=127.0.0.1:1"};
  }
  if (!binary.needs_repo) return {};
  auto repo = testing::GitRepo::Create(
      {{"apps/web.yaml",
        "kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: web\n        image: nginx:1.25\n"}});
  FERRY_EXPECT_OK(repo);
  if (!repo.ok()) return {};
  r.repo = *std::move(repo);
  return {"--git_url=" + r.repo->url(), "--state_dir=" + r.repo->dir() + "/state"};
}

Running StartOnLoopback(const Binary& binary, std::vector<std::string> extra_args = {}) {
  Running r;
  std::vector<std::string> argv = {binary.path, "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0", "--drain_timeout=2s"};
  std::vector<std::string> required = RequiredArgs(binary, r);
  argv.insert(argv.end(), required.begin(), required.end());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  StartArgv(argv, r);
  return r;
}

class ServiceBinaryTest : public ::testing::TestWithParam<Binary> {};

TEST_P(ServiceBinaryTest, ReportsServingForServerAndItsService) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  EXPECT_EQ(CheckHealth(r, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(r, GetParam().service), HealthCheckResponse::SERVING);
}

TEST_P(ServiceBinaryTest, ListsAndDescribesServicesThroughReflection) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  reflect::ReflectionDatabase db(r.Channel(), {});
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<std::string> services, db.ListServices());
  EXPECT_EQ(services, (std::vector<std::string>{GetParam().service, "grpc.health.v1.Health",
                                                "grpc.reflection.v1alpha.ServerReflection"}));

  google::protobuf::DescriptorPool pool(&db);
  const google::protobuf::ServiceDescriptor* own = pool.FindServiceByName(GetParam().service);
  ASSERT_NE(own, nullptr) << db.last_error();
  EXPECT_NE(own->FindMethodByName(GetParam().unary_method), nullptr);
  const google::protobuf::ServiceDescriptor* health =
      pool.FindServiceByName("grpc.health.v1.Health");
  ASSERT_NE(health, nullptr) << "health must be describable: " << db.last_error();
  EXPECT_NE(health->FindMethodByName("Watch"), nullptr);
}

TEST_P(ServiceBinaryTest, AnswersCarryTheFerryVersion) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  auto stub = Health::NewStub(r.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckResponse response;
  FERRY_ASSERT_OK(stub->Check(&ctx, HealthCheckRequest(), &response));
  auto version = ctx.GetServerInitialMetadata().find("ferry-version");
  ASSERT_NE(version, ctx.GetServerInitialMetadata().end());
  EXPECT_FALSE(version->second.empty());
}

TEST_P(ServiceBinaryTest, ServesPrometheusMetricsWithFerryPrefix) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  ASSERT_EQ(CheckHealth(r, ""), HealthCheckResponse::SERVING);
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto metrics,
      testing::HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_TRUE(absl::StrContains(
      metrics.body, std::string("ferry_build_info{component=\"") + GetParam().component + "\""))
      << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body,
                                "ferry_grpc_server_handled_total{grpc_code=\"OK\","
                                "grpc_method=\"Check\",grpc_service=\"grpc.health.v1.Health\""))
      << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body,
                                "# TYPE ferry_grpc_server_handling_seconds "
                                "histogram"));
  EXPECT_TRUE(absl::StrContains(metrics.body, "process_cpu_seconds_total "));
}

TEST_P(ServiceBinaryTest, SigtermTurnsHealthNotServingAndExitsZero) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  auto stub = Health::NewStub(r.Channel());
  grpc::ClientContext watch_ctx;
  auto watch = stub->Watch(&watch_ctx, HealthCheckRequest());
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  ASSERT_EQ(update.status(), HealthCheckResponse::SERVING);

  r.process->Signal(SIGTERM);
  // The watch is an in-flight RPC: it is told NOT_SERVING while the server drains.
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  // Drain deadline is 2 s; the exit must come within it plus start-up slack of the
  // metrics server's stop.
  std::optional<int> code = r.process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value()) << "still running 15 s after SIGTERM";
  EXPECT_EQ(*code, 0) << r.process->Output();
  EXPECT_TRUE(absl::StrContains(r.process->Output(), " stopped")) << r.process->Output();
  watch_ctx.TryCancel();
}

TEST_P(ServiceBinaryTest, ReadsAddressesFromEnvironment) {
  Running r;
  std::vector<std::string> argv = {GetParam().path};
  std::vector<std::string> required = RequiredArgs(GetParam(), r);
  argv.insert(argv.end(), required.begin(), required.end());
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto process,
      Subprocess::Start(argv, {"FERRY_GRPC_ADDRESS=127.0.0.1:0",
                               "FERRY_METRICS_ADDRESS=127.0.0.1:0", "FERRY_LOG_FORMAT=json"}));
  std::optional<std::string> line = process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"event\":\"listening\""); },
      kStartTimeout);
  ASSERT_TRUE(line.has_value()) << process->Output();
  EXPECT_TRUE(absl::StrContains(*line, "\"grpc_address\":\"127.0.0.1:")) << *line;
  EXPECT_TRUE(absl::StrContains(*line, std::string("\"component\":\"") + GetParam().component))
      << *line;
}

TEST_P(ServiceBinaryTest, InvalidAddressExitsTwoNamingTheFlag) {
  FERRY_ASSERT_OK_AND_ASSIGN(auto process,
                             Subprocess::Start({GetParam().path, "--grpc_address=localhost"}));
  std::optional<int> code = process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(
      absl::StrContains(process->Output(), "--grpc_address: invalid address 'localhost': no port"))
      << process->Output();
}

TEST_P(ServiceBinaryTest, UnknownFlagExitsTwo) {
  FERRY_ASSERT_OK_AND_ASSIGN(auto process,
                             Subprocess::Start({GetParam().path, "--grpc_adress=127.0.0.1:0"}));
  std::optional<int> code = process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains(process->Output(), "--grpc_adress")) << process->Output();
}

// A listening socket on a kernel-picked loopback port, held for the test's lifetime.
class HeldPort {
 public:
  HeldPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HeldPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_P(ServiceBinaryTest, GrpcPortInUseExitsTwo) {
  HeldPort held;
  const std::string address = "127.0.0.1:" + std::to_string(held.port());
  Running r;
  std::vector<std::string> argv = {GetParam().path, "--grpc_address=" + address,
                                   "--metrics_address=127.0.0.1:0"};
  std::vector<std::string> required = RequiredArgs(GetParam(), r);
  argv.insert(argv.end(), required.begin(), required.end());
  FERRY_ASSERT_OK_AND_ASSIGN(auto process, Subprocess::Start(argv));
  std::optional<int> code = process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains(process->Output(), "cannot listen for gRPC on " + address))
      << process->Output();
}

TEST_P(ServiceBinaryTest, MetricsPortInUseExitsTwo) {
  HeldPort held;
  const std::string address = "127.0.0.1:" + std::to_string(held.port());
  Running r;
  std::vector<std::string> argv = {GetParam().path, "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=" + address};
  std::vector<std::string> required = RequiredArgs(GetParam(), r);
  argv.insert(argv.end(), required.begin(), required.end());
  FERRY_ASSERT_OK_AND_ASSIGN(auto process, Subprocess::Start(argv));
  std::optional<int> code = process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains(process->Output(), "cannot serve metrics on " + address))
      << process->Output();
}

INSTANTIATE_TEST_SUITE_P(AllServices, ServiceBinaryTest, ::testing::ValuesIn(kBinaries),
                         [](const ::testing::TestParamInfo<Binary>& info) {
                           std::string name = info.param.component;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The grpcurl-compatible CLI against a real server.
TEST(FerryReflectTest, ListsDescribesAndCallsLikeGrpcurl) {
  Running r = StartOnLoopback(kBinaries[0]);
  ASSERT_GT(r.grpc_port, 0);
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {FERRY_REFLECT_BIN, "-plaintext"});
    auto p = Subprocess::Start(args);
    FERRY_EXPECT_OK(p);
    std::optional<int> code = (*p)->Wait(absl::Seconds(20));
    return std::make_pair(code.value_or(-1), (*p)->Output());
  };
  auto [list_code, list] = run({r.GrpcTarget(), "list"});
  EXPECT_EQ(list_code, 0);
  EXPECT_EQ(list,
            "ferry.v1.Ferry\ngrpc.health.v1.Health\ngrpc.reflection.v1alpha.ServerReflection");

  auto [describe_code, describe] = run({r.GrpcTarget(), "describe", "grpc.health.v1.Health"});
  EXPECT_EQ(describe_code, 0);
  EXPECT_TRUE(absl::StartsWith(describe, "grpc.health.v1.Health is a service:")) << describe;
  EXPECT_TRUE(absl::StrContains(describe,
                                "rpc Watch(.grpc.health.v1.HealthCheckRequest) returns "
                                "(stream .grpc.health.v1.HealthCheckResponse);"))
      << describe;

  auto [check_code, check] = run({r.GrpcTarget(), "grpc.health.v1.Health/Check"});
  EXPECT_EQ(check_code, 0);
  EXPECT_TRUE(absl::StrContains(check, "\"status\": \"SERVING\"")) << check;

  auto [call_code, call] = run({"-d", "{\"id\":\"\"}", r.GrpcTarget(), "ferry.v1.Ferry/GetJob"});
  EXPECT_EQ(call_code, 64 + 3);  // INVALID_ARGUMENT
  EXPECT_TRUE(absl::StrContains(call, "Code: InvalidArgument")) << call;
  EXPECT_TRUE(absl::StrContains(call, "id is empty")) << call;

  auto [bad_code, bad] =
      run({"-d", "{\"nope\":1}", r.GrpcTarget(), "ferry.v1.Ferry/ListWorkloads"});
  EXPECT_EQ(bad_code, 2);
  EXPECT_TRUE(absl::StrContains(bad, "-d is not a valid ferry.v1.ListWorkloadsRequest")) << bad;
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// ferry-git-writer as deployed: a real upstream repo over file://, called through its
// contract.
TEST(GitWriterBinaryTest, ServesTheRepoThroughItsContract) {
  Running r = StartOnLoopback(kBinaries[1]);
  ASSERT_GT(r.grpc_port, 0) << r.process->Output();
  auto stub = ferry::v1::GitWriter::NewStub(r.Channel());
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(30); };

  grpc::ClientContext head_ctx;
  head_ctx.set_deadline(deadline());
  ferry::v1::HeadResponse head;
  FERRY_ASSERT_OK(stub->Head(&head_ctx, {}, &head));
  EXPECT_EQ(head.revision(), r.repo->Head());
  EXPECT_EQ(head.branch(), "main");

  grpc::ClientContext list_ctx;
  list_ctx.set_deadline(deadline());
  ferry::v1::ListManifestWorkloadsResponse workloads;
  FERRY_ASSERT_OK(stub->ListWorkloads(&list_ctx, {}, &workloads));
  ASSERT_EQ(workloads.workloads_size(), 1);
  EXPECT_EQ(workloads.workloads(0).id(), "default:deployment/web");
  EXPECT_EQ(workloads.workloads(0).containers(0).image(), "nginx:1.25");
  EXPECT_EQ(workloads.workloads(0).containers(0).image_ref().repository(), "library/nginx");

  ferry::v1::ApplyUpdatesRequest apply;
  ferry::v1::Edit* edit = apply.add_edits();
  edit->set_workload("default:deployment/web");
  edit->mutable_image()->set_container("web");
  edit->mutable_image()->set_from_image("nginx:1.25");
  edit->mutable_image()->set_to_image("nginx:1.26");
  apply.mutable_cause()->set_user("Alice <alice@example.com>");
  apply.mutable_job()->set_id("job-42");
  grpc::ClientContext apply_ctx;
  apply_ctx.set_deadline(deadline());
  ferry::v1::ApplyUpdatesResponse applied;
  grpc::Status status = stub->ApplyUpdates(&apply_ctx, apply, &applied);
  FERRY_ASSERT_OK(status);
  EXPECT_EQ(applied.revision(), r.repo->Head());
  EXPECT_NE(r.repo->Show(applied.revision(), "apps/web.yaml").find("image: nginx:1.26"),
            std::string::npos);
  EXPECT_EQ(r.repo->Git("log -1 --format=%an " + applied.revision()), "Alice\n");
  EXPECT_NE(r.repo->Git("notes --ref=ferry show " + applied.revision()).find("\"id\":\"job-42\""),
            std::string::npos);

  // The same edit again: its "from" no longer matches.
  grpc::ClientContext stale_ctx;
  stale_ctx.set_deadline(deadline());
  status = stub->ApplyUpdates(&stale_ctx, apply, &applied);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kAborted, HasSubstr("is now nginx:1.26, not nginx:1.25")));

  ferry::v1::ApplyUpdatesRequest bad;
  bad.add_edits()->set_workload("web");
  grpc::ClientContext bad_ctx;
  bad_ctx.set_deadline(deadline());
  status = stub->ApplyUpdates(&bad_ctx, bad, &applied);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("namespace:kind/name")));

  grpc::ClientContext id_ctx;
  id_ctx.set_deadline(deadline());
  ferry::v1::Identity identity;
  EXPECT_THAT(stub->GetIdentity(&id_ctx, {}, &identity),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  ferry::v1::SetSyncMarkerRequest mark;
  mark.set_revision(applied.revision().empty() ? r.repo->Head() : r.repo->Head());
  grpc::ClientContext mark_ctx;
  mark_ctx.set_deadline(deadline());
  ferry::v1::SyncMarker marker;
  FERRY_ASSERT_OK(stub->SetSyncMarker(&mark_ctx, mark, &marker));
  EXPECT_EQ(r.repo->Git("rev-parse ferry-sync^{commit}"), r.repo->Head() + "\n");

  // A push by someone else, then Notify (a webhook): WatchHead streams the new head.
  grpc::ClientContext watch_ctx;
  auto watch = stub->WatchHead(&watch_ctx, {});
  ferry::v1::HeadResponse seen;
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.revision(), r.repo->Head());
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto pushed,
      r.repo->CommitWithCli({{"apps/extra.yaml", "kind: ConfigMap\nmetadata:\n  name: x\n"}},
                            "Someone else"));
  grpc::ClientContext notify_ctx;
  notify_ctx.set_deadline(deadline());
  ferry::v1::HeadResponse notified;
  FERRY_ASSERT_OK(stub->Notify(&notify_ctx, {}, &notified));
  EXPECT_EQ(notified.revision(), pushed);
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.revision(), pushed);
  watch_ctx.TryCancel();

  FERRY_ASSERT_OK_AND_ASSIGN(
      auto metrics,
      testing::HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics"));
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_git_commits_total 1")) << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_git_ready 1"));
}

TEST(GitWriterBinaryTest, RequiresAGitUrl) {
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto process, Subprocess::Start({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0"}));
  std::optional<int> code = process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains(process->Output(), "--git_url: required")) << process->Output();
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// kill -9 in the middle of a stream of releases, then a restart on the same state: the
// mirror is used (or repaired) as it is, and every release lands exactly once.
TEST(GitWriterBinaryTest, KillNineDuringWritesLosesAndDuplicatesNothing) {
  constexpr int kWorkloads = 24;
  std::map<std::string, std::string> files;
  for (int i = 0; i < kWorkloads; ++i) {
    files["apps/w" + std::to_string(i) + ".yaml"] =
        "kind: Deployment\nmetadata:\n  name: w" + std::to_string(i) +
        "\nspec:\n  template:\n    spec:\n      containers:\n      - name: w\n"
        "        image: img/w:1\n";
  }
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, testing::GitRepo::Create(files));
  const std::string state = repo->dir() + "/state";
  auto start = [&]() {
    Running r;
    StartArgv({FERRY_GIT_WRITER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
               "--git_url=" + repo->url(), "--state_dir=" + state},
              r);
    return r;
  };
  // Releases w_i img/w:1 -> img/w:2. OK: done. ABORTED saying it already runs img/w:2: an
  // earlier attempt landed (possibly unacknowledged before the kill): also done.
  auto release = [&](Running& r, int i) -> grpc::StatusCode {
    auto stub = ferry::v1::GitWriter::NewStub(r.Channel());
    ferry::v1::ApplyUpdatesRequest req;
    ferry::v1::Edit* e = req.add_edits();
    e->set_workload("default:deployment/w" + std::to_string(i));
    e->mutable_image()->set_container("w");
    e->mutable_image()->set_from_image("img/w:1");
    e->mutable_image()->set_to_image("img/w:2");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::ApplyUpdatesResponse resp;
    grpc::Status s = stub->ApplyUpdates(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::ABORTED &&
        absl::StrContains(s.error_message(), "is now img/w:2")) {
      return grpc::StatusCode::OK;
    }
    return s.error_code();
  };

  std::set<int> done;
  {
    Running r = start();
    ASSERT_GT(r.grpc_port, 0);
    std::atomic<int> next{0};
    std::thread client([&] {
      for (int i = 0; i < kWorkloads; ++i) {
        next = i;
        if (release(r, i) == grpc::StatusCode::OK)
          done.insert(i);
        else
          break;  // the server died under us
      }
    });
    // Kill once a third of the releases went through, mid-stream.
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (next < kWorkloads / 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    r.process->Signal(SIGKILL);
    client.join();
    ASSERT_EQ(r.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  }
  EXPECT_GE(done.size(), static_cast<size_t>(kWorkloads / 3 - 1));
  EXPECT_LT(done.size(), static_cast<size_t>(kWorkloads));
  {
    Running r = start();
    ASSERT_GT(r.grpc_port, 0) << "restart on the same state failed";
    for (int i = 0; i < kWorkloads; ++i) {
      EXPECT_EQ(release(r, i), grpc::StatusCode::OK) << "w" << i;
    }
  }
  const std::string head = repo->Head();
  std::string log = repo->Git("log --format=%s");
  for (int i = 0; i < kWorkloads; ++i) {
    EXPECT_NE(repo->Show(head, "apps/w" + std::to_string(i) + ".yaml").find("image: img/w:2"),
              std::string::npos);
    std::string subject = "Release default:deployment/w" + std::to_string(i) + " w: img/w:2\n";
    size_t first = log.find(subject);
    EXPECT_NE(first, std::string::npos) << subject;
    EXPECT_EQ(log.find(subject, first + 1), std::string::npos) << "twice: " << subject;
  }
  EXPECT_EQ(repo->Git("rev-list --count HEAD"), std::to_string(1 + kWorkloads) + "\n");
  EXPECT_EQ(repo->Git("rev-list --merges HEAD"), "");
  int fsck = 0;
  testing::RunCommand("cd " + repo->dir() + "/upstream.git && git fsck --no-progress 2>&1", &fsck);
  EXPECT_EQ(fsck, 0);
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// ferry-registry-scanner against a real registry: a watched repository's new tag arrives
// as an event within a few scan intervals, tags are listed in version order, and the
// registry requests are counted by kind.
TEST(RegistryScannerBinaryTest, WatchesARealRegistry) {
  TempDir dir;
  FERRY_ASSERT_OK_AND_ASSIGN(auto registry, testing::RegistryServer::Start(dir.path + "/registry"));
  const std::string config =
      R"({"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z"})";
  FERRY_ASSERT_OK(registry->PushImage("team/app", "1.0.0", config));
  FERRY_ASSERT_OK(registry->PushImage("team/app", "1.10.0", config));
  FERRY_ASSERT_OK(registry->PushImage("team/app", "1.9.0", config));

  Running r;
  auto process =
      Subprocess::Start({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                         "--metrics_address=127.0.0.1:0", "--state_dir=" + dir.path + "/state",
                         "--scan_interval=1s", "--registry_insecure_hosts=" + registry->host()});
  FERRY_ASSERT_OK(process);
  r.process = *std::move(process);
  auto line = r.process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, " listening "); }, kStartTimeout);
  ASSERT_TRUE(line.has_value()) << r.process->Output();
  r.grpc_port = IntField(*line, "grpc_port").value_or(0);
  r.metrics_port = IntField(*line, "metrics_port").value_or(0);
  auto stub = ferry::v1::RegistryScanner::NewStub(r.Channel());
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(30); };
  const std::string repo = registry->host() + "/team/app";

  ferry::v1::WatchRequest watch;
  watch.add_repositories(repo);
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(deadline());
  ferry::v1::WatchResponse watched;
  FERRY_ASSERT_OK(stub->Watch(&watch_ctx, watch, &watched));
  EXPECT_EQ(watched.added_size(), 1);

  ferry::v1::ListTagsRequest list;
  list.set_repository(repo);
  list.set_ordering(ferry::v1::TAG_ORDERING_SEMVER);
  grpc::ClientContext list_ctx;
  list_ctx.set_deadline(deadline());
  ferry::v1::ListTagsResponse tags;
  grpc::Status status = stub->ListTags(&list_ctx, list, &tags);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(tags.tags_size(), 3);
  EXPECT_EQ(tags.tags(0).tag(), "1.10.0");
  EXPECT_EQ(tags.tags(2).tag(), "1.0.0");
  EXPECT_TRUE(tags.fresh());

  grpc::ClientContext events_ctx;
  events_ctx.set_deadline(deadline());
  auto events = stub->WatchEvents(&events_ctx, {});
  events->WaitForInitialMetadata();  // subscribed
  FERRY_ASSERT_OK_AND_ASSIGN(auto pushed, registry->PushImage("team/app", "1.11.0", config));
  ferry::v1::TagEvent event;
  ASSERT_TRUE(events->Read(&event)) << "no event within the deadline";
  EXPECT_EQ(event.kind(), ferry::v1::TAG_EVENT_KIND_NEW_TAG);
  EXPECT_EQ(event.repository(), repo);
  EXPECT_EQ(event.tag().tag(), "1.11.0");
  EXPECT_EQ(event.tag().digest(), pushed);
  EXPECT_GT(event.sequence(), 0u);
  events_ctx.TryCancel();

  // A client that lost its stream resumes from the last sequence it saw: the event is
  // replayed, nothing between is lost.
  grpc::ClientContext resume_ctx;
  resume_ctx.set_deadline(deadline());
  ferry::v1::WatchEventsRequest resume;
  resume.set_from_sequence(event.sequence());
  auto replay = stub->WatchEvents(&resume_ctx, resume);
  ferry::v1::TagEvent replayed;
  ASSERT_TRUE(replay->Read(&replayed));
  EXPECT_EQ(replayed.sequence(), event.sequence());
  EXPECT_EQ(replayed.tag().digest(), pushed);
  resume_ctx.TryCancel();

  ferry::v1::GetImageRequest get;
  get.set_reference(repo + ":1.11.0");
  grpc::ClientContext get_ctx;
  get_ctx.set_deadline(deadline());
  ferry::v1::TagInfo info;
  FERRY_ASSERT_OK(stub->GetImage(&get_ctx, get, &info));
  EXPECT_EQ(info.digest(), pushed);
  EXPECT_EQ(info.created().seconds(), 1704067200);

  grpc::ClientContext status_ctx;
  status_ctx.set_deadline(deadline());
  ferry::v1::StatusResponse st;
  FERRY_ASSERT_OK(stub->Status(&status_ctx, {}, &st));
  ASSERT_EQ(st.repositories_size(), 1);
  EXPECT_EQ(st.repositories(0).tag_count(), 4);

  FERRY_ASSERT_OK_AND_ASSIGN(
      auto metrics,
      testing::HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics"));
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_registry_requests_total{code=\"200\",host=\"" +
                                                  registry->host() + "\",kind=\"tags\"}"))
      << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_registry_scans_total{outcome=\"ok\"}"));
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// A push reaches the scanner through the registry's own notifications: with a one-hour
// scan interval, only the webhook can explain the event.
TEST(RegistryScannerBinaryTest, RegistryNotificationTriggersTheScan) {
  TempDir dir;
  const int webhook_port = testing::FreeLoopbackPort();
  const std::string secret = "hook-s3cret";
  std::ofstream(dir.path + "/secret") << secret << "\n";
  auto registry = testing::RegistryServer::StartWithNotifications(
      dir.path + "/registry", "http://127.0.0.1:" + std::to_string(webhook_port) + "/webhook",
      secret);
  FERRY_ASSERT_OK(registry);
  const std::string config =
      R"({"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z"})";
  FERRY_ASSERT_OK((*registry)->PushImage("team/app", "1.0.0", config));

  Running r;
  auto process =
      Subprocess::Start({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                         "--metrics_address=127.0.0.1:0", "--state_dir=" + dir.path + "/state",
                         "--scan_interval=1h", "--registry_insecure_hosts=" + (*registry)->host(),
                         "--webhook_address=127.0.0.1:" + std::to_string(webhook_port),
                         "--webhook_secret_path=" + dir.path + "/secret"});
  FERRY_ASSERT_OK(process);
  r.process = *std::move(process);
  auto line = r.process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "grpc_port="); }, kStartTimeout);
  ASSERT_TRUE(line.has_value()) << r.process->Output();
  r.grpc_port = IntField(*line, "grpc_port").value_or(0);
  auto stub = ferry::v1::RegistryScanner::NewStub(r.Channel());
  const std::string repo = (*registry)->host() + "/team/app";
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(20); };

  ferry::v1::WatchRequest watch;
  watch.add_repositories(repo);
  grpc::ClientContext watch_ctx;
  ferry::v1::WatchResponse watched;
  FERRY_ASSERT_OK(stub->Watch(&watch_ctx, watch, &watched));
  ferry::v1::ListTagsRequest list;
  list.set_repository(repo);
  grpc::ClientContext list_ctx;
  list_ctx.set_deadline(deadline());
  ferry::v1::ListTagsResponse tags;
  FERRY_ASSERT_OK(stub->ListTags(&list_ctx, list, &tags));  // first scan
  ASSERT_EQ(tags.tags_size(), 1);

  grpc::ClientContext events_ctx;
  events_ctx.set_deadline(deadline());
  auto events = stub->WatchEvents(&events_ctx, {});
  events->WaitForInitialMetadata();  // subscribed
  auto pushed = (*registry)->PushImage("team/app", "1.1.0", config);
  FERRY_ASSERT_OK(pushed);
  ferry::v1::TagEvent event;
  ASSERT_TRUE(events->Read(&event)) << "no event: " << r.process->Output();
  EXPECT_EQ(event.kind(), ferry::v1::TAG_EVENT_KIND_NEW_TAG);
  EXPECT_EQ(event.tag().tag(), "1.1.0");
  EXPECT_EQ(event.tag().digest(), *pushed);
  events_ctx.TryCancel();
  // The delivery itself is logged, naming the repository and tag the registry pushed (not
  // only the "webhooks listening" start-up line).
  auto delivery = r.process->WaitForLine(
      [&repo](const std::string& l) {
        return absl::StrContains(l, " webhook repository=" + repo + " tag=1.1.0 queued=true");
      },
      absl::Seconds(20));
  EXPECT_TRUE(delivery.has_value()) << r.process->Output();
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

constexpr char kSyncedNamespace[] = "apiVersion: v1\nkind: Namespace\nmetadata: {name: e2e}\n";

constexpr char kSyncedApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/team/web:1.0.0
)";

// ferry-git-writer + ferry-cluster-syncer + a real Kubernetes API: a pushed commit reaches
// the cluster through WatchHead, which reads only the files it changed; status, workloads,
// rollout, export and the sync marker.
TEST(ClusterSyncerBinaryTest, AppliesEachNewHeadOfARealRepoToARealCluster) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto repo, testing::GitRepo::Create(
                     {{"apps/ns.yaml", kSyncedNamespace}, {"apps/web.yaml", kSyncedApp}}));
  Running git, syncer;
  StartGitWriterAndSyncer(*repo, **cluster, {"--sync_set=e2e"}, git, syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  auto stub = ferry::v1::ClusterSyncer::NewStub(syncer.Channel());
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(60); };

  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(deadline());
  auto watch = stub->WatchSync(&watch_ctx, {});
  ferry::v1::SyncResult result;
  ASSERT_TRUE(watch->Read(&result)) << syncer.process->Output();
  EXPECT_EQ(result.revision(), repo->Head());
  const std::string first_revision = result.revision();
  EXPECT_TRUE(result.error().empty()) << result.error();
  EXPECT_EQ(result.applied(), 2);
  EXPECT_EQ(result.failed(), 0);
  EXPECT_EQ(CheckHealth(syncer, "readiness"), HealthCheckResponse::SERVING);
  EXPECT_EQ(repo->Git("rev-parse ferry-sync^{commit}"), repo->Head() + "\n");

  // Someone pushes a new image; git-writer is told (a webhook would), the syncer follows.
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto pushed,
      repo->CommitWithCli(
          {{"apps/web.yaml", absl::StrReplaceAll(kSyncedApp, {{"web:1.0.0", "web:1.1.0"}})}},
          "Bump"));
  auto git_stub = ferry::v1::GitWriter::NewStub(git.Channel());
  grpc::ClientContext notify_ctx;
  notify_ctx.set_deadline(deadline());
  ferry::v1::HeadResponse head;
  FERRY_ASSERT_OK(git_stub->Notify(&notify_ctx, {}, &head));
  do {
    ASSERT_TRUE(watch->Read(&result)) << syncer.process->Output();
  } while (result.revision() != pushed);
  EXPECT_EQ(result.applied(), 1);
  EXPECT_EQ(result.unchanged(), 1);
  int status = 0;
  EXPECT_EQ(
      (*cluster)->Kubectl(
          "-n e2e get deploy web -o jsonpath={.spec.template.spec.containers[0].image}", &status),
      "registry.example.com/team/web:1.1.0");
  watch_ctx.TryCancel();

  grpc::ClientContext list_ctx;
  list_ctx.set_deadline(deadline());
  ferry::v1::ListClusterWorkloadsRequest list;
  list.set_namespace_("e2e");
  ferry::v1::ListClusterWorkloadsResponse workloads;
  FERRY_ASSERT_OK(stub->ListWorkloads(&list_ctx, list, &workloads));
  ASSERT_EQ(workloads.workloads_size(), 1);
  EXPECT_EQ(workloads.workloads(0).id(), "e2e:deployment/web");
  EXPECT_EQ(workloads.workloads(0).containers(0).image_ref().tag(), "1.1.0");

  // Zero replicas: ready as soon as the controller has seen the new spec.
  grpc::ClientContext rollout_ctx;
  rollout_ctx.set_deadline(deadline());
  ferry::v1::WaitRolloutRequest wait;
  wait.add_workloads("e2e:deployment/web");
  wait.set_revision(pushed);
  wait.set_timeout_seconds(30);
  auto rollout = stub->WaitRollout(&rollout_ctx, wait);
  ferry::v1::WaitRolloutProgress progress;
  while (rollout->Read(&progress) && !progress.done()) {
  }
  EXPECT_TRUE(progress.done());
  EXPECT_EQ(progress.rollouts(0).status().state(), ferry::v1::ROLLOUT_STATE_READY);
  FERRY_EXPECT_OK(rollout->Finish());

  grpc::ClientContext bad_ctx;
  bad_ctx.set_deadline(deadline());
  ferry::v1::SyncNowRequest bad;
  bad.set_revision("0123456789012345678901234567890123456789");
  ferry::v1::SyncResult ignored;
  EXPECT_THAT(stub->SyncNow(&bad_ctx, bad, &ignored), StatusIs(absl::StatusCode::kNotFound));

  grpc::ClientContext export_ctx;
  export_ctx.set_deadline(deadline());
  ferry::v1::ExportResourcesRequest exp;
  exp.add_namespaces("e2e");
  auto exported = stub->Export(&export_ctx, exp);
  ferry::v1::ExportedResource resource;
  std::set<std::string> ids;
  while (exported->Read(&resource)) ids.insert(resource.id());
  FERRY_EXPECT_OK(exported->Finish());
  EXPECT_EQ(ids, (std::set<std::string>{"<cluster>:namespace/e2e", "e2e:deployment/web"}));

  FERRY_ASSERT_OK_AND_ASSIGN(
      auto metrics,
      testing::HttpGet("http://127.0.0.1:" + std::to_string(syncer.metrics_port) + "/metrics"));
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_sync_total{outcome=\"success\"} 2"))
      << metrics.body;
  EXPECT_TRUE(
      absl::StrContains(metrics.body, "ferry_kube_requests_total{code=\"200\",verb=\"apply\"}"))
      << metrics.body;
  // Only the last revision has a series.
  EXPECT_TRUE(
      absl::StrContains(metrics.body, "ferry_sync_revision_info{revision=\"" + pushed + "\"} 1"))
      << metrics.body;
  EXPECT_FALSE(absl::StrContains(metrics.body, "revision=\"" + first_revision + "\""));
  // The first sync read both files; the second only the one the commit changed.
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_sync_manifest_files_total{text=\"sent\"} 3"))
      << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body, "ferry_sync_manifest_files_total{text=\"known\"} 1"))
      << metrics.body;
  EXPECT_TRUE(
      absl::StrContains(metrics.body, "ferry_sync_manifest_files_total{text=\"read_again\"} 0"))
      << metrics.body;
}

// A repo of one ConfigMap named `name` in the default namespace.
absl::StatusOr<std::unique_ptr<testing::GitRepo>> OneConfigMapRepo(const std::string& name) {
  return testing::GitRepo::Create(
      {{"cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name +
                       ", namespace: default}\ndata: {a: b}\n"}});
}

// --sync_state=cluster: the applied revision is recorded in a ConfigMap, git is not touched.
TEST(ClusterSyncerBinaryTest, RecordsTheSyncStateInTheClusterWhenAsked) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, OneConfigMapRepo("state-test"));
  Running git, syncer;
  StartGitWriterAndSyncer(
      *repo, **cluster,
      {"--sync_set=state", "--sync_state=cluster", "--sync_state_namespace=kube-public"}, git,
      syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> result = FirstSync(syncer);
  ASSERT_TRUE(result.has_value()) << syncer.process->Output();
  EXPECT_EQ(result->revision(), repo->Head());
  EXPECT_EQ(
      (*cluster)->Kubectl("-n kube-public get cm ferry-sync-state -o jsonpath={.data.revision}"),
      repo->Head());
  int status = 0;
  testing::RunCommand("git -C " + repo->dir() + "/upstream.git rev-parse -q --verify ferry-sync",
                      &status);
  EXPECT_NE(status, 0) << "the sync tag was pushed although the state lives in the cluster";
}

// A fresh git-writer answers Head after its first fetch, which takes seconds on a big
// repository; here an ssh server holds the first git command 7 s, past the syncer's 5 s wait
// for a connection. The syncer's first sync waits for that answer instead of failing.
TEST(ClusterSyncerBinaryTest, TheFirstSyncWaitsForASlowFirstFetchInsteadOfFailing) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, OneConfigMapRepo("slow-fetch"));
  FERRY_ASSERT_OK_AND_ASSIGN(auto sshd, testing::Sshd::Start(repo->dir() + "/sshd"));
  // Every git command over ssh goes through this script, which holds the first one.
  const std::string script = repo->dir() + "/slow-first-command.sh";
  std::ofstream(script) << "#!/bin/sh\nif [ ! -e " << repo->dir() << "/held ]; then touch "
                        << repo->dir()
                        << "/held; sleep 7; fi\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::string key;
  std::getline(std::ifstream(repo->dir() + "/sshd/authorized_keys"), key);
  std::ofstream(repo->dir() + "/sshd/authorized_keys")
      << "command=\"" << script << "\" " << key << "\n";
  Running git, syncer;
  StartArgv(SshGitWriterArgv(*repo, *sshd, repo->dir() + "/state"), git);
  ASSERT_GT(git.grpc_port, 0);
  StartArgv(
      {FERRY_CLUSTER_SYNCER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
       "--kubeconfig=" + (*cluster)->kubeconfig(), "--git_writer_address=" + git.GrpcTarget(),
       "--sync_interval=1h", "--sync_set=slow-fetch"},
      syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = FirstSync(syncer);
  ASSERT_TRUE(first.has_value()) << syncer.process->Output();
  EXPECT_TRUE(first->error().empty()) << first->error();
  EXPECT_EQ(first->revision(), repo->Head());
  EXPECT_EQ(first->applied(), 1);
  EXPECT_TRUE(std::filesystem::exists(repo->dir() + "/held")) << "the first fetch was not held";
  EXPECT_FALSE(absl::StrContains(syncer.process->Output(), "sync failed"))
      << syncer.process->Output();
}

// Unreachable dependencies: the syncer serves, reports not ready, and says why.
TEST(ClusterSyncerBinaryTest, ServesButIsNotReadyWhileDependenciesAreUnreachable) {
  Running r = StartOnLoopback(kBinaries[3]);
  ASSERT_GT(r.grpc_port, 0);
  EXPECT_EQ(CheckHealth(r, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(r, "readiness"), HealthCheckResponse::NOT_SERVING);
  auto stub = ferry::v1::ClusterSyncer::NewStub(r.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ferry::v1::SyncResult result;
  grpc::Status status = stub->SyncNow(&ctx, {}, &result);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("git-writer")));
}

}  // namespace
}  // namespace ferry
