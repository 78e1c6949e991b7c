// The gRPC server every Ferry binary runs: its services plus the standard health service,
// server reflection, per-RPC metrics and a Prometheus /metrics endpoint on its own port.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  // When set, every call except to the health service must carry "authorization: Bearer
  // <caller_token>"; others fail UNAUTHENTICATED before reaching a service.
  std::string caller_token;
  // Largest message received or sent (0: gRPC's default).
  int max_message_bytes = 0;
  // When set, a second, plaintext port serving only the health service (what Kubernetes
  // gRPC probes can reach when the main port needs TLS or a client certificate).
  std::optional<ListenAddress> health_address;
  // ServeUntilSignal only: called once when the drain timeout has passed during a stop
  // (with CancelPeerCalls), e.g. to cancel a component's outgoing requests of other kinds.
  // Runs on the stop watchdog's thread; what it uses must live until the StopGuard ends.
  std::function<void()> at_drain_deadline;
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
  // The bound health-only port (0 without ServerOptions::health_address).
  int health_port() const { return health_port_; }

  // Sets the health status reported for `name` (e.g. a readiness check of a component's
  // dependencies, separate from "" which says the process serves).
  void SetServingStatus(const std::string& name, bool serving);

  // Health goes NOT_SERVING, new RPCs are refused, in-flight RPCs get up to the drain
  // timeout to finish and are cancelled after it; /metrics stops meanwhile. Idempotent.
  void Shutdown();

  // Shutdown() with the drain ending at `drain_end` instead of drain_timeout from now.
  void ShutdownBy(absl::Time drain_end);

 private:
  Server() = default;

  ServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<grpc::Server> health_server_;
  int health_port_ = 0;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

// Keeps ServeUntilSignal's stop watchdog (below) running until it goes out of scope. Declare
// one at the top of main(), before the objects a stop tears down, so that it ends when main()
// returns: the watchdog then bounds main()'s teardown too, yet never outlives main() (it
// cannot fire, or log, during static destruction). Without a StopGuard, ServeUntilSignal
// ends its watchdog itself before it returns.
class StopGuard {
 public:
  StopGuard();
  ~StopGuard();
  StopGuard(const StopGuard&) = delete;
  StopGuard& operator=(const StopGuard&) = delete;
};

// Runs a server until SIGTERM or SIGINT, then shuts it down. Logs the bound ports
// ("listening"). Returns the process exit code: 0 after a clean shutdown, 2 when the server
// cannot start (the reason is printed on stderr). Requires BlockShutdownSignals() at the top
// of main().
// The drain deadline is drain_timeout after the signal, for the server's drain and the
// watchdog alike (attach(nullptr) runs first and uses up part of it). At the deadline the
// RPCs the server still runs are cancelled, and the watchdog cancels the calls to peers
// still in progress (CancelPeerCalls) and calls options.at_drain_deadline.
// The drain timeout bounds the whole stop: when the process is still running kStopGrace
// after the deadline (a background loop or an outgoing call that did not stop when
// cancelled, a teardown in main() that hangs), it logs "stop took too long" and exits with
// code 1. The watchdog ends with the StopGuard (or with ServeUntilSignal without one).
// `attach` is called with the server once it serves (e.g. for a component to report
// readiness through SetServingStatus), and with nullptr before it shuts down.
int ServeUntilSignal(const ServerOptions& options, const std::vector<HostedService>& services,
                     std::shared_ptr<prometheus::Registry> registry,
                     const std::function<void(Server*)>& attach = nullptr);

// How often a peer's channel to replicas pings each one (ChannelTo), and how long it waits for
// the answer before it takes the connection for dead: a leader on a lost node sends no FIN,
// so without pings its connection would look alive (and its last health status SERVING) for
// the ~15 minutes TCP takes to give up.
inline constexpr absl::Duration kKeepaliveTime = absl::Seconds(10);
inline constexpr absl::Duration kKeepaliveTimeout = absl::Seconds(5);

// The health check name a component's readiness is reported under (SetServingStatus), apart
// from "" which says the process serves: a leader-elected component is ready while it leads
// (and cluster-syncer while its last sync attempt reached its peers). A Kubernetes probe
// names it (`grpc: {port: ..., service: readiness}`).
inline constexpr char kReadinessHealthName[] = "readiness";
// The health check name SERVING while this instance takes writes: it leads, or it does not
// elect a leader (then always). Peers reaching replicas route on it (ChannelTo's replica
// lists), not on "readiness", which for cluster-syncer also says its last sync succeeded: a
// leader whose syncs fail must still be reachable, to be asked why and to sync again.
inline constexpr char kLeaderHealthName[] = "leader";

// How long after the drain timeout a stopping process may take to return from main().
inline constexpr absl::Duration kStopGrace = absl::Seconds(5);

// Ferry's version, e.g. "0.1.0".
const char* Version();

}  // namespace ferry::runtime
