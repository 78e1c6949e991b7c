#include "services/git-writer/libgit2_repository.h"

#include <fcntl.h>
#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "lib/limits/limits.h"
#include "lib/log/log.h"
#include "lib/names/names.h"
#include "lib/process/process.h"
#include "lib/status/status_macros.h"
#include "services/git-writer/known_hosts.h"

namespace ferry::git_writer {
namespace {

namespace fs = std::filesystem;

// Removes "user:password@" from URLs inside a message: libgit2 errors may quote the URL.
std::string Redact(std::string message) {
  size_t scheme = 0;
  while ((scheme = message.find("://", scheme)) != std::string::npos) {
    size_t start = scheme + 3;
    size_t at = message.find('@', start);
    size_t end = message.find_first_of("/ \t\n'\"", start);
    if (at != std::string::npos && (end == std::string::npos || at < end)) {
      message.replace(start, at + 1 - start, "***@");
    }
    scheme = start;
  }
  return message;
}

RawOid Raw(const git_oid& id) {
  RawOid raw;
  std::copy(std::begin(id.id), std::begin(id.id) + raw.size(), raw.begin());
  return raw;
}

// Whether `url` names a repository on this machine by absolute path (file:///...), with no
// percent-escapes: Ferry's own push writes into it (PushToPath).
bool IsLocalPath(absl::string_view url) {
  return absl::StartsWith(url, "file:///") && !absl::StrContains(url, '%');
}

absl::Status GitError(absl::string_view what, int rc) {
  const git_error* e = git_error_last();
  std::string detail = e != nullptr && e->message != nullptr ? Redact(e->message) : "unknown error";
  std::string message = absl::StrCat(what, ": ", detail);
  if (rc == GIT_ENOTFOUND) return absl::NotFoundError(message);
  if (rc == GIT_ECERTIFICATE) return absl::FailedPreconditionError(message);
  if (rc == GIT_EAUTH) return absl::UnauthenticatedError(message);
  if (rc == GIT_ENONFASTFORWARD) return absl::AbortedError(message);
  if (e != nullptr &&
      (e->klass == GIT_ERROR_NET || e->klass == GIT_ERROR_SSH || e->klass == GIT_ERROR_HTTP ||
       e->klass == GIT_ERROR_OS || e->klass == GIT_ERROR_SSL)) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

template <typename T, void (*Free)(T*)>
struct Owned {
  T* ptr = nullptr;
  ~Owned() {
    if (ptr != nullptr) Free(ptr);
  }
  T** out() { return &ptr; }
  T* get() const { return ptr; }
};

using Remote = Owned<git_remote, git_remote_free>;
using Commit = Owned<git_commit, git_commit_free>;
using Tree = Owned<git_tree, git_tree_free>;
using Blob = Owned<git_blob, git_blob_free>;
using Reference = Owned<git_reference, git_reference_free>;
using Sig = Owned<git_signature, git_signature_free>;
using Note = Owned<git_note, git_note_free>;
using Object = Owned<git_object, git_object_free>;
using Revwalk = Owned<git_revwalk, git_revwalk_free>;
using Patch = Owned<git_patch, git_patch_free>;
using TreeEntry = Owned<git_tree_entry, git_tree_entry_free>;
using Odb = Owned<git_odb, git_odb_free>;
using Packbuilder = Owned<git_packbuilder, git_packbuilder_free>;
using Config = Owned<git_config, git_config_free>;
using RepositoryHandle = Owned<git_repository, git_repository_free>;

// The mirror's config key that narrows the delta search for Ferry's own packs (see
// Libgit2Repository::Open); folds set it aside (FoldPacks).
constexpr char kPackWindowMemory[] = "pack.windowMemory";

// While it lives, `repo` reads the system and user configs only, not the mirror's own:
// libgit2's packbuilder then searches for deltas as it does by default.
class DefaultPackConfig {
 public:
  explicit DefaultPackConfig(git_repository* repo) : repo_(repo) {
    Config plain;
    if (git_repository_config(saved_.out(), repo_) != 0 ||
        git_config_open_default(plain.out()) != 0 ||
        git_repository_set_config(repo_, plain.get()) != 0) {
      // Not swapped: the fold searches a narrower window, which is only larger.
      git_config_free(std::exchange(saved_.ptr, nullptr));
    }
  }
  ~DefaultPackConfig() {
    if (saved_.get() != nullptr) git_repository_set_config(repo_, saved_.get());
  }
  DefaultPackConfig(const DefaultPackConfig&) = delete;
  DefaultPackConfig& operator=(const DefaultPackConfig&) = delete;

 private:
  git_repository* repo_;
  Config saved_;
};

absl::StatusOr<git_oid> ParseOid(const std::string& revision) {
  git_oid oid;
  if (revision.size() != GIT_OID_HEXSZ || git_oid_fromstr(&oid, revision.c_str()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("revision \"", revision, "\" is not a full 40-hex commit id"));
  }
  return oid;
}

std::string OidString(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof(buf), &oid);
  return buf;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

// What the transport callbacks need.
struct CallbackState {
  const Libgit2Options* options = nullptr;
  int credential_attempts = 0;
  std::string certificate_error;
  std::string rejected;                 // push: first rejected ref's message
  std::set<std::string> rejected_refs;  // push: every ref upstream refused
  // Push under leader election (Libgit2Options::push_permit): when the leadership it was
  // started with runs out; a callback after it aborts the push and sets `fenced`.
  std::optional<std::chrono::steady_clock::time_point> push_deadline;
  bool fenced = false;
  // fetch: objects received (its indexer's progress; git_remote_stats keeps the last
  // download's figures through a fetch that downloads nothing).
  unsigned int received_objects = 0;
};

// Whether a fenced push must stop now (its leadership ran out): then the callback returns
// this error, which libgit2 passes up as the push's result.
int FenceCheck(CallbackState& state) {
  if (!state.push_deadline || std::chrono::steady_clock::now() < *state.push_deadline) return 0;
  state.fenced = true;
  return GIT_EUSER;
}

// Libgit2Options::push_permit's verdict on a push about to start: its deadline set in
// `state` (none without a permit), or the permit's error (Unavailable naming the leader).
absl::Status StartFencedPush(const Libgit2Options& options, CallbackState& state) {
  if (!options.push_permit) return absl::OkStatus();
  absl::StatusOr<absl::Duration> validity = options.push_permit();
  if (!validity.ok()) return validity.status();
  if (*validity <= absl::ZeroDuration()) {
    return absl::UnavailableError("this instance's leadership ran out; not pushing");
  }
  state.push_deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(*validity);
  return absl::OkStatus();
}

// The error of a push that ended with `status`: Unavailable when the fence stopped it.
absl::Status FencedPushError(absl::Status status, const CallbackState& state) {
  if (!state.fenced) return status;
  return absl::UnavailableError(
      "push aborted: this instance's leadership ran out (the renew deadline of its lease "
      "passed) before the push was over; the new leader makes the change");
}

// After a fenced push that upstream took: a warning when it ended past its deadline (the
// residual window of client-side fencing: the remote applied it while this instance's
// leadership ran out; being compare-and-set, it landed on the head it was made on).
void WarnIfLate(const CallbackState& state) {
  if (state.push_deadline && state.rejected.empty() &&
      std::chrono::steady_clock::now() > *state.push_deadline) {
    log::Warn("a push ended after this instance's leadership ran out; upstream had taken it");
  }
}

// libgit2's progress callbacks of a push, each a point where a fenced push is given up.
int PushNegotiation(const git_push_update**, size_t, void* payload) {
  return FenceCheck(*static_cast<CallbackState*>(payload));
}
int PackProgress(int, uint32_t, uint32_t, void* payload) {
  return FenceCheck(*static_cast<CallbackState*>(payload));
}
int PushTransferProgress(unsigned int, unsigned int, size_t, void* payload) {
  return FenceCheck(*static_cast<CallbackState*>(payload));
}
int SidebandProgress(const char*, int, void* payload) {
  return FenceCheck(*static_cast<CallbackState*>(payload));
}

int Credentials(git_credential** out, const char* url, const char* username_from_url,
                unsigned int allowed_types, void* payload) {
  auto* state = static_cast<CallbackState*>(payload);
  // libgit2 asks again after a failed attempt: give up instead of looping.
  if (++state->credential_attempts > 3) return GIT_EAUTH;
  const Libgit2Options& o = *state->options;
  if ((allowed_types & GIT_CREDENTIAL_SSH_KEY) != 0 && !o.ssh_key_path.empty()) {
    return git_credential_ssh_key_new(out, username_from_url ? username_from_url : "git", nullptr,
                                      o.ssh_key_path.c_str(), nullptr);
  }
  if ((allowed_types & GIT_CREDENTIAL_USERNAME) != 0) {
    return git_credential_username_new(out, username_from_url ? username_from_url : "git");
  }
  if ((allowed_types & GIT_CREDENTIAL_USERPASS_PLAINTEXT) != 0 &&
      !o.https_credentials_path.empty()) {
    std::string line = ReadFirstLine(o.https_credentials_path);
    size_t colon = line.find(':');
    std::string user = colon == std::string::npos ? "x-access-token" : line.substr(0, colon);
    std::string pass = colon == std::string::npos ? line : line.substr(colon + 1);
    return git_credential_userpass_plaintext_new(out, user.c_str(), pass.c_str());
  }
  return GIT_PASSTHROUGH;
}

int CertificateCheck(git_cert* cert, int valid, const char* host, void* payload) {
  auto* state = static_cast<CallbackState*>(payload);
  if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) {
    return valid ? 0 : GIT_PASSTHROUGH;  // TLS: libgit2's own verification decides
  }
  const auto* hostkey = reinterpret_cast<const git_cert_hostkey*>(cert);
  if ((hostkey->type & GIT_CERT_SSH_RAW) == 0) {
    state->certificate_error = "the ssh host key was not available for checking";
    return GIT_ECERTIFICATE;
  }
  absl::StatusOr<KnownHosts> known = KnownHosts::Load(state->options->known_hosts_path);
  if (!known.ok()) {
    state->certificate_error = std::string(known.status().message());
    return GIT_ECERTIFICATE;
  }
  std::string key(hostkey->hostkey, hostkey->hostkey_len);
  int port = SshPort(state->options->url);
  KnownHosts::Match match = known->Check(host, port, key);
  if (match == KnownHosts::Match::kKnown) return 0;
  state->certificate_error =
      match == KnownHosts::Match::kChanged
          ? absl::StrCat("the ssh host key of ", host,
                         " is not the one in known_hosts; refusing "
                         "to connect (update known_hosts if the change is expected)")
          : absl::StrCat("host ", host, " is not in known_hosts; add its key to connect");
  return GIT_ECERTIFICATE;
}

int PushUpdateReference(const char* refname, const char* status, void* payload) {
  auto* state = static_cast<CallbackState*>(payload);
  if (status == nullptr) return 0;
  if (state->rejected.empty()) state->rejected = absl::StrCat(refname, ": ", status);
  state->rejected_refs.insert(refname);
  return 0;
}

int TransferProgress(const git_indexer_progress* stats, void* payload) {
  static_cast<CallbackState*>(payload)->received_objects = stats->received_objects;
  return 0;
}

git_remote_callbacks Callbacks(CallbackState* state) {
  git_remote_callbacks cb = GIT_REMOTE_CALLBACKS_INIT;
  cb.transfer_progress = TransferProgress;
  cb.credentials = Credentials;
  cb.certificate_check = CertificateCheck;
  cb.push_update_reference = PushUpdateReference;
  // Fetches pass no deadline: these return 0 then.
  cb.push_negotiation = PushNegotiation;
  cb.pack_progress = PackProgress;
  cb.push_transfer_progress = PushTransferProgress;
  cb.sideband_progress = SidebandProgress;
  cb.payload = state;
  return cb;
}

absl::Status WithCertificateContext(absl::Status status, const CallbackState& state) {
  if (!state.certificate_error.empty()) {
    return absl::FailedPreconditionError(state.certificate_error);
  }
  return status;
}

// *.yaml, *.yml, and kustomize's third accepted name for a kustomization file.
bool IsManifest(absl::string_view name) {
  return absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml") || name == "Kustomization";
}

bool IsChartTree(const git_tree* tree) {
  return git_tree_entry_byname(tree, "Chart.yaml") != nullptr &&
         git_tree_entry_byname(tree, "values.yaml") != nullptr;
}

// The size of the blob `id` (the file `path`) from its object header, so a file over a
// limit is never loaded.
absl::StatusOr<size_t> BlobSize(git_repository* repo, const git_oid& id, const std::string& path) {
  Odb odb;
  size_t size = 0;
  git_object_t type = GIT_OBJECT_ANY;
  if (int rc = git_repository_odb(odb.out(), repo); rc != 0) return GitError("odb", rc);
  if (int rc = git_odb_read_header(&size, &type, odb.get(), &id); rc != 0) {
    return GitError("reading " + names::Escape(path), rc);
  }
  return size;
}

// Reads manifest files into `out`, within the limits of `options`: a file whose name is not
// UTF-8 or is too big comes back with an error instead of content; the files together may
// not pass the tree limit.
class ManifestCollector {
 public:
  ManifestCollector(git_repository* repo, const Libgit2Options& options, std::vector<RepoFile>& out)
      : repo_(repo), options_(options), out_(out) {}

