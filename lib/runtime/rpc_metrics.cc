#include "lib/runtime/rpc_metrics.h"

#include <chrono>

#include "lib/status/grpc_status.h"

namespace ferry::runtime {
namespace {

using grpc::experimental::InterceptionHookPoints;

// Buckets from 1 ms to 10 s: RPCs that do git or registry work land in the upper half.
const prometheus::Histogram::BucketBoundaries kBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                          0.25,  0.5,   1,    2.5,   5,    10};

prometheus::Labels MethodLabels(const std::string& full_method, const std::string& type) {
  // "/ferry.v1.Ferry/ListWorkloads" -> service "ferry.v1.Ferry", method "ListWorkloads".
  std::string service;
  std::string method = full_method;
  size_t slash = full_method.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    service =
        full_method.substr(full_method[0] == '/' ? 1 : 0, slash - (full_method[0] == '/' ? 1 : 0));
    method = full_method.substr(slash + 1);
  }
  return {{"grpc_service", service}, {"grpc_method", method}, {"grpc_type", type}};
}

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY:
      return "unary";
    case Type::CLIENT_STREAMING:
      return "client_stream";
    case Type::SERVER_STREAMING:
      return "server_stream";
    case Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(std::shared_ptr<RpcMetrics> metrics, std::string method, std::string type)
      : metrics_(std::move(metrics)),
        method_(std::move(method)),
        type_(std::move(type)),
        start_(std::chrono::steady_clock::now()) {
    metrics_->Started(method_, type_);
  }

  // An RPC cancelled before the server sent a status (client gone, server shut down) still
  // counts, as CANCELLED.
  ~RpcMetricsInterceptor() override {
    if (!recorded_) Record("CANCELLED");
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(ferry::GrpcCodeName(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  void Record(const std::string& code) {
    recorded_ = true;
    std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    metrics_->Handled(method_, type_, code, elapsed.count());
  }

  std::shared_ptr<RpcMetrics> metrics_;
  std::string method_;
  std::string type_;
  std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
};

}  // namespace

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("ferry_grpc_server_started_total")
                   .Help("RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("ferry_grpc_server_handled_total")
                   .Help("RPCs completed on the server, by status code.")
                   .Register(registry)),
      handling_seconds_(prometheus::BuildHistogram()
                            .Name("ferry_grpc_server_handling_seconds")
                            .Help("Time from the start of an RPC to its status, in seconds.")
                            .Register(registry)) {}

void RpcMetrics::Started(const std::string& full_method, const std::string& type) {
  started_.Add(MethodLabels(full_method, type)).Increment();
}

void RpcMetrics::Handled(const std::string& full_method, const std::string& type,
                         const std::string& code, double seconds) {
  prometheus::Labels labels = MethodLabels(full_method, type);
  handling_seconds_.Add(labels, kBuckets).Observe(seconds);
  labels["grpc_code"] = code;
  handled_.Add(labels).Increment();
}

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(metrics_, info->method(), TypeName(info->type()));
}

}  // namespace ferry::runtime
