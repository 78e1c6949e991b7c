#include "tools/ferry-reflect/reflection_database.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ferry::reflect {

ReflectionDatabase::ReflectionDatabase(std::shared_ptr<grpc::Channel> channel,
                                       std::vector<std::pair<std::string, std::string>> metadata)
    : stub_(grpc::reflection::v1alpha::ServerReflection::NewStub(std::move(channel))) {
  for (const auto& [key, value] : metadata) context_.AddMetadata(key, value);
}

ReflectionDatabase::~ReflectionDatabase() {
  if (stream_ != nullptr) {
    stream_->WritesDone();
    Response ignored;
    while (stream_->Read(&ignored)) {
    }
    stream_->Finish().ok();
  }
}

bool ReflectionDatabase::RoundTrip(const Request& request, Response* response) {
  if (stream_ == nullptr) stream_ = stub_->ServerReflectionInfo(&context_);
  if (!stream_->Write(request) || !stream_->Read(response)) {
    grpc::Status status = stream_->Finish();
    last_error_ = status.ok() ? "reflection stream closed by the server"
                              : absl::StrCat("reflection failed: ", status.error_message());
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      last_error_ = "the server does not support reflection";
    }
    stream_.reset();
    return false;
  }
  if (response->has_error_response()) {
    last_error_ = response->error_response().error_message();
    return false;
  }
  return true;
}

void ReflectionDatabase::CacheFiles(const Response& response) {
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) continue;
    if (cached_names_.insert(file.name()).second) cache_.Add(file);
  }
}

absl::StatusOr<std::vector<std::string>> ReflectionDatabase::ListServices() {
  Request request;
  request.set_list_services("");
  Response response;
  if (!RoundTrip(request, &response)) return absl::UnavailableError(last_error_);
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool ReflectionDatabase::FindFileByName(const std::string& filename,
                                        google::protobuf::FileDescriptorProto* output) {
  if (cache_.FindFileByName(filename, output)) return true;
  Request request;
  request.set_file_by_filename(filename);
  Response response;
  if (!RoundTrip(request, &response)) return false;
  CacheFiles(response);
  return cache_.FindFileByName(filename, output);
}

bool ReflectionDatabase::FindFileContainingSymbol(const std::string& symbol_name,
                                                  google::protobuf::FileDescriptorProto* output) {
  if (cache_.FindFileContainingSymbol(symbol_name, output)) return true;
  Request request;
  request.set_file_containing_symbol(symbol_name);
  Response response;
  if (!RoundTrip(request, &response)) return false;
  // gRPC 1.51 servers repeat earlier answers' files in later responses on the same stream, so
  // the first file of a response is not necessarily the one asked for: look it up by symbol.
  CacheFiles(response);
  return cache_.FindFileContainingSymbol(symbol_name, output);
}

bool ReflectionDatabase::FindFileContainingExtension(const std::string&, int,
                                                     google::protobuf::FileDescriptorProto*) {
  return false;
}

}  // namespace ferry::reflect
