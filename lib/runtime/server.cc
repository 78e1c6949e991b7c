#include "lib/runtime/server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <openssl/crypto.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.pb.h"
#include "lib/log/log.h"
#include "lib/runtime/channel.h"
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

// Calls must carry "authorization: Bearer <token>"; the health service is open to all (the
// Kubernetes probes cannot send a token). Runs in gRPC's auth filter, before any service.
class CallerTokenProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit CallerTokenProcessor(std::string token) : token_(std::move(token)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* /*context*/,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    auto path = metadata.find(":path");
    if (path != metadata.end() &&
        absl::StartsWith(absl::string_view(path->second.data(), path->second.size()),
                         "/grpc.health.v1.Health/")) {
      return grpc::Status::OK;
    }
    auto it = metadata.find("authorization");
    if (it == metadata.end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "no token: this Ferry service takes calls from Ferry's services only, "
                          "with \"authorization: Bearer <token>\" (--peer_token_path)");
    }
    absl::string_view value(it->second.data(), it->second.size());
    const std::string expected = absl::StrCat("Bearer ", token_);
    if (value.size() != expected.size() ||
        CRYPTO_memcmp(value.data(), expected.data(), expected.size()) != 0) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "wrong token: not the one in this service's --peer_token_path");
    }
    return grpc::Status::OK;
  }

 private:
  const std::string token_;
};

// gRPC's C API face of a CallerTokenProcessor, for plaintext ports (the C++ insecure
// credentials take no processor).
void ProcessCallerToken(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md,
                        size_t num_md, grpc_process_auth_metadata_done_cb done, void* user_data) {
  grpc::AuthMetadataProcessor::InputMetadata metadata;
  for (size_t i = 0; i < num_md; ++i) {
    metadata.emplace(
        grpc::string_ref(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(md[i].key)),
                         GRPC_SLICE_LENGTH(md[i].key)),
        grpc::string_ref(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(md[i].value)),
                         GRPC_SLICE_LENGTH(md[i].value)));
  }
  grpc::AuthMetadataProcessor::OutputMetadata unused;
  grpc::Status status =
      static_cast<CallerTokenProcessor*>(state)->Process(metadata, nullptr, &unused, &unused);
  done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(status.error_code()),
       status.ok() ? nullptr : status.error_message().c_str());
}

