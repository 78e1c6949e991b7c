#include "services/git-writer/signer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/process/process.h"
#include "services/git-writer/identity.h"

namespace ferry::git_writer {
namespace {

constexpr char kBeginSsh[] = "-----BEGIN SSH SIGNATURE-----\n";
constexpr char kEndSsh[] = "-----END SSH SIGNATURE-----";
// What the first signature signs, at the start: a key that reads but cannot sign (a PEM key
// without its .pub, a passphrase) stops the binary instead of failing every write.
constexpr char kProbe[] = "ferry: signing key check\n";
// ssh-keygen's diagnostics kept in errors: its reason, never more.
constexpr size_t kMaxReasonBytes = 512;

// ssh-keygen with PATH alone: no ssh-agent (SSH_AUTH_SOCK), no terminal prompts.
process::RunOptions SshKeygen(std::vector<std::string> args, absl::Duration timeout) {
  process::RunOptions run;
  run.argv = {"ssh-keygen"};
  for (std::string& a : args) run.argv.push_back(std::move(a));
  const char* path = std::getenv("PATH");
  run.env = {absl::StrCat("PATH=", path != nullptr ? path : "/usr/bin:/bin")};
  run.timeout = timeout;
  run.max_stdout_bytes = 64 << 10;
  run.max_stderr_bytes = 4 << 10;
  return run;
}

std::string Reason(const std::string& err) {
  std::string reason(absl::StripAsciiWhitespace(err));
  if (reason.size() > kMaxReasonBytes) reason.resize(kMaxReasonBytes);
  for (char& c : reason) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return reason.empty() ? "no reason given" : reason;
}

}  // namespace

SignerMetrics::SignerMetrics(prometheus::Registry& registry)
    : signatures(prometheus::BuildCounter()
                     .Name("ferry_git_signatures_total")
                     .Help("Signatures on the commits, notes commits and sync tags Ferry made "
                           "(--git_signing_key_path), by outcome: ok, error.")
                     .Register(registry)) {}

absl::StatusOr<std::unique_ptr<SshSigner>> SshSigner::Create(const std::string& private_key_path,
                                                             SignerMetrics* metrics) {
  struct stat info;
  if (::stat(private_key_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("no key file at ", private_key_path));
  }
  absl::StatusOr<process::RunResult> result =
      process::Run(SshKeygen({"-y", "-P", "", "-f", private_key_path}, kTimeout));
  if (!result.ok() && absl::IsNotFound(result.status())) {
    return absl::UnavailableError(
        "cannot run ssh-keygen to read the signing key (install "
        "openssh-client)");
  }
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        private_key_path, " is not a private key ssh-keygen can read without a passphrase (",
        Reason(result->err), ")"));
  }
  SigningKey key;
  key.format = "ssh";
  key.public_key = std::string(absl::StripAsciiWhitespace(result->out));
  absl::StatusOr<std::string> fingerprint = Fingerprint(key.public_key);
  if (!fingerprint.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ssh-keygen gave no public key for ", private_key_path));
  }
  key.fingerprint = *fingerprint;
  std::unique_ptr<SshSigner> signer(new SshSigner(private_key_path, std::move(key), metrics));
  if (absl::Status signs = signer->CheckSigns(private_key_path); !signs.ok()) return signs;
  return signer;
}

absl::StatusOr<std::string> KeyFileSigner::Sign(absl::string_view payload) {
  absl::StatusOr<std::string> signature = SignOnce(payload);
  if (metrics_ != nullptr) {
    metrics_->signatures.Add({{"outcome", signature.ok() ? "ok" : "error"}}).Increment();
  }
  return signature;
}

absl::Status KeyFileSigner::CheckSigns(const std::string& private_key_path) {
  if (absl::StatusOr<std::string> probe = SignOnce(kProbe); !probe.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the key at ", private_key_path, " does not sign: ", probe.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SshSigner::SignOnce(absl::string_view payload) {
  process::RunOptions run = SshKeygen({"-Y", "sign", "-n", "git", "-f", path_}, kTimeout);
  run.input = std::string(payload);
  absl::StatusOr<process::RunResult> result = process::Run(run);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("ssh-keygen -Y sign: ", result.status().message()));
  }
  if (result->exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("ssh-keygen -Y sign with ", path_, " failed: ", Reason(result->err)));
  }
  if (!absl::StartsWith(result->out, kBeginSsh) || !absl::StrContains(result->out, kEndSsh)) {
    return absl::InternalError("ssh-keygen -Y sign wrote no SSH signature");
  }
  std::string signature = std::move(result->out);
  if (signature.back() != '\n') signature.push_back('\n');
  return signature;
}

