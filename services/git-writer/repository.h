// The config repository as git-writer sees it: one local mirror of one branch upstream.
// An interface because it is where git-writer touches the outside world; the
// implementation is Libgit2Repository.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::git_writer {

// Leader election's fence (kube::LeaderElector::WriteValidity): how long this instance may
// still write, or Unavailable naming this instance and the leader when it may not (a
// standby, or a leader past its renew deadline). Every commit and push asks it first, and a
// push must be over within the time it gives. Null: no election, always allowed.
using WritePermit = std::function<absl::StatusOr<absl::Duration>()>;

// A file of the repository at some revision.
struct RepoFile {
  std::string path;  // relative to the repository root; UTF-8 (escaped when `error` is set)
  std::string content;
  // Set when the file is not served: its name is not UTF-8 or holds control characters
  // (`path` is then names::Escape() of the name), or it is over the file size limit.
  // `content` is empty. A load error of that file alone.
  std::string error;
  // The blob's id (hex) when the content is served: the same id, the same content.
  std::string blob;
};

// Who made a commit.
struct Signature {
  std::string name;
  std::string email;
};

// A commit to create on top of `parent`.
struct CommitSpec {
  std::string parent;                        // full commit id
  std::map<std::string, std::string> files;  // path -> new content (existing files only)
  std::string message;
  Signature author;
  Signature committer;
};

// A commit as a push branch's history lists it (Repository::CommitsBetween).
struct BranchCommit {
  std::string id;  // full commit id
  Signature committer;
  std::string subject;  // first line of the message
  size_t parents = 1;
  std::string job;  // the value of its "Ferry-Job" trailer as git reads it ("": none)
};

// What Repository::Replay made.
struct ReplayResult {
  std::string commit;     // the new commit (or `onto`); empty when `conflict`
  bool conflict = false;  // the change does not apply on `onto`
  std::string reason;     // why, when `conflict` ("commit abc conflicts with def in a.yaml")
};

// Housekeeping of a mirror that takes long on a big repository (folding its packs: seconds
// at 10,000 workloads), in two parts so that no write waits for the long one.
class Maintenance {
 public:
  virtual ~Maintenance() = default;
  // The long part. It uses nothing the Repository's methods use: it may run on any thread
  // while they are called. A failure leaves the mirror as it was.
  virtual absl::Status Run() = 0;
  // Puts what Run made in place; quick. Called once, after a Run that succeeded, while the
  // Repository lives, serialized with its methods as they are with each other. A
  // Maintenance dropped without it leaves the mirror as it was, but for what Run wrote
  // beside it (a pack of copies of objects the mirror has, folded by a later fold).
  virtual absl::Status Finish() = 0;
  // Asks a Run in progress, from another thread, to end soon: it then fails (Cancelled)
  // and leaves the mirror as a failed Run does. For a service shutting down. The default
  // does nothing (a Run that cannot be cancelled ends in its own time).
  virtual void Cancel() {}
};

// A git mirror. Methods of one instance are not safe to call concurrently; callers
// serialize them.
class Repository {
 public:
  virtual ~Repository() = default;

  // The housekeeping due now, or null when none is. Asked after each of Ferry's writes
  // (Writer::Apply, SetSyncMarker); asked again only once the Maintenance it returned before
  // is finished or dropped.
  virtual std::unique_ptr<Maintenance> DueMaintenance() { return nullptr; }

  // Fetches the branch, the job notes and the sync tag from upstream. Returns the upstream
  // head. Unavailable when upstream cannot be reached (the mirror keeps what it had),
  // NotFound when the branch does not exist upstream, FailedPrecondition for an unknown or
  // changed ssh host key.
  virtual absl::StatusOr<std::string> Fetch() = 0;

  // The upstream head as of the last fetch or push. NotFound before the first fetch.
  virtual absl::StatusOr<std::string> Head() = 0;

  // The commit time of `revision`.
  virtual absl::StatusOr<absl::Time> CommitTime(const std::string& revision) = 0;

  // Every *.yaml / *.yml file, and every file named exactly `Kustomization` (kustomize's
  // name without an extension), under `paths` ("" or "." for the whole tree) at `revision`,
  // sorted by path, read from the object database. Helm chart folders (Chart.yaml with
  // values.yaml) and symlinks are skipped. A file whose name is not UTF-8 (or holds control
  // characters) or whose size is over the file limit comes back with `error` set and no
  // content. NotFound for an unknown revision or path, InvalidArgument for a path that
  // leaves the tree, is not UTF-8 or names a symlink, ResourceExhausted when the files
  // together pass the tree limit.
  virtual absl::StatusOr<std::vector<RepoFile>> ReadManifests(
      const std::string& revision, const std::vector<std::string>& paths) = 0;

  // The id (hex) of the folder `path` ("" or "." = the root) at `revision`: the same id, the
  // same files below it. NotFound when the revision or the folder does not exist (or `path`
  // names a file); InvalidArgument for a path that leaves the tree (ValidatePath's rules).
  virtual absl::StatusOr<std::string> TreeId(const std::string& revision,
                                             const std::string& path) = 0;

  // Writes the regular files (modes 100644 and 100755) of the folder `path` at `revision`
  // into `dest`/`path` (folders created, files 0644), so an external tool can read that part
  // of the revision. Symlinks and submodules are skipped (never created). A name that is
  // not UTF-8, holds control characters or a '/', or is "." / ".." fails the export
  // (InvalidArgument naming it, escaped); ResourceExhausted when the files together pass the
  // tree limit (limits::kManifestTreeBytes). `dest` must exist (FailedPrecondition
  // otherwise); nothing outside it is written: symlinks found there are never followed and
  // a file already there is replaced, not written through (so exporting a folder twice, or
  // folders that nest, is fine). Stops at the first error, leaving what it wrote. Same
  // errors as TreeId otherwise.
  virtual absl::Status ExportTree(const std::string& revision, const std::string& path,
                                  const std::string& dest) = 0;

