#include "tests/support/sshd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/support/git_repo.h"
#include "tests/support/ports.h"

namespace ferry::testing {

absl::StatusOr<std::string> MakeKeyPair(const std::string& path) {
  int status = 0;
  std::string out = RunCommand(
      absl::StrCat("ssh-keygen -q -t ed25519 -N '' -C test -f ", path, " 2>&1"), &status);
  if (status != 0) return absl::InternalError("ssh-keygen failed: " + out);
  std::ifstream in(path + ".pub");
  std::string line;
  std::getline(in, line);
  return line;
}

absl::StatusOr<std::unique_ptr<Sshd>> Sshd::Start(const std::string& dir) {
  std::unique_ptr<Sshd> s(new Sshd());
  s->dir_ = dir;
  std::filesystem::create_directories(dir);
  // sshd insists on its privilege separation directory.
  std::filesystem::create_directories("/run/sshd");
  passwd* pw = getpwuid(getuid());
  if (pw == nullptr) return absl::InternalError("no passwd entry for the current user");
  s->user_ = pw->pw_name;
  absl::StatusOr<std::string> host = MakeKeyPair(dir + "/host_key");
  if (!host.ok()) return host.status();
  s->host_public_key_ = *host;
  absl::StatusOr<std::string> client = MakeKeyPair(dir + "/client_key");
  if (!client.ok()) return client.status();
  std::ofstream(dir + "/authorized_keys") << *client << "\n";
  s->port_ = FreeLoopbackPort();
  std::ofstream(dir + "/sshd_config")
      << "Port " << s->port_ << "\nListenAddress 127.0.0.1\nHostKey " << dir
      << "/host_key\nPidFile " << dir << "/sshd.pid\nAuthorizedKeysFile " << dir
      << "/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
      << "KbdInteractiveAuthentication no\nUsePAM no\nPubkeyAuthentication yes\n"
      << "PermitRootLogin prohibit-password\nAllowUsers " << s->user_ << "\nLogLevel ERROR\n";
  auto process = Subprocess::Start({"/usr/sbin/sshd", "-D", "-e", "-f", dir + "/sshd_config"});
  if (!process.ok()) return process.status();
  s->process_ = *std::move(process);
  for (int i = 0; i < 200; ++i) {
    if (AcceptsConnections(s->port_)) return s;
    if (s->process_->Wait(absl::Milliseconds(25)).has_value()) {
      return absl::InternalError("sshd exited: " + s->process_->Output());
    }
  }
  return absl::DeadlineExceededError("sshd did not accept connections: " + s->process_->Output());
}

std::string Sshd::KnownHostsLine() const {
  std::string key = host_public_key_;
  // "ssh-ed25519 AAAA... comment" -> drop the comment.
  size_t second_space = key.find(' ', key.find(' ') + 1);
  if (second_space != std::string::npos) key = key.substr(0, second_space);
  return absl::StrCat("[127.0.0.1]:", port_, " ", key);
}

std::string Sshd::Url(const std::string& path) const {
  return absl::StrCat("ssh://", user_, "@127.0.0.1:", port_, path);
}

}  // namespace ferry::testing