absl::StatusOr<std::unique_ptr<SshVerifier>> SshVerifier::Create(
    const std::string& allowed_signers_path) {
  struct stat info;
  if (::stat(allowed_signers_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode) ||
      ::access(allowed_signers_path.c_str(), R_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no readable allowed signers file at ", allowed_signers_path));
  }
  return std::unique_ptr<SshVerifier>(new SshVerifier(allowed_signers_path));
}

absl::StatusOr<std::unique_ptr<SshVerifier>> SshVerifier::ForKey(const std::string& public_key) {
  if (public_key.empty() || absl::StrContains(public_key, '\n')) {
    return absl::InvalidArgumentError("not a one-line SSH public key");
  }
  std::string folder = (std::filesystem::temp_directory_path() / "ferry-own-key-XXXXXX").string();
  if (::mkdtemp(folder.data()) == nullptr) {
    return absl::InternalError("cannot make a temporary folder for Ferry's public key");
  }
  const std::string path = folder + "/allowed_signers";
  std::ofstream out(path);
  out << "ferry " << public_key << "\n";
  out.close();
  if (!out) {
    std::error_code ec;
    std::filesystem::remove_all(folder, ec);
    return absl::InternalError("cannot write Ferry's public key");
  }
  return std::unique_ptr<SshVerifier>(new SshVerifier(path, folder));
}

SshVerifier::~SshVerifier() {
  if (owned_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(owned_dir_, ec);
}

absl::Status SshVerifier::Verify(absl::string_view payload, absl::string_view signature) {
  if (payload.size() > kMaxPayloadBytes) {
    return absl::PermissionDeniedError(
        absl::StrCat("the signed commit is over ", kMaxPayloadBytes, " bytes: not checked"));
  }
  if (signature.size() > kMaxSignatureBytes) {
    return absl::PermissionDeniedError(
        absl::StrCat("the signature is over ", kMaxSignatureBytes, " bytes: not checked"));
  }
  if (!absl::StartsWith(signature, kBeginSsh)) {
    return absl::PermissionDeniedError(absl::StartsWith(signature, "-----BEGIN PGP SIGNATURE-----")
                                           ? "signed with OpenPGP; only SSH signatures are checked"
                                           : "not an SSH signature");
  }
  // ssh-keygen reads the signature from a file: a private folder of our own holds it.
  std::string folder = (std::filesystem::temp_directory_path() / "ferry-verify-XXXXXX").string();
  if (::mkdtemp(folder.data()) == nullptr) {
    return absl::InternalError("cannot make a temporary folder for a signature check");
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{folder};
  const std::string sig_path = folder + "/commit.sig";
  {
    const int fd = ::open(sig_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError("cannot write a signature to check");
    const bool written =
        ::write(fd, signature.data(), signature.size()) == static_cast<ssize_t>(signature.size());
    ::close(fd);
    if (!written) return absl::InternalError("cannot write a signature to check");
  }
  absl::StatusOr<process::RunResult> found =
      process::Run(SshKeygen({"-Y", "find-principals", "-f", path_, "-s", sig_path}, kTimeout));
  if (!found.ok()) return absl::UnavailableError(found.status().message());
  if (found->exit_code != 0) {
    return absl::PermissionDeniedError(
        "signed by a key that is not in the allowed signers file (--git_allowed_signers_path)");
  }
  std::vector<std::string> principals = absl::StrSplit(found->out, '\n', absl::SkipWhitespace());
  if (principals.size() > kMaxPrincipals) principals.resize(kMaxPrincipals);
  std::string reason = "no principal";
  for (const std::string& principal : principals) {
    process::RunOptions run = SshKeygen(
        {"-Y", "verify", "-f", path_, "-I", principal, "-n", "git", "-s", sig_path}, kTimeout);
    run.input = std::string(payload);
    absl::StatusOr<process::RunResult> verified = process::Run(run);
    if (!verified.ok()) return absl::UnavailableError(verified.status().message());
    if (verified->exit_code == 0) return absl::OkStatus();
    reason = Reason(verified->err);
  }
  return absl::PermissionDeniedError(absl::StrCat("bad signature: ", reason));
}

}  // namespace ferry::git_writer
