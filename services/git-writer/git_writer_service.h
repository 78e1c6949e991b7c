// The ferry.v1.GitWriter gRPC service of ferry-git-writer: validates requests, converts between proto
// and domain types, delegates, and maps errors to gRPC status codes.
#pragma once

#include "ferry/v1/git_writer.grpc.pb.h"

namespace ferry::git_writer {

// RPCs not overridden here are not built yet: they answer UNIMPLEMENTED with a message
// naming the method (see lib/runtime/unimplemented.h), never a fake success.
class GitWriterService final : public ferry::v1::GitWriter::Service {};

}  // namespace ferry::git_writer