// Plaintext with a caller token checked on every call.
class PlaintextWithTokenCredentials final : public grpc::ServerCredentials {
 public:
  explicit PlaintextWithTokenCredentials(std::string token)
      : processor_(std::make_shared<CallerTokenProcessor>(std::move(token))) {}

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {}

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    grpc_server_credentials* credentials = grpc_insecure_server_credentials_create();
    // The processor outlives the server: this object is held by the ServerOptions.
    grpc_server_credentials_set_auth_metadata_processor(
        credentials, {ProcessCallerToken, nullptr, processor_.get()});
    int port = grpc_server_add_http2_port(server, address.c_str(), credentials);
    grpc_server_credentials_release(credentials);
    return port;
  }

  std::shared_ptr<CallerTokenProcessor> processor_;
};

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
  // Peers reaching replicas (ChannelTo's replica lists) ping every kKeepaliveTime, also
  // between calls; a server refusing pings that often would close their connections with
  // "too_many_pings".
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTime) / 2));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Those channels ping on idle connections without limit, and gRPC's flow-control (BDP)
  // pings come faster than the interval at a connection's start: a strike count would end
  // their connections with GOAWAY. Pings cost the server next to nothing.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  const std::string grpc_address = options.grpc_address.ToString();
  std::shared_ptr<grpc::ServerCredentials> credentials = options.credentials;
  if (!options.caller_token.empty()) {
    if (credentials) {
      credentials->SetAuthMetadataProcessor(
          std::make_shared<CallerTokenProcessor>(options.caller_token));
    } else {
      credentials = std::make_shared<PlaintextWithTokenCredentials>(options.caller_token);
    }
    server->options_.credentials = credentials;  // keeps the processor alive
  }
  builder.AddListeningPort(grpc_address,
                           credentials ? credentials : grpc::InsecureServerCredentials(),
                           &server->grpc_port_);
  if (options.max_message_bytes > 0) {
    builder.SetMaxReceiveMessageSize(options.max_message_bytes);
    builder.SetMaxSendMessageSize(options.max_message_bytes);
  }
  for (const HostedService& hosted : services) builder.RegisterService(hosted.service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(
      std::make_unique<RpcMetricsInterceptorFactory>(std::make_shared<RpcMetrics>(*registry)));
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
  if (options.health_address) {
    // Only the health service (and reflection describing it): a server of its own, plaintext.
    grpc::ServerBuilder health_builder;
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    const std::string health_address = options.health_address->ToString();
    health_builder.AddListeningPort(health_address, grpc::InsecureServerCredentials(),
                                    &server->health_port_);
    server->health_server_ = health_builder.BuildAndStart();
    if (server->health_server_ == nullptr || server->health_port_ == 0) {
      server->grpc_server_->Shutdown();
      server->exposer_.reset();
      return absl::FailedPreconditionError(
          absl::StrCat("cannot serve health on ", health_address,
                       ": the address is in use or not an address of this host"));
    }
  }
  for (grpc::Server* each : {server->grpc_server_.get(), server->health_server_.get()}) {
    if (each == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = each->GetHealthCheckService();
    health->SetServingStatus(true);
    for (const HostedService& hosted : services) health->SetServingStatus(hosted.name, true);
  }
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() { ShutdownBy(absl::Now() + options_.drain_timeout); }

void Server::ShutdownBy(absl::Time drain_end) {
  if (shut_down_) return;
  shut_down_ = true;
  // The metrics server takes up to 2 s to stop (its workers wait out idle scrape
  // connections): it stops alongside the drain rather than after it.
  std::thread metrics_stop([this] { exposer_.reset(); });
  if (health_server_ != nullptr) health_server_->GetHealthCheckService()->Shutdown();
  if (grpc_server_ != nullptr) {
    // NOT_SERVING for every service, and stays so, before the listener closes.
    grpc_server_->GetHealthCheckService()->Shutdown();
    grpc_server_->Shutdown(ToGprDeadline(std::max(drain_end - absl::Now(), absl::ZeroDuration())));
    grpc_server_->Wait();
  }
  if (health_server_ != nullptr) {
    health_server_->Shutdown(ToGprDeadline(absl::ZeroDuration()));
    health_server_->Wait();
  }
  metrics_stop.join();
}

void Server::SetServingStatus(const std::string& name, bool serving) {
  // After Shutdown() the health service ignores changes (everything is NOT_SERVING).
  grpc_server_->GetHealthCheckService()->SetServingStatus(name, serving);
  if (health_server_ != nullptr) {
    health_server_->GetHealthCheckService()->SetServingStatus(name, serving);
  }
}

namespace {

// The stop watchdog: one per process, armed by ServeUntilSignal at the signal, ended by the
// last StopGuard (or by ServeUntilSignal without one). A joinable thread waiting on a
// condition variable, so that ending it is immediate and nothing of it runs afterwards.
struct StopWatchdog {
  absl::Mutex mu;
  bool ended ABSL_GUARDED_BY(mu) = false;
  int guards ABSL_GUARDED_BY(mu) = 0;
  std::thread thread ABSL_GUARDED_BY(mu);
};

StopWatchdog& Watchdog() {
  static StopWatchdog* watchdog = new StopWatchdog();
  return *watchdog;
}

bool StopGuarded() {
  StopWatchdog& w = Watchdog();
  absl::MutexLock lock(&w.mu);
  return w.guards > 0;
}

void ArmStopWatchdog(absl::Time drain_end, std::function<void()> at_drain_deadline) {
  StopWatchdog& w = Watchdog();
  absl::MutexLock lock(&w.mu);
  if (w.thread.joinable()) return;  // one stop at a time
  const absl::Time now = absl::Now();
  const absl::Time deadline = std::max(drain_end, now);
  const absl::Time limit = deadline + kStopGrace;
  w.thread = std::thread([&w, deadline, limit, limit_from_signal = limit - now,
                          at_drain_deadline = std::move(at_drain_deadline)] {
    // Waits on a condition of w.mu: EndStopWatchdog's unlock after `ended = true` wakes it.
    {
      absl::MutexLock lock(&w.mu);
      if (w.mu.AwaitWithDeadline(absl::Condition(&w.ended), deadline)) return;
    }
    CancelPeerCalls();
    if (at_drain_deadline) at_drain_deadline();
    {
      absl::MutexLock lock(&w.mu);
      if (w.mu.AwaitWithDeadline(absl::Condition(&w.ended), limit)) return;
    }
    log::Error("stop took too long; exiting with work in progress",
               {{"limit_ms", absl::ToInt64Milliseconds(limit_from_signal)}});
    std::_Exit(1);
  });
}

void EndStopWatchdog() {
  StopWatchdog& w = Watchdog();
  std::thread thread;
  {
    absl::MutexLock lock(&w.mu);
    w.ended = true;
    thread = std::move(w.thread);
  }
  if (thread.joinable()) thread.join();
  absl::MutexLock lock(&w.mu);
  w.ended = false;  // a later stop (another server in the same process) may arm it again
}

}  // namespace

StopGuard::StopGuard() {
  StopWatchdog& w = Watchdog();
  absl::MutexLock lock(&w.mu);
  ++w.guards;
}

StopGuard::~StopGuard() {
  bool last;
  {
    StopWatchdog& w = Watchdog();
    absl::MutexLock lock(&w.mu);
    last = --w.guards == 0;
  }
  if (last) EndStopWatchdog();
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
  log::Info("listening",
            {{"grpc_address",
              ListenAddress{options.grpc_address.host, (*server)->grpc_port()}.ToString()},
             {"metrics_address",
              ListenAddress{options.metrics_address.host, (*server)->metrics_port()}.ToString()},
             {"grpc_port", (*server)->grpc_port()},
             {"metrics_port", (*server)->metrics_port()},
             {"health_port", (*server)->health_port()},
             {"version", Version()}});
  int sig = WaitForShutdownSignal();
  const absl::Time drain_end = absl::Now() + options.drain_timeout;
  ArmStopWatchdog(drain_end, options.at_drain_deadline);
  if (attach) attach(nullptr);
  log::Info("shutting down",
            {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
             {"drain_timeout_ms", absl::ToInt64Milliseconds(options.drain_timeout)}});
  (*server)->ShutdownBy(drain_end);
  log::Info("stopped");
  if (!StopGuarded()) EndStopWatchdog();
  return 0;
}

}  // namespace ferry::runtime
