#include "services/git-writer/openpgp_signer.h"

#include <errno.h>
#include <fcntl.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace ferry::git_writer {
namespace {

constexpr size_t kMaxKeyFileBytes = 1 << 20;
constexpr size_t kMaxSignatureBytes = 64 << 10;

// librnp's result as a status message (no key material: librnp's strings are fixed texts).
std::string Why(rnp_result_t rc) { return rnp_result_to_string(rc); }

// Owns one librnp handle.
template <typename T, rnp_result_t (*Destroy)(T)>
struct Handle {
  T ptr = nullptr;
  ~Handle() {
    if (ptr != nullptr) Destroy(ptr);
  }
  T* out() { return &ptr; }
};
using Input = Handle<rnp_input_t, rnp_input_destroy>;
using Output = Handle<rnp_output_t, rnp_output_destroy>;
using KeyHandle = Handle<rnp_key_handle_t, rnp_key_handle_destroy>;
using SignOp = Handle<rnp_op_sign_t, rnp_op_sign_destroy>;
using IdIterator = Handle<rnp_identifier_iterator_t, rnp_identifier_iterator_destroy>;

// A string librnp allocated, released with rnp_buffer_destroy.
std::string Take(char* s) {
  std::string out = s != nullptr ? s : "";
  rnp_buffer_destroy(s);
  return out;
}

bool Flag(rnp_result_t (*query)(rnp_key_handle_t, bool*), rnp_key_handle_t key) {
  bool value = false;
  return query(key, &value) == RNP_SUCCESS && value;
}

bool MaySign(rnp_key_handle_t key) {
  bool value = false;
  return rnp_key_allows_usage(key, "sign", &value) == RNP_SUCCESS && value &&
         Flag(rnp_key_have_secret, key);
}

}  // namespace

absl::StatusOr<std::unique_ptr<OpenPgpSigner>> OpenPgpSigner::Create(
    const std::string& private_key_path, SignerMetrics* metrics) {
  // As ssh-keygen does for its keys: a secret key others may read is refused.
  const int fd = ::open(private_key_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::FailedPreconditionError(absl::StrCat("no key file at ", private_key_path));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(private_key_path, " is not a file"));
  }
  if ((info.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(private_key_path, " may be read by others (mode ",
                     absl::StrFormat("%04o", info.st_mode & 07777),
                     "): a secret key must be readable by its owner only (chmod 600)"));
  }
  std::string data(kMaxKeyFileBytes + 1, '\0');
  struct Wipe {  // on every return: no copy of the secret key stays in memory
    std::string& bytes;
    ~Wipe() { std::fill(bytes.begin(), bytes.end(), '\0'); }
  } wipe{data};
  size_t size = 0;
  while (size < data.size()) {
    const ssize_t n = ::read(fd, data.data() + size, data.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::FailedPreconditionError(absl::StrCat("cannot read ", private_key_path));
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  if (size > kMaxKeyFileBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(private_key_path, " is over ", kMaxKeyFileBytes, " bytes: not a key"));
  }
  data.resize(size);  // shrinks in place: the bytes after `size` were never written
  std::unique_ptr<OpenPgpSigner> signer(new OpenPgpSigner(metrics));
  if (absl::Status loaded = signer->Load(private_key_path, data); !loaded.ok()) return loaded;
  if (absl::Status signs = signer->CheckSigns(private_key_path); !signs.ok()) return signs;
  return signer;
}