  absl::Status AddTree(const git_tree* tree, const std::string& prefix) {
    size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; ++i) {
      const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
      std::string name = git_tree_entry_name(entry);
      std::string path = prefix.empty() ? name : absl::StrCat(prefix, "/", name);
      git_object_t type = git_tree_entry_type(entry);
      if (type == GIT_OBJECT_TREE) {
        if (name.empty() || name[0] == '.') continue;
        if (!names::ValidatePath(path).ok()) {
          // Nothing below a folder with such a name can be named in an answer.
          out_.push_back({names::Escape(path), "",
                          "the folder name is not UTF-8, holds a control character or is too "
                          "long (shown escaped); Ferry skips the folder: rename it",
                          ""});
          continue;
        }
        Tree sub;
        if (int rc = git_tree_lookup(sub.out(), repo_, git_tree_entry_id(entry)); rc != 0) {
          return GitError("reading tree " + names::Escape(path), rc);
        }
        if (IsChartTree(sub.get())) continue;
        if (absl::Status s = AddTree(sub.get(), path); !s.ok()) return s;
      } else if (type == GIT_OBJECT_BLOB && IsManifest(name) &&
                 git_tree_entry_filemode(entry) != GIT_FILEMODE_LINK) {
        // A symlink's blob is the path it points to, not a manifest: never served.
        if (absl::Status s = AddBlob(path, *git_tree_entry_id(entry)); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status AddBlob(const std::string& path, const git_oid& id) {
    if (!names::ValidatePath(path).ok()) {
      out_.push_back({names::Escape(path), "",
                      "the file name is not UTF-8, holds a control character or is too long "
                      "(shown escaped); Ferry skips the file: rename it",
                      ""});
      return absl::OkStatus();
    }
    FERRY_ASSIGN_OR_RETURN(const size_t size, BlobSize(repo_, id, path));
    if (size > options_.max_file_bytes) {
      out_.push_back(
          {path, "",
           limits::OverLimit("", limits::kManifestFileBytes, options_.max_file_bytes, size) +
               "; Ferry skips the file: split it",
           ""});
      return absl::OkStatus();
    }
    total_ += size;
    if (total_ > options_.max_tree_bytes) {
      return absl::ResourceExhaustedError(limits::OverLimit(
          "reading manifests", limits::kManifestTreeBytes, options_.max_tree_bytes));
    }
    Blob blob;
    if (int rc = git_blob_lookup(blob.out(), repo_, &id); rc != 0) {
      return GitError("reading " + path, rc);
    }
    char hex[GIT_OID_HEXSZ + 1] = {};
    git_oid_tostr(hex, sizeof(hex), &id);
    out_.push_back({path,
                    std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                                static_cast<size_t>(git_blob_rawsize(blob.get()))),
                    "", hex});
    return absl::OkStatus();
  }

 private:
  git_repository* repo_;
  const Libgit2Options& options_;
  std::vector<RepoFile>& out_;
  uint64_t total_ = 0;
};

// The root tree of the commit `revision`, in `root`.
absl::Status RootTree(git_repository* repo, const std::string& revision, Tree& root) {
  absl::StatusOr<git_oid> oid = ParseOid(revision);
  if (!oid.ok()) return oid.status();
  Commit commit;
  if (int rc = git_commit_lookup(commit.out(), repo, &*oid); rc != 0) {
    return GitError("revision " + revision, rc);
  }
  if (int rc = git_commit_tree(root.out(), commit.get()); rc != 0) {
    return GitError("tree of " + revision, rc);
  }
  return absl::OkStatus();
}

// `path` without trailing slashes, "" for the root ("" or ".").
std::string FolderPath(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path == "." ? "" : path;
}

// The tree of the folder `path` (FolderPath(), checked by ValidatePath) at `revision`, in
// `folder`. NotFound when the revision or the folder does not exist, or `path` is a file.
absl::Status FolderTree(git_repository* repo, const std::string& revision, const std::string& path,
                        Tree& folder) {
  if (path.empty()) return RootTree(repo, revision, folder);
  Tree root;
  FERRY_RETURN_IF_ERROR(RootTree(repo, revision, root));
  TreeEntry entry;
  if (git_tree_entry_bypath(entry.out(), root.get(), path.c_str()) != 0 ||
      git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE) {
    return absl::NotFoundError(
        absl::StrCat("folder \"", path, "\" does not exist at ", revision.substr(0, 12)));
  }
  if (int rc = git_tree_lookup(folder.out(), repo, git_tree_entry_id(entry.get())); rc != 0) {
    return GitError("tree " + path, rc);
  }
  return absl::OkStatus();
}

// Owns a file descriptor.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status ExportError(absl::string_view what, const std::string& path, int error) {
  return absl::InternalError(
      absl::StrCat("exporting: ", what, " ", names::Escape(path), ": ", std::strerror(error)));
}

// Opens the folder `name` in `parent`, creating it when missing. A symlink there is not
// followed (O_NOFOLLOW), so nothing outside the export is ever reached through one.
absl::StatusOr<UniqueFd> MakeFolder(int parent, const std::string& name, const std::string& shown) {
  if (::mkdirat(parent, name.c_str(), 0755) != 0 && errno != EEXIST) {
    return ExportError("creating folder", shown, errno);
  }
  UniqueFd fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return ExportError("opening folder", shown, errno);
  return fd;
}

// Writes `content` as the new file `name` (0644) in `parent`. A file already there (an
// earlier export of the same folder) is removed first, never written through.
absl::Status WriteNewFile(int parent, const std::string& name, const std::string& shown,
                          absl::string_view content) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd fd(::openat(parent, name.c_str(), flags, 0644));
  if (fd.get() < 0 && errno == EEXIST && ::unlinkat(parent, name.c_str(), 0) == 0) {
    fd = UniqueFd(::openat(parent, name.c_str(), flags, 0644));
  }
  if (fd.get() < 0) return ExportError("creating", shown, errno);
  if (::fchmod(fd.get(), 0644) != 0) return ExportError("setting the mode of", shown, errno);
  while (!content.empty()) {
    const ssize_t n = ::write(fd.get(), content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ExportError("writing", shown, errno);
    content.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// A tree entry's name that can be created as one file or folder: UTF-8 without control
// characters, no '/', not "." or "..". InvalidArgument naming it (escaped) otherwise.
absl::Status ValidateEntryName(const std::string& name, const std::string& path) {
  if (name.empty() || name == "." || name == ".." || absl::StrContains(name, '/') ||
      !names::ValidatePath(name).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tree entry \"", names::Escape(path),
        "\" is not a valid file name (not UTF-8, a control character, '/', \".\" or \"..\"); "
        "Ferry does not export it: rename it"));
  }
  return absl::OkStatus();
}

// Writes the regular files of trees below a folder of the export, within the tree limit.
class TreeExporter {
 public:
  TreeExporter(git_repository* repo, uint64_t max_tree_bytes)
      : repo_(repo), max_tree_bytes_(max_tree_bytes) {}

