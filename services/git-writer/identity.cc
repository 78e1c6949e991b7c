#include "services/git-writer/identity.h"

#include <openssl/sha.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/process/process.h"

extern char** environ;

namespace ferry::git_writer {

absl::Status EnsureDeployKey(const std::string& private_key_path) {
  std::error_code ec;
  if (std::filesystem::exists(private_key_path, ec)) return absl::OkStatus();
  std::filesystem::create_directories(std::filesystem::path(private_key_path).parent_path(), ec);
  process::RunOptions run;
  run.argv = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ferry", "-f", private_key_path};
  for (char** e = environ; *e != nullptr; ++e) run.env.emplace_back(*e);
  run.timeout = absl::Seconds(60);
  absl::StatusOr<process::RunResult> result = process::Run(run);
  if (!result.ok() && result.status().code() == absl::StatusCode::kNotFound) {
    return absl::UnavailableError(
        "cannot run ssh-keygen to create the deploy key (install openssh-client)");
  }
  if (!result.ok()) {
    return absl::InternalError(absl::StrCat("ssh-keygen could not create ", private_key_path, ": ",
                                            result.status().message()));
  }
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("ssh-keygen could not create ", private_key_path, ": ",
                                            absl::StripAsciiWhitespace(result->err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Fingerprint(const std::string& public_key_line) {
  std::vector<std::string> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(public_key_line), ' ', absl::SkipEmpty());
  std::string blob;
  if (fields.size() < 2 || !absl::Base64Unescape(fields[1], &blob)) {
    return absl::InvalidArgumentError("not an OpenSSH public key line");
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(blob.data()), blob.size(), digest);
  std::string b64 =
      absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return absl::StrCat("SHA256:", b64);
}

absl::StatusOr<DeployKey> ReadDeployKey(const std::string& private_key_path) {
  std::ifstream in(private_key_path + ".pub");
  if (!in) {
    return absl::NotFoundError(absl::StrCat("no public key at ", private_key_path, ".pub"));
  }
  std::string line;
  std::getline(in, line);
  DeployKey key;
  key.public_key = std::string(absl::StripAsciiWhitespace(line));
  absl::StatusOr<std::string> fp = Fingerprint(key.public_key);
  if (!fp.ok()) return fp.status();
  key.fingerprint = *fp;
  return key;
}

}  // namespace ferry::git_writer
