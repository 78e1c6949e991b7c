// ssh known_hosts files: is this host key the one we trust for this host?
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::git_writer {

// A parsed known_hosts file (OpenSSH format: plain, comma-separated, "[host]:port",
// wildcard and hashed "|1|salt|hash" host patterns; @cert-authority lines are ignored,
// @revoked keys never match).
class KnownHosts {
 public:
  enum class Match { kKnown, kChanged, kUnknown };

  // Reads `path`. FailedPrecondition when it is not set or cannot be read: ssh without a
  // known_hosts file is refused rather than trusted blindly.
  static absl::StatusOr<KnownHosts> Load(const std::string& path);
  // Parses file content.
  static KnownHosts Parse(const std::string& content);

  // `key` is the host key blob in ssh wire format (as the server sent it).
  Match Check(const std::string& host, int port, const std::string& key) const;

 private:
  struct Entry {
    std::vector<std::string> patterns;  // plain or wildcard patterns, "!" negations
    std::string hashed_salt;            // set for |1| entries
    std::string hashed_hash;
    std::string key;  // decoded blob
    bool revoked = false;
  };
  bool HostMatches(const Entry& e, const std::string& name) const;
  std::vector<Entry> entries_;
};

// The port of an ssh:// URL (22 when none, or for scp-like URLs).
int SshPort(const std::string& url);

}  // namespace ferry::git_writer
