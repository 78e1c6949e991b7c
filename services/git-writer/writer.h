// git-writer's domain logic: the mirror's current head, manifests and workload index per
// revision, and edits applied as one commit each, one request at a time, retried on top of
// a moved upstream with compare-and-set.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/limits/limits.h"
#include "lib/manifest/editor.h"
#include "lib/manifest/policy.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"
#include "services/git-writer/commit_template.h"
#include "services/git-writer/kustomize_index.h"
#include "services/git-writer/repository.h"
#include "services/git-writer/signer.h"

namespace ferry::git_writer {

// The field of WriterOptions::push_branch that becomes the job id.
inline constexpr char kJobField[] = "{{job}}";

struct WriterOptions {
  // Paths inside the repository holding manifests ("" = whole tree).
  std::vector<std::string> paths;
  // Committer of every commit; also the author when a request names none.
  Signature committer{"Ferry", "ferry@localhost"};
  // Appended to every commit message when set (e.g. "[ci skip]").
  std::string message_suffix;
  // --git_commit_template: renders the message of every commit of edits (null: the
  // request's message, else a summary of the edits). Its output is cut to fit
  // max_commit_message_bytes with the suffix and the Ferry-Job trailer.
  std::shared_ptr<const CommitTemplate> commit_template;
  uint64_t max_commit_message_bytes = limits::kCommitMessageBytes.default_value;
  // --max_manifest_file_bytes (as Libgit2Options::max_file_bytes): an edit that would grow a
  // file past it fails (ResourceExhausted) and leaves the file as it was.
  uint64_t max_file_bytes = limits::kManifestFileBytes.default_value;
  // --git_push_branch: when set, commits of edits are made on top of the source branch (the
  // one fetched, indexed and served) but pushed to this branch instead, for a review to
  // merge: created when missing; fast-forwarded while it holds only Ferry's earlier commits
  // on top of the source branch; rebuilt on the source branch when that moved (Ferry's own
  // pending commits re-applied, those that no longer apply dropped and reported). Ferry's
  // commits are those IsFerrys accepts. A branch holding any other commit is
  // refused (FailedPrecondition) unless `push_branch_force`, which rebuilds it without them.
  // The one field it may hold, kJobField ("{{job}}"), becomes the request's job id: one
  // branch per job (a request without a job id is refused).
  std::string push_branch;
  bool push_branch_force = false;
  // Writes answer FailedPrecondition.
  bool readonly = false;
  // How many times a rejected push is retried on top of the new upstream head.
  int push_retries = 5;
  manifest::LoadOptions load;
  // How kustomize roots are built.
  KustomizeOptions kustomize;
  // --git_verify_signatures: only revisions whose commit is signed by an allowed key are
  // served (head, index, manifests) or built upon; an upstream head that is not stays
  // unserved (HeadInfo::verify_error) and the last verified one is served. Null: no check.
  std::shared_ptr<Verifier> verifier;
  // Checks signatures by Ferry's own signing key only (SshVerifier::ForKey of
  // --git_signing_key_path's public half); null when commits are not signed (or not with
  // SSH). Decides which commits on a push branch are Ferry's (Writer::IsFerrys).
  std::shared_ptr<Verifier> own_signatures;
  // --leader_elect: only the leader writes. Asked when a write arrives (a standby answers
  // with the permit's Unavailable, naming the leader, before queueing it), again right before
  // each commit is made and before each push (the repository bounds the push by it too:
  // Libgit2Options::push_permit). Dry runs, reads and fetches never ask. Null: always allowed.
  WritePermit write_permit;
};

// The last known state of the branch.
struct HeadInfo {
  std::string revision;  // empty before the first successful fetch
  absl::Time commit_time;
  absl::Time last_fetch;    // last successful fetch (InfinitePast() when never)
  std::string fetch_error;  // error of the last fetch, empty when it succeeded
  // Why upstream's head is not served (WriterOptions::verifier); empty when it is.
  std::string verify_error;
};

// A file's text as the index keeps it: immutable, shared by the indexes of the revisions
// where the file is the same (most of a repo's text, most of an index's memory).
using SharedText = std::shared_ptr<const std::string>;

// The parsed manifests of one revision. The index of a revision made from another's shares
// the texts and containers of what did not change with it.
struct Index {
  std::string revision;
  std::map<std::string, SharedText> files;  // path -> content (never null)
  // path -> why the file is not served (too big, a name that is not UTF-8): files under the
  // configured paths that are not in `files`.
  std::map<std::string, std::string> unreadable;
  manifest::LoadResult loaded;  // resources sorted by id, and load errors
  // path -> blob id of the files loaded from the repository: a file whose blob is the same
  // in the next revision's tree is not parsed again (missing: parse it).
  std::map<std::string, std::string> blobs;
  // Some id was defined twice: `loaded` lacks what FinishLoad dropped, so what a file
  // defines cannot be read back from it, and the next index parses every file.
  bool had_duplicates = false;
  // The containers of each workload in `loaded`, by ContainersKey, found when its file was
  // parsed. The index keeps no parsed documents (`loaded`'s resources have none: most of
  // git-writer's memory at 10,000 workloads); an edit parses the document it changes.
  std::map<std::string, SharedContainers> containers;  // never null
  // ListWorkloads' entry for each of `loaded.resources`, serialized (empty for other kinds
  // and for workloads it skips), made once on first use (GitWriterService): an index answers
  // many reads, and making each entry again for each cost most of git-writer's time under
  // load. Kept as bytes: 10,000 entries held as messages took 18 MB per index, as bytes 3 MB,
  // and parsing a page of them back costs far less than making them. An index carried over
  // from a base that had them starts with the base's entries of the files that did not
  // change (IndexAfterCommit); the first use makes only the empty ones.
  mutable absl::once_flag answers_once;
  mutable std::vector<std::string> answers;
  // Set once `answers` is made: a request naming a few workloads reads them then, and makes
  // only its own before (a listing of the revision may never come).
  mutable std::atomic<bool> answers_made{false};
  // Kustomize: the layout of `files` (null when the tree has no kustomization), and each
  // root as built, by its kustomization file. Files the layout uses are in `files` but
  // none of their resources are in `loaded` on their own; a root's rendered objects are, with
  // source.path = the root's file.
  std::shared_ptr<const kustomize::Layout> layout;
  std::map<std::string, std::shared_ptr<const RenderedRoot>> roots;

