// The ferry.v1.RegistryScanner gRPC service of ferry-registry-scanner: validates requests, converts between proto
// and domain types, delegates, and maps errors to gRPC status codes.
#pragma once

#include "ferry/v1/registry_scanner.grpc.pb.h"

namespace ferry::registry_scanner {

// RPCs not overridden here are not built yet: they answer UNIMPLEMENTED with a message
// naming the method (see lib/runtime/unimplemented.h), never a fake success.
class RegistryScannerService final : public ferry::v1::RegistryScanner::Service {};

}  // namespace ferry::registry_scanner
