// A real OpenSSH server on a loopback port for tests, with its own host key and one
// authorized client key, serving git over ssh as the current user.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace ferry::testing {

class Sshd {
 public:
  // Starts /usr/sbin/sshd on 127.0.0.1 with files in `dir` (created): host key, client key
  // (`client_key_path()`), authorized_keys, config. Waits until it accepts connections.
  static absl::StatusOr<std::unique_ptr<Sshd>> Start(const std::string& dir);

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  // The client's private key, authorized on this server.
  std::string client_key_path() const { return dir_ + "/client_key"; }
  // A known_hosts line for this server ("[127.0.0.1]:port ssh-ed25519 AAAA...").
  std::string KnownHostsLine() const;
  // ssh:// URL of `path` on this server.
  std::string Url(const std::string& path) const;

 private:
  Sshd() = default;
  std::string dir_;
  std::string user_;
  int port_ = 0;
  std::string host_public_key_;
  std::unique_ptr<Subprocess> process_;
};

// Creates an ed25519 key pair at `path` with ssh-keygen; returns the public key line.
absl::StatusOr<std::string> MakeKeyPair(const std::string& path);

}  // namespace ferry::testing