  // The root that rendered `r`, or null when `r` comes from a plain file.
  const RenderedRoot* RootOf(const manifest::Resource& r) const;
  // The resource of `loaded` with id `id`, or null: a binary search (FinishLoad sorts by id
  // and keeps one resource per id).
  const manifest::Resource* Find(absl::string_view id) const;
  // What the plain file `path` defines, read back from `loaded` (indexes into it, made once
  // for all paths on first use); null when it cannot be read back: some id was defined twice
  // (had_duplicates), or kustomize uses the file. An edit then parses the file again.
  const std::vector<size_t>* ResourcesIn(const std::string& path) const;

  // ResourcesIn's view: path -> indexes into `loaded.resources`.
  using ByPath = std::map<std::string, std::vector<size_t>>;
  // The view, made on first use (never null). An index carried over from one whose
  // resources all kept their places starts with that one's (the next release's edits then
  // do not make it again).
  std::shared_ptr<const ByPath> PathView() const;
  mutable absl::once_flag by_path_once;
  mutable std::shared_ptr<const ByPath> by_path;
};

// The key of `r` in Index::containers: its file, document and id.
std::string ContainersKey(const manifest::Resource& r);

// One compare-and-set edit of a workload.
struct EditRequest {
  std::string workload;
  std::optional<manifest::ImageChange> image;  // container, to, from
  std::optional<manifest::PolicyUpdate> policy;
};

struct EditOutcome {
  // OK, NotFound, Aborted (CAS), InvalidArgument, FailedPrecondition, ResourceExhausted (the
  // file would grow past WriterOptions::max_file_bytes)
  absl::Status status;
  std::string path;  // file changed (or that would change)
  bool changed = false;
  // Kustomize roots (their files) whose build the changed file changes, when it is read by
  // a kustomization; sorted.
  std::vector<std::string> roots;
};

struct ApplyRequest {
  std::vector<EditRequest> edits;
  std::string message;              // commit message; a summary of the edits when empty
  std::optional<Signature> author;  // requesting user
  bool dry_run = false;
  // Commit every edit or none: when any edit fails (checked on every attempt, also after a
  // rebase), Apply fails naming the first failed edit (ABORTED when a compare-and-set lost,
  // else that edit's code) and commits nothing.
  bool all_or_nothing = false;
  // ApplyOutcome::diff stays empty.
  bool omit_diff = false;
  // Job record attached as a git note (empty = none). When it is a ferry.v1.Job in JSON and
  // the commit goes to the push branch, the note names that branch (Job.pushed_branch).
  std::string note;
  // The job the commit is for: its id (the message ends with the trailer "Ferry-Job: <id>"
  // when set), its kind ("release", "automated_release", "revert", "policy"), and the
  // cause's user and message, for the commit template.
  std::string job_id;
  std::string job_kind;
  std::string user;
  std::string cause_message;
};

struct ApplyOutcome {
  std::string revision;  // commit made; empty for dry runs and no-ops
  bool no_changes = false;
  std::vector<EditOutcome> edits;  // in request order
  std::string diff;
  int retries = 0;
  // WriterOptions::push_branch: the branch that holds `revision` (empty: the source branch),
  // and Ferry's earlier commits it no longer holds, one line each ("abc123def456 (subject):
  // why"): those that conflict with the source branch or with this change, or (with
  // push_branch_force) someone else's commits.
  std::string pushed_branch;
  std::vector<std::string> dropped;
};

// Metric families of git-writer, registered in one registry.
struct WriterMetrics {
  explicit WriterMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Histogram>& fetch_seconds;  // {outcome}
  prometheus::Family<prometheus::Histogram>& push_seconds;   // {outcome}
  prometheus::Gauge& queue_length;
  prometheus::Histogram& queue_wait_seconds;
  prometheus::Counter& commits;
  prometheus::Counter& push_conflicts;
  prometheus::Gauge& ready;
  prometheus::Gauge& last_fetch;
  prometheus::Family<prometheus::Counter>& index_files;  // {source}: parsed, reused
  // Kustomize roots of the revisions indexed and of edits verified, by outcome: built,
  // cached (unchanged since a build), failed.
  prometheus::Family<prometheus::Counter>& kustomize_roots;
  prometheus::Histogram& kustomize_build_seconds;
  // Signature checks of revisions (--git_verify_signatures), by outcome: verified,
  // rejected (unsigned or not by an allowed key), error (the check could not run).
  prometheus::Family<prometheus::Counter>& signature_checks;
  // 1 while upstream's head is served, 0 while it is held back for its signature.
  prometheus::Gauge& head_verified;
  // --git_push_branch: writes by outcome (created, fast_forward, rebuilt, refused), and the
  // commits rebuilds left out.
  prometheus::Family<prometheus::Counter>& push_branch_writes;
  prometheus::Counter& push_branch_dropped;
};

// Thread-safe. Repository calls are serialized internally.
class Writer {
 public:
  Writer(Repository& repo, WriterOptions options, WriterMetrics& metrics);
  ~Writer();

