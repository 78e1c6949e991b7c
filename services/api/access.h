// Who may call the api: bearer tokens from a file, each with a role. `read` may list, get
// and watch; `write` may also release, change policies and sync.
//
// The tokens file (a mounted Kubernetes Secret) has one token per line:
//   <role> <token> [name]      e.g. "write 3f9c... ci-pipeline"
// Blank lines and lines starting with '#' are ignored. Names appear in logs, tokens never.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace ferry::api {

enum class Role { kRead, kWrite };

class Access {
 public:
  // Everyone may do everything: local mode (plaintext on loopback only, see config).
  static Access Open();
  // InvalidArgument naming the line for a malformed file, naming both lines when a token is
  // on two lines (a copy-paste that would give one of them the other's role); NotFound when
  // unreadable. Logs a warning (the path and mode, never a token) when the file is readable
  // by group or others.
  static absl::StatusOr<Access> LoadTokens(const std::string& path);

  // OK when the call's "authorization: Bearer <token>" grants `needed`; UNAUTHENTICATED
  // when the token is missing or unknown, PERMISSION_DENIED when its role is too weak.
  grpc::Status Check(const grpc::ServerContext& context, Role needed) const {
    return Check(context.client_metadata(), needed);
  }
  grpc::Status Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                     Role needed) const;

  bool open() const { return open_; }
  size_t size() const { return tokens_.size(); }

 private:
  struct Entry {
    Role role;
    std::string name;
  };
  bool open_ = false;
  std::map<std::string, Entry> tokens_;
};

}  // namespace ferry::api
