// The deploy key: generated when missing, and its public half with fingerprint.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace ferry::git_writer {

struct DeployKey {
  std::string public_key;   // "ssh-ed25519 AAAA... comment"
  std::string fingerprint;  // "SHA256:..." as ssh-keygen -l prints it
};

// Creates an ed25519 key pair at `private_key_path` (+ ".pub") with ssh-keygen when the
// private key does not exist. Unavailable when ssh-keygen cannot run.
absl::Status EnsureDeployKey(const std::string& private_key_path);

// Reads the public half ("<private_key_path>.pub"). NotFound when there is none.
absl::StatusOr<DeployKey> ReadDeployKey(const std::string& private_key_path);

// The SHA256 fingerprint of an OpenSSH public key line.
absl::StatusOr<std::string> Fingerprint(const std::string& public_key_line);

}  // namespace ferry::git_writer
