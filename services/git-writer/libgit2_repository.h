// Repository over libgit2: a bare mirror in the state directory, fetched from and pushed to
// `url` (file://, local path, ssh:// or scp-like git@host:path with a key file and
// known_hosts, https:// with credentials from a file).
#pragma once

#include <git2/oid.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/limits/limits.h"
#include "services/git-writer/repository.h"
#include "services/git-writer/signer.h"

struct git_commit;
struct git_remote;
struct git_repository;
struct git_signature;
struct git_tree;
struct git_odb_backend;
struct git_packbuilder;

namespace ferry::git_writer {

struct Libgit2Options {
  std::string url;
  std::string branch = "main";
  // Where the bare mirror lives (created when missing).
  std::string mirror_dir;
  // Notes ref for job records.
  std::string notes_ref = "refs/notes/ferry";
  // Tags fetched along with the branch (the sync marker).
  std::vector<std::string> tags;
  // ssh: private key file (OpenSSH or PEM; ed25519 or RSA) and known_hosts file. A host
  // missing from known_hosts, or with another key, is refused.
  std::string ssh_key_path;
  std::string known_hosts_path;
  // https: a file holding "user:password" or a token on its first line.
  std::string https_credentials_path;
  // https: CA bundle (PEM) to trust instead of the system's; for private git servers.
  std::string ca_path;
  // ReadManifests: a bigger file is a load error of its own (limits::kManifestFileBytes);
  // all files of one read together (limits::kManifestTreeBytes), and all files of one
  // ExportTree.
  uint64_t max_file_bytes = limits::kManifestFileBytes.default_value;
  uint64_t max_tree_bytes = limits::kManifestTreeBytes.default_value;
  // Folding the packs (every kPacksBeforeRepack writes) now and then merges all of them,
  // whose memory grows with the repo. With a program here (the git-writer binary itself,
  // which takes --repack_mirror=<dir>) that walk runs in a child process, so its peak never
  // becomes the service's resident heap. Empty: in this process.
  std::string repack_program;
  // --git_signing_key_path: when set, every object Ferry makes is signed with it: commits
  // (a "gpgsig" header), notes commits and the sync tag (the signature after its message),
  // as git does. A signature that cannot be made fails that write and leaves the repo as it
  // was. Null: nothing is signed.
  std::shared_ptr<Signer> signer;
  // Leader election (--leader_elect): asked right before every push (branch, push branch,
  // notes, sync tag); a push it refuses is not started (its error, Unavailable, is
  // returned), and a push still running when the time it gave is up is aborted at the next
  // point libgit2 calls back (before the pack is sent, while it is built and sent, while the
  // remote reports progress): Unavailable. Null: pushes are not fenced.
  //
  // The fence is client-side, so it has a limit: a push whose last byte was sent before the
  // deadline may be applied by the remote after it, and a push the remote has received
  // cannot be recalled (so Unavailable from an aborted push does not prove that nothing
  // landed: a retry of the same compare-and-set edit finds it made, ABORTED or no change);
  // a call blocked in the network between two callbacks is not interrupted either. What makes that
  // safe is that every push is compare-and-set (fast-forward only, or the leased ref of PushTo): a
  // paused old leader that wakes up and pushes on top of a head that moved is refused, so no commit
  // is lost, and its commit lands only when it is the newest, just as if it had been made by the
  // new leader.
  WritePermit push_permit;
};

// How many of a mirror's packs, sorted by object count (smallest first), one fold merges:
// all up to the highest pack holding fewer than twice the objects of the one below it, then
// each next one while it holds fewer than twice the objects merged so far; 1 (nothing to
// do) when the packs already grow geometrically. Afterwards each pack has at least twice
// the objects of all smaller ones together, so a fold's cost follows what was written
// since the last one.
size_t PacksToFold(const std::vector<uint32_t>& sorted_sizes);

// An object id's raw bytes, as a key of ordered sets (no allocation per id).
using RawOid = std::array<unsigned char, GIT_OID_RAWSZ>;

// A fold of the mirror's packs: the pack it wrote and the packs that pack replaces (names
// "pack-<hex>"), as the repack child tells its parent.
struct FoldResult {
  // The new pack holds only what the refs reached, not every object of `replaced`.
  bool reachable_only = false;
  std::string new_pack;  // empty: nothing was worth folding
  // `new_pack` was there before the fold (its objects are exactly those of a pack it found).
  bool new_pack_existed = false;
  std::vector<std::string> replaced;  // never `new_pack`
  // With `reachable_only`: RootsDigest of the refs the fold started from. The fold is put in
  // place only if the mirror's refs then have the same digest (a digest rather than the refs,
  // so that the child's answer stays small whatever the number of refs).
  std::string roots_digest;
  // One line "reachable" or "all", then "new NAME" (or "existing NAME"), "replaces NAME" and
  // "roots DIGEST" lines.
  std::string Serialize() const;
  // Internal for text that is not what Serialize writes, that names a pack twice, or that
  // gives roots to a fold of every object.
  static absl::StatusOr<FoldResult> Parse(absl::string_view text);
};

// A digest of a mirror's refs that name an object (full name -> id, in hex): SHA-256 of
// their "NAME ID\n" lines in name order, in hex. Equal digests: the same refs naming the same
// objects.
std::string RootsDigest(const std::map<std::string, std::string>& refs);

class Libgit2Repository final : public Repository {
 public:
  // Opens the mirror, creating it (bare, with remote "origin") when missing, and points
  // origin at `options.url`. A mirror that cannot be opened is moved aside and recreated.
  static absl::StatusOr<std::unique_ptr<Libgit2Repository>> Open(const Libgit2Options& options);
  ~Libgit2Repository() override;

