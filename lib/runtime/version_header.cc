#include "lib/runtime/version_header.h"

#include "lib/runtime/server.h"

namespace ferry::runtime {
namespace {

class VersionHeaderInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kVersionHeader, Version());
    }
    methods->Proceed();
  }
};

}  // namespace

grpc::experimental::Interceptor* VersionHeaderInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo*) {
  return new VersionHeaderInterceptor();
}

}  // namespace ferry::runtime