  // The entries of `tree` (the folder `prefix` of the repository) into the folder `dir`.
  absl::Status Export(const git_tree* tree, int dir, const std::string& prefix) {
    const size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; ++i) {
      const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
      const std::string name = git_tree_entry_name(entry);
      const std::string path = prefix.empty() ? name : absl::StrCat(prefix, "/", name);
      FERRY_RETURN_IF_ERROR(ValidateEntryName(name, path));
      switch (git_tree_entry_filemode(entry)) {
        case GIT_FILEMODE_TREE: {
          Tree sub;
          if (int rc = git_tree_lookup(sub.out(), repo_, git_tree_entry_id(entry)); rc != 0) {
            return GitError("reading tree " + names::Escape(path), rc);
          }
          FERRY_ASSIGN_OR_RETURN(UniqueFd sub_dir, MakeFolder(dir, name, path));
          FERRY_RETURN_IF_ERROR(Export(sub.get(), sub_dir.get(), path));
          break;
        }
        case GIT_FILEMODE_BLOB:
        case GIT_FILEMODE_BLOB_EXECUTABLE:
          FERRY_RETURN_IF_ERROR(ExportBlob(*git_tree_entry_id(entry), dir, name, path));
          break;
        default:  // symlinks and submodules are never created
          break;
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status ExportBlob(const git_oid& id, int dir, const std::string& name,
                          const std::string& path) {
    FERRY_ASSIGN_OR_RETURN(const size_t size, BlobSize(repo_, id, path));
    total_ += size;
    if (total_ > max_tree_bytes_) {
      return absl::ResourceExhaustedError(
          limits::OverLimit(absl::StrCat("exporting ", names::Escape(path)),
                            limits::kManifestTreeBytes, max_tree_bytes_));
    }
    Blob blob;
    if (int rc = git_blob_lookup(blob.out(), repo_, &id); rc != 0) {
      return GitError("reading " + names::Escape(path), rc);
    }
    return WriteNewFile(dir, name, path,
                        absl::string_view(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                                          static_cast<size_t>(git_blob_rawsize(blob.get()))));
  }

  git_repository* repo_;
  uint64_t max_tree_bytes_;
  uint64_t total_ = 0;
};

// A local ref's target before a write, put back when the write fails, so that a failed
// write leaves no ref pointing at objects that were never written or pushed.
class RefSnapshot {
 public:
  // `repo` is read at each use.
  RefSnapshot(git_repository*& repo, std::string name) : repo_(repo), name_(std::move(name)) {
    existed_ = git_reference_name_to_id(&oid_, repo_, name_.c_str()) == 0;
  }

  // The ref as it was: moved back, or deleted when it did not exist.
  void Restore() {
    Reference ref;
    if (existed_) {
      if (git_reference_create(ref.out(), repo_, name_.c_str(), &oid_, /*force=*/1,
                               "ferry: write failed, restored") != 0) {
        log::Warn("could not restore a ref after a failed write", {{"ref", name_}});
      }
    } else if (git_reference_lookup(ref.out(), repo_, name_.c_str()) == 0) {
      (void)git_reference_delete(ref.get());
    }
  }

 private:
  git_repository*& repo_;
  std::string name_;
  git_oid oid_{};
  bool existed_ = false;
};

// "Name <email> 1700000000 +0100", as in a tag's tagger line.
std::string SignatureLine(const git_signature& sig) {
  const int offset = sig.when.offset;
  const int minutes = offset < 0 ? -offset : offset;
  return absl::StrFormat("%s <%s> %d %c%02d%02d", sig.name, sig.email,
                         static_cast<int64_t>(sig.when.time), offset < 0 ? '-' : '+', minutes / 60,
                         minutes % 60);
}

// A signing failure, for the write it stops: FailedPrecondition (fix the key, then retry),
// naming the flag. The signer's message names the key file, never its content.
absl::Status SigningError(absl::string_view what, const absl::Status& status) {
  return absl::Status(
      absl::IsDeadlineExceeded(status) || absl::IsFailedPrecondition(status) ||
              absl::IsUnavailable(status)
          ? status.code()
          : absl::StatusCode::kInternal,
      absl::StrCat("cannot sign the ", what, " (--git_signing_key_path): ", status.message()));
}

// A signature dated `when` (now by default). The time is read from the precise wall clock:
// time(), which git_signature_now uses, follows the kernel's coarse clock and can still name
// the previous second for a few milliseconds after it ended, so a commit made right after a
// soak ended would carry a time before it.
absl::StatusOr<git_signature*> MakeSignature(const Signature& who, absl::Time when = absl::Now()) {
  const int64_t unix_seconds = absl::ToUnixSeconds(when);
  const time_t seconds = static_cast<time_t>(unix_seconds);
  struct tm local {};
  const int offset_minutes =
      localtime_r(&seconds, &local) != nullptr ? static_cast<int>(local.tm_gmtoff / 60) : 0;
  git_signature* sig = nullptr;
  if (int rc = git_signature_new(&sig, who.name.c_str(), who.email.c_str(), unix_seconds,
                                 offset_minutes);
      rc != 0) {
    return GitError("signature", rc);
  }
  return sig;
}

}  // namespace

absl::Status Libgit2Repository::ValidatePath(const std::string& path) {
  if (path.empty() || path == ".") return absl::OkStatus();
  if (absl::Status s = names::ValidatePath(path); !s.ok()) return s;
  if (path[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", path, "\" must be relative to the repository root"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" leaves the repository"));
    }
  }
  return absl::OkStatus();
}

Libgit2Repository::Libgit2Repository(Libgit2Options options, git_repository* repo)
    : options_(std::move(options)), repo_(repo) {}

Libgit2Repository::~Libgit2Repository() {
  if (remote_ != nullptr) git_remote_free(remote_);
  git_repository_free(repo_);
  git_libgit2_shutdown();
}

// A process killed in the middle of a ref or config update leaves "*.lock" files that
// would block every later update; one killed while it wrote a pack (a repack child stopped
// with git-writer, a fetch cut off) leaves libgit2's temporary "objects/pack/pack_git2_*",
// as large as that pack. The mirror has one writer (this process, and the repack child it
// starts), so at start any such file is stale.
static int RemoveStaleLocks(const std::string& mirror_dir) {
  std::error_code ec;
  int removed = 0;
  if (!fs::is_directory(mirror_dir, ec)) return 0;
  for (auto it = fs::recursive_directory_iterator(mirror_dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    const bool temporary_pack =
        it->path().parent_path().filename() == "pack" && absl::StartsWith(name, "pack_git2_");
    if (it->is_regular_file(ec) && (absl::EndsWith(name, ".lock") || temporary_pack)) {
      fs::remove(it->path(), ec);
      ++removed;
    }
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<Libgit2Repository>> Libgit2Repository::Open(
    const Libgit2Options& options) {
  git_libgit2_init();
  git_repository* repo = nullptr;
  std::error_code ec;
  fs::create_directories(fs::path(options.mirror_dir).parent_path(), ec);
  if (!options.ca_path.empty() &&
      git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, options.ca_path.c_str(), nullptr) != 0) {
    git_libgit2_shutdown();
    return absl::InvalidArgumentError(
        absl::StrCat("cannot use CA bundle ", options.ca_path, ": ", git_error_last()->message));
  }
  // Bounds on what libgit2 keeps between calls (its defaults suit a short-lived command, not
  // a server): decoded objects cached (default 256 MiB), pack windows mapped (default
  // 8 GiB) and packfiles held open (default: every one).
  git_libgit2_opts(GIT_OPT_ENABLE_CACHING, 0);
  git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, static_cast<size_t>(128 * limits::kMiB));
  git_libgit2_opts(GIT_OPT_SET_MWINDOW_FILE_LIMIT, static_cast<size_t>(128));
  if (int removed = RemoveStaleLocks(options.mirror_dir); removed > 0) {
    log::Warn("removed stale lock and temporary pack files from the mirror", {{"count", removed}});
  }
  int rc = git_repository_open_bare(&repo, options.mirror_dir.c_str());
  if (rc != 0 && fs::exists(options.mirror_dir)) {
    // A mirror that does not open is only a cache of upstream: set it aside and start over.
    std::string aside = absl::StrCat(options.mirror_dir, ".broken-", ::getpid());
    fs::rename(options.mirror_dir, aside, ec);
  }
  if (rc != 0) {
    rc = git_repository_init(&repo, options.mirror_dir.c_str(), /*is_bare=*/1);
    if (rc != 0) {
      absl::Status s = GitError("creating mirror in " + options.mirror_dir, rc);
      git_libgit2_shutdown();
      return s;
    }
  }
  // Ferry's own packs (the objects of a commit, note or tag written to the mirror, and what a
  // push sends) hold a few hundred small objects at most, and libgit2's search for deltas
  // among them took about as long as the rest of writing and sending them. A one-byte window
  // memory shrinks its window from 10 objects to 1 (git_writer_bench: a 100-file push 50 ->
  // 37 ms); the packs are a few kilobytes larger. Folds of the mirror's packs keep the full
  // window (FoldPacks).
  {
    Config config;
    rc = git_repository_config(config.out(), repo);
    if (rc == 0) rc = git_config_set_int64(config.get(), kPackWindowMemory, 1);
    if (rc != 0) {
      absl::Status s = GitError("configuring the mirror", rc);
      git_repository_free(repo);
      git_libgit2_shutdown();
      return s;
    }
  }
  Remote remote;
  if (git_remote_lookup(remote.out(), repo, "origin") != 0) {
    rc = git_remote_create(remote.out(), repo, "origin", options.url.c_str());
  } else {
    rc = git_remote_set_url(repo, "origin", options.url.c_str());
  }
  if (rc != 0) {
    absl::Status s = GitError("configuring remote", rc);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return s;
  }
  std::unique_ptr<Libgit2Repository> out(new Libgit2Repository(options, repo));
  FERRY_RETURN_IF_ERROR(out->AttachHandles());
  return out;
}

absl::Status Libgit2Repository::AttachHandles() {
  // One remote per open repository: each lookup reads the remote's config with regular
  // expressions whose match data libgit2 1.5 never frees (about 80 KB per fetch).
  if (int rc = git_remote_lookup(&remote_, repo_, "origin"); rc != 0) {
    return GitError("remote origin", rc);
  }
  Odb odb;
  if (git_repository_odb(odb.out(), repo_) == 0) {
    if (git_mempack_new(&mempack_) == 0 &&
        git_odb_add_backend(odb.get(), mempack_, /*priority=*/999) != 0) {
      mempack_ = nullptr;  // not added: objects go to disk as usual
    }
  }
  return absl::OkStatus();
}

namespace {

// A packfile of the mirror and the number of objects its index lists.
struct PackFile {
  fs::path idx;
  uint32_t objects = 0;
};

// The object count of a pack index (version 2: magic, version, then the fan-out table whose
// last entry is the total; version 1: the fan-out table first). nullopt when unreadable.
std::optional<uint32_t> IndexObjectCount(const fs::path& idx) {
  std::ifstream in(idx, std::ios::binary);
  unsigned char header[8];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return std::nullopt;
  const bool v2 = header[0] == 0xff && header[1] == 't' && header[2] == 'O' && header[3] == 'c';
  in.seekg(v2 ? 8 + 255 * 4 : 255 * 4);
  unsigned char total[4];
  if (!in.read(reinterpret_cast<char*>(total), sizeof total)) return std::nullopt;
  return (uint32_t{total[0]} << 24) | (uint32_t{total[1]} << 16) | (uint32_t{total[2]} << 8) |
         uint32_t{total[3]};
}

std::vector<PackFile> ListPacks(const fs::path& pack_dir) {
  std::vector<PackFile> packs;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(pack_dir, ec)) {
    const fs::path& path = entry.path();
    if (path.extension() != ".idx" || !absl::StartsWith(path.filename().string(), "pack-")) {
      continue;
    }
    if (!fs::exists(fs::path(path).replace_extension(".pack"), ec)) continue;
    if (std::optional<uint32_t> count = IndexObjectCount(path)) packs.push_back({path, *count});
  }
  std::sort(packs.begin(), packs.end(), [](const PackFile& a, const PackFile& b) {
    return a.objects != b.objects ? a.objects < b.objects : a.idx < b.idx;
  });
  return packs;
}

// Adds every object of the pack indexed by `idx` to `builder`.
absl::Status InsertPackObjects(git_packbuilder* builder, const fs::path& idx) {
  git_odb_backend* backend = nullptr;
  if (int rc = git_odb_backend_one_pack(&backend, idx.c_str()); rc != 0) {
    return GitError("reading " + idx.filename().string(), rc);
  }
  Odb one;
  if (int rc = git_odb_new(one.out()); rc != 0) {
    backend->free(backend);
    return GitError("repack", rc);
  }
  if (int rc = git_odb_add_backend(one.get(), backend, 1); rc != 0) {
    backend->free(backend);
    return GitError("repack", rc);
  }
  auto insert = [](const git_oid* id, void* payload) {
    return git_packbuilder_insert(static_cast<git_packbuilder*>(payload), id, nullptr);
  };
  if (int rc = git_odb_foreach(one.get(), insert, builder); rc != 0) {
    return GitError("packing the objects of " + idx.filename().string(), rc);
  }
  return absl::OkStatus();
}

// A pack's name: "pack-" and its hash, as FoldResult holds them.
std::string PackName(const fs::path& idx) { return idx.stem().string(); }

// How many of `packs` (sorted by ListPacks) a fold merges (PacksToFold).
size_t PacksToMerge(const std::vector<PackFile>& packs) {
  std::vector<uint32_t> sizes;
  for (const PackFile& p : packs) sizes.push_back(p.objects);
  return PacksToFold(sizes);
}

// The fold `builder` wrote, replacing the first `merged` of `packs`.
FoldResult FoldOf(git_packbuilder* builder, const std::vector<PackFile>& packs, size_t merged,
                  bool reachable_only) {
  FoldResult fold;
  fold.reachable_only = reachable_only;
  fold.new_pack = absl::StrCat("pack-", git_packbuilder_name(builder));
  for (size_t i = 0; i < packs.size(); ++i) {
    if (PackName(packs[i].idx) == fold.new_pack) {
      fold.new_pack_existed = true;
    } else if (i < merged) {
      fold.replaced.push_back(PackName(packs[i].idx));
    }
  }
  return fold;
}

// Every ref of a repository that names an object (symbolic ones aside): full name -> id, in
// hex.
using RefTargets = std::map<std::string, std::string>;

// Tags of tags followed this deep at most, as git does.
constexpr int kMaxTagDepth = 8;

absl::StatusOr<RefTargets> DirectRefs(git_repository* repo) {
  git_reference_iterator* refs = nullptr;
  if (int rc = git_reference_iterator_new(&refs, repo); rc != 0) {
    return GitError("reading the refs", rc);
  }
  RefTargets out;
  git_reference* ref = nullptr;
  int rc = 0;
  while ((rc = git_reference_next(&ref, refs)) == 0) {
    if (const git_oid* target = git_reference_target(ref); target != nullptr) {
      out[git_reference_name(ref)] = git_oid_tostr_s(target);
    }
    git_reference_free(ref);
  }
  git_reference_iterator_free(refs);
  if (rc != GIT_ITEROVER) return GitError("reading the refs", rc);
  return out;
}

// Writes everything the refs of `repo` reach (the branch, its upstream copy, the notes and
// the tags) as one packfile in `pack_dir`, to replace every pack of `packs` (listed before
// the refs are read: a pack written after it stays). The refs it started from are the
// fold's roots.
absl::StatusOr<FoldResult> PackEverything(git_repository* repo, const fs::path& pack_dir,
                                          const std::vector<PackFile>& packs) {
  Packbuilder builder;
  Revwalk walk;
  if (int rc = git_packbuilder_new(builder.out(), repo); rc != 0) return GitError("repack", rc);
  git_packbuilder_set_threads(builder.get(), 1);
  if (int rc = git_revwalk_new(walk.out(), repo); rc != 0) return GitError("repack", rc);
  FERRY_ASSIGN_OR_RETURN(RefTargets roots, DirectRefs(repo));
  for (const auto& [name, hex] : roots) {
    git_oid target;
    if (int rc = git_oid_fromstr(&target, hex.c_str()); rc != 0) return GitError("repack", rc);
    // Not on disk: a write in progress moved the ref before writing its objects (and may
    // yet move it back). Leaving the ref out would drop what it named before: Aborted,
    // and the fold keeps every object instead (FoldPacks).
    Object object;
    if (git_object_lookup(object.out(), repo, &target, GIT_OBJECT_ANY) != 0) {
      return absl::AbortedError(
          absl::StrCat("repack: ", name, " names an object that is not written yet"));
    }
    // Annotated tags, a tag of a tag included, are packed on the way to what they name; a
    // commit is walked with its history, a tree or blob packed with what it holds.
    int rc = 0;
    for (int depth = 0; rc == 0 && git_object_type(object.get()) == GIT_OBJECT_TAG; ++depth) {
      if (depth == kMaxTagDepth) {
        return absl::AbortedError(
            absl::StrCat("repack: ", name, " names tags nested over ", kMaxTagDepth, " deep"));
      }
      rc = git_packbuilder_insert(builder.get(), &target, nullptr);
      target = *git_tag_target_id(reinterpret_cast<const git_tag*>(object.get()));
      Object inner;
      if (rc == 0 && git_object_lookup(inner.out(), repo, &target, GIT_OBJECT_ANY) != 0) {
        return absl::AbortedError(
            absl::StrCat("repack: ", name, " names a tag of an object that is not written yet"));
      }
      std::swap(object.ptr, inner.ptr);  // the tag goes with `inner`
    }
    if (rc == 0) {
      rc = git_object_type(object.get()) == GIT_OBJECT_COMMIT
               ? git_revwalk_push(walk.get(), &target)
               : git_packbuilder_insert_recur(builder.get(), &target, nullptr);
    }
    if (rc != 0) return GitError("repack", rc);
  }
  int rc = git_packbuilder_insert_walk(builder.get(), walk.get());
  if (rc == 0) rc = git_packbuilder_write(builder.get(), pack_dir.c_str(), 0, nullptr, nullptr);
  if (rc != 0) return GitError("repack", rc);
  FoldResult fold = FoldOf(builder.get(), packs, packs.size(), /*reachable_only=*/true);
  fold.roots_digest = RootsDigest(roots);
  return fold;
}

// Writes the packfile that replaces the smallest packs of `mirror_dir`, as many as keep the
// packs a geometric progression (each at least twice the objects of all smaller ones
// together), so a fold costs what was written since, not the whole history: every object is
// rewritten about log2(history) times in all. When every pack would be merged, the new pack
// holds only what the refs reach (objects nothing refers to any more go), unless
// `keep_unreachable` or a ref names an object not on disk yet (a write in progress): then
// every object of every pack. Removes nothing (FoldResult says what goes).
absl::StatusOr<FoldResult> FoldPacks(git_repository* repo, const std::string& mirror_dir,
                                     bool keep_unreachable) {
  // What stays is compressed with libgit2's full delta window, unlike the packs of single
  // writes.
  DefaultPackConfig deltas(repo);
  const fs::path pack_dir = fs::path(mirror_dir) / "objects" / "pack";
  const std::vector<PackFile> packs = ListPacks(pack_dir);
  const size_t count = PacksToMerge(packs);
  if (count < 2) return FoldResult{};
  if (count == packs.size() && !keep_unreachable) {
    absl::StatusOr<FoldResult> reachable = PackEverything(repo, pack_dir, packs);
    if (reachable.status().code() != absl::StatusCode::kAborted) return reachable;
    log::Info("mirror fold keeps every object",
              {{"reason", std::string(reachable.status().message())}});
  }
  Packbuilder builder;
  if (int rc = git_packbuilder_new(builder.out(), repo); rc != 0) return GitError("repack", rc);
  git_packbuilder_set_threads(builder.get(), 1);
  for (size_t i = 0; i < count; ++i) {
    FERRY_RETURN_IF_ERROR(InsertPackObjects(builder.get(), packs[i].idx));
  }
  if (int rc = git_packbuilder_write(builder.get(), pack_dir.c_str(), 0, nullptr, nullptr);
      rc != 0) {
    return GitError("repack", rc);
  }
  return FoldOf(builder.get(), packs, count, /*reachable_only=*/false);
}

// FoldPacks on a handle of its own on the bare repository in `mirror_dir`.
absl::StatusOr<FoldResult> FoldMirror(const std::string& mirror_dir, bool keep_unreachable) {
  git_repository* repo = nullptr;
  if (int rc = git_repository_open_bare(&repo, mirror_dir.c_str()); rc != 0) {
    return GitError("opening the mirror " + mirror_dir, rc);
  }
  absl::StatusOr<FoldResult> fold = FoldPacks(repo, mirror_dir, keep_unreachable);
  git_repository_free(repo);
  return fold;
}

// Runs `program --repack_mirror=<mirror_dir>` and waits for it, at most `timeout`; its
// stdout is the FoldResult. Its stderr (the first 4 KiB) becomes the error message when it
// fails.
absl::StatusOr<FoldResult> RunRepackProgram(const std::string& program,
                                            const std::string& mirror_dir, bool keep_unreachable,
                                            absl::Duration timeout,
                                            const std::atomic<bool>& cancel) {
  process::RunOptions run;
  run.cancel = &cancel;
  run.argv = {program, absl::StrCat("--repack_mirror=", mirror_dir)};
  if (keep_unreachable) run.argv.push_back("--repack_keep_unreachable");
  for (char** e = environ; *e != nullptr; ++e) run.env.emplace_back(*e);
  run.timeout = timeout;
  run.max_stdout_bytes = 1 << 20;
  run.max_stderr_bytes = 4096;
  absl::StatusOr<process::RunResult> result = process::Run(run);
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::DeadlineExceededError(
          absl::StrCat("repack: still running after ", absl::FormatDuration(timeout), "; stopped"));
    }
    if (absl::IsCancelled(result.status())) return absl::CancelledError("repack: cancelled");
    return absl::InternalError(absl::StrCat("repack: ", result.status().message()));
  }
  if (result->exit_code == 0) return FoldResult::Parse(result->out);
  return absl::InternalError(
      absl::StrCat("repack: ", program, " ended with ",
                   result->signal == 0 ? absl::StrCat("exit code ", result->exit_code)
                                       : absl::StrCat("signal ", result->signal),
                   result->err.empty() ? "" : ": ", absl::StripAsciiWhitespace(result->err)));
}
}  // namespace