  // Fetches upstream now. On failure the last known head stays and the error is recorded
  // (Unavailable etc. returned). Starts the housekeeping a fetch made due (fetched packs
  // count towards a fold), as a write does.
  absl::StatusOr<HeadInfo> Refresh();

  // The last known head (no network).
  HeadInfo CurrentHead() const;

  // The head to serve: the last known one when there is one. Before the first revision, a
  // fetch in progress (the first one can take seconds on a big repository) is waited for
  // until `deadline` rather than followed by a fetch of its own: Unavailable when it is still
  // running then or when it failed (with its error), FailedPrecondition when upstream's head
  // it fetched is not verified. With no fetch in progress, fetches now (Refresh's errors).
  // `cancelled`, when set, is asked every kCancelCheck while waiting: true ends the wait with
  // Cancelled. Every error message starts with "no revision yet".
  absl::StatusOr<HeadInfo> ServedHead(absl::Time deadline,
                                      const std::function<bool()>& cancelled = {})
      ABSL_LOCKS_EXCLUDED(head_mu_, repo_mu_);
  static constexpr absl::Duration kCancelCheck = absl::Milliseconds(250);

  // Waits until the head differs from `known` or `timeout` passes; returns the head.
  HeadInfo WaitForHeadChange(const std::string& known, absl::Duration timeout) const;

