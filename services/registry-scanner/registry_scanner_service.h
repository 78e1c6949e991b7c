// The ferry.v1.RegistryScanner gRPC service: validates requests, converts between proto
// and domain types, delegates to Scanner, and maps errors to gRPC status codes.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "services/registry-scanner/registry_policy.h"
#include "services/registry-scanner/scanner.h"

namespace ferry::registry_scanner {

// RPCs not overridden here are not built yet: they answer UNIMPLEMENTED.
class RegistryScannerService final : public ferry::v1::RegistryScanner::Service {
 public:
  // Every repository named in a request is checked with `policy` before anything is stored
  // or sent: InvalidArgument for a name outside the reference grammar, PermissionDenied for
  // a registry the policy refuses, each naming what is wrong.
  // `permit` (leader election; unset: always) is what a standby's WatchEvents answers: the
  // events are the leader's, so a standby refuses the stream, and an open stream ends when
  // the permit is refused (the caller reconnects, to the new leader).
  RegistryScannerService(Scanner& scanner, RegistryClient& client, MetadataOptions metadata,
                         RegistryPolicy policy = {}, std::function<absl::Status()> permit = nullptr)
      : scanner_(scanner),
        client_(client),
        metadata_(std::move(metadata)),
        policy_(std::move(policy)),
        permit_(std::move(permit)) {}

  // Replaces the watch set with the request's repositories that pass the checks. Each one
  // that does not fails alone: the others are watched all the same, the call answers OK, and
  // WatchResponse.refused names every refused repository with its reason and code.
  grpc::Status Watch(grpc::ServerContext* context, const ferry::v1::WatchRequest* request,
                     ferry::v1::WatchResponse* response) override;
  grpc::Status ListTags(grpc::ServerContext* context, const ferry::v1::ListTagsRequest* request,
                        ferry::v1::ListTagsResponse* response) override;
  grpc::Status GetImage(grpc::ServerContext* context, const ferry::v1::GetImageRequest* request,
                        ferry::v1::TagInfo* response) override;
  grpc::Status WatchEvents(grpc::ServerContext* context,
                           const ferry::v1::WatchEventsRequest* request,
                           grpc::ServerWriter<ferry::v1::TagEvent>* writer) override;
  grpc::Status Status(grpc::ServerContext* context, const ferry::v1::StatusRequest* request,
                      ferry::v1::StatusResponse* response) override;

 private:
  Scanner& scanner_;
  RegistryClient& client_;
  const MetadataOptions metadata_;
  const RegistryPolicy policy_;
  const std::function<absl::Status()> permit_;
};

}  // namespace ferry::registry_scanner
