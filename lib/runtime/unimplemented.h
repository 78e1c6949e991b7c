// Gives UNIMPLEMENTED answers a message a person can act on.
//
// RPCs of a contract that this build does not implement yet are left to the generated base
// class, which answers UNIMPLEMENTED with an empty message. This interceptor fills the
// message in ("ferry.v1.GitWriter/Head is not implemented in this build of Ferry (0.1.0)"),
// so a caller never mistakes it for a transport problem, and never gets a fake success.
#pragma once

#include <grpcpp/support/server_interceptor.h>

namespace ferry::runtime {

class UnimplementedMessageInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace ferry::runtime