  // Manifest files under `paths` (configured paths when empty) at `revision` (current head
  // when empty).
  absl::StatusOr<std::vector<RepoFile>> ReadManifests(const std::string& revision,
                                                      const std::vector<std::string>& paths);

  // One file as the configured paths are served: a plain file, or a kustomize root as built
  // (at the path of its kustomization). Points into `ServedManifests::index`.
  struct ServedFile {
    const std::string* path;
    const std::string* content;  // empty when `error` is set
    std::string error;           // why it is not served
    // Served the same at ManifestsAt's `known_revision`: the reader has it already.
    bool unchanged = false;
  };
  struct ServedManifests {
    std::shared_ptr<const Index> index;  // holds what `files` point to
    std::vector<ServedFile> files;       // by path
  };
  // ReadManifests of the configured paths, from the index of `revision` (current head when
  // empty) rather than from the repository: no copy of the files, no wait for a commit.
  // `known_revision` (optional): the files served the same at that revision are marked
  // `unchanged`, when its index is at hand (none is built for it).
  absl::StatusOr<ServedManifests> ManifestsAt(const std::string& revision,
                                              const std::string& known_revision = "");

  // The parsed index of `revision` (current head when empty); cached per revision.
  absl::StatusOr<std::shared_ptr<const Index>> IndexAt(const std::string& revision);

  // Applies the edits as one commit and pushes it (see ApplyOutcome). Requests run one at a
  // time. FailedPrecondition in read-only mode or when the branch is unknown; Unavailable
  // when upstream cannot be reached or this instance may not write (WriterOptions::
  // write_permit: not the leader, or its leadership ran out before the push was over);
  // Aborted when the push kept being rejected.
  absl::StatusOr<ApplyOutcome> Apply(const ApplyRequest& request);

  // Moves the sync marker tag to `revision` and pushes it. The marker never moves backwards:
  // FailedPrecondition when `revision` is an ancestor of the commit the marker is on while
  // that commit is still in the branch's history (a sync that finished after a newer one);
  // when upstream was reset to before the marker, the marker follows it. Unavailable when
  // this instance may not write (WriterOptions::write_permit).
  absl::Status SetSyncMarker(const std::string& tag, const std::string& revision);
  absl::StatusOr<std::string> GetSyncMarker(const std::string& tag);

  // Job notes, newest first.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListNotes(int limit);

  // Waits until the housekeeping a write started is over. After a write (Apply,
  // SetSyncMarker) the repository's due housekeeping (Repository::DueMaintenance: folding
  // the mirror's packs) runs on a thread of its own, so the write that made it due does not
  // wait for it, nor do the next writes (only its quick Finish takes the writes' lock). The
  // destructor cancels the one running (Maintenance::Cancel: its repack child is killed),
  // waits for it to end and starts no other.
  void WaitForMaintenance() ABSL_LOCKS_EXCLUDED(repo_mu_);

 private:
  // A file being edited (defined in writer.cc), by path.
  struct FileState;
  using EditedFiles = std::map<std::string, FileState>;

