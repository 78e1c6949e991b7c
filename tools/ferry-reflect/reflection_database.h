// A protobuf descriptor database that asks a gRPC server's reflection service
// (grpc.reflection.v1alpha.ServerReflection) for the files it needs.
#pragma once

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <grpcpp/channel.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace ferry::reflect {

// Not thread-safe: one reflection stream, used by one thread.
class ReflectionDatabase final : public google::protobuf::DescriptorDatabase {
 public:
  // Opens a reflection stream on `channel`. `metadata` is sent with it (e.g. authorization).
  ReflectionDatabase(std::shared_ptr<grpc::Channel> channel,
                     std::vector<std::pair<std::string, std::string>> metadata);
  ~ReflectionDatabase() override;

  // The services the server lists, sorted. Unavailable / Unimplemented when the server
  // cannot be reached or has no reflection.
  absl::StatusOr<std::vector<std::string>> ListServices();

  // The last transport or server error, for messages when a lookup returned false.
  const std::string& last_error() const { return last_error_; }

  // DescriptorDatabase.
  bool FindFileByName(const std::string& filename,
                      google::protobuf::FileDescriptorProto* output) override;
  bool FindFileContainingSymbol(const std::string& symbol_name,
                                google::protobuf::FileDescriptorProto* output) override;
  bool FindFileContainingExtension(const std::string& containing_type, int field_number,
                                   google::protobuf::FileDescriptorProto* output) override;

 private:
  using Request = grpc::reflection::v1alpha::ServerReflectionRequest;
  using Response = grpc::reflection::v1alpha::ServerReflectionResponse;

  // Sends one request and reads its response; false (with last_error_) on failure.
  bool RoundTrip(const Request& request, Response* response);
  // Caches every file of a file_descriptor_response.
  void CacheFiles(const Response& response);

  std::unique_ptr<grpc::reflection::v1alpha::ServerReflection::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<Request, Response>> stream_;
  google::protobuf::SimpleDescriptorDatabase cache_;
  std::set<std::string> cached_names_;
  std::string last_error_;
};

}  // namespace ferry::reflect
