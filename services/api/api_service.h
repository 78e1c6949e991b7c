// The ferry.v1.Ferry gRPC service of ferry-api: validates requests, converts between proto
// and domain types, delegates, and maps errors to gRPC status codes.
#pragma once

#include "ferry/v1/api.grpc.pb.h"

namespace ferry::api {

// RPCs not overridden here are not built yet: they answer UNIMPLEMENTED with a message
// naming the method (see lib/runtime/unimplemented.h), never a fake success.
class ApiService final : public ferry::v1::Ferry::Service {};

}  // namespace ferry::api
