// The gRPC server every Ferry binary runs: its services plus the standard health service,
// server reflection, per-RPC metrics and a Prometheus /metrics endpoint on its own port.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/runtime/address.h"

namespace ferry::runtime {

// How to run a server.
struct ServerOptions {
  // Component name for logs and metrics ("api", "git-writer", ...).
  std::string component;
  // Where gRPC listens (port 0 = any free port).
  ListenAddress grpc_address;
  // Where /metrics is served (port 0 = any free port).
  ListenAddress metrics_address;
  // How long Shutdown() lets in-flight RPCs finish before cancelling them.
  absl::Duration drain_timeout = absl::Seconds(15);
  // Transport credentials; insecure (plaintext) when null.
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

// A service to host, with the full name health reports it under ("ferry.v1.Ferry").
struct HostedService {
  grpc::Service* service;  // not owned
  std::string name;
};

// A started server. Health reports SERVING for "" (the whole server, what Kubernetes gRPC
// probes ask) and for every hosted service by name once Start() returns.
class Server {
 public:
  // Starts /metrics, then gRPC with `services` (they must outlive the server).
  // Metrics of the RPCs and of the process go into `registry`, which /metrics serves.
  // Errors: FailedPrecondition naming the address when a port cannot be bound (in use, or
  // not an address of this host).
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options, const std::vector<HostedService>& services,
      std::shared_ptr<prometheus::Registry> registry);

  // Shuts down if still running.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound gRPC port (the kernel's pick when the option said 0).
  int grpc_port() const { return grpc_port_; }
  // The bound metrics port.
  int metrics_port() const { return metrics_port_; }

  // Sets the health status reported for `name` (e.g. a readiness check of a component's
  // dependencies, separate from "" which says the process serves).
  void SetServingStatus(const std::string& name, bool serving);

  // Health goes NOT_SERVING, new RPCs are refused, in-flight RPCs get up to the drain
  // timeout to finish and are cancelled after it; then /metrics stops. Idempotent.
  void Shutdown();

 private:
  Server() = default;

  ServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

// Runs a server until SIGTERM or SIGINT, then shuts it down. Logs the bound ports
// ("listening"). Returns the process exit code: 0 after a clean shutdown, 2 when the server
// cannot start (the reason is printed on stderr). Requires BlockShutdownSignals() at the top
// of main().
// `attach` is called with the server once it serves (e.g. for a component to report
// readiness through SetServingStatus), and with nullptr before it shuts down.
int ServeUntilSignal(const ServerOptions& options, const std::vector<HostedService>& services,
                     std::shared_ptr<prometheus::Registry> registry,
                     const std::function<void(Server*)>& attach = nullptr);

// Ferry's version, e.g. "0.1.0".
const char* Version();

}  // namespace ferry::runtime
