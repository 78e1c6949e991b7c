// The ferry.v1.GitWriter gRPC service: validates requests, converts between proto and
// domain types, delegates to Writer, and maps errors to gRPC status codes.
//
// Every request field that can end up in a commit, a note or a ref (authors, messages,
// workload ids, containers, images, patterns, lock texts, paths) is checked here with
// lib/names and answers INVALID_ARGUMENT before anything is queued; every string in an
// answer is UTF-8 (names read from the repo that are not come back escaped, as load errors).
#pragma once

#include <string>

#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/limits/limits.h"
#include "services/git-writer/signer.h"
#include "services/git-writer/writer.h"

namespace ferry::git_writer {

struct ServiceOptions {
  std::string branch;
  std::string sync_tag = "ferry-sync";
  std::string ssh_key_path;  // empty: no deploy key configured
  bool readonly = false;     // --git_readonly: reported with the workload index
  // ApplyUpdates: a longer message is InvalidArgument (--max_commit_message_bytes).
  uint64_t max_commit_message_bytes = limits::kCommitMessageBytes.default_value;
  // ListWorkloads: a bigger answer is ResourceExhausted (--max_workload_index_bytes).
  uint64_t max_workload_index_bytes = limits::kWorkloadIndexBytes.default_value;
  // --git_signing_key_path's public half, reported by GetIdentity (empty format: none).
  SigningKey signing_key;
};

class GitWriterService final : public ferry::v1::GitWriter::Service {
 public:
  GitWriterService(Writer& writer, ServiceOptions options)
      : writer_(writer), options_(std::move(options)) {}

  grpc::Status Head(grpc::ServerContext* context, const ferry::v1::HeadRequest* request,
                    ferry::v1::HeadResponse* response) override;
  grpc::Status WatchHead(grpc::ServerContext* context, const ferry::v1::WatchHeadRequest* request,
                         grpc::ServerWriter<ferry::v1::HeadResponse>* writer) override;
  grpc::Status ReadManifests(grpc::ServerContext* context,
                             const ferry::v1::ReadManifestsRequest* request,
                             grpc::ServerWriter<ferry::v1::ManifestFile>* writer) override;
  grpc::Status ListWorkloads(grpc::ServerContext* context,
                             const ferry::v1::ListManifestWorkloadsRequest* request,
                             ferry::v1::ListManifestWorkloadsResponse* response) override;
  grpc::Status ApplyUpdates(grpc::ServerContext* context,
                            const ferry::v1::ApplyUpdatesRequest* request,
                            ferry::v1::ApplyUpdatesResponse* response) override;
  grpc::Status Notify(grpc::ServerContext* context, const ferry::v1::NotifyRequest* request,
                      ferry::v1::HeadResponse* response) override;
  grpc::Status SetSyncMarker(grpc::ServerContext* context,
                             const ferry::v1::SetSyncMarkerRequest* request,
                             ferry::v1::SyncMarker* response) override;
  grpc::Status GetSyncMarker(grpc::ServerContext* context,
                             const ferry::v1::GetSyncMarkerRequest* request,
                             ferry::v1::SyncMarker* response) override;
  grpc::Status GetIdentity(grpc::ServerContext* context,
                           const ferry::v1::GetDeployKeyRequest* request,
                           ferry::v1::Identity* response) override;
  grpc::Status ListJobNotes(grpc::ServerContext* context,
                            const ferry::v1::ListJobNotesRequest* request,
                            ferry::v1::ListJobNotesResponse* response) override;

 private:
  Writer& writer_;
  const ServiceOptions options_;
};

}  // namespace ferry::git_writer