std::string RootsDigest(const std::map<std::string, std::string>& refs) {
  std::string lines;
  for (const auto& [name, id] : refs) absl::StrAppend(&lines, name, " ", id, "\n");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(lines.data(), lines.size(), digest, &size, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), size));
}

size_t PacksToFold(const std::vector<uint32_t>& sorted_sizes) {
  // The highest place where the progression breaks (a pack under twice the one below it):
  // everything up to there merges, whatever small pack lies under it.
  size_t count = 0;
  for (size_t i = sorted_sizes.size(); i-- > 1;) {
    if (sorted_sizes[i] < 2 * uint64_t{sorted_sizes[i - 1]}) {
      count = i + 1;
      break;
    }
  }
  if (count == 0) return sorted_sizes.empty() ? 0 : 1;
  // Then the packs above, while one holds under twice what was merged.
  uint64_t merged = 0;
  for (size_t i = 0; i < count; ++i) merged += sorted_sizes[i];
  while (count < sorted_sizes.size() && sorted_sizes[count] < 2 * merged) {
    merged += sorted_sizes[count++];
  }
  return count;
}

std::string FoldResult::Serialize() const {
  std::string out = absl::StrCat(reachable_only ? "reachable" : "all", "\n");
  if (!new_pack.empty()) {
    absl::StrAppend(&out, new_pack_existed ? "existing " : "new ", new_pack, "\n");
  }
  for (const std::string& name : replaced) absl::StrAppend(&out, "replaces ", name, "\n");
  if (!roots_digest.empty()) absl::StrAppend(&out, "roots ", roots_digest, "\n");
  return out;
}

absl::StatusOr<FoldResult> FoldResult::Parse(absl::string_view text) {
  // A pack's name as libgit2 writes it: "pack-" and the SHA-1 of its object ids.
  auto hex_id = [](absl::string_view id) {
    return id.size() == 2 * GIT_OID_RAWSZ && std::all_of(id.begin(), id.end(), [](char c) {
             return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
           });
  };
  auto valid = [&](absl::string_view name) {
    return absl::ConsumePrefix(&name, "pack-") && hex_id(name);
  };
  auto sha256_hex = [](absl::string_view digest) {
    return digest.size() == 64 &&  // SHA-256 in hex
           std::all_of(digest.begin(), digest.end(),
                       [](char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); });
  };
  FoldResult fold;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (first) {
      first = false;
      if (line == "reachable" || line == "all") {
        fold.reachable_only = line == "reachable";
        continue;
      }
    } else if (const bool existed = absl::ConsumePrefix(&line, "existing ");
               (existed || absl::ConsumePrefix(&line, "new ")) && fold.new_pack.empty()) {
      if (valid(line)) {
        fold.new_pack = std::string(line);
        fold.new_pack_existed = existed;
        continue;
      }
    } else if (absl::ConsumePrefix(&line, "replaces ") && valid(line)) {
      fold.replaced.emplace_back(line);
      continue;
    } else if (absl::ConsumePrefix(&line, "roots ") && fold.roots_digest.empty() &&
               sha256_hex(line)) {
      fold.roots_digest = std::string(line);
      continue;
    }
    return absl::InternalError(absl::StrCat("repack: the child's answer is not a fold: \"",
                                            absl::CHexEscape(line.substr(0, 100)), "\""));
  }
  if (first) return absl::InternalError("repack: the child gave no answer");
  if (fold.new_pack.empty() && !fold.replaced.empty()) {
    return absl::InternalError("repack: the child named packs to replace but no new one");
  }
  std::set<std::string> named(fold.replaced.begin(), fold.replaced.end());
  if (named.size() != fold.replaced.size() || named.count(fold.new_pack) > 0) {
    return absl::InternalError("repack: the child named a pack twice");
  }
  if (!fold.reachable_only && !fold.roots_digest.empty()) {
    return absl::InternalError("repack: the child named roots of a fold of every object");
  }
  return fold;
}

absl::StatusOr<std::string> Libgit2Repository::RepackMirror(const std::string& mirror_dir,
                                                            bool keep_unreachable) {
  git_libgit2_init();
  git_libgit2_opts(GIT_OPT_ENABLE_CACHING, 0);
  absl::StatusOr<FoldResult> fold = FoldMirror(mirror_dir, keep_unreachable);
  git_libgit2_shutdown();
  if (!fold.ok()) return fold.status();
  return fold->Serialize();
}

// A fold of the mirror's packs: the new pack written by Run, in a child process (the repack
// program) or on a handle of its own, while the service goes on; the old packs removed and
// the object database reopened by Finish.
class Libgit2Repository::PackFold final : public Maintenance {
 public:
  // `keep_unreachable`: the fold keeps every object of the packs it merges; otherwise, when
  // it merges every pack, it keeps only what the refs reach.
  PackFold(Libgit2Repository& repo, int writes, bool keep_unreachable)
      : repo_(repo),
        mirror_dir_(repo.options_.mirror_dir),
        program_(repo.options_.repack_program),
        writes_(writes),
        keep_unreachable_(keep_unreachable) {}

  absl::Status Run() override {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<FoldResult> fold =
        program_.empty() ? FoldMirror(mirror_dir_, keep_unreachable_)
                         : RunRepackProgram(program_, mirror_dir_, keep_unreachable_,
                                            kRepackTimeout, cancelled_);
    run_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    if (!fold.ok()) return fold.status();
    fold_ = *std::move(fold);
    return absl::OkStatus();
  }

  absl::Status Finish() override { return repo_.FinishFold(fold_, writes_, run_ms_); }

  // Kills the repack child; a fold in this process (no repack program) runs to its end.
  void Cancel() override { cancelled_ = true; }

 private:
  Libgit2Repository& repo_;
  const std::string mirror_dir_;
  const std::string program_;
  const int writes_;  // the writes it folds (Libgit2Repository::packs_written_)
  const bool keep_unreachable_;
  FoldResult fold_;
  int64_t run_ms_ = 0;
  std::atomic<bool> cancelled_{false};
};

std::unique_ptr<Maintenance> Libgit2Repository::DueMaintenance() {
  // Not while objects made in memory wait for a write: Finish reopens the object database,
  // which drops them.
  if (packs_written_ < kPacksBeforeRepack || !new_roots_.empty()) return nullptr;
  // The last one failed or was dropped (never finished): the next waits for as many writes
  // again, rather than follow at every write.
  if (fold_unfinished_ && packs_written_ < fold_handed_out_at_ + kPacksBeforeRepack) {
    return nullptr;
  }
  // Will it merge every pack (and then keep only what the refs reach)? Any other is told to
  // keep every object, so that it never becomes one even when packs come before it lists
  // them.
  const std::vector<PackFile> packs = ListPacks(fs::path(options_.mirror_dir) / "objects" / "pack");
  const size_t count = PacksToMerge(packs);
  const bool everything = count >= 2 && count == packs.size() && !keep_unreachable_;
  // Until it is put in place (FinishFold), the next fold keeps every object: one that fails
  // or is set aside is not tried again at once.
  if (everything) keep_unreachable_ = true;
  fold_unfinished_ = true;
  fold_handed_out_at_ = packs_written_;
  return std::make_unique<PackFold>(*this, packs_written_, /*keep_unreachable=*/!everything);
}

absl::Status Libgit2Repository::FinishFold(const FoldResult& fold, int writes, int64_t run_ms) {
  const fs::path pack_dir = fs::path(options_.mirror_dir) / "objects" / "pack";
  // An error below leaves it unfinished, as a Run that failed would.
  fold_unfinished_ = false;
  auto fail = [&](absl::Status status) {
    fold_unfinished_ = true;
    return status;
  };
  std::error_code ec;
  auto remove = [&](const std::string& name) {
    // The index first: a pack is found by its index, so none is ever found without its data.
    fs::remove(pack_dir / (name + ".idx"), ec);
    fs::remove(pack_dir / (name + ".pack"), ec);
  };
  // A fold not put in place takes its pack back, unless that pack was there before.
  auto drop_new = [&] {
    if (!fold.new_pack_existed) remove(fold.new_pack);
  };
  if (fold.new_pack.empty()) {  // nothing was worth folding
    packs_written_ = std::max(0, packs_written_ - writes);
    return absl::OkStatus();
  }
  const std::vector<PackFile> packs = ListPacks(pack_dir);
  if (std::none_of(packs.begin(), packs.end(),
                   [&](const PackFile& p) { return PackName(p.idx) == fold.new_pack; })) {
    return fail(absl::InternalError(
        absl::StrCat("repack: the folded pack ", fold.new_pack, " is not in the mirror")));
  }
  // Objects made in memory and not yet written would go with the object database: the
  // fold is made again after the write that flushes them.
  if (!new_roots_.empty()) {
    drop_new();
    return absl::OkStatus();
  }
  if (fold.reachable_only) {
    // It ran beside the writes, and dropped what the refs it read did not reach. A write
    // meanwhile may rely on such an object: a pack came (new objects may refer to old
    // ones), or a ref moved, even without a pack (a failed push's refs put back, a fetch of
    // a branch that went back). Then the new pack goes instead, and the next fold keeps
    // every object. No write is half done here: this runs between them.
    const char* meanwhile = nullptr;
    std::set<std::string> known(fold.replaced.begin(), fold.replaced.end());
    known.insert(fold.new_pack);
    for (const PackFile& p : packs) {
      if (known.count(PackName(p.idx)) == 0) meanwhile = "the mirror was written to";
    }
    if (meanwhile == nullptr) {
      absl::StatusOr<RefTargets> refs = DirectRefs(repo_);
      if (!refs.ok()) {
        meanwhile = "its refs could not be read again";
      } else if (fold.roots_digest.empty() || RootsDigest(*refs) != fold.roots_digest) {
        meanwhile = "a ref moved";
      }
    }
    if (meanwhile != nullptr) {
      drop_new();
      keep_unreachable_ = true;
      log::Info("mirror fold set aside", {{"reason", meanwhile}, {"run_ms", run_ms}});
      return absl::OkStatus();
    }
  }
  for (const std::string& name : fold.replaced) remove(name);
  keep_unreachable_ = false;
  packs_written_ = std::max(0, packs_written_ - writes);
  log::Info("mirror packs folded", {{"packs", static_cast<int>(fold.replaced.size())},
                                    {"reachable_only", fold.reachable_only},
                                    {"run_ms", run_ms}});
  // A fresh object database on the same folder: libgit2 drops a pack's index, map and
  // file only with the database that opened it. (Reopening the whole repository would
  // read its config again, which leaks in libgit2 1.5.)
  Odb fresh;
  const std::string objects_dir = (fs::path(options_.mirror_dir) / "objects").string();
  if (int rc = git_odb_open(fresh.out(), objects_dir.c_str()); rc != 0) {
    return fail(GitError("reopening the object database", rc));
  }
  if (int rc = git_repository_set_odb(repo_, fresh.get()); rc != 0) {
    return fail(GitError("reopening the object database", rc));
  }
  mempack_ = nullptr;  // went with the old database
  if (git_mempack_new(&mempack_) == 0 &&
      git_odb_add_backend(fresh.get(), mempack_, /*priority=*/999) != 0) {
    mempack_ = nullptr;
  }
  return absl::OkStatus();
}

absl::Status Libgit2Repository::AddNewObjects(git_packbuilder* pack, const git_oid& id,
                                              std::set<RawOid>& ids) {
  // Objects already on disk are not packed again, nor is anything below them: an object
  // written earlier never refers to one created since.
  if (mempack_->exists(mempack_, &id) == 0) return absl::OkStatus();
  Object object;
  if (int rc = git_object_lookup(object.out(), repo_, &id, GIT_OBJECT_ANY); rc != 0) {
    return GitError("reading a new object", rc);
  }
  if (int rc = git_packbuilder_insert(pack, &id, nullptr); rc != 0) {
    return GitError("packing new objects", rc);
  }
  ids.insert(Raw(id));
  switch (git_object_type(object.get())) {
    case GIT_OBJECT_COMMIT: {
      const auto* commit = reinterpret_cast<const git_commit*>(object.get());
      for (unsigned i = 0; i < git_commit_parentcount(commit); ++i) {
        FERRY_RETURN_IF_ERROR(AddNewObjects(pack, *git_commit_parent_id(commit, i), ids));
      }
      return AddNewObjects(pack, *git_commit_tree_id(commit), ids);
    }
    case GIT_OBJECT_TREE: {
      const auto* tree = reinterpret_cast<const git_tree*>(object.get());
      for (size_t i = 0; i < git_tree_entrycount(tree); ++i) {
        const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
        if (git_tree_entry_type(entry) == GIT_OBJECT_COMMIT) continue;  // a submodule
        FERRY_RETURN_IF_ERROR(AddNewObjects(pack, *git_tree_entry_id(entry), ids));
      }
      return absl::OkStatus();
    }
    case GIT_OBJECT_TAG:
      return AddNewObjects(pack, *git_tag_target_id(reinterpret_cast<const git_tag*>(object.get())),
                           ids);
    default:
      return absl::OkStatus();
  }
}

