// OpenPGP signatures on Ferry's commits, notes commits and sync tag
// (--git_signing_format=openpgp), made in-process with RNP (librnp, the OpenPGP library of
// Thunderbird): armored detached signatures, what `git commit -S` with gpg writes, so
// `git verify-commit` checks them against a gpg keyring.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/git-writer/signer.h"

struct rnp_ffi_st;
struct rnp_key_handle_st;

namespace ferry::git_writer {

class OpenPgpSigner final : public KeyFileSigner {
 public:
  // Loads the secret key in `private_key_path` (an armored or binary transferable secret key,
  // as `gpg --export-secret-keys` writes it; at most 1 MiB) and picks its signing key: the
  // primary key when it may sign, else its first subkey that may. FailedPrecondition when
  // the file holds no secret key that can sign, or that key has a passphrase, or the file
  // may be read by its group or others (mode & 077, refused as ssh-keygen does); the check
  // ends with a signature. The file's bytes are wiped from memory on every return. `metrics` may be
  // null; it must outlive the signer.
  static absl::StatusOr<std::unique_ptr<OpenPgpSigner>> Create(const std::string& private_key_path,
                                                               SignerMetrics* metrics = nullptr);
  ~OpenPgpSigner() override;

  // format "openpgp"; public_key: the armored public key block (primary key and subkeys);
  // fingerprint: the primary key's, 40 upper-case hex digits as gpg prints it.
  const SigningKey& key() const override { return key_; }

 private:
  explicit OpenPgpSigner(SignerMetrics* metrics) : KeyFileSigner(metrics) {}
  absl::StatusOr<std::string> SignOnce(absl::string_view payload) override;
  // Loads the keys of `data` (the key file, wiped afterwards) and picks the signing key.
  absl::Status Load(const std::string& private_key_path, std::string& data);

  absl::Mutex mu_;  // librnp's objects are not thread-safe
  rnp_ffi_st* ffi_ ABSL_GUARDED_BY(mu_) = nullptr;
  rnp_key_handle_st* signing_key_ ABSL_GUARDED_BY(mu_) = nullptr;
  SigningKey key_;
};

}  // namespace ferry::git_writer
