// The ferry.v1.ClusterSyncer gRPC service of ferry-cluster-syncer: validates requests, converts between proto
// and domain types, delegates, and maps errors to gRPC status codes.
#pragma once

#include "ferry/v1/cluster_syncer.grpc.pb.h"

namespace ferry::cluster_syncer {

// RPCs not overridden here are not built yet: they answer UNIMPLEMENTED with a message
// naming the method (see lib/runtime/unimplemented.h), never a fake success.
class ClusterSyncerService final : public ferry::v1::ClusterSyncer::Service {};

}  // namespace ferry::cluster_syncer
