// Puts Ferry's version into the initial metadata of every answer ("ferry-version: 0.1.0"),
// so a peer learns which build it talks to from any call (the api's GetVersion does).
#pragma once

#include <grpcpp/support/server_interceptor.h>

namespace ferry::runtime {

// The metadata key.
inline constexpr char kVersionHeader[] = "ferry-version";

class VersionHeaderInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace ferry::runtime
