// Conversion between absl::Status (used inside Ferry) and grpc::Status (used only at the RPC
// edge). Codes map one to one; messages are kept unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ferry {

// The grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The absl::Status with the same code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The canonical upper-case name of a gRPC status code ("NOT_FOUND"), as grpcurl and the
// Prometheus conventions spell it.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace ferry
