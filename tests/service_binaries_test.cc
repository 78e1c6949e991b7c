// The four service binaries as a user runs them: started as processes on loopback port 0,
// checked through gRPC health, server reflection, /metrics, signals and exit codes.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <google/protobuf/descriptor.h>

#include "absl/strings/match.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/http.h"
#include "tests/support/subprocess.h"
#include "tools/ferry-reflect/reflection_database.h"

namespace ferry {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using testing::IntField;
using testing::Subprocess;

struct Binary {
  const char* component;
  const char* path;
  const char* service;       // full name of the contract it serves
  const char* unary_method;  // an RPC that is not built yet
};

// Names the parameter in test output.
void PrintTo(const Binary& binary, std::ostream* os) { *os << binary.component; }

const Binary kBinaries[] = {
    {"api", FERRY_API_BIN, "ferry.v1.Ferry", "ListWorkloads"},
    {"git-writer", FERRY_GIT_WRITER_BIN, "ferry.v1.GitWriter", "Head"},
    {"registry-scanner", FERRY_REGISTRY_SCANNER_BIN, "ferry.v1.RegistryScanner", "Watch"},
    {"cluster-syncer", FERRY_CLUSTER_SYNCER_BIN, "ferry.v1.ClusterSyncer", "ListWorkloads"},
};

const absl::Duration kStartTimeout = absl::Seconds(20);

// A running binary with the ports it logged.
struct Running {
  std::unique_ptr<Subprocess> process;
  int grpc_port = 0;
  int metrics_port = 0;

  std::string GrpcTarget() const { return "127.0.0.1:" + std::to_string(grpc_port); }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(GrpcTarget(), grpc::InsecureChannelCredentials());
  }
};

Running StartOnLoopback(const Binary& binary, std::vector<std::string> extra_args = {}) {
  std::vector<std::string> argv = {binary.path, "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0", "--drain_timeout=2s"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto process = Subprocess::Start(argv);
  EXPECT_TRUE(process.ok()) << process.status();
  Running r;
  if (!process.ok()) return r;
  r.process = *std::move(process);
  std::optional<std::string> line = r.process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, " listening "); }, kStartTimeout);
  EXPECT_TRUE(line.has_value()) << r.process->Output();
  if (!line) return r;
  r.grpc_port = IntField(*line, "grpc_port").value_or(0);
  r.metrics_port = IntField(*line, "metrics_port").value_or(0);
  EXPECT_GT(r.grpc_port, 0) << *line;
  EXPECT_GT(r.metrics_port, 0) << *line;
  return r;
}

HealthCheckResponse::ServingStatus CheckHealth(const Running& r, const std::string& service) {
  auto stub = Health::NewStub(r.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&ctx, request, &response);
  EXPECT_TRUE(status.ok()) << service << ": " << status.error_message();
  return response.status();
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
  absl::StatusOr<std::vector<std::string>> services = db.ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_EQ(*services, (std::vector<std::string>{GetParam().service, "grpc.health.v1.Health",
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

TEST_P(ServiceBinaryTest, UnbuiltRpcAnswersUnimplementedNamingTheMethod) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  grpc::GenericStub stub(r.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request;  // an empty message is a valid message of any type
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  const std::string method = std::string("/") + GetParam().service + "/" + GetParam().unary_method;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  grpc::Status status = done.get_future().get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), method.substr(1) + " is not implemented"))
      << status.error_message();
}

TEST_P(ServiceBinaryTest, ServesPrometheusMetricsWithFerryPrefix) {
  Running r = StartOnLoopback(GetParam());
  ASSERT_GT(r.grpc_port, 0);
  ASSERT_EQ(CheckHealth(r, ""), HealthCheckResponse::SERVING);
  auto metrics =
      testing::HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(absl::StrContains(
      metrics->body, std::string("ferry_build_info{component=\"") + GetParam().component + "\""))
      << metrics->body;
  EXPECT_TRUE(absl::StrContains(metrics->body,
                                "ferry_grpc_server_handled_total{grpc_code=\"OK\","
                                "grpc_method=\"Check\",grpc_service=\"grpc.health.v1.Health\""))
      << metrics->body;
  EXPECT_TRUE(absl::StrContains(metrics->body, "# TYPE ferry_grpc_server_handling_seconds "
                                               "histogram"));
  EXPECT_TRUE(absl::StrContains(metrics->body, "process_cpu_seconds_total "));
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
  auto process = Subprocess::Start({GetParam().path},
                                   {"FERRY_GRPC_ADDRESS=127.0.0.1:0",
                                    "FERRY_METRICS_ADDRESS=127.0.0.1:0", "FERRY_LOG_FORMAT=json"});
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<std::string> line = (*process)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"event\":\"listening\""); },
      kStartTimeout);
  ASSERT_TRUE(line.has_value()) << (*process)->Output();
  EXPECT_TRUE(absl::StrContains(*line, "\"grpc_address\":\"127.0.0.1:")) << *line;
  EXPECT_TRUE(absl::StrContains(*line, std::string("\"component\":\"") + GetParam().component))
      << *line;
}