absl::Status Libgit2Repository::FlushObjects() {
  if (mempack_ == nullptr) return absl::OkStatus();
  std::vector<git_oid> roots = std::move(new_roots_);
  new_roots_.clear();
  absl::Status status = WritePack(roots);
  // Written or not, the in-memory objects go: a write that failed must not leave them to
  // fail (or be written with) the next one.
  if (mempack_ != nullptr) git_mempack_reset(mempack_);
  return status;
}

namespace {

// The packfile of what `builder` holds, into `bytes`.
int BuildPack(git_packbuilder* builder, std::string& bytes) {
  git_buf pack = GIT_BUF_INIT;
  const int rc = git_packbuilder_write_buf(&pack, builder);
  if (rc == 0) bytes.assign(pack.ptr, pack.size);
  git_buf_dispose(&pack);
  return rc;
}

// Writes the packfile `bytes` into the object database `odb`, handed to its indexer in a
// single piece (fed object by object, libgit2's indexer maps and unmaps the file for each).
int IndexPack(const std::string& bytes, git_odb* odb) {
  git_odb_writepack* writepack = nullptr;
  git_indexer_progress stats{};
  int rc = git_odb_write_pack(&writepack, odb, nullptr, nullptr);
  if (rc == 0) rc = writepack->append(writepack, bytes.data(), bytes.size(), &stats);
  if (rc == 0) rc = writepack->commit(writepack, &stats);
  if (writepack != nullptr) writepack->free(writepack);
  return rc;
}

}  // namespace

absl::Status Libgit2Repository::WritePack(const std::vector<git_oid>& roots) {
  // Only the objects made since the last write, reachable from what was made (commits,
  // notes commits, tags): one small packfile per write.
  Packbuilder builder;
  if (int rc = git_packbuilder_new(builder.out(), repo_); rc != 0) {
    return GitError("packing new objects", rc);
  }
  git_packbuilder_set_threads(builder.get(), 1);
  std::set<RawOid> ids;
  for (const git_oid& root : roots) FERRY_RETURN_IF_ERROR(AddNewObjects(builder.get(), root, ids));
  if (git_packbuilder_object_count(builder.get()) == 0) return absl::OkStatus();
  std::string pack;
  Odb odb;
  int rc = BuildPack(builder.get(), pack);
  if (rc == 0) rc = git_repository_odb(odb.out(), repo_);
  if (rc == 0) rc = IndexPack(pack, odb.get());
  // Let the object database see the new packfile before the in-memory copies go.
  if (rc == 0) rc = git_odb_refresh(odb.get());
  if (rc != 0) return GitError("writing new objects", rc);
  if (IsLocalPath(options_.url)) {  // only a push to a file:// upstream can send it
    last_pack_ = std::move(pack);
    last_pack_ids_ = std::move(ids);
  }
  // One small pack per write would pile up: libgit2 keeps every pack open, mapped and
  // indexed in memory (some 30 KB each). Every kPacksBeforeRepack writes they are folded
  // (DueMaintenance).
  ++packs_written_;
  return absl::OkStatus();
}

void Libgit2Repository::CountFetchedPack(unsigned int received_objects) {
  // A fetch keeps what it received as one pack (libgit2 never unpacks it into loose objects):
  // those count towards a fold too, or a mirror that only fetches (--git_readonly, or an
  // upstream that others write to) would gather a pack per fetch without end.
  if (received_objects > 0) ++packs_written_;
}

void Libgit2Repository::DiscardObjects() {
  new_roots_.clear();
  if (mempack_ != nullptr) git_mempack_reset(mempack_);
}

absl::StatusOr<std::string> Libgit2Repository::Fetch() {
  std::vector<std::string> specs = {
      absl::StrCat("+refs/heads/", options_.branch, ":refs/remotes/origin/", options_.branch),
      absl::StrCat("+", options_.notes_ref, ":", options_.notes_ref)};
  for (const std::string& tag : options_.tags) {
    specs.push_back(absl::StrCat("+refs/tags/", tag, ":refs/tags/", tag));
  }
  std::vector<char*> spec_ptrs;
  for (std::string& s : specs) spec_ptrs.push_back(s.data());
  git_strarray refspecs{spec_ptrs.data(), spec_ptrs.size()};
  CallbackState state;
  state.options = &options_;
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.callbacks = Callbacks(&state);
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  if (int rc = git_remote_fetch(remote_, &refspecs, &opts, "ferry: fetch"); rc != 0) {
    absl::Status s = GitError("fetching " + Redact(options_.url), rc);
    if (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kNotFound) {
      s = absl::UnavailableError(s.message());
    }
    return WithCertificateContext(s, state);
  }
  CountFetchedPack(state.received_objects);
  absl::StatusOr<std::string> head = Head();
  if (!head.ok() && head.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(
        absl::StrCat("branch ", options_.branch, " does not exist in ", Redact(options_.url)));
  }
  return head;
}

absl::StatusOr<std::string> Libgit2Repository::Head() {
  git_oid oid;
  std::string ref = absl::StrCat("refs/remotes/origin/", options_.branch);
  if (int rc = git_reference_name_to_id(&oid, repo_, ref.c_str()); rc != 0) {
    return GitError("branch " + options_.branch, rc);
  }
  return OidString(oid);
}

absl::StatusOr<absl::Time> Libgit2Repository::CommitTime(const std::string& revision) {
  absl::StatusOr<git_oid> oid = ParseOid(revision);
  if (!oid.ok()) return oid.status();
  Commit commit;
  if (int rc = git_commit_lookup(commit.out(), repo_, &*oid); rc != 0) {
    return GitError("revision " + revision, rc);
  }
  return absl::FromUnixSeconds(git_commit_time(commit.get()));
}

absl::StatusOr<std::vector<RepoFile>> Libgit2Repository::ReadManifests(
    const std::string& revision, const std::vector<std::string>& paths) {
  Tree root;
  FERRY_RETURN_IF_ERROR(RootTree(repo_, revision, root));
  std::vector<RepoFile> files;
  ManifestCollector collector(repo_, options_, files);
  std::vector<std::string> wanted = paths.empty() ? std::vector<std::string>{""} : paths;
  for (std::string path : wanted) {
    if (absl::Status s = ValidatePath(path); !s.ok()) return s;
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (path.empty() || path == ".") {
      if (absl::Status s = collector.AddTree(root.get(), ""); !s.ok()) return s;
      continue;
    }
    TreeEntry entry;
    if (int rc = git_tree_entry_bypath(entry.out(), root.get(), path.c_str()); rc != 0) {
      return absl::NotFoundError(
          absl::StrCat("path \"", path, "\" does not exist at ", revision.substr(0, 12)));
    }
    if (git_tree_entry_type(entry.get()) == GIT_OBJECT_TREE) {
      Tree sub;
      if (int rc = git_tree_lookup(sub.out(), repo_, git_tree_entry_id(entry.get())); rc != 0) {
        return GitError("tree " + path, rc);
      }
      if (absl::Status s = collector.AddTree(sub.get(), path); !s.ok()) return s;
    } else if (git_tree_entry_filemode(entry.get()) == GIT_FILEMODE_LINK) {
      return absl::InvalidArgumentError(absl::StrCat(
          "path \"", names::Escape(path), "\" is a symlink: name the file it points to"));
    } else {
      if (absl::Status s = collector.AddBlob(path, *git_tree_entry_id(entry.get())); !s.ok()) {
        return s;
      }
    }
  }
  std::sort(files.begin(), files.end(),
            [](const RepoFile& a, const RepoFile& b) { return a.path < b.path; });
  files.erase(std::unique(files.begin(), files.end(),
                          [](const RepoFile& a, const RepoFile& b) { return a.path == b.path; }),
              files.end());
  return files;
}

absl::StatusOr<std::string> Libgit2Repository::TreeId(const std::string& revision,
                                                      const std::string& path) {
  FERRY_RETURN_IF_ERROR(ValidatePath(path));
  Tree folder;
  FERRY_RETURN_IF_ERROR(FolderTree(repo_, revision, FolderPath(path), folder));
  return OidString(*git_tree_id(folder.get()));
}

absl::Status Libgit2Repository::ExportTree(const std::string& revision, const std::string& path,
                                           const std::string& dest) {
  FERRY_RETURN_IF_ERROR(ValidatePath(path));
  const std::string folder_path = FolderPath(path);
  Tree folder;
  FERRY_RETURN_IF_ERROR(FolderTree(repo_, revision, folder_path, folder));
  UniqueFd dir(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("export destination ", dest, " cannot be opened: ", std::strerror(errno)));
  }
  // The folders leading to `path`, as in the repository (ValidatePath allowed each part).
  std::string shown;
  for (absl::string_view part : absl::StrSplit(folder_path, '/', absl::SkipEmpty())) {
    shown = shown.empty() ? std::string(part) : absl::StrCat(shown, "/", part);
    FERRY_ASSIGN_OR_RETURN(UniqueFd sub, MakeFolder(dir.get(), std::string(part), shown));
    dir = std::move(sub);
  }
  return TreeExporter(repo_, options_.max_tree_bytes).Export(folder.get(), dir.get(), folder_path);
}

absl::StatusOr<std::string> Libgit2Repository::CreateCommit(const CommitSpec& spec) {
  absl::StatusOr<std::string> commit = CreateCommitObjects(spec);
  if (!commit.ok()) DiscardObjects();
  return commit;
}

absl::StatusOr<std::string> Libgit2Repository::CreateCommitObjects(const CommitSpec& spec) {
  absl::StatusOr<git_oid> parent_oid = ParseOid(spec.parent);
  if (!parent_oid.ok()) return parent_oid.status();
  Commit parent;
  if (int rc = git_commit_lookup(parent.out(), repo_, &*parent_oid); rc != 0) {
    return GitError("parent " + spec.parent, rc);
  }
  Tree base;
  if (int rc = git_commit_tree(base.out(), parent.get()); rc != 0) return GitError("tree", rc);
  std::vector<git_tree_update> updates;
  std::vector<git_oid> blob_ids(spec.files.size());
  // Each directory's tree is read once: looking every file up from the root re-read and
  // re-parsed its folder's tree each time (5 s for 700 files in a folder of 10,000).
  std::map<std::string, Tree> folders;  // folder -> its tree in `base` (null: new folder)
  auto mode_of = [&](const std::string& path) -> git_filemode_t {
    const size_t slash = path.rfind('/');
    const std::string folder = slash == std::string::npos ? "" : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    const git_tree* tree = base.get();
    if (!folder.empty()) {
      auto [it, inserted] = folders.try_emplace(folder);
      if (inserted) {
        TreeEntry entry;
        if (git_tree_entry_bypath(entry.out(), base.get(), folder.c_str()) == 0 &&
            git_tree_entry_type(entry.get()) == GIT_OBJECT_TREE) {
          (void)git_tree_lookup(it->second.out(), repo_, git_tree_entry_id(entry.get()));
        }
      }
      tree = it->second.get();
    }
    const git_tree_entry* existing =
        tree != nullptr ? git_tree_entry_byname(tree, name.c_str()) : nullptr;
    return existing != nullptr ? git_tree_entry_filemode(existing) : GIT_FILEMODE_BLOB;
  };
  size_t i = 0;
  for (const auto& [path, content] : spec.files) {
    if (absl::Status s = ValidatePath(path); !s.ok()) return s;
    const git_filemode_t mode = mode_of(path);
    if (int rc = git_blob_create_from_buffer(&blob_ids[i], repo_, content.data(), content.size());
        rc != 0) {
      return GitError("writing " + path, rc);
    }
    git_tree_update u{};
    u.action = GIT_TREE_UPDATE_UPSERT;
    u.id = blob_ids[i];
    u.filemode = mode;
    u.path = path.c_str();
    updates.push_back(u);
    ++i;
  }
  git_oid tree_oid;
  if (int rc =
          git_tree_create_updated(&tree_oid, repo_, base.get(), updates.size(), updates.data());
      rc != 0) {
    return GitError("building tree", rc);
  }
  Tree tree;
  if (int rc = git_tree_lookup(tree.out(), repo_, &tree_oid); rc != 0) return GitError("tree", rc);
  const absl::Time now = absl::Now();  // one time for both
  absl::StatusOr<git_signature*> author = MakeSignature(spec.author, now);
  if (!author.ok()) return author.status();
  Sig author_owned{*author};
  absl::StatusOr<git_signature*> committer = MakeSignature(spec.committer, now);
  if (!committer.ok()) return committer.status();
  Sig committer_owned{*committer};
  const git_commit* parents[] = {parent.get()};
  FERRY_ASSIGN_OR_RETURN(git_oid commit_oid,
                         WriteCommit(author_owned.get(), committer_owned.get(),
                                     spec.message.c_str(), tree.get(), 1, parents));
  new_roots_.push_back(commit_oid);
  return OidString(commit_oid);
}