absl::Status OpenPgpSigner::Load(const std::string& private_key_path, std::string& data) {
  absl::MutexLock lock(&mu_);
  if (rnp_result_t rc = rnp_ffi_create(&ffi_, RNP_KEYSTORE_GPG, RNP_KEYSTORE_GPG);
      rc != RNP_SUCCESS) {
    return absl::InternalError(absl::StrCat("librnp: ", Why(rc)));
  }
  {
    Input input;
    rnp_result_t rc = rnp_input_from_memory(
        input.out(), reinterpret_cast<const uint8_t*>(data.data()), data.size(), /*do_copy=*/false);
    if (rc == RNP_SUCCESS) {
      rc = rnp_load_keys(ffi_, RNP_KEYSTORE_GPG, input.ptr,
                         RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS);
    }
    std::fill(data.begin(), data.end(), '\0');
    if (rc != RNP_SUCCESS) {
      return absl::FailedPreconditionError(
          absl::StrCat(private_key_path, " is not an OpenPGP key (", Why(rc), ")"));
    }
  }
  // The primary key with a secret half, and the key that signs: the primary key when it
  // may, else its first subkey that may.
  KeyHandle primary;
  {
    IdIterator it;
    if (rnp_identifier_iterator_create(ffi_, it.out(), "fingerprint") != RNP_SUCCESS) {
      return absl::InternalError("librnp: cannot list the keys");
    }
    const char* fingerprint = nullptr;
    while (primary.ptr == nullptr &&
           rnp_identifier_iterator_next(it.ptr, &fingerprint) == RNP_SUCCESS &&
           fingerprint != nullptr) {
      KeyHandle key;
      if (rnp_locate_key(ffi_, "fingerprint", fingerprint, key.out()) != RNP_SUCCESS ||
          key.ptr == nullptr || Flag(rnp_key_is_sub, key.ptr) ||
          !Flag(rnp_key_have_secret, key.ptr)) {
        continue;
      }
      std::swap(primary.ptr, key.ptr);
    }
  }
  if (primary.ptr == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(private_key_path,
                     " holds no OpenPGP secret key (export it with "
                     "gpg --export-secret-keys)"));
  }
  rnp_key_handle_t signing = nullptr;
  if (MaySign(primary.ptr)) {
    std::swap(signing, primary.ptr);
  }
  if (signing == nullptr) {
    size_t count = 0;
    (void)rnp_key_get_subkey_count(primary.ptr, &count);
    for (size_t i = 0; i < count && signing == nullptr; ++i) {
      KeyHandle sub;
      if (rnp_key_get_subkey_at(primary.ptr, i, sub.out()) == RNP_SUCCESS && MaySign(sub.ptr)) {
        std::swap(signing, sub.ptr);
      }
    }
  }
  if (signing == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(private_key_path, " holds no OpenPGP key that may sign"));
  }
  signing_key_ = signing;
  if (Flag(rnp_key_is_protected, signing)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the OpenPGP key in ", private_key_path,
                     " has a passphrase: export it without one for Ferry"));
  }
  // The public half and fingerprint are the primary key's (the signing key's own when it
  // is the primary key).
  rnp_key_handle_t root = primary.ptr != nullptr ? primary.ptr : signing;
  char* fingerprint = nullptr;
  if (rnp_key_get_fprint(root, &fingerprint) != RNP_SUCCESS) {
    return absl::InternalError("librnp: no fingerprint");
  }
  key_.format = "openpgp";
  key_.fingerprint = Take(fingerprint);
  {
    Output out;
    const uint8_t* buf = nullptr;
    size_t len = 0;
    if (rnp_output_to_memory(out.out(), 0) != RNP_SUCCESS ||
        rnp_key_export(root, out.ptr,
                       RNP_KEY_EXPORT_ARMORED | RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS) !=
            RNP_SUCCESS ||
        rnp_output_memory_get_buf(out.ptr, const_cast<uint8_t**>(&buf), &len, false) !=
            RNP_SUCCESS) {
      return absl::InternalError("librnp: cannot export the public key");
    }
    key_.public_key =
        absl::StrReplaceAll(std::string(reinterpret_cast<const char*>(buf), len), {{"\r", ""}});
  }
  return absl::OkStatus();
}

OpenPgpSigner::~OpenPgpSigner() {
  absl::MutexLock lock(&mu_);
  if (signing_key_ != nullptr) rnp_key_handle_destroy(signing_key_);
  if (ffi_ != nullptr) rnp_ffi_destroy(ffi_);
}

absl::StatusOr<std::string> OpenPgpSigner::SignOnce(absl::string_view payload) {
  absl::MutexLock lock(&mu_);
  Input input;
  Output output;
  SignOp op;
  rnp_result_t rc = rnp_input_from_memory(
      input.out(), reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), false);
  if (rc == RNP_SUCCESS) rc = rnp_output_to_memory(output.out(), kMaxSignatureBytes);
  if (rc == RNP_SUCCESS) rc = rnp_op_sign_detached_create(op.out(), ffi_, input.ptr, output.ptr);
  if (rc == RNP_SUCCESS) rc = rnp_op_sign_add_signature(op.ptr, signing_key_, nullptr);
  if (rc == RNP_SUCCESS) rc = rnp_op_sign_set_armor(op.ptr, true);
  if (rc == RNP_SUCCESS) rc = rnp_op_sign_set_hash(op.ptr, "SHA256");
  if (rc == RNP_SUCCESS) rc = rnp_op_sign_execute(op.ptr);
  uint8_t* buf = nullptr;
  size_t len = 0;
  if (rc == RNP_SUCCESS) rc = rnp_output_memory_get_buf(output.ptr, &buf, &len, false);
  if (rc != RNP_SUCCESS) {
    return absl::InternalError(absl::StrCat("OpenPGP signature failed (librnp: ", Why(rc), ")"));
  }
  // Armor lines end with CRLF in librnp; git's headers and tags take LF.
  std::string signature =
      absl::StrReplaceAll(std::string(reinterpret_cast<const char*>(buf), len), {{"\r", ""}});
  if (!absl::StartsWith(signature, "-----BEGIN PGP SIGNATURE-----")) {
    return absl::InternalError("librnp wrote no armored OpenPGP signature");
  }
  if (signature.back() != '\n') signature.push_back('\n');
  return signature;
}

}  // namespace ferry::git_writer
