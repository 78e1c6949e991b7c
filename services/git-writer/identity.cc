#include "services/git-writer/identity.h"

#include <openssl/sha.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace ferry::git_writer {

absl::Status EnsureDeployKey(const std::string& private_key_path) {
  std::error_code ec;
  if (std::filesystem::exists(private_key_path, ec)) return absl::OkStatus();
  std::filesystem::create_directories(std::filesystem::path(private_key_path).parent_path(), ec);
  std::vector<std::string> args = {"ssh-keygen", "-q", "-t",    "ed25519", "-N",
                                   "",           "-C", "ferry", "-f",      private_key_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "ssh-keygen", nullptr, nullptr, argv.data(), environ) != 0) {
    return absl::UnavailableError(
        "cannot run ssh-keygen to create the deploy key (install openssh-client)");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("ssh-keygen could not create ", private_key_path));
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
