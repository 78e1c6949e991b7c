#include "lib/runtime/unimplemented.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "lib/runtime/server.h"

namespace ferry::runtime {
namespace {

using grpc::experimental::InterceptionHookPoints;

class UnimplementedMessageInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit UnimplementedMessageInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        std::string name = method_.empty() || method_[0] != '/' ? method_ : method_.substr(1);
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::UNIMPLEMENTED,
            absl::StrCat(name, " is not implemented in this build of Ferry (", Version(), ")")));
      }
    }
    methods->Proceed();
  }

 private:
  std::string method_;
};

}  // namespace

grpc::experimental::Interceptor* UnimplementedMessageInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new UnimplementedMessageInterceptor(info->method());
}

}  // namespace ferry::runtime