absl::StatusOr<git_oid> Libgit2Repository::WriteCommit(const git_signature* author,
                                                       const git_signature* committer,
                                                       const char* message, const git_tree* tree,
                                                       size_t parent_count,
                                                       const git_commit* parents[],
                                                       absl::string_view what) {
  git_oid commit_oid;
  if (options_.signer == nullptr) {
    if (int rc = git_commit_create(&commit_oid, repo_, nullptr, author, committer, "UTF-8", message,
                                   tree, parent_count, parents);
        rc != 0) {
      return GitError("creating commit", rc);
    }
    return commit_oid;
  }
  // As git does for a signed commit: the signature covers the commit as it would be
  // without one, and goes into its "gpgsig" header.
  git_buf buffer = GIT_BUF_INIT;
  if (int rc = git_commit_create_buffer(&buffer, repo_, author, committer, "UTF-8", message, tree,
                                        parent_count, parents);
      rc != 0) {
    return GitError("creating commit", rc);
  }
  std::string content(buffer.ptr, buffer.size);
  git_buf_dispose(&buffer);
  absl::StatusOr<std::string> signature = options_.signer->Sign(content);
  if (!signature.ok()) return SigningError(what, signature.status());
  // libgit2 indents each line after the first; the last line has no newline of its own.
  std::string header = *std::move(signature);
  while (!header.empty() && header.back() == '\n') header.pop_back();
  if (int rc = git_commit_create_with_signature(&commit_oid, repo_, content.c_str(), header.c_str(),
                                                "gpgsig");
      rc != 0) {
    return GitError("creating signed commit", rc);
  }
  return commit_oid;
}

absl::Status Libgit2Repository::WriteNote(const git_oid& target, const std::string& text,
                                          const git_signature* who) {
  git_oid previous;
  const bool had_notes =
      git_reference_name_to_id(&previous, repo_, options_.notes_ref.c_str()) == 0;
  Commit parent;
  if (had_notes) {
    if (int rc = git_commit_lookup(parent.out(), repo_, &previous); rc != 0) {
      return GitError("notes commit", rc);
    }
  }
  git_oid made;
  git_oid blob;
  if (int rc = git_note_commit_create(&made, &blob, repo_, parent.get(), who, who, &target,
                                      text.c_str(), /*allow_note_overwrite=*/1);
      rc != 0) {
    return GitError("writing note", rc);
  }
  git_oid notes_commit = made;
  if (options_.signer != nullptr) {
    // The same commit (tree, parent, people, message), signed; the unsigned one stays in
    // memory, unreferenced, and is never written.
    Commit unsigned_commit;
    if (int rc = git_commit_lookup(unsigned_commit.out(), repo_, &made); rc != 0) {
      return GitError("notes commit", rc);
    }
    Tree tree;
    if (int rc = git_commit_tree(tree.out(), unsigned_commit.get()); rc != 0) {
      return GitError("notes tree", rc);
    }
    const git_commit* parents[] = {parent.get()};
    absl::StatusOr<git_oid> signed_commit = WriteCommit(
        git_commit_author(unsigned_commit.get()), git_commit_committer(unsigned_commit.get()),
        git_commit_message(unsigned_commit.get()), tree.get(), had_notes ? 1 : 0, parents,
        "notes commit");
    if (!signed_commit.ok()) return signed_commit.status();
    notes_commit = *signed_commit;
  }
  // Moved only from where it was read: a concurrent writer of the notes ref is not lost.
  Reference ref;
  const int rc =
      had_notes
          ? git_reference_create_matching(ref.out(), repo_, options_.notes_ref.c_str(),
                                          &notes_commit, /*force=*/1, &previous, "ferry: note")
          : git_reference_create(ref.out(), repo_, options_.notes_ref.c_str(), &notes_commit,
                                 /*force=*/0, "ferry: note");
  if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS) {
    return absl::AbortedError(
        absl::StrCat(options_.notes_ref, " moved while the note was written"));
  }
  if (rc != 0) return GitError("updating " + options_.notes_ref, rc);
  new_roots_.push_back(notes_commit);
  return absl::OkStatus();
}

absl::StatusOr<git_oid> Libgit2Repository::WriteTag(const std::string& name, const git_oid& target,
                                                    const std::string& message,
                                                    const git_signature* who) {
  git_oid tag_oid;
  // Released when the tag is written: no object outlives a call (a fold reopens the object
  // database between calls).
  Object object;
  if (int rc = git_object_lookup(object.out(), repo_, &target, GIT_OBJECT_COMMIT); rc != 0) {
    return GitError("revision " + OidString(target), rc);
  }
  if (options_.signer == nullptr) {
    if (int rc = git_tag_create(&tag_oid, repo_, name.c_str(), object.get(), who, message.c_str(),
                                /*force=*/1);
        rc != 0) {
      return GitError("tag " + name, rc);
    }
    return tag_oid;
  }
  if (name.find_first_of("\n\r") != std::string::npos || message.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("a tag name cannot hold line breaks, nor its message NUL");
  }
  // As git does for a signed annotated tag: the signature covers the tag object up to the
  // end of its message (which ends with a newline) and follows it.
  std::string content = absl::StrCat("object ", OidString(target), "\ntype commit\ntag ", name,
                                     "\ntagger ", SignatureLine(*who), "\n\n", message);
  if (content.back() != '\n') content.push_back('\n');
  absl::StatusOr<std::string> signature = options_.signer->Sign(content);
  if (!signature.ok()) return SigningError("sync tag", signature.status());
  content += *signature;
  if (int rc = git_tag_create_from_buffer(&tag_oid, repo_, content.c_str(), /*force=*/1); rc != 0) {
    return GitError("signed tag " + name, rc);
  }
  return tag_oid;
}