  // Creates a commit (no ref moves). Returns its id. On failure nothing of it is kept.
  virtual absl::StatusOr<std::string> CreateCommit(const CommitSpec& spec) = 0;

  // Pushes `commit` to the branch upstream as a fast-forward. Aborted when upstream moved
  // (non-fast-forward); Unavailable when it cannot be reached. Every write (PushBranch,
  // AddNote, SetTag) that fails leaves the mirror as it was: objects created since the
  // last write are dropped and no local ref moves.
  virtual absl::Status PushBranch(const std::string& commit) = 0;

  // PushBranch with `text` as the note of `commit` (AddNote) in the same push when the
  // repository can: one pack and one connection instead of two. The note fails alone: when
  // it cannot be written, or upstream takes the commit but refuses the notes ref, the result
  // is that of the commit's push and the note's error goes to `*note_error` (left as it was
  // otherwise). On a file:// upstream the note never lands without its commit, and a notes
  // ref that moved upstream since the fetch is refused alone; over libgit2's network
  // transports the server decides ref by ref, and a moved notes ref fails the whole push
  // (Aborted: retried on a new fetch). The default pushes the commit, then adds the note.
  virtual absl::Status PushBranchWithNote(const std::string& commit, const std::string& text,
                                          const Signature& who, std::string* note_error);

  // Attaches `text` as a note to `commit` under the notes ref and pushes the notes ref.
  virtual absl::Status AddNote(const std::string& commit, const std::string& text,
                               const Signature& who) = 0;

  // The note of `commit`, NotFound when it has none.
  virtual absl::StatusOr<std::string> ReadNote(const std::string& commit) = 0;

  // Notes on the first-parent history of the head, newest first, at most `limit`.
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListNotes(int limit) = 0;

  // Moves the annotated tag `name` to `commit` and pushes it.
  virtual absl::Status SetTag(const std::string& name, const std::string& commit,
                              const std::string& message, const Signature& who) = 0;

  // The commit the tag `name` points to; NotFound when there is none.
  virtual absl::StatusOr<std::string> TagTarget(const std::string& name) = 0;

  // The signature of `commit` (its "gpgsig" header, armored, ending with a newline) and the
  // bytes it signs (the commit without that header). NotFound when the commit is unsigned.
  virtual absl::StatusOr<std::pair<std::string, std::string>> CommitSignature(
      const std::string& commit) = 0;

  // Unified diff of one file's change.
  virtual std::string Diff(const std::string& path, const std::string& before,
                           const std::string& after) = 0;

  // Release branches (--git_push_branch). Not pure: only Libgit2Repository has them (the
  // others answer Unimplemented).

  // Fetches refs/heads/`branch` from upstream (the source branch is Fetch's) and returns its
  // head; NotFound when upstream has no such branch, InvalidArgument for a name git does not
  // accept (also PushTo). Same errors as Fetch otherwise.
  virtual absl::StatusOr<std::string> FetchBranch(const std::string& branch);

  // The commits reachable from `tip` and not from `base` (git log base..tip), oldest first.
  // ResourceExhausted when there are more than `limit`.
  virtual absl::StatusOr<std::vector<BranchCommit>> CommitsBetween(const std::string& base,
                                                                   const std::string& tip,
                                                                   size_t limit);

  // True when `ancestor` is `commit` or one of its ancestors.
  virtual absl::StatusOr<bool> IsAncestor(const std::string& ancestor, const std::string& commit);

  // Re-applies the change `commit` makes to its (first) parent on top of `onto`, as
  // git cherry-pick does (a three-way merge of the trees), as a new commit with `commit`'s
  // author and message and `committer` (no ref moves; signed when commits are). Its
  // `commit` is `onto` itself when `onto` already holds the change (nothing left to apply).
  // A change that does not apply (a conflict, naming the files, or a merge commit) is a
  // result, `conflict` set, not an error: every error (a signing failure above all, whatever
  // its code) stops the write. What a failed replay made is not kept; the commits made
  // before it (CreateCommit, Replay) are.
  virtual absl::StatusOr<ReplayResult> Replay(const std::string& commit, const std::string& onto,
                                              const Signature& committer);

  // Moves refs/heads/`branch` upstream to `commit` (fast-forward or not: a rebuilt branch)
  // if, and only if, upstream still holds `expected` there ("": no such branch; created):
  // compare-and-set, checked on the push's own connection, whose ref advertisement git's
  // receive-pack checks again when it updates the ref. Aborted when upstream holds anything
  // else or rejects the push, Unavailable when it cannot be reached; a failed push leaves
  // the mirror as it was (PushBranch).
  virtual absl::Status PushTo(const std::string& branch, const std::string& commit,
                              const std::string& expected);

  // Drops the mirror's refs for `branch`: the push source PushTo made (refs/heads/) and the
  // copy of upstream's (refs/remotes/origin/, FetchBranch's). Both are made again by the
  // next FetchBranch and PushTo, so a write to a branch per job drops them when it is done
  // and such branches do not pile up refs in the mirror. Never the source branch; a ref
  // that cannot be deleted stays (harmless: the next write replaces it).
  virtual void ForgetBranch(const std::string& branch);
};

}  // namespace ferry::git_writer
