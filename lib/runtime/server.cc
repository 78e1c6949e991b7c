#include "lib/runtime/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/gauge.h>

#include <csignal>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "lib/log/log.h"
#include "lib/runtime/process_metrics.h"
#include "lib/runtime/rpc_metrics.h"
#include "lib/runtime/signals.h"
#include "lib/runtime/unimplemented.h"
#include "lib/runtime/version_header.h"

namespace ferry::runtime {
namespace {

gpr_timespec ToGprDeadline(absl::Duration timeout) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(absl::ToInt64Milliseconds(timeout), GPR_TIMESPAN));
}

}  // namespace

const char* Version() { return FERRY_VERSION; }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options, const std::vector<HostedService>& services,
    std::shared_ptr<prometheus::Registry> registry) {
  std::unique_ptr<Server> server(new Server());
  server->options_ = options;
  server->registry_ = registry;

  // Reflection describes services from protobuf's generated pool. gRPC's built-in health
  // service does not use generated protobuf code, so make sure grpc.health.v1 is in the pool.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  const std::string metrics_address = options.metrics_address.ToString();
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(metrics_address);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot serve metrics on ", metrics_address,
                     ": the address is in use or not an address of this host"));
  }
  std::vector<int> ports = server->exposer_->GetListeningPorts();
  server->metrics_port_ = ports.empty() ? options.metrics_address.port : ports.front();
  server->process_metrics_ = std::make_shared<ProcessMetrics>();
  server->exposer_->RegisterCollectable(registry);
  server->exposer_->RegisterCollectable(server->process_metrics_);
  prometheus::BuildGauge()
      .Name("ferry_build_info")
      .Help("Always 1; labels say which Ferry component and version this is.")
      .Register(*registry)
      .Add({{"component", options.component}, {"version", Version()}})
      .Set(1);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second process would silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const std::string grpc_address = options.grpc_address.ToString();
  builder.AddListeningPort(grpc_address,
                           options.credentials ? options.credentials
                                               : grpc::InsecureServerCredentials(),
                           &server->grpc_port_);
  for (const HostedService& hosted : services) builder.RegisterService(hosted.service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<RpcMetricsInterceptorFactory>(
      std::make_shared<RpcMetrics>(*registry)));
  creators.push_back(std::make_unique<UnimplementedMessageInterceptorFactory>());
  creators.push_back(std::make_unique<VersionHeaderInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(creators));

  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->grpc_port_ == 0) {
    server->exposer_.reset();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen for gRPC on ", grpc_address,
                     ": the address is in use or not an address of this host"));
  }
  grpc::HealthCheckServiceInterface* health = server->grpc_server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const HostedService& hosted : services) health->SetServingStatus(hosted.name, true);
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_server_ != nullptr) {
    // NOT_SERVING for every service, and stays so, before the listener closes.
    grpc_server_->GetHealthCheckService()->Shutdown();
    grpc_server_->Shutdown(ToGprDeadline(options_.drain_timeout));
    grpc_server_->Wait();
  }
  exposer_.reset();
}

void Server::SetServingStatus(const std::string& name, bool serving) {
  // After Shutdown() the health service ignores changes (everything is NOT_SERVING).
  grpc_server_->GetHealthCheckService()->SetServingStatus(name, serving);
}

int ServeUntilSignal(const ServerOptions& options, const std::vector<HostedService>& services,
                     std::shared_ptr<prometheus::Registry> registry,
                     const std::function<void(Server*)>& attach) {
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, services, registry);
  if (!server.ok()) {
    log::Error("start failed", {{"error", std::string(server.status().message())}});
    std::fprintf(stderr, "ferry-%s: %s\n", options.component.c_str(),
                 std::string(server.status().message()).c_str());
    return 2;
  }
  if (attach) attach(server->get());
  log::Info("listening", {{"grpc_address", ListenAddress{options.grpc_address.host,
                                                          (*server)->grpc_port()}
                                                .ToString()},
                          {"metrics_address", ListenAddress{options.metrics_address.host,
                                                            (*server)->metrics_port()}
                                                  .ToString()},
                          {"grpc_port", (*server)->grpc_port()},
                          {"metrics_port", (*server)->metrics_port()},
                          {"version", Version()}});
  int sig = WaitForShutdownSignal();
  if (attach) attach(nullptr);
  log::Info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                              {"drain_timeout_ms",
                               absl::ToInt64Milliseconds(options.drain_timeout)}});
  (*server)->Shutdown();
  log::Info("stopped");
  return 0;
}

}  // namespace ferry::runtime