TEST_P(ServiceBinaryTest, InvalidAddressExitsTwoNamingTheFlag) {
  auto process = Subprocess::Start({GetParam().path, "--grpc_address=localhost"});
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<int> code = (*process)->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains((*process)->Output(),
                                "--grpc_address: invalid address 'localhost': no port"))
      << (*process)->Output();
}

TEST_P(ServiceBinaryTest, UnknownFlagExitsTwo) {
  auto process = Subprocess::Start({GetParam().path, "--grpc_adress=127.0.0.1:0"});
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<int> code = (*process)->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "--grpc_adress")) << (*process)->Output();
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
  auto process = Subprocess::Start(
      {GetParam().path, "--grpc_address=" + address, "--metrics_address=127.0.0.1:0"});
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<int> code = (*process)->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "cannot listen for gRPC on " + address))
      << (*process)->Output();
}

TEST_P(ServiceBinaryTest, MetricsPortInUseExitsTwo) {
  HeldPort held;
  const std::string address = "127.0.0.1:" + std::to_string(held.port());
  auto process = Subprocess::Start(
      {GetParam().path, "--grpc_address=127.0.0.1:0", "--metrics_address=" + address});
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<int> code = (*process)->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "cannot serve metrics on " + address))
      << (*process)->Output();
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
    EXPECT_TRUE(p.ok());
    std::optional<int> code = (*p)->Wait(absl::Seconds(20));
    return std::make_pair(code.value_or(-1), (*p)->Output());
  };
  auto [list_code, list] = run({r.GrpcTarget(), "list"});
  EXPECT_EQ(list_code, 0);
  EXPECT_EQ(list, "ferry.v1.Ferry\ngrpc.health.v1.Health\ngrpc.reflection.v1alpha.ServerReflection");

  auto [describe_code, describe] = run({r.GrpcTarget(), "describe", "grpc.health.v1.Health"});
  EXPECT_EQ(describe_code, 0);
  EXPECT_TRUE(absl::StartsWith(describe, "grpc.health.v1.Health is a service:")) << describe;
  EXPECT_TRUE(absl::StrContains(describe, "rpc Watch(.grpc.health.v1.HealthCheckRequest) returns "
                                          "(stream .grpc.health.v1.HealthCheckResponse);"))
      << describe;

  auto [check_code, check] = run({r.GrpcTarget(), "grpc.health.v1.Health/Check"});
  EXPECT_EQ(check_code, 0);
  EXPECT_TRUE(absl::StrContains(check, "\"status\": \"SERVING\"")) << check;

  auto [call_code, call] =
      run({"-d", "{\"namespace\":\"default\"}", r.GrpcTarget(), "ferry.v1.Ferry/ListWorkloads"});
  EXPECT_EQ(call_code, 64 + 12);  // UNIMPLEMENTED
  EXPECT_TRUE(absl::StrContains(call, "Code: UNIMPLEMENTED")) << call;

  auto [bad_code, bad] = run({"-d", "{\"nope\":1}", r.GrpcTarget(), "ferry.v1.Ferry/ListWorkloads"});
  EXPECT_EQ(bad_code, 2);
  EXPECT_TRUE(absl::StrContains(bad, "-d is not a valid ferry.v1.ListWorkloadsRequest")) << bad;
}

}  // namespace
}  // namespace ferry
