// Per-RPC server metrics, collected by a gRPC server interceptor:
//
//   ferry_grpc_server_started_total{grpc_service, grpc_method, grpc_type}
//   ferry_grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}
//   ferry_grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}  (histogram)
//
// The names and labels follow the usual gRPC Prometheus conventions with Ferry's prefix, so
// existing dashboards and alerts carry over. Label values come from the server's registered
// methods, so the label sets are bounded.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace ferry::runtime {

// The metric families above, registered in one registry. Thread-safe.
class RpcMetrics {
 public:
  explicit RpcMetrics(prometheus::Registry& registry);

  // Records that an RPC started. `full_method` is "/package.Service/Method".
  void Started(const std::string& full_method, const std::string& type);
  // Records that an RPC finished with `code` (e.g. "NOT_FOUND") after `seconds`.
  void Handled(const std::string& full_method, const std::string& type, const std::string& code,
               double seconds);

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_seconds_;
};

// Creates one metrics interceptor per RPC. Keep `metrics` alive as long as the server.
class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(std::shared_ptr<RpcMetrics> metrics)
      : metrics_(std::move(metrics)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  std::shared_ptr<RpcMetrics> metrics_;
};

}  // namespace ferry::runtime