  // Apply under repo_mu_ (and apply_mu_).
  absl::StatusOr<ApplyOutcome> ApplyLocked(const ApplyRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // Starts the repository's due housekeeping on maintenance_, unless some runs
  // (maintaining_) or the Writer is going away.
  void StartMaintenanceIfDue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // Apply's steps, on the head `revision` whose index is `index`.
  // Applies every edit to its file in `files`, each edit's own failure in its outcome; an
  // error is returned only when an edited document cannot be re-indexed (then nothing is
  // committed). The edits of plain files run on several threads, one file per thread at a
  // time and its edits in request order; the edits of what kustomize renders follow.
  absl::Status EditFiles(const std::vector<EditRequest>& edits, const Index& index,
                         const std::string& revision, EditedFiles& files,
                         std::vector<EditOutcome>& outcomes) const;
  absl::Status EditFile(const EditRequest& edit, const Index& index, const std::string& revision,
                        EditedFiles& files, EditOutcome& result) const;
  // EditFile for a workload defined in the plain file `path`, opened as `file`.
  absl::Status EditInFile(const EditRequest& edit, const std::string& path, FileState& file,
                          EditOutcome& result) const;
  // The new content of `content` with `edit` applied to `resource` (no changes when a policy
  // update asks for none).
  absl::StatusOr<manifest::EditResult> EditContent(const EditRequest& edit,
                                                   const std::string& content,
                                                   const manifest::Resource& resource) const;
  // The changed files' new contents; `diff` becomes their diff, unless `omit_diff` (then
  // empty).
  std::map<std::string, std::string> ChangedFiles(const EditedFiles& files, bool omit_diff,
                                                  std::string& diff)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  CommitSpec CommitSpecOf(const ApplyRequest& request, const std::vector<EditOutcome>& outcomes,
                          const std::string& parent,
                          std::map<std::string, std::string> changed) const;
  // Pushes `commit`, counting the outcome: Aborted when upstream moved (rejected). With a
  // push `branch`: to that branch, if it still is at `expected` (its head as read, "" when
  // missing; Repository::PushTo).
  // With a `note` (and no `branch`), the note of `commit` goes in the same push; its own
  // failure goes to `*note_error` (Repository::PushBranchWithNote).
  absl::Status Push(const std::string& commit, const std::string& branch,
                    const std::string& expected, const std::string& note, std::string* note_error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // SetSyncMarker's refusal to move the marker `tag` backwards to `revision` (OK when it
  // cannot tell).
  absl::Status CheckMarkerMovesForward(const std::string& tag, const std::string& revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // WriterOptions::push_branch with its field filled from `request`.
  absl::StatusOr<std::string> PushBranchOf(const ApplyRequest& request) const;
  // Release branches: what to push to WriterOptions::push_branch for `commit`, this
  // request's change made on the source head `source`.
  struct PushPlan {
    std::string branch;       // the push branch
    std::string tip;          // what the branch becomes
    std::string commit;       // the commit holding this request's change (`tip` or below it)
    bool force = false;       // not a fast-forward of the branch
    bool created = false;     // the branch did not exist
    std::string expected;     // the branch's head as read ("" when missing)
    bool no_changes = false;  // the branch holds the change already
    std::vector<std::string> dropped;  // ApplyOutcome::dropped
  };
  absl::StatusOr<PushPlan> PlanPushBranch(const std::string& branch, const std::string& commit,
                                          const std::string& source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // PlanPushBranch's two plans, each false when this change conflicts with a pending commit
  // (then it supersedes it). Fast-forward: `commit` re-applied on the branch's head
  // (plan.expected), which holds only Ferry's commits on the source head. Rebuild: the
  // branch made again on `source`, Ferry's `pending` commits re-applied, then `commit`.
  absl::StatusOr<bool> FastForwardPushBranch(PushPlan& plan, const std::string& commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  absl::StatusOr<bool> RebuildPushBranch(PushPlan& plan, const std::vector<BranchCommit>& pending,
                                         const std::string& commit, const std::string& source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // After a push to the push branch: its metrics, the job note on plan.commit, the log line.
  void FinishPushBranch(const PushPlan& plan, const ApplyRequest& request, ApplyOutcome& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // Re-applies Ferry's `pending` commits on top of `onto`, skipping those that are not
  // Ferry's; those that conflict are added to `dropped` with `why`. Returns the new tip.
  absl::StatusOr<std::string> ReplayPending(const std::vector<BranchCommit>& pending,
                                            std::string onto, const std::string& why,
                                            std::vector<std::string>& dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // Whether a commit on the push branch is Ferry's own (re-applied on a rebuild, signed
  // again with Ferry's key; any other commit is refused, or dropped with --git_push_branch_
  // force). A committer name and email anyone can set, so: it must carry a "Ferry-Job:"
  // trailer that git reads (the last paragraph's) and, when `own_signatures` is set, a valid
  // signature by Ferry's own key; without it (commits unsigned, or signed with OpenPGP), its
  // committer must also be `committer`. Job notes are not required: a re-applied commit is a
  // new commit without its note.
  bool IsFerrys(const BranchCommit& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // After `commit` (made on `base` with `files` edited) was pushed: moves the head to it,
  // leaving its index to be carried over from `base` on first use (pending_index_).
  void Pushed(const std::string& commit, std::shared_ptr<const Index> base, EditedFiles files)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // EditFile for a workload that kustomize rendered: the nearest `images:` entry that
  // decides the image, else the literal in the file that defines it; policies in that file.
  absl::Status EditRendered(const EditRequest& edit, const Index& index, const RenderedRoot& root,
                            const manifest::Resource& rendered, EditedFiles& files,
                            EditOutcome& result) const;
  // After the edits: builds again every root that reads a changed file, checks that each
  // image edit of a rendered workload renders as asked (FailedPrecondition naming what
  // kustomize renders instead), and names the roots each edit changes.
  // `verified` receives the builds made (the roots as they are once committed).
  absl::Status VerifyKustomize(const std::vector<EditRequest>& edits, const Index& index,
                               const std::string& revision, const EditedFiles& files,
                               std::vector<EditOutcome>& outcomes,
                               std::vector<std::shared_ptr<const RenderedRoot>>& verified)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // Puts an edit's result into `file` (re-indexing the edited document), or its failure
  // into `result`.
  absl::Status Replace(absl::StatusOr<manifest::EditResult> edited, const manifest::Source& source,
                       FileState& file, EditOutcome& result) const;
  // After the edits: the root of the rendered workload a policy edit names renders the
  // annotations asked for (`rebuilt`: the roots the edits changed, by file), else
  // FailedPrecondition (a patch or commonAnnotations decide them).
  absl::Status VerifyRenderedPolicy(
      const EditRequest& edit, const Index& index,
      const std::map<std::string, std::shared_ptr<const RenderedRoot>>& rebuilt) const;
  // The file at `path` in `files`, opened from `index` on first use.
  FileState& OpenFile(const Index& index, const std::string& path, EditedFiles& files) const;
  // Reads the file at `path` into `file` from `index`, once.
  void LoadFileState(const Index& index, const std::string& path, FileState& file) const;
  // Once the edits are done: keeps of the documents they parsed only what the next index
  // needs (FileState::fresh) and drops the trees (~20 KB each: 20 MB for 1,000 edited files,
  // held through the commit and push otherwise), and the files' original contents.
  static void DropParsedTrees(EditedFiles& files);
  // The index of `commit` (after DropParsedTrees): `base` with the edited files' fresh state, so
  // the next request need not parse the whole tree again.
  static std::shared_ptr<const Index> IndexAfterCommit(const std::string& commit, const Index& base,
                                                       const EditedFiles& files);

  absl::StatusOr<std::shared_ptr<const Index>> LoadIndex(const std::string& revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // The files of `index` as the configured paths are served, by path (ManifestsAt).
  static std::vector<ServedFile> ServedFilesOf(const Index& index);
  // The cached index of `revision`, or null.
  std::shared_ptr<const Index> CachedIndex(const std::string& revision) const
      ABSL_LOCKS_EXCLUDED(index_mu_);
  // The most recently cached index, or null.
  std::shared_ptr<const Index> NewestIndex() const ABSL_LOCKS_EXCLUDED(index_mu_);
  absl::StatusOr<HeadInfo> RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // WriterOptions::write_permit's verdict (OK without one).
  absl::Status MayWrite() const;
  // OK when no verifier is configured or `revision`'s commit is signed by an allowed key
  // (remembered); PermissionDenied (remembered too: a rejected head is checked once, not
  // on every poll) or Unavailable/DeadlineExceeded (checked again next time) otherwise.
  absl::Status CheckSigned(const std::string& revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(repo_mu_);
  // Revisions whose signature was verified (bounded: cleared past kMaxVerified).
  std::set<std::string> verified_ ABSL_GUARDED_BY(repo_mu_);
  static constexpr size_t kMaxVerified = 4096;
  // Revisions whose signature was rejected, with the reason (bounded: cleared past
  // kMaxRejected). The allowed signers file is read at start only, so a verdict holds.
  std::map<std::string, absl::Status> rejected_ ABSL_GUARDED_BY(repo_mu_);
  // IsFerrys's signature verdicts by commit (bounded: cleared past kMaxVerified).
  std::map<std::string, bool> ferrys_ ABSL_GUARDED_BY(repo_mu_);
  // Ferry's last commit, whose index is carried over from its base when first asked for
  // (CarryPendingIndex), rather than by Apply before it answers: the copy of the base grows
  // with the repo (tens of ms at 10,000 workloads), and the release need not wait for it.
  // Under its own lock, not repo_mu_: a reader of the new head does not wait for the next
  // write. Dropped when another revision is indexed first (LoadIndex).
  struct PendingIndex;  // writer.cc
  absl::Mutex pending_mu_ ABSL_ACQUIRED_AFTER(repo_mu_);
  std::shared_ptr<PendingIndex> pending_index_ ABSL_GUARDED_BY(pending_mu_);
  // The index of `revision` when it is the pending one (made now, and cached) or was
  // carried meanwhile; null otherwise.
  std::shared_ptr<const Index> CarryPendingIndex(const std::string& revision)
      ABSL_LOCKS_EXCLUDED(pending_mu_, index_mu_, head_mu_);
  static constexpr size_t kMaxRejected = 256;
  void CacheIndex(std::shared_ptr<const Index> index) ABSL_LOCKS_EXCLUDED(index_mu_, head_mu_);
  // Drops the index CacheIndex would drop to make room for one more, before that one is
  // built rather than after: three indexes at once were git-writer's peak memory at 10,000
  // workloads. Call only for a revision that is not cached, under repo_mu_ (or pending_mu_
  // for the carried index), held until the new index is cached: no other index is built
  // meanwhile under the same lock.
  void MakeRoomForIndex() ABSL_LOCKS_EXCLUDED(index_mu_, head_mu_);
  // The oldest cached index, unless it is `head`'s (then the next one).
  void DropOldestIndex(const std::string& head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu_);
  void SetHead(const HeadInfo& head);

  Repository& repo_;
  const WriterOptions options_;
  WriterMetrics& metrics_;
  KustomizeBuilder kustomize_;

  // Serializes Apply requests (the queue); taken before repo_mu_.
  absl::Mutex apply_mu_;
  // Serializes every Repository call.
  absl::Mutex repo_mu_;
  // The housekeeping thread, whether it still runs, and whether the Writer is going away.
  bool maintaining_ ABSL_GUARDED_BY(repo_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(repo_mu_) = false;
  std::thread maintenance_ ABSL_GUARDED_BY(repo_mu_);
  // The Maintenance of maintenance_ while its Run may be in progress: the destructor cancels
  // it. Set and cleared under repo_mu_, before the Maintenance goes.
  Maintenance* running_maintenance_ ABSL_GUARDED_BY(repo_mu_) = nullptr;
  // The indexes of the last revisions read or committed. A lock of their own: a read of an
  // index that is already built never waits for a fetch, commit or push under repo_mu_.
  // Holds only revisions that passed CheckSigned (IndexAt serves them without a check).
  mutable absl::Mutex index_mu_ ABSL_ACQUIRED_AFTER(repo_mu_);
  std::map<std::string, std::shared_ptr<const Index>> index_cache_ ABSL_GUARDED_BY(index_mu_);
  std::vector<std::string> index_order_ ABSL_GUARDED_BY(index_mu_);

  // WaitForHeadChange waits on a condition of head_mu_ (woken by SetHead's unlock).
  mutable absl::Mutex head_mu_;
  HeadInfo head_ ABSL_GUARDED_BY(head_mu_);
  // Since when a fetch (RefreshLocked) runs; InfiniteFuture() when none does.
  absl::Time fetch_started_ ABSL_GUARDED_BY(head_mu_) = absl::InfiniteFuture();
};

}  // namespace ferry::git_writer