namespace {

// The bare repository a file:// `url` names on this machine (an absolute path, no
// percent-escapes), or null: then libgit2's own transport pushes (and decides).
git_repository* OpenLocalBare(const std::string& url) {
  if (!IsLocalPath(url)) return nullptr;
  git_repository* repo = nullptr;
  const std::string absolute(absl::StripPrefix(url, "file://"));
  if (git_repository_open_ext(&repo, absolute.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) !=
      0) {
    return nullptr;
  }
  if (!git_repository_is_bare(repo)) {
    git_repository_free(repo);
    return nullptr;
  }
  return repo;
}

// The ids upstream's refs name directly, tags not peeled.
std::set<RawOid> UpstreamTargets(git_repository* upstream) {
  std::set<RawOid> targets;
  git_reference_iterator* refs = nullptr;
  if (git_reference_iterator_new(&refs, upstream) != 0) return targets;
  git_reference* ref = nullptr;
  while (git_reference_next(&ref, refs) == 0) {
    if (const git_oid* target = git_reference_target(ref); target != nullptr) {
      targets.insert(Raw(*target));
    }
    git_reference_free(ref);
  }
  git_reference_iterator_free(refs);
  return targets;
}

bool Names(const std::set<RawOid>& targets, const git_oid& id) {
  return targets.count(Raw(id)) > 0;
}

// Hides from `walk` every commit of `targets` (upstream's ref targets) that `local` has
// (tags peeled): upstream has them and all they reach, as libgit2's push assumes of a
// remote's refs.
void HideUpstreamRefs(const std::set<RawOid>& targets, git_odb* local, git_revwalk* walk) {
  for (const RawOid& raw : targets) {
    git_oid target;
    if (git_oid_fromraw(&target, raw.data()) == 0 && git_odb_exists(local, &target) == 1) {
      (void)git_revwalk_hide(walk, &target);  // not a commit (nor a tag of one): nothing to hide
    }
  }
}

// An object a push sends, with its path for the pack builder's choice of delta bases.
struct Wanted {
  git_oid id;
  std::string path;
};

// Adds to `wanted` the trees and blobs of `now` that `before` (a tree upstream has, or null)
// does not hold at the same path: a walk down the changed paths only. Gitlinks are not
// objects of this repository and are skipped.
int TreeChanges(git_repository* repo, const git_oid* before, const git_oid& now,
                std::vector<Wanted>& wanted) {
  struct Step {
    std::optional<git_oid> before;
    git_oid now;
    std::string path;
  };
  std::vector<Step> steps;
  steps.push_back({before != nullptr ? std::optional<git_oid>(*before) : std::nullopt, now, ""});
  while (!steps.empty()) {
    Step step = std::move(steps.back());
    steps.pop_back();
    if (step.before.has_value() && git_oid_equal(&*step.before, &step.now)) continue;
    wanted.push_back({step.now, step.path});
    Tree tree;
    Tree old_tree;
    if (int rc = git_tree_lookup(tree.out(), repo, &step.now); rc != 0) return rc;
    if (step.before.has_value()) {
      if (int rc = git_tree_lookup(old_tree.out(), repo, &*step.before); rc != 0) return rc;
    }
    for (size_t i = 0, n = git_tree_entrycount(tree.get()); i < n; ++i) {
      const git_tree_entry* entry = git_tree_entry_byindex(tree.get(), i);
      const git_oid* id = git_tree_entry_id(entry);
      const char* name = git_tree_entry_name(entry);
      const git_tree_entry* old_entry =
          old_tree.get() != nullptr ? git_tree_entry_byname(old_tree.get(), name) : nullptr;
      if (old_entry != nullptr && git_oid_equal(git_tree_entry_id(old_entry), id)) continue;
      std::string path = step.path.empty() ? name : absl::StrCat(step.path, "/", name);
      switch (git_tree_entry_type(entry)) {
        case GIT_OBJECT_BLOB:
          wanted.push_back({*id, std::move(path)});
          break;
        case GIT_OBJECT_TREE: {
          std::optional<git_oid> old_id;
          if (old_entry != nullptr && git_tree_entry_type(old_entry) == GIT_OBJECT_TREE) {
            old_id = *git_tree_entry_id(old_entry);
          }
          steps.push_back({old_id, *id, std::move(path)});
          break;
        }
        default:
          break;
      }
    }
  }
  return 0;
}

// Adds to `wanted` what upstream lacks of `commits` when each is either named by one of
// upstream's refs (`targets`) or a child of such commits: the new commit and, against its
// first parent's tree, what changed (other parents' objects are upstream already, and what
// it holds twice costs a few bytes). This is a release's push, and the sync tag's on a
// revision upstream has: work that grows with the change. Returns false, adding nothing,
// when a commit is neither (several new commits, a new root): then the whole walk decides.
absl::StatusOr<bool> ChangesOverUpstream(git_repository* repo, const std::vector<git_oid>& commits,
                                         const std::set<RawOid>& targets,
                                         std::vector<Wanted>& wanted) {
  std::vector<git_oid> children;
  for (const git_oid& id : commits) {
    if (Names(targets, id)) continue;
    Object object;
    if (int rc = git_object_lookup(object.out(), repo, &id, GIT_OBJECT_ANY); rc != 0) {
      return GitError("push", rc);
    }
    if (git_object_type(object.get()) != GIT_OBJECT_COMMIT) return false;  // a tag of a tree
    const auto* commit = reinterpret_cast<const git_commit*>(object.get());
    const unsigned parents = git_commit_parentcount(commit);
    if (parents == 0) return false;
    for (unsigned p = 0; p < parents; ++p) {
      if (!Names(targets, *git_commit_parent_id(commit, p))) return false;
    }
    children.push_back(id);
  }
  for (const git_oid& id : children) {
    Commit commit;
    Commit parent;
    wanted.push_back({id, ""});
    int rc = git_commit_lookup(commit.out(), repo, &id);
    if (rc == 0) rc = git_commit_parent(parent.out(), commit.get(), 0);
    if (rc == 0) {
      rc = TreeChanges(repo, git_commit_tree_id(parent.get()), *git_commit_tree_id(commit.get()),
                       wanted);
    }
    if (rc != 0) return GitError("push", rc);
  }
  return true;
}

// A push to the bare repository `upstream` on this machine (a file:// url): the new objects
// in one pack written into its object database at once, then each ref moved by
// compare-and-set. libgit2's own file:// transport hands its indexer one object at a time,
// which maps and unmaps the pack file for each: most of a 100-file push on a loaded virtual
// machine (TLB flushes). Hooks do not run, as with libgit2's transport. A ref that is not a
// fast-forward (unless forced), or moved or is locked meanwhile, is refused as a remote
// refuses one; the refs after a refused one are not moved (a note never lands without its
// commit). `prepared` is a pack made for the mirror, holding the objects `prepared_ids`
// (raw ids): sent instead of a pack of its own when it holds all that upstream lacks.
absl::Status PushToPath(git_repository* repo, const Libgit2Options& options,
                        git_repository* upstream, const std::vector<std::string>& refspecs,
                        const std::string& prepared, const std::set<RawOid>& prepared_ids,
                        CallbackState& state) {
  struct Update {
    std::string ref;
    git_oid to{};
    std::optional<git_oid> from;  // upstream's value, when it has the ref
    std::string refused;          // why it is not moved
  };
  std::vector<Update> updates;
  std::vector<git_oid> tips;   // the commits the refs are to name
  std::vector<Wanted> wanted;  // the objects upstream lacks
  Revwalk walk;
  Packbuilder builder;
  if (int rc = git_revwalk_new(walk.out(), repo); rc != 0) return GitError("push", rc);
  if (int rc = git_packbuilder_new(builder.out(), repo); rc != 0) return GitError("push", rc);
  git_packbuilder_set_threads(builder.get(), 1);
  Odb local;
  if (int rc = git_repository_odb(local.out(), repo); rc != 0) return GitError("push", rc);
  for (const std::string& spec : refspecs) {
    absl::string_view rest = spec;
    const bool force = absl::ConsumePrefix(&rest, "+");
    const std::pair<std::string, std::string> src_dst =
        absl::StrSplit(rest, absl::MaxSplits(':', 1));
    Update u;
    u.ref = src_dst.second;
    if (int rc = git_reference_name_to_id(&u.to, repo, src_dst.first.c_str()); rc != 0) {
      return GitError("push source " + src_dst.first, rc);
    }
    git_oid current;
    if (git_reference_name_to_id(&current, upstream, u.ref.c_str()) == 0) {
      u.from = current;
      // Fast-forwards only, unless forced, as git's own push.
      if (!force && !git_oid_equal(&current, &u.to) &&
          (git_odb_exists(local.get(), &current) != 1 ||
           git_graph_descendant_of(repo, &u.to, &current) != 1)) {
        u.refused = "non-fast-forward: upstream moved";
        updates.push_back(std::move(u));
        continue;
      }
    }
    // Annotated tags go in themselves, and what they name is walked.
    git_oid walked = u.to;
    for (int depth = 0;; ++depth) {
      Object object;
      if (int rc = git_object_lookup(object.out(), repo, &walked, GIT_OBJECT_ANY); rc != 0) {
        return GitError("push source " + src_dst.first, rc);
      }
      if (git_object_type(object.get()) != GIT_OBJECT_TAG) break;
      if (depth >= 8) return absl::InvalidArgumentError("push source: tags nested too deep");
      wanted.push_back({walked, ""});
      walked = *git_tag_target_id(reinterpret_cast<const git_tag*>(object.get()));
    }
    tips.push_back(walked);
    updates.push_back(std::move(u));
  }
  // What upstream lacks: found from the changed paths when it can be (libgit2's walk reads
  // every tree of upstream's heads to leave them out: 8-35 ms at 10,000 workloads).
  const std::set<RawOid> targets = UpstreamTargets(upstream);
  FERRY_ASSIGN_OR_RETURN(bool direct, ChangesOverUpstream(repo, tips, targets, wanted));
  // The mirror's last pack, when it holds all of that, goes as it is (building the same pack
  // again took 13-15 ms at 10,000 workloads: its trees are large).
  const bool reuse = direct && !wanted.empty() &&
                     std::all_of(wanted.begin(), wanted.end(),
                                 [&](const Wanted& w) { return Names(prepared_ids, w.id); });
  std::string built;
  if (!reuse) {
    for (const Wanted& w : wanted) {
      if (int rc = git_packbuilder_insert(builder.get(), &w.id,
                                          w.path.empty() ? nullptr : w.path.c_str());
          rc != 0) {
        return GitError("push", rc);
      }
    }
    if (!direct) {
      for (const git_oid& tip : tips) {
        if (int rc = git_revwalk_push(walk.get(), &tip); rc != 0) return GitError("push", rc);
      }
      HideUpstreamRefs(targets, local.get(), walk.get());
      if (int rc = git_packbuilder_insert_walk(builder.get(), walk.get()); rc != 0) {
        return GitError("push", rc);
      }
    }
    if (git_packbuilder_object_count(builder.get()) > 0) {
      if (int rc = BuildPack(builder.get(), built); rc != 0) {
        return absl::UnavailableError(GitError("pushing to " + Redact(options.url), rc).message());
      }
    }
  }
  if (const std::string& pack = reuse ? prepared : built; !pack.empty()) {
    Odb odb;
    int rc = git_repository_odb(odb.out(), upstream);
    if (rc == 0) rc = IndexPack(pack, odb.get());
    if (rc != 0) {
      return absl::UnavailableError(GitError("pushing to " + Redact(options.url), rc).message());
    }
  }
  // The objects are upstream; the refs move only while the leadership lasts.
  if (FenceCheck(state) != 0) return absl::UnavailableError("push aborted");
  bool refused_before = false;
  for (Update& u : updates) {
    if (u.refused.empty() && refused_before) u.refused = "not moved: an earlier ref was refused";
    if (u.refused.empty()) {
      Reference ref;
      const int rc = u.from.has_value()
                         ? git_reference_create_matching(ref.out(), upstream, u.ref.c_str(), &u.to,
                                                         /*force=*/1, &*u.from, "ferry: push")
                         : git_reference_create(ref.out(), upstream, u.ref.c_str(), &u.to,
                                                /*force=*/0, "ferry: push");
      if (rc != 0) {  // moved meanwhile, or locked
        const git_error* e = git_error_last();
        u.refused = e != nullptr && e->message != nullptr ? e->message : "not updated";
      }
    }
    if (!u.refused.empty()) {
      refused_before = true;
      PushUpdateReference(u.ref.c_str(), u.refused.c_str(), &state);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Libgit2Repository::Push(const std::vector<std::string>& refspecs,
                                     std::set<std::string>* rejected) {
  if (absl::Status flushed = FlushObjects(); !flushed.ok()) return flushed;
  // The last flush's pack serves this push at most, and goes with it.
  const std::string prepared = std::exchange(last_pack_, {});
  const std::set<RawOid> prepared_ids = std::exchange(last_pack_ids_, {});
  std::vector<std::string> specs = refspecs;
  std::vector<char*> ptrs;
  for (std::string& s : specs) ptrs.push_back(s.data());
  git_strarray arr{ptrs.data(), ptrs.size()};
  CallbackState state;
  state.options = &options_;
  // Asked right before the push, the objects being written already: the push gets all the
  // leadership that is left.
  FERRY_RETURN_IF_ERROR(StartFencedPush(options_, state));
  if (RepositoryHandle upstream{OpenLocalBare(options_.url)}; upstream.get() != nullptr) {
    absl::Status s =
        PushToPath(repo_, options_, upstream.get(), refspecs, prepared, prepared_ids, state);
    if (!s.ok()) return FencedPushError(s, state);
  } else {
    git_push_options opts = GIT_PUSH_OPTIONS_INIT;
    opts.callbacks = Callbacks(&state);
    int rc = git_remote_push(remote_, &arr, &opts);
    if (rc != 0) {
      absl::Status s = GitError("pushing to " + Redact(options_.url), rc);
      if (s.code() == absl::StatusCode::kInternal) s = absl::UnavailableError(s.message());
      return FencedPushError(WithCertificateContext(s, state), state);
    }
  }
  WarnIfLate(state);
  if (!state.rejected.empty()) {
    if (rejected != nullptr) *rejected = state.rejected_refs;
    return absl::AbortedError(absl::StrCat("push rejected: ", state.rejected));
  }
  return absl::OkStatus();
}

absl::Status Libgit2Repository::PushBranch(const std::string& commit) {
  FERRY_ASSIGN_OR_RETURN(git_oid oid, ParseOid(commit));
  return PushCommit(oid, /*with_notes=*/false, nullptr);
}

absl::Status Libgit2Repository::PushBranchWithNote(const std::string& commit,
                                                   const std::string& text, const Signature& who,
                                                   std::string* note_error) {
  FERRY_ASSIGN_OR_RETURN(git_oid oid, ParseOid(commit));
  RefSnapshot notes_before(repo_, options_.notes_ref);
  // A note that cannot be written fails alone: the commit is pushed without it. (Its
  // objects, if any were made, are reachable from no new root and are not written.)
  if (absl::Status written = WriteNoteBy(oid, text, who); !written.ok()) {
    notes_before.Restore();
    *note_error = std::string(written.message());
    return PushCommit(oid, /*with_notes=*/false, nullptr);
  }
  absl::Status pushed = PushCommit(oid, /*with_notes=*/true, note_error);
  if (!pushed.ok() || !note_error->empty()) notes_before.Restore();
  return pushed;
}

absl::Status Libgit2Repository::PushCommit(const git_oid& oid, bool with_notes,
                                           std::string* note_error) {
  // A local branch ref is the push source; refs/remotes/origin/<branch> moves only once
  // upstream has taken the commit.
  // The objects are written first: the ref never points at an object that is not on disk.
  if (absl::Status flushed = FlushObjects(); !flushed.ok()) return flushed;
  const std::string local = absl::StrCat("refs/heads/", options_.branch);
  RefSnapshot before(repo_, local);
  Reference ref;
  if (int rc =
          git_reference_create(ref.out(), repo_, local.c_str(), &oid, /*force=*/1, "ferry: push");
      rc != 0) {
    return GitError("updating " + local, rc);
  }
  std::vector<std::string> refspecs = {absl::StrCat(local, ":", local)};
  if (with_notes) refspecs.push_back(absl::StrCat(options_.notes_ref, ":", options_.notes_ref));
  std::set<std::string> rejected;
  absl::Status pushed = Push(refspecs, &rejected);
  if (!pushed.ok() && with_notes && rejected == std::set<std::string>{options_.notes_ref}) {
    // Upstream took the commit and refused only the notes ref: pushed, without its note.
    *note_error = std::string(pushed.message());
    pushed = absl::OkStatus();
  }
  if (!pushed.ok()) {
    before.Restore();
    return pushed;
  }
  Reference tracking;
  const std::string remote_ref = absl::StrCat("refs/remotes/origin/", options_.branch);
  if (int rc =
          git_reference_create(tracking.out(), repo_, remote_ref.c_str(), &oid, 1, "ferry: pushed");
      rc != 0) {
    return GitError("updating " + remote_ref, rc);
  }
  return absl::OkStatus();
}

absl::Status Repository::PushBranchWithNote(const std::string& commit, const std::string& text,
                                            const Signature& who, std::string* note_error) {
  FERRY_RETURN_IF_ERROR(PushBranch(commit));
  if (absl::Status noted = AddNote(commit, text, who); !noted.ok()) {
    *note_error = std::string(noted.message());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Repository::FetchBranch(const std::string&) {
  return absl::UnimplementedError("this repository has no release branches");
}
absl::StatusOr<std::vector<BranchCommit>> Repository::CommitsBetween(const std::string&,
                                                                     const std::string&, size_t) {
  return absl::UnimplementedError("this repository has no release branches");
}
absl::StatusOr<bool> Repository::IsAncestor(const std::string&, const std::string&) {
  return absl::UnimplementedError("this repository has no release branches");
}
absl::StatusOr<ReplayResult> Repository::Replay(const std::string&, const std::string&,
                                                const Signature&) {
  return absl::UnimplementedError("this repository has no release branches");
}
absl::Status Repository::PushTo(const std::string&, const std::string&, const std::string&) {
  return absl::UnimplementedError("this repository has no release branches");
}
void Repository::ForgetBranch(const std::string&) {}

absl::Status Libgit2Repository::ValidateBranchName(const std::string& branch) {
  git_libgit2_init();  // counted: callable before any repository is open
  int valid = 0;
  const std::string ref = absl::StrCat("refs/heads/", branch);
  const int rc = git_reference_name_is_valid(&valid, ref.c_str());
  git_libgit2_shutdown();
  if (rc != 0 || valid == 0 || absl::StartsWith(branch, "-") ||
      branch.size() > kMaxBranchNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", names::Escape(branch), "\" is not a valid branch name"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Libgit2Repository::FetchBranch(const std::string& branch) {
  FERRY_RETURN_IF_ERROR(ValidateBranchName(branch));
  // The copy of the branch is dropped first: a branch deleted upstream is then missing here
  // too (a fetch by name leaves the copy as it was when the name is gone upstream).
  const std::string tracking = absl::StrCat("refs/remotes/origin/", branch);
  if (Reference old; git_reference_lookup(old.out(), repo_, tracking.c_str()) == 0) {
    (void)git_reference_delete(old.get());
  }
  std::string spec = absl::StrCat("+refs/heads/", branch, ":", tracking);
  char* spec_ptr = spec.data();
  git_strarray refspecs{&spec_ptr, 1};
  CallbackState state;
  state.options = &options_;
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.callbacks = Callbacks(&state);
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  if (int rc = git_remote_fetch(remote_, &refspecs, &opts, "ferry: fetch push branch"); rc != 0) {
    absl::Status s =
        GitError(absl::StrCat("fetching branch ", branch, " of ", Redact(options_.url)), rc);
    if (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kNotFound) {
      s = absl::UnavailableError(s.message());
    }
    return WithCertificateContext(s, state);
  }
  CountFetchedPack(state.received_objects);
  git_oid oid;
  if (git_reference_name_to_id(&oid, repo_, tracking.c_str()) != 0) {
    return absl::NotFoundError(
        absl::StrCat("branch ", branch, " does not exist in ", Redact(options_.url)));
  }
  return OidString(oid);
}

absl::StatusOr<std::vector<BranchCommit>> Libgit2Repository::CommitsBetween(const std::string& base,
                                                                            const std::string& tip,
                                                                            size_t limit) {
  FERRY_ASSIGN_OR_RETURN(git_oid base_oid, ParseOid(base));
  FERRY_ASSIGN_OR_RETURN(git_oid tip_oid, ParseOid(tip));
  Revwalk walk;
  if (int rc = git_revwalk_new(walk.out(), repo_); rc != 0) return GitError("revwalk", rc);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  if (int rc = git_revwalk_push(walk.get(), &tip_oid); rc != 0) {
    return GitError("revision " + tip, rc);
  }
  if (int rc = git_revwalk_hide(walk.get(), &base_oid); rc != 0) {
    return GitError("revision " + base, rc);
  }
  std::vector<BranchCommit> out;
  git_oid oid;
  while (git_revwalk_next(&oid, walk.get()) == 0) {
    if (out.size() >= limit) {
      return absl::ResourceExhaustedError(absl::StrCat("more than ", limit, " commits between ",
                                                       base.substr(0, 12), " and ",
                                                       tip.substr(0, 12)));
    }
    Commit commit;
    if (int rc = git_commit_lookup(commit.out(), repo_, &oid); rc != 0) {
      return GitError("commit " + OidString(oid), rc);
    }
    BranchCommit c;
    c.id = OidString(oid);
    const git_signature* who = git_commit_committer(commit.get());
    c.committer = {who->name != nullptr ? who->name : "", who->email != nullptr ? who->email : ""};
    const char* summary = git_commit_summary(commit.get());
    c.subject = summary != nullptr ? summary : "";
    c.parents = git_commit_parentcount(commit.get());
    if (const char* message = git_commit_message(commit.get()); message != nullptr) {
      git_message_trailer_array trailers{};
      if (git_message_trailers(&trailers, message) == 0) {
        for (size_t i = 0; i < trailers.count; ++i) {
          if (absl::EqualsIgnoreCase(trailers.trailers[i].key, "Ferry-Job")) {
            c.job = trailers.trailers[i].value;  // the last one, as Ferry writes it last
          }
        }
        git_message_trailer_array_free(&trailers);
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<bool> Libgit2Repository::IsAncestor(const std::string& ancestor,
                                                   const std::string& commit) {
  FERRY_ASSIGN_OR_RETURN(git_oid ancestor_oid, ParseOid(ancestor));
  FERRY_ASSIGN_OR_RETURN(git_oid commit_oid, ParseOid(commit));
  if (git_oid_equal(&ancestor_oid, &commit_oid)) return true;
  const int rc = git_graph_descendant_of(repo_, &commit_oid, &ancestor_oid);
  if (rc < 0) return GitError(absl::StrCat("history of ", commit.substr(0, 12)), rc);
  return rc == 1;
}

absl::StatusOr<ReplayResult> Libgit2Repository::Replay(const std::string& commit,
                                                       const std::string& onto,
                                                       const Signature& committer) {
  // No DiscardObjects() on failure: the commits made before it (this write's) stay. What a
  // failed replay made is referenced by no new root, so it is never packed.
  return ReplayObjects(commit, onto, committer);
}

absl::StatusOr<ReplayResult> Libgit2Repository::ReplayObjects(const std::string& commit,
                                                              const std::string& onto,
                                                              const Signature& committer) {
  FERRY_ASSIGN_OR_RETURN(git_oid commit_oid, ParseOid(commit));
  FERRY_ASSIGN_OR_RETURN(git_oid onto_oid, ParseOid(onto));
  Commit picked;
  if (int rc = git_commit_lookup(picked.out(), repo_, &commit_oid); rc != 0) {
    return GitError("commit " + commit, rc);
  }
  Commit base;
  if (int rc = git_commit_lookup(base.out(), repo_, &onto_oid); rc != 0) {
    return GitError("commit " + onto, rc);
  }
  ReplayResult result;
  if (git_commit_parentcount(picked.get()) != 1) {
    result.conflict = true;
    result.reason = absl::StrCat("commit ", commit.substr(0, 12), " is a merge or has no parent");
    return result;
  }
  git_index* merged = nullptr;
  git_merge_options merge_opts = GIT_MERGE_OPTIONS_INIT;
  if (int rc = git_cherrypick_commit(&merged, repo_, picked.get(), base.get(), 0, &merge_opts);
      rc != 0) {
    return GitError(absl::StrCat("re-applying ", commit.substr(0, 12)), rc);
  }
  Owned<git_index, git_index_free> index{merged};
  if (git_index_has_conflicts(index.get())) {
    std::vector<std::string> paths;
    git_index_conflict_iterator* it = nullptr;
    if (git_index_conflict_iterator_new(&it, index.get()) == 0) {
      const git_index_entry *ancestor, *ours, *theirs;
      while (paths.size() < 10 && git_index_conflict_next(&ancestor, &ours, &theirs, it) == 0) {
        const git_index_entry* any = ours != nullptr ? ours : theirs != nullptr ? theirs : ancestor;
        if (any != nullptr) paths.push_back(names::Escape(any->path));
      }
      git_index_conflict_iterator_free(it);
    }
    result.conflict = true;
    result.reason =
        absl::StrCat("commit ", commit.substr(0, 12), " conflicts with ", onto.substr(0, 12),
                     " in ", paths.empty() ? std::string("some file") : absl::StrJoin(paths, ", "));
    return result;
  }
  git_oid tree_oid;
  if (int rc = git_index_write_tree_to(&tree_oid, index.get(), repo_); rc != 0) {
    return GitError("building tree", rc);
  }
  if (git_oid_equal(&tree_oid, git_commit_tree_id(base.get()))) {  // already there
    result.commit = onto;
    return result;
  }
  Tree tree;
  if (int rc = git_tree_lookup(tree.out(), repo_, &tree_oid); rc != 0) return GitError("tree", rc);
  FERRY_ASSIGN_OR_RETURN(git_signature * who, MakeSignature(committer));
  Sig who_owned{who};
  const git_commit* parents[] = {base.get()};
  FERRY_ASSIGN_OR_RETURN(git_oid replayed,
                         WriteCommit(git_commit_author(picked.get()), who_owned.get(),
                                     git_commit_message(picked.get()), tree.get(), 1, parents));
  new_roots_.push_back(replayed);
  result.commit = OidString(replayed);
  return result;
}

absl::Status Libgit2Repository::LeasedPush(const std::string& ref, const std::string& expected) {
  CallbackState state;
  state.options = &options_;
  FERRY_RETURN_IF_ERROR(StartFencedPush(options_, state));
  git_remote_callbacks callbacks = Callbacks(&state);
  if (int rc = git_remote_connect(remote_, GIT_DIRECTION_PUSH, &callbacks, nullptr, nullptr);
      rc != 0) {
    absl::Status s = GitError("connecting to " + Redact(options_.url), rc);
    if (s.code() == absl::StatusCode::kInternal) s = absl::UnavailableError(s.message());
    return WithCertificateContext(s, state);
  }
  struct Disconnect {
    git_remote* remote;
    ~Disconnect() { git_remote_disconnect(remote); }
  } disconnect{remote_};
  const git_remote_head** heads = nullptr;
  size_t count = 0;
  if (int rc = git_remote_ls(&heads, &count, remote_); rc != 0) {
    return GitError("listing the refs of " + Redact(options_.url), rc);
  }
  std::string current;
  for (size_t i = 0; i < count; ++i) {
    if (ref == heads[i]->name) current = OidString(heads[i]->oid);
  }
  if (current != expected) {
    return absl::AbortedError(absl::StrCat(ref, " moved upstream since it was read (now ",
                                           current.empty() ? "gone" : current.substr(0, 12), ")"));
  }
  // The same connection: git sends the advertised id as the old value, and receive-pack
  // refuses the update when the ref is no longer there.
  std::string spec = absl::StrCat("+", ref, ":", ref);
  char* spec_ptr = spec.data();
  git_strarray refspecs{&spec_ptr, 1};
  git_push_options opts = GIT_PUSH_OPTIONS_INIT;
  opts.callbacks = callbacks;
  if (int rc = git_remote_upload(remote_, &refspecs, &opts); rc != 0) {
    absl::Status s = GitError("pushing to " + Redact(options_.url), rc);
    if (s.code() == absl::StatusCode::kInternal) s = absl::UnavailableError(s.message());
    return FencedPushError(WithCertificateContext(s, state), state);
  }
  WarnIfLate(state);
  if (!state.rejected.empty()) {
    return absl::AbortedError(absl::StrCat("push rejected: ", state.rejected));
  }
  return absl::OkStatus();
}

absl::Status Libgit2Repository::PushTo(const std::string& branch, const std::string& commit,
                                       const std::string& expected) {
  FERRY_RETURN_IF_ERROR(ValidateBranchName(branch));
  FERRY_ASSIGN_OR_RETURN(git_oid oid, ParseOid(commit));
  // As PushBranch: the objects first, a local ref as the push source, the copy of upstream's
  // ref moved once upstream took the commit.
  if (absl::Status flushed = FlushObjects(); !flushed.ok()) return flushed;
  // A push branch goes through libgit2's transport (LeasedPush): the mirror's pack is not
  // sent, nor kept.
  last_pack_.clear();
  last_pack_ids_.clear();
  const std::string local = absl::StrCat("refs/heads/", branch);
  RefSnapshot before(repo_, local);
  Reference ref;
  if (int rc =
          git_reference_create(ref.out(), repo_, local.c_str(), &oid, /*force=*/1, "ferry: push");
      rc != 0) {
    return GitError("updating " + local, rc);
  }
  absl::Status pushed = LeasedPush(local, expected);
  if (!pushed.ok()) {
    before.Restore();
    return pushed;
  }
  Reference tracking;
  const std::string remote_ref = absl::StrCat("refs/remotes/origin/", branch);
  if (int rc =
          git_reference_create(tracking.out(), repo_, remote_ref.c_str(), &oid, 1, "ferry: pushed");
      rc != 0) {
    return GitError("updating " + remote_ref, rc);
  }
  return absl::OkStatus();
}

void Libgit2Repository::ForgetBranch(const std::string& branch) {
  if (branch == options_.branch || !ValidateBranchName(branch).ok()) return;
  for (const std::string& name :
       {absl::StrCat("refs/heads/", branch), absl::StrCat("refs/remotes/origin/", branch)}) {
    if (Reference ref; git_reference_lookup(ref.out(), repo_, name.c_str()) == 0) {
      (void)git_reference_delete(ref.get());
    }
  }
}

absl::Status Libgit2Repository::WriteNoteBy(const git_oid& target, const std::string& text,
                                            const Signature& who) {
  if (text.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("a note cannot hold a NUL byte");
  }
  FERRY_ASSIGN_OR_RETURN(git_signature * sig, MakeSignature(who));
  Sig owned{sig};
  return WriteNote(target, text, owned.get());
}

absl::Status Libgit2Repository::AddNote(const std::string& commit, const std::string& text,
                                        const Signature& who) {
  absl::StatusOr<git_oid> oid = ParseOid(commit);
  if (!oid.ok()) return oid.status();
  RefSnapshot before(repo_, options_.notes_ref);
  if (absl::Status written = WriteNoteBy(*oid, text, who); !written.ok()) {
    DiscardObjects();
    before.Restore();
    return written;
  }
  absl::Status pushed = Push({absl::StrCat(options_.notes_ref, ":", options_.notes_ref)}, nullptr);
  if (!pushed.ok()) {
    before.Restore();
    return pushed;
  }
  return pushed;
}

absl::StatusOr<std::string> Libgit2Repository::ReadNote(const std::string& commit) {
  absl::StatusOr<git_oid> oid = ParseOid(commit);
  if (!oid.ok()) return oid.status();
  Note note;
  if (int rc = git_note_read(note.out(), repo_, options_.notes_ref.c_str(), &*oid); rc != 0) {
    return GitError("note of " + commit, rc);
  }
  return std::string(git_note_message(note.get()));
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Libgit2Repository::ListNotes(
    int limit) {
  std::vector<std::pair<std::string, std::string>> out;
  absl::StatusOr<std::string> head = Head();
  if (!head.ok()) return head.status();
  Revwalk walk;
  if (int rc = git_revwalk_new(walk.out(), repo_); rc != 0) return GitError("revwalk", rc);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL);
  git_revwalk_simplify_first_parent(walk.get());
  git_oid oid = *ParseOid(*head);
  git_revwalk_push(walk.get(), &oid);
  constexpr int kMaxCommits = 5000;  // bound the walk on long histories
  for (int seen = 0; seen < kMaxCommits && static_cast<int>(out.size()) < limit; ++seen) {
    if (git_revwalk_next(&oid, walk.get()) != 0) break;
    Note note;
    if (git_note_read(note.out(), repo_, options_.notes_ref.c_str(), &oid) == 0) {
      out.emplace_back(OidString(oid), git_note_message(note.get()));
    }
  }
  return out;
}

absl::Status Libgit2Repository::SetTag(const std::string& name, const std::string& commit,
                                       const std::string& message, const Signature& who) {
  absl::StatusOr<git_oid> oid = ParseOid(commit);
  if (!oid.ok()) return oid.status();
  absl::StatusOr<git_signature*> sig = MakeSignature(who);
  if (!sig.ok()) return sig.status();
  Sig owned{*sig};
  RefSnapshot before(repo_, absl::StrCat("refs/tags/", name));
  absl::StatusOr<git_oid> tag_oid = WriteTag(name, *oid, message, owned.get());
  if (!tag_oid.ok()) {
    DiscardObjects();
    before.Restore();
    return tag_oid.status();
  }
  new_roots_.push_back(*tag_oid);
  absl::Status pushed = Push({absl::StrCat("+refs/tags/", name, ":refs/tags/", name)}, nullptr);
  if (!pushed.ok()) before.Restore();
  return pushed;
}

absl::StatusOr<std::string> Libgit2Repository::TagTarget(const std::string& name) {
  Object obj;
  std::string ref = absl::StrCat("refs/tags/", name, "^{commit}");
  if (int rc = git_revparse_single(obj.out(), repo_, ref.c_str()); rc != 0) {
    return absl::NotFoundError(absl::StrCat("tag ", name, " does not exist"));
  }
  return OidString(*git_object_id(obj.get()));
}

absl::StatusOr<std::pair<std::string, std::string>> Libgit2Repository::CommitSignature(
    const std::string& commit) {
  absl::StatusOr<git_oid> oid = ParseOid(commit);
  if (!oid.ok()) return oid.status();
  git_buf signature = GIT_BUF_INIT;
  git_buf signed_data = GIT_BUF_INIT;
  const int rc = git_commit_extract_signature(&signature, &signed_data, repo_, &*oid, nullptr);
  if (rc == GIT_ENOTFOUND && git_error_last() != nullptr &&
      git_error_last()->klass == GIT_ERROR_OBJECT) {
    return absl::NotFoundError(absl::StrCat("commit ", commit.substr(0, 12), " is not signed"));
  }
  if (rc != 0) return GitError("signature of " + commit.substr(0, 12), rc);
  std::pair<std::string, std::string> out{std::string(signature.ptr, signature.size),
                                          std::string(signed_data.ptr, signed_data.size)};
  git_buf_dispose(&signature);
  git_buf_dispose(&signed_data);
  if (!out.first.empty() && out.first.back() != '\n') out.first.push_back('\n');
  return out;
}

std::string Libgit2Repository::Diff(const std::string& path, const std::string& before,
                                    const std::string& after) {
  Patch patch;
  git_diff_options opts = GIT_DIFF_OPTIONS_INIT;
  // libgit2 adds the "a/" and "b/" prefixes of the headers itself.
  if (git_patch_from_buffers(patch.out(), before.data(), before.size(), path.c_str(), after.data(),
                             after.size(), path.c_str(), &opts) != 0) {
    return "";
  }
  git_buf buf = GIT_BUF_INIT;
  if (git_patch_to_buf(&buf, patch.get()) != 0) return "";
  std::string out(buf.ptr, buf.size);
  git_buf_dispose(&buf);
  return out;
}

}  // namespace ferry::git_writer