  absl::StatusOr<std::string> Fetch() override;
  absl::StatusOr<std::string> Head() override;
  absl::StatusOr<absl::Time> CommitTime(const std::string& revision) override;
  absl::StatusOr<std::vector<RepoFile>> ReadManifests(
      const std::string& revision, const std::vector<std::string>& paths) override;
  absl::StatusOr<std::string> TreeId(const std::string& revision, const std::string& path) override;
  absl::Status ExportTree(const std::string& revision, const std::string& path,
                          const std::string& dest) override;
  absl::StatusOr<std::string> CreateCommit(const CommitSpec& spec) override;
  absl::Status PushBranch(const std::string& commit) override;
  absl::Status PushBranchWithNote(const std::string& commit, const std::string& text,
                                  const Signature& who, std::string* note_error) override;
  absl::Status AddNote(const std::string& commit, const std::string& text,
                       const Signature& who) override;
  absl::StatusOr<std::string> ReadNote(const std::string& commit) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListNotes(int limit) override;
  absl::Status SetTag(const std::string& name, const std::string& commit,
                      const std::string& message, const Signature& who) override;
  absl::StatusOr<std::string> TagTarget(const std::string& name) override;
  absl::StatusOr<std::pair<std::string, std::string>> CommitSignature(
      const std::string& commit) override;
  std::string Diff(const std::string& path, const std::string& before,
                   const std::string& after) override;
  absl::StatusOr<std::string> FetchBranch(const std::string& branch) override;
  absl::StatusOr<std::vector<BranchCommit>> CommitsBetween(const std::string& base,
                                                           const std::string& tip,
                                                           size_t limit) override;
  absl::StatusOr<bool> IsAncestor(const std::string& ancestor, const std::string& commit) override;
  absl::StatusOr<ReplayResult> Replay(const std::string& commit, const std::string& onto,
                                      const Signature& committer) override;
  absl::Status PushTo(const std::string& branch, const std::string& commit,
                      const std::string& expected) override;
  void ForgetBranch(const std::string& branch) override;

  // Checks a path given in a request: relative, no "..", inside the tree, UTF-8 without
  // control characters (names::ValidatePath).
  static absl::Status ValidatePath(const std::string& path);
  // Checks a branch name (without "refs/heads/"): a ref name git accepts, not starting with
  // '-', at most kMaxBranchNameBytes. InvalidArgument "\"name\" is not a valid branch name".
  // The one rule of --git_push_branch (config) and of the branches Ferry fetches and pushes.
  static absl::Status ValidateBranchName(const std::string& branch);
  static constexpr size_t kMaxBranchNameBytes = 200;

  // Writes the pack that folds those of the bare repository in `mirror_dir` (PacksToFold:
  // the small ones into one; all of them into a pack of what the refs reach when the
  // progression calls for every pack, unless `keep_unreachable`) and returns
  // FoldResult::Serialize() of it. Removes nothing: the service does (DueMaintenance's
  // Finish). What a git-writer started with --repack_mirror does (see
  // Libgit2Options::repack_program). With `keep_unreachable` it is safe while the service
  // writes to the mirror; without it too, for a fold of what the refs reach is put in place
  // only when no pack came and no ref moved since it read them (FinishFold).
  static absl::StatusOr<std::string> RepackMirror(const std::string& mirror_dir,
                                                  bool keep_unreachable);

  // Housekeeping: the fold of the mirror's packs once kPacksBeforeRepack writes were made
  // (after a fold that failed or was dropped, kPacksBeforeRepack more).
  std::unique_ptr<Maintenance> DueMaintenance() override;

