// Signatures on the git objects Ferry makes (commits, notes commits, the sync tag), with the
// key of --git_signing_key_path: an SSH key producing git's SSHSIG signatures (namespace
// "git"), exactly what `git -c gpg.format=ssh` writes, so `git verify-commit` and
// `git verify-tag` with an allowed signers file check them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

namespace ferry::git_writer {

// The public half of a signing key, as GetIdentity reports it.
struct SigningKey {
  std::string format;       // "ssh"
  std::string public_key;   // "ssh-ed25519 AAAA... comment" (authorized_keys format)
  std::string fingerprint;  // "SHA256:..." as ssh-keygen -l prints it
};

// Signs the bytes of a git object. Implementations are thread-safe.
class Signer {
 public:
  virtual ~Signer() = default;
  // The armored signature of `payload` (git puts it in a commit's "gpgsig" header, or after
  // a tag's message), ending with a newline. FailedPrecondition when the key cannot sign
  // (e.g. removed or replaced by something unreadable since the start); Internal when the
  // signing tool fails otherwise; DeadlineExceeded when it hangs. Errors never hold the key.
  virtual absl::StatusOr<std::string> Sign(absl::string_view payload) = 0;
  virtual const SigningKey& key() const = 0;
};

// ferry_git_signatures_total{outcome}: signatures made ("ok") and failed ("error").
struct SignerMetrics {
  explicit SignerMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& signatures;
};

// What the signers of a key file share: Sign counts each signature in `metrics`
// (ferry_git_signatures_total), and CheckSigns is the probe signature of their Create.
class KeyFileSigner : public Signer {
 public:
  absl::StatusOr<std::string> Sign(absl::string_view payload) final;

 protected:
  explicit KeyFileSigner(SignerMetrics* metrics) : metrics_(metrics) {}
  // One signature, not counted.
  virtual absl::StatusOr<std::string> SignOnce(absl::string_view payload) = 0;
  // FailedPrecondition "the key at <path> does not sign: <why>" unless a probe signs.
  absl::Status CheckSigns(const std::string& private_key_path);
  SignerMetrics* metrics_;  // may be null
};

// SSH signatures made by `ssh-keygen -Y sign -n git -f KEY` with the payload on stdin (what
// git itself runs for gpg.format=ssh), in a bounded child process with an environment of its
// own (no ssh-agent is asked).
class SshSigner final : public KeyFileSigner {
 public:
  // Checks that `private_key_path` is a private key ssh-keygen can read without a passphrase
  // (`ssh-keygen -y`) and reads its public half. ed25519, ECDSA and RSA keys work; an OpenSSH
  // deploy key may be reused. FailedPrecondition with ssh-keygen's reason (a missing file,
  // not a private key, a passphrase, a file others may read); Unavailable when ssh-keygen
  // cannot run. `metrics` may be null; it must outlive the signer.
  static absl::StatusOr<std::unique_ptr<SshSigner>> Create(const std::string& private_key_path,
                                                           SignerMetrics* metrics = nullptr);

  const SigningKey& key() const override { return key_; }

 private:
  SshSigner(std::string path, SigningKey key, SignerMetrics* metrics)
      : KeyFileSigner(metrics), path_(std::move(path)), key_(std::move(key)) {}
  absl::StatusOr<std::string> SignOnce(absl::string_view payload) override;

  static constexpr absl::Duration kTimeout = absl::Seconds(20);
  const std::string path_;
  const SigningKey key_;
};

// Checks the signatures of the commits Ferry reads (--git_verify_signatures).
class Verifier {
 public:
  virtual ~Verifier() = default;
  // OK when `signature` (armored, as in a commit's "gpgsig" header) is a valid signature of
  // `payload` by an allowed key. PermissionDenied (with the reason: not an SSH signature,
  // a key that is not allowed, a bad signature, a payload over 1 MiB or a signature over
  // 64 KiB) when it is not; Unavailable/DeadlineExceeded
  // when the check could not run. Thread-safe.
  virtual absl::Status Verify(absl::string_view payload, absl::string_view signature) = 0;
};

// SSH signatures checked as git does with gpg.ssh.allowedSignersFile: the signer's
// principals found in the allowed signers file (`ssh-keygen -Y find-principals`), then the
// signature checked for one of them in namespace "git" (`ssh-keygen -Y verify`), the
// payload on stdin. The signature goes through a file in a private temporary folder,
// removed afterwards.
class SshVerifier final : public Verifier {
 public:
  // FailedPrecondition when `allowed_signers_path` is not a readable file.
  static absl::StatusOr<std::unique_ptr<SshVerifier>> Create(
      const std::string& allowed_signers_path);
  // Accepts signatures by `public_key` ("ssh-ed25519 AAAA..." as SigningKey::public_key)
  // alone: an allowed signers file of that one line, in a private temporary folder removed
  // with the verifier. Internal when the folder cannot be made.
  static absl::StatusOr<std::unique_ptr<SshVerifier>> ForKey(const std::string& public_key);
  ~SshVerifier() override;
  absl::Status Verify(absl::string_view payload, absl::string_view signature) override;

 private:
  explicit SshVerifier(std::string path, std::string owned_dir = "")
      : path_(std::move(path)), owned_dir_(std::move(owned_dir)) {}
  static constexpr absl::Duration kTimeout = absl::Seconds(20);
  // Bounds of what upstream hands over: a bigger commit or signature is PermissionDenied,
  // and at most this many of the principals found for the key are tried.
  static constexpr size_t kMaxPayloadBytes = 1 << 20;
  static constexpr size_t kMaxSignatureBytes = 64 << 10;
  static constexpr size_t kMaxPrincipals = 16;
  const std::string path_;
  const std::string owned_dir_;  // removed with the verifier (ForKey)
};

}  // namespace ferry::git_writer
