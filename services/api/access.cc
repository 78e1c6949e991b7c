#include "services/api/access.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/log/log.h"

namespace ferry::api {

Access Access::Open() {
  Access a;
  a.open_ = true;
  return a;
}

absl::StatusOr<Access> Access::LoadTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the tokens file ", path));
  // A Kubernetes Secret is mounted 0644 unless its defaultMode says otherwise: every process
  // of the pod's other users could then read the tokens.
  struct stat info;
  if (stat(path.c_str(), &info) == 0 && (info.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(info.st_mode & 07777));
    log::Warn(
        "the tokens file is readable by group or others; make it 0400 or 0600 (a Secret's "
        "defaultMode: 0400)",
        {{"path", path}, {"mode", std::string(mode)}});
  }
  Access a;
  std::map<std::string, int> line_of;  // token -> the line it is on
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || absl::StartsWith(text, "#")) continue;
    std::vector<std::string> fields =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() < 2 || fields.size() > 3 || (fields[0] != "read" && fields[0] != "write")) {
      return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, " line ", number,
                                                     ": expected '<read|write> <token> [name]'"));
    }
    if (fields[1].size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, " line ", number,
                                                     ": the token is shorter than 16 characters"));
    }
    auto [seen, inserted] = line_of.emplace(fields[1], number);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, " lines ", seen->second,
                                                     " and ", number, " hold the same token"));
    }
    Entry e{fields[0] == "write" ? Role::kWrite : Role::kRead,
            fields.size() == 3 ? fields[2] : absl::StrCat("line ", number)};
    a.tokens_[fields[1]] = e;
  }
  if (a.tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, " holds no token"));
  }
  return a;
}

grpc::Status Access::Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                           Role needed) const {
  if (open_) return grpc::Status::OK;
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        "no token: send \"authorization: Bearer <token>\" (ferryctl --token / FERRY_TOKEN)");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization header must be \"Bearer <token>\"");
  }
  // Compare against every token in constant time per comparison.
  const Entry* found = nullptr;
  for (const auto& [token, entry] : tokens_) {
    if (token.size() == value.size() &&
        CRYPTO_memcmp(token.data(), value.data(), value.size()) == 0) {
      found = &entry;
    }
  }
  if (found == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  }
  if (needed == Role::kWrite && found->role != Role::kWrite) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("token '", found->name, "' has the read role; this call needs write"));
  }
  return grpc::Status::OK;
}

}  // namespace ferry::api