 private:
  Libgit2Repository(Libgit2Options options, git_repository* repo);
  // `rejected` (may be null) receives the refs upstream refused when the push is Aborted.
  absl::Status Push(const std::vector<std::string>& refspecs, std::set<std::string>* rejected);
  // PushBranch's work, with the notes ref in the same push when `with_notes`: then a refusal
  // of the notes ref alone is no failure but `*note_error`.
  absl::Status PushCommit(const git_oid& oid, bool with_notes, std::string* note_error);
  // Pushes `ref` (forced) if upstream's `ref` is `expected` ("": missing) on the push's own
  // connection; Aborted otherwise (PushTo).
  absl::Status LeasedPush(const std::string& ref, const std::string& expected);
  // Writes the objects created in memory since the last flush as one packfile. Success or
  // not, the in-memory objects are gone afterwards.
  absl::Status FlushObjects();
  absl::Status WritePack(const std::vector<git_oid>& roots);
  // Adds `id` and what it refers to to `pack`, as far as they are in memory only, and their
  // ids to `ids`.
  absl::Status AddNewObjects(git_packbuilder* pack, const git_oid& id, std::set<RawOid>& ids);
  // Drops the objects created in memory since the last flush (a write that failed).
  void DiscardObjects();
  // Looks up the remote and adds the in-memory object backend to a freshly opened repo_.
  absl::Status AttachHandles();
  // DueMaintenance's fold, and the end of it: the packs `fold` replaces removed and a fresh
  // object database opened, `writes` taken off packs_written_. A fold of what the refs
  // reach is set aside instead when the mirror was written to or a ref moved meanwhile
  // (keep_unreachable_).
  class PackFold;
  absl::Status FinishFold(const FoldResult& fold, int writes, int64_t run_ms);
  static constexpr int kPacksBeforeRepack = 32;
  static constexpr absl::Duration kRepackTimeout = absl::Minutes(10);
  // Packs added to the mirror since the last fold: one per write of Ferry's (FlushObjects)
  // and one per fetch that received objects (CountFetchedPack, given how many it received).
  int packs_written_ = 0;
  void CountFetchedPack(unsigned int received_objects);
  // The next fold keeps every object: the last one of what the refs reach was set aside,
  // failed or is not finished yet.
  bool keep_unreachable_ = false;
  // The last fold handed out has not been finished (FinishFold without an error), and
  // packs_written_ then.
  bool fold_unfinished_ = false;
  int fold_handed_out_at_ = 0;
  absl::StatusOr<std::string> CreateCommitObjects(const CommitSpec& spec);
  absl::StatusOr<ReplayResult> ReplayObjects(const std::string& commit, const std::string& onto,
                                             const Signature& committer);
  // Writes a commit object (no ref moves), signed when options_.signer is set.
  absl::StatusOr<git_oid> WriteCommit(const git_signature* author, const git_signature* committer,
                                      const char* message, const git_tree* tree,
                                      size_t parent_count, const git_commit* parents[],
                                      absl::string_view what = "commit");
  // The notes commit adding `text` as the note of `target` on top of the notes ref (a
  // signed copy of what libgit2 builds, so the tree keeps the fanout the notes tree has),
  // and moves the notes ref to it if it still is where it was read (Aborted otherwise).
  // WriteNote of `text` by `who`: InvalidArgument for a NUL byte, or the signature's error.
  absl::Status WriteNoteBy(const git_oid& target, const std::string& text, const Signature& who);
  absl::Status WriteNote(const git_oid& target, const std::string& text, const git_signature* who);
  // Writes the annotated tag `name` -> `target` with `message` (signed when options_.signer
  // is set) and moves refs/tags/<name> to it.
  absl::StatusOr<git_oid> WriteTag(const std::string& name, const git_oid& target,
                                   const std::string& message, const git_signature* who);

  Libgit2Options options_;
  git_repository* repo_;
  git_remote* remote_ = nullptr;  // "origin", looked up once
  // New objects (blobs, trees, commits, notes, tags) are created in memory and written as
  // one packfile before a push, instead of one loose file each.
  git_odb_backend* mempack_ = nullptr;  // owned by the repository's object database
  // What was made since the last flush (commits, notes commits, tags): the pack holds them
  // and the new objects below them.
  std::vector<git_oid> new_roots_;
  // The pack the last flush wrote into the mirror and its objects' raw ids, kept until the
  // push that follows: when it holds all that upstream lacks, the push sends it as it is
  // rather than building the same pack again.
  std::string last_pack_;
  std::set<RawOid> last_pack_ids_;
};

}  // namespace ferry::git_writer
