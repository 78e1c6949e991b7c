#include "services/git-writer/writer.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "ferry/v1/types.pb.h"
#include "google/protobuf/util/json_util.h"
#include "lib/convert/json.h"
#include "lib/image/reference.h"
#include "lib/log/laps.h"
#include "lib/log/log.h"
#include "lib/manifest/kustomize_images.h"
#include "lib/manifest/policy.h"
#include "lib/manifest/reindex.h"
#include "lib/manifest/workload.h"
#include "lib/names/names.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/parallel.h"
#include "lib/status/status_macros.h"

namespace ferry::git_writer {
namespace {

SharedContainers Share(std::vector<manifest::Container> containers) {
  return std::make_shared<const std::vector<manifest::Container>>(std::move(containers));
}

// The texts of `index` as kustomize reads them (a copy: kustomized repos only).
std::map<std::string, std::string> PlainTexts(const Index& index) {
  std::map<std::string, std::string> out;
  for (const auto& [path, text] : index.files) out.emplace_hint(out.end(), path, *text);
  return out;
}

// Into `index`: what it keeps of a resource parsed from a file. A workload's containers are
// found now; then the parsed document is let go (an edit parses the document it changes).
void AddParsed(manifest::Resource r, Index& index) {
  if (manifest::IsWorkloadKind(r.kind))
    index.containers.try_emplace(ContainersKey(r), Share(FindContainers(r)));
  r.node = manifest::NodeHandle();
  r.document = manifest::NodeHandle();
  index.loaded.resources.push_back(std::move(r));
}

// Into `index`: a resource of `base` whose file did not change, and its containers.
void AddKept(const manifest::Resource& r, const Index& base, Index& index) {
  index.loaded.resources.push_back(r);
  if (auto c = base.containers.find(ContainersKey(r)); c != base.containers.end()) {
    index.containers.insert(*c);
  }
}

// Indexes kept: the head's and the one before it, for lists paged at the revision they
// began at and for a reader a commit behind. Each holds the repo's text and its workloads'
// answers (~30 MB at 10,000 workloads: 8 of them were most of git-writer's memory); an older
// one is built again when asked for, from git's files and what the newest index parsed of
// those that did not change. The one to drop goes before a new one is built
// (MakeRoomForIndex): never more than this many at once, but for readers still holding one.
constexpr size_t kIndexCacheSize = 2;

// Threads that edit files side by side (EditFiles), and the fewest files worth them.
constexpr unsigned kMaxEditThreads = 4;
constexpr size_t kFilesPerEditThread = 8;

// Calls `work(i)` for each i in [0, count) on up to kMaxEditThreads threads (this one among
// them) when there is enough to share (runtime::ParallelFor: an exception is rethrown here).
void RunInParallel(size_t count, const std::function<void(size_t)>& work) {
  runtime::ParallelFor(
      count,
      std::min<size_t>({std::max(1u, std::thread::hardware_concurrency()), kMaxEditThreads,
                        std::max<size_t>(1, count / kFilesPerEditThread)}),
      work);
}

const prometheus::Histogram::BucketBoundaries kSecondsBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

// The commit message made from the edits: a one-line subject, and a list of the edits when
// there are several. Every piece from the request is escaped to one line, so nothing in a
// request can split the subject or add lines of its own.
std::string Summary(const std::vector<EditRequest>& edits,
                    const std::vector<EditOutcome>& outcomes) {
  std::vector<std::string> images;
  std::vector<std::string> policies;
  for (size_t i = 0; i < edits.size(); ++i) {
    if (!outcomes[i].changed) continue;
    if (edits[i].image) {
      images.push_back(names::Escape(absl::StrCat(edits[i].workload, " ", edits[i].image->container,
                                                  ": ", edits[i].image->to_image)));
    } else {
      policies.push_back(names::Escape(edits[i].workload));
    }
  }
  std::string subject;
  if (!images.empty()) {
    subject = images.size() == 1 ? absl::StrCat("Release ", images[0])
                                 : absl::StrCat("Release ", images.size(), " images");
  } else {
    subject = absl::StrCat("Update policy of ", policies.size() == 1
                                                    ? policies[0]
                                                    : absl::StrCat(policies.size(), " workloads"));
  }
  if (images.size() + policies.size() <= 1) return subject;
  // The list stays well under the commit message limit however many edits there are.
  constexpr size_t kMaxListed = 200;
  std::string body = subject + "\n\n";
  size_t listed = 0;
  for (const std::string& line : images) {
    if (listed++ < kMaxListed) absl::StrAppend(&body, "- ", line, "\n");
  }
  for (const std::string& line : policies) {
    if (listed++ < kMaxListed) absl::StrAppend(&body, "- policy: ", line, "\n");
  }
  if (listed > kMaxListed) absl::StrAppend(&body, "- and ", listed - kMaxListed, " more\n");
  return body;
}

// What a policy update changes, on one line ("automated, locked, tag.app=semver:~1").
std::string PolicySummary(const manifest::PolicyUpdate& p) {
  std::vector<std::string> parts;
  auto set_or_removed = [](const std::optional<std::string>& v) {
    return v.has_value() ? absl::StrCat("=", *v) : std::string(" removed");
  };
  if (p.automated.has_value()) parts.push_back(*p.automated ? "automated" : "deautomated");
  if (p.locked.has_value()) parts.push_back(*p.locked ? "locked" : "unlocked");
  if (p.ignore.has_value()) {
    parts.push_back(*p.ignore == manifest::IgnoreMode::kNone       ? "not ignored"
                    : *p.ignore == manifest::IgnoreMode::kSyncOnly ? "ignore=sync_only"
                                                                   : "ignore=true");
  }
  for (const auto& [container, pattern] : p.tag_filters) {
    parts.push_back(absl::StrCat("tag.", container, set_or_removed(pattern)));
  }
  if (p.tag_all.has_value()) parts.push_back(absl::StrCat("tag_all", set_or_removed(*p.tag_all)));
  for (const auto& [container, age] : p.min_ages) {
    parts.push_back(absl::StrCat(
        container.empty() ? "min-age" : absl::StrCat("min-age.", container), set_or_removed(age)));
  }
  if (p.rollback.has_value())
    parts.push_back(absl::StrCat("rollback", set_or_removed(*p.rollback)));
  if (p.rollback_timeout.has_value()) {
    parts.push_back(absl::StrCat("rollback-timeout", set_or_removed(*p.rollback_timeout)));
  }
  for (const auto& [container, tags] : p.reject) {
    for (const policy::RejectedTag& t : tags) {
      parts.push_back(absl::StrCat("rejected ", container.empty() ? "" : container + ":", t.tag));
    }
  }
  for (const std::string& container : p.clear_rejected) {
    parts.push_back(container.empty() ? "rejected tags cleared"
                                      : absl::StrCat("rejected tags of ", container, " cleared"));
  }
  if (parts.empty()) return "policy";
  return absl::StrJoin(parts, ", ");
}

// The changes a commit makes, for its template.
std::vector<CommitChange> ChangesOf(const std::vector<EditRequest>& edits,
                                    const std::vector<EditOutcome>& outcomes) {
  std::vector<CommitChange> changes;
  for (size_t i = 0; i < edits.size(); ++i) {
    if (!outcomes[i].changed) continue;
    CommitChange c;
    c.workload = edits[i].workload;
    if (edits[i].image) {
      c.container = edits[i].image->container;
      c.from = edits[i].image->from_image.value_or("");
      c.to = edits[i].image->to_image;
    } else if (edits[i].policy) {
      c.policy = PolicySummary(*edits[i].policy);
    }
    changes.push_back(std::move(c));
  }
  return changes;
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The job record `note` (a ferry.v1.Job in JSON, as GitWriterService writes it) naming the
// release branch that holds its commit. A note that is no such record is kept as it is.
std::string NoteWithPushedBranch(const std::string& note, const std::string& branch) {
  ferry::v1::Job job;
  if (!google::protobuf::util::JsonStringToMessage(note, &job).ok()) return note;
  job.set_pushed_branch(branch);
  return convert::ToJson(job, convert::JsonNames::kProto).value_or(note);
}

}  // namespace

// A file being edited: its content and its resources with sources that match it.
struct Writer::FileState {
  std::string original;
  std::string content;
  std::vector<manifest::Resource> resources;
  bool loaded = false;  // the fields above are read in (LoadFileState)
  bool changed = false;
  // After DropParsedTrees: the resources of `resources` that were parsed anew (by
  // ContainersKey), with their containers (none for other kinds).
  std::map<std::string, SharedContainers> fresh;
};

struct Writer::PendingIndex {
  std::string commit;
  std::shared_ptr<const Index> base;
  EditedFiles files;
};

WriterMetrics::WriterMetrics(prometheus::Registry& registry)
    : fetch_seconds(prometheus::BuildHistogram()
                        .Name("ferry_git_fetch_duration_seconds")
                        .Help("Fetches of the config repo, by outcome (ok, error).")
                        .Register(registry)),
      push_seconds(prometheus::BuildHistogram()
                       .Name("ferry_git_push_duration_seconds")
                       .Help("Pushes to the config repo, by outcome (ok, rejected, error).")
                       .Register(registry)),
      queue_length(prometheus::BuildGauge()
                       .Name("ferry_git_queue_length")
                       .Help("Write requests waiting for their turn.")
                       .Register(registry)
                       .Add({})),
      queue_wait_seconds(prometheus::BuildHistogram()
                             .Name("ferry_git_queue_wait_seconds")
                             .Help("Time write requests waited for their turn.")
                             .Register(registry)
                             .Add({}, kSecondsBuckets)),
      commits(prometheus::BuildCounter()
                  .Name("ferry_git_commits_total")
                  .Help("Commits Ferry pushed.")
                  .Register(registry)
                  .Add({})),
      push_conflicts(prometheus::BuildCounter()
                         .Name("ferry_git_push_conflicts_total")
                         .Help("Pushes rejected because upstream moved, retried on its new head.")
                         .Register(registry)
                         .Add({})),
      ready(prometheus::BuildGauge()
                .Name("ferry_git_ready")
                .Help("1 when the mirror has a head and the last fetch succeeded, else 0.")
                .Register(registry)
                .Add({})),
      last_fetch(prometheus::BuildGauge()
                     .Name("ferry_git_last_fetch_timestamp_seconds")
                     .Help("Unix time of the last successful fetch.")
                     .Register(registry)
                     .Add({})),
      index_files(prometheus::BuildCounter()
                      .Name("ferry_git_index_files_total")
                      .Help("Files of each revision's workload index, by source: parsed, "
                            "reused from the previous index because their blob is the same, or "
                            "carried (the index after Ferry's own commit, made from the one it "
                            "was made on and the files it edited).")
                      .Register(registry)),
      kustomize_roots(prometheus::BuildCounter()
                          .Name("ferry_git_kustomize_roots_total")
                          .Help("Kustomize roots of indexed revisions and verified edits, by "
                                "outcome: built, cached (folders unchanged since a build), "
                                "failed.")
                          .Register(registry)),
      kustomize_build_seconds(prometheus::BuildHistogram()
                                  .Name("ferry_git_kustomize_build_duration_seconds")
                                  .Help("Runs of the kustomize command, each one root.")
                                  .Register(registry)
                                  .Add({}, kSecondsBuckets)),
      signature_checks(prometheus::BuildCounter()
                           .Name("ferry_git_signature_checks_total")
                           .Help("Signature checks of revisions (--git_verify_signatures), by "
                                 "outcome: verified, rejected, error.")
                           .Register(registry)),
      head_verified(prometheus::BuildGauge()
                        .Name("ferry_git_head_verified")
                        .Help("1 while upstream's head is served, 0 while it is held back "
                              "because it is not signed by an allowed key.")
                        .Register(registry)
                        .Add({})),
      push_branch_writes(prometheus::BuildCounter()
                             .Name("ferry_git_push_branch_writes_total")
                             .Help("Writes to --git_push_branch, by outcome: created, "
                                   "fast_forward, rebuilt, refused (someone else's commit).")
                             .Register(registry)),
      push_branch_dropped(prometheus::BuildCounter()
                              .Name("ferry_git_push_branch_dropped_commits_total")
                              .Help("Commits a rebuild of --git_push_branch left out: Ferry's "
                                    "that no longer apply, or others' with "
                                    "--git_push_branch_force.")
                              .Register(registry)
                              .Add({})) {}

Writer::Writer(Repository& repo, WriterOptions options, WriterMetrics& metrics)
    : repo_(repo),
      options_(std::move(options)),
      metrics_(metrics),
      kustomize_(options_.kustomize, &metrics.kustomize_roots, &metrics.kustomize_build_seconds) {
  head_.last_fetch = absl::InfinitePast();
  const KustomizeOptions& k = options_.kustomize;
  if (!k.build.command.empty()) {
    log::Info("kustomize roots are built with", {{"command", absl::StrJoin(k.build.command, " ")}});
  } else {
    log::Info(
        "kustomize roots cannot be built",
        {{"reason", k.missing_command.empty() ? "no kustomize command given" : k.missing_command}});
  }
}

void Writer::SetHead(const HeadInfo& head) {
  absl::MutexLock lock(&head_mu_);
  head_ = head;
}

const RenderedRoot* Index::RootOf(const manifest::Resource& r) const {
  auto it = roots.find(r.source.path);
  return it != roots.end() ? it->second.get() : nullptr;
}

const manifest::Resource* Index::Find(absl::string_view id) const {
  auto it = std::lower_bound(
      loaded.resources.begin(), loaded.resources.end(), id,
      [](const manifest::Resource& r, absl::string_view wanted) { return r.id < wanted; });
  return it != loaded.resources.end() && it->id == id ? &*it : nullptr;
}

const std::vector<size_t>* Index::ResourcesIn(const std::string& path) const {
  if (had_duplicates || (layout != nullptr && layout->Uses(path))) return nullptr;
  const ByPath& view = *PathView();
  static const std::vector<size_t> kNone;
  auto it = view.find(path);
  return it != view.end() ? &it->second : &kNone;
}

std::shared_ptr<const Index::ByPath> Index::PathView() const {
  absl::call_once(by_path_once, [this] {
    if (by_path != nullptr) return;  // the base's (IndexAfterCommit)
    auto view = std::make_shared<ByPath>();
    for (size_t i = 0; i < loaded.resources.size(); ++i) {
      (*view)[loaded.resources[i].source.path].push_back(i);
    }
    by_path = std::move(view);
  });
  return by_path;
}

std::string ContainersKey(const manifest::Resource& r) {
  return absl::StrCat(r.source.path, "\n", r.source.document, "\n", r.source.list_item, "\n", r.id);
}

HeadInfo Writer::CurrentHead() const {
  absl::MutexLock lock(&head_mu_);
  return head_;
}

HeadInfo Writer::WaitForHeadChange(const std::string& known, absl::Duration timeout) const {
  absl::MutexLock lock(&head_mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(head_mu_) { return head_.revision != known; };
  head_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return head_;
}

absl::StatusOr<HeadInfo> Writer::Refresh() {
  absl::MutexLock lock(&repo_mu_);
  absl::StatusOr<HeadInfo> head = RefreshLocked();
  // Fetched packs count towards a fold as written ones do (a read-only git-writer only
  // fetches).
  StartMaintenanceIfDue();
  return head;
}

absl::StatusOr<HeadInfo> Writer::ServedHead(absl::Time deadline,
                                            const std::function<bool()>& cancelled) {
  {
    absl::MutexLock lock(&head_mu_);
    auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(head_mu_) {
      return !head_.revision.empty() || fetch_started_ == absl::InfiniteFuture();
    };
    const bool was_fetching = fetch_started_ != absl::InfiniteFuture();
    // In slices, so that a caller who has gone does not hold a thread until the deadline.
    while (!head_mu_.AwaitWithDeadline(absl::Condition(&settled),
                                       std::min(deadline, absl::Now() + kCancelCheck)) &&
           absl::Now() < deadline) {
      if (cancelled && cancelled()) {
        return absl::CancelledError("no revision yet: the caller went away while waiting");
      }
    }
    if (!head_.revision.empty()) return head_;
    if (fetch_started_ != absl::InfiniteFuture()) {
      return absl::UnavailableError(absl::StrCat(
          "no revision yet: a fetch from upstream is still running (for ",
          absl::FormatDuration(absl::Trunc(absl::Now() - fetch_started_, absl::Milliseconds(100))),
          ")"));
    }
    // The fetch waited for failed or fetched a head that is not served: that is the answer,
    // not a second fetch at once.
    if (was_fetching && !head_.fetch_error.empty()) {
      return absl::UnavailableError(absl::StrCat("no revision yet: ", head_.fetch_error));
    }
    if (was_fetching && !head_.verify_error.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("no revision yet: ", head_.verify_error));
    }
  }
  absl::StatusOr<HeadInfo> fetched = Refresh();
  if (!fetched.ok()) {
    return absl::Status(fetched.status().code(),
                        absl::StrCat("no revision yet: ", fetched.status().message()));
  }
  return fetched;
}

absl::StatusOr<HeadInfo> Writer::RefreshLocked() {
  auto start = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&head_mu_);
    fetch_started_ = absl::Now();
  }
  // Every way out of this function publishes a head (SetHead) or has failed before the
  // fetch: a fetch no longer runs once it returns.
  absl::Cleanup fetch_done = [this] {
    absl::MutexLock lock(&head_mu_);
    fetch_started_ = absl::InfiniteFuture();
  };
  absl::StatusOr<std::string> fetched = repo_.Fetch();
  HeadInfo head = CurrentHead();
  if (!fetched.ok()) {
    metrics_.fetch_seconds.Add({{"outcome", "error"}}, kSecondsBuckets).Observe(Since(start));
    metrics_.ready.Set(0);
    head.fetch_error = std::string(fetched.status().message());
    SetHead(head);
    log::Warn("fetch failed", {{"error", head.fetch_error}});
    return fetched.status();
  }
  metrics_.fetch_seconds.Add({{"outcome", "ok"}}, kSecondsBuckets).Observe(Since(start));
  if (absl::Status checked = CheckSigned(*fetched); !checked.ok()) {
    // The last verified revision stays the one served; writes wait for a verified head.
    const std::string error = absl::StrCat("upstream head ", fetched->substr(0, 12),
                                           " is not served: ", checked.message());
    if (head.verify_error != error) {
      log::Warn("upstream head not verified", {{"revision", *fetched}, {"error", error}});
    }
    head.verify_error = error;
    head.last_fetch = absl::Now();
    head.fetch_error.clear();
    metrics_.ready.Set(1);
    metrics_.head_verified.Set(0);
    SetHead(head);
    return absl::FailedPreconditionError(error);
  }
  if (options_.verifier != nullptr) metrics_.head_verified.Set(1);
  head.verify_error.clear();
  head.revision = *fetched;
  head.commit_time = repo_.CommitTime(*fetched).value_or(absl::InfinitePast());
  head.last_fetch = absl::Now();
  head.fetch_error.clear();
  metrics_.ready.Set(1);
  metrics_.last_fetch.Set(absl::ToDoubleSeconds(head.last_fetch - absl::UnixEpoch()));
  SetHead(head);
  return head;
}

namespace {

// Why there is no revision to read: none fetched yet, or none verified yet.
absl::Status NoRevisionYet(const HeadInfo& head) {
  if (!head.verify_error.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no verified revision yet: ", head.verify_error));
  }
  return absl::UnavailableError("the mirror has no revision yet (upstream not fetched)");
}

// For ApplyRequest::all_or_nothing: OK when every edit applied; else the failure naming the
// first failed edit, ABORTED when any compare-and-set lost, otherwise the first one's code.
absl::Status AllEditsApplied(const std::vector<EditRequest>& edits,
                             const std::vector<EditOutcome>& outcomes) {
  const EditOutcome* first = nullptr;
  size_t index = 0;
  bool lost_compare = false;
  for (size_t i = 0; i < outcomes.size() && i < edits.size(); ++i) {
    if (outcomes[i].status.ok()) continue;
    if (first == nullptr) {
      first = &outcomes[i];
      index = i;
    }
    lost_compare = lost_compare || outcomes[i].status.code() == absl::StatusCode::kAborted;
  }
  if (first == nullptr) return absl::OkStatus();
  const EditRequest& edit = edits[index];
  const std::string what =
      edit.image.has_value() ? absl::StrCat(" container ", edit.image->container) : " policy";
  return absl::Status(lost_compare ? absl::StatusCode::kAborted : first->status.code(),
                      absl::StrCat("nothing committed (all or nothing): edit ", index + 1, " (",
                                   edit.workload, what, ") failed: ", first->status.message()));
}

}  // namespace

absl::Status Writer::CheckSigned(const std::string& revision) {
  if (options_.verifier == nullptr || verified_.count(revision) > 0) return absl::OkStatus();
  if (auto it = rejected_.find(revision); it != rejected_.end()) return it->second;
  absl::StatusOr<std::pair<std::string, std::string>> signed_commit =
      repo_.CommitSignature(revision);
  absl::Status checked =
      signed_commit.ok() ? options_.verifier->Verify(signed_commit->second, signed_commit->first)
                         : signed_commit.status();
  if (absl::IsNotFound(checked)) checked = absl::PermissionDeniedError("the commit is not signed");
  const char* outcome = checked.ok()                        ? "verified"
                        : absl::IsPermissionDenied(checked) ? "rejected"
                                                            : "error";
  metrics_.signature_checks.Add({{"outcome", outcome}}).Increment();
  if (absl::IsPermissionDenied(checked)) {
    if (rejected_.size() >= kMaxRejected) rejected_.clear();
    rejected_.emplace(revision, checked);
  }
  if (!checked.ok()) return checked;
  if (verified_.size() >= kMaxVerified) verified_.clear();
  verified_.insert(revision);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RepoFile>> Writer::ReadManifests(const std::string& revision,
                                                            const std::vector<std::string>& paths) {
  if (paths.empty()) {
    // The configured paths, as served: kustomize roots as built (the index has them).
    FERRY_ASSIGN_OR_RETURN(ServedManifests served, ManifestsAt(revision));
    std::vector<RepoFile> out(served.files.size());
    for (size_t i = 0; i < served.files.size(); ++i) {
      out[i].path = *served.files[i].path;
      out[i].content = *served.files[i].content;
      out[i].error = served.files[i].error;
    }
    return out;
  }
  absl::MutexLock lock(&repo_mu_);
  const std::string rev = revision.empty() ? CurrentHead().revision : revision;
  if (rev.empty()) {
    return NoRevisionYet(CurrentHead());
  }
  if (absl::Status checked = CheckSigned(rev); !checked.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("revision ", rev.substr(0, 12), " is not served: ", checked.message()));
  }
  return repo_.ReadManifests(rev, paths);
}

absl::StatusOr<Writer::ServedManifests> Writer::ManifestsAt(const std::string& revision,
                                                            const std::string& known_revision) {
  ServedManifests out;
  FERRY_ASSIGN_OR_RETURN(out.index, IndexAt(revision));
  out.files = ServedFilesOf(*out.index);
  if (known_revision.empty()) return out;
  if (known_revision == out.index->revision) {
    for (ServedFile& f : out.files) f.unchanged = f.error.empty();
    return out;
  }
  // Only an index at hand: building one for this would cost what the reader saves.
  if (std::shared_ptr<const Index> known = CachedIndex(known_revision)) {
    const std::vector<ServedFile> before = ServedFilesOf(*known);
    auto was = before.begin();
    for (ServedFile& f : out.files) {  // both by path
      while (was != before.end() && *was->path < *f.path) ++was;
      f.unchanged = was != before.end() && *was->path == *f.path && f.error.empty() &&
                    was->error.empty() &&
                    // The same text, shared by both indexes, is not compared byte by byte.
                    (was->content == f.content || *was->content == *f.content);
    }
  }
  return out;
}

std::vector<Writer::ServedFile> Writer::ServedFilesOf(const Index& index) {
  std::vector<ServedFile> out;
  for (const auto& [path, content] : index.files) {
    // Files kustomize uses are not served on their own; each root is, below.
    if (index.layout == nullptr || !index.layout->Uses(path)) {
      out.push_back({&path, content.get(), ""});
    }
  }
  static const std::string kNothing;
  for (const auto& [path, error] : index.unreadable) {
    if (index.layout == nullptr || !index.layout->Uses(path)) {
      out.push_back({&path, &kNothing, error});
    }
  }
  for (const auto& [file, root] : index.roots) {
    if (root->error.empty()) {
      out.push_back({&file, &root->output, ""});
    } else {
      out.push_back({&file, &kNothing, absl::StrCat("kustomize root not built: ", root->error)});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ServedFile& a, const ServedFile& b) { return *a.path < *b.path; });
  return out;
}

absl::StatusOr<std::shared_ptr<const Index>> Writer::IndexAt(const std::string& revision) {
  std::string rev = revision.empty() ? CurrentHead().revision : revision;
  if (!rev.empty()) {
    if (std::shared_ptr<const Index> cached = CachedIndex(rev)) return cached;
    // Ferry's own commit: its signature was checked when it was pushed (Pushed).
    if (std::shared_ptr<const Index> carried = CarryPendingIndex(rev)) return carried;
  }
  absl::MutexLock lock(&repo_mu_);
  // No head yet: the first fetch may be running under repo_mu_, waited for above.
  if (rev.empty()) rev = CurrentHead().revision;
  if (rev.empty()) {
    return NoRevisionYet(CurrentHead());
  }
  if (absl::Status checked = CheckSigned(rev); !checked.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("revision ", rev.substr(0, 12), " is not served: ", checked.message()));
  }
  return LoadIndex(rev);
}

std::shared_ptr<const Index> Writer::CachedIndex(const std::string& revision) const {
  absl::MutexLock lock(&index_mu_);
  auto it = index_cache_.find(revision);
  return it != index_cache_.end() ? it->second : nullptr;
}

std::shared_ptr<const Index> Writer::NewestIndex() const {
  absl::MutexLock lock(&index_mu_);
  return index_order_.empty() ? nullptr : index_cache_.at(index_order_.back());
}

std::shared_ptr<const Index> Writer::CarryPendingIndex(const std::string& revision) {
  absl::MutexLock lock(&pending_mu_);
  // Carried by another caller while this one waited?
  if (std::shared_ptr<const Index> cached = CachedIndex(revision)) return cached;
  if (pending_index_ == nullptr || pending_index_->commit != revision) return nullptr;
  const std::shared_ptr<PendingIndex> pending = std::exchange(pending_index_, nullptr);
  log::Laps laps;
  MakeRoomForIndex();  // `pending->base` is held here
  // The index dropped just now was freed on another thread, often into another arena than
  // this one's: its pages go back to the kernel before the new index takes as many.
  runtime::ReturnFreeMemory();
  std::shared_ptr<const Index> next =
      IndexAfterCommit(pending->commit, *pending->base, pending->files);
  CacheIndex(next);
  runtime::ReturnFreeMemory();  // what the build freed, as a write does (ApplyUpdates)
  metrics_.index_files.Add({{"source", "carried"}})
      .Increment(static_cast<double>(next->files.size()));
  log::Info("index carried over", {{"revision", revision}, {"ms", laps.Next()}});
  return next;
}

absl::StatusOr<std::shared_ptr<const Index>> Writer::LoadIndex(const std::string& revision) {
  // Built by another caller while this one waited for repo_mu_?
  if (std::shared_ptr<const Index> cached = CarryPendingIndex(revision)) return cached;
  {
    absl::MutexLock lock(&pending_mu_);
    pending_index_ = nullptr;  // another revision is indexed first (see pending_index_)
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<RepoFile> files,
                         repo_.ReadManifests(revision, options_.paths));
  auto index = std::make_shared<Index>();
  index->revision = revision;
  // The newest index loaded before: the files whose blob has not changed since keep what it
  // parsed of them, so a new revision costs what its commits changed, not the whole repo.
  std::shared_ptr<const Index> newest = NewestIndex();
  const Index* base = newest.get();
  if (base != nullptr && base->had_duplicates) base = nullptr;
  std::map<std::string, std::vector<const manifest::LoadError*>> base_errors;
  if (base != nullptr) {
    for (const manifest::LoadError& e : base->loaded.errors) base_errors[e.path].push_back(&e);
  }
  MakeRoomForIndex();  // `newest` keeps the base alive meanwhile
  // Most revisions hold what the one before held.
  if (base != nullptr) index->loaded.resources.reserve(base->loaded.resources.size());
  bool kustomized = false;
  for (RepoFile& f : files) {
    if (!f.error.empty()) {
      manifest::LoadError error;
      error.path = f.path;
      error.message = f.error;
      index->loaded.errors.push_back(std::move(error));
      index->unreadable[f.path] = f.error;
      continue;
    }
    kustomized = kustomized || kustomize::IsKustomizationFile(f.path);
    SharedText& text = index->files[f.path];
    if (base != nullptr && !f.blob.empty()) {  // the same blob: the base's text, shared
      auto known = base->blobs.find(f.path);
      auto known_text = base->files.find(f.path);
      if (known != base->blobs.end() && known->second == f.blob && known_text != base->files.end())
        text = known_text->second;
    }
    if (text == nullptr) {
      text = std::make_shared<const std::string>(std::move(f.content));
    } else {
      std::string().swap(f.content);  // not held twice while the rest is built
    }
    index->blobs[f.path] = std::move(f.blob);
  }
  // kustomize reads plain texts: a copy, made in kustomized repos only.
  const std::map<std::string, std::string> plain =
      kustomized ? PlainTexts(*index) : std::map<std::string, std::string>();
  if (kustomized) {
    kustomize::LayoutOptions layout_options;
    layout_options.allow_remote = options_.kustomize.allow_remote;
    layout_options.limits = options_.load.limits;
    index->layout =
        std::make_shared<const kustomize::Layout>(kustomize::FindLayout(plain, layout_options));
  }
  size_t reused = 0;
  size_t parsed = 0;
  for (const auto& [path, content] : index->files) {
    if (index->layout != nullptr && index->layout->Uses(path)) continue;  // kustomize's
    auto known = base != nullptr ? base->blobs.find(path) : index->blobs.end();
    // Reused only when the base parsed it too (not when kustomize had it there).
    if (base != nullptr && known != base->blobs.end() && !known->second.empty() &&
        known->second == index->blobs[path] &&
        (base->layout == nullptr || !base->layout->Uses(path))) {
      // What the base read from the file (its by-path view, made once per index).
      for (size_t i : *base->ResourcesIn(path)) AddKept(base->loaded.resources[i], *base, *index);
      for (const manifest::LoadError* e : base_errors[path]) index->loaded.errors.push_back(*e);
      ++reused;
    } else {
      manifest::LoadResult one = manifest::LoadFile(path, *content, options_.load);
      for (manifest::Resource& r : one.resources) AddParsed(std::move(r), *index);
      for (manifest::LoadError& e : one.errors) index->loaded.errors.push_back(std::move(e));
      ++parsed;
    }
  }
  if (index->layout != nullptr) {
    for (std::shared_ptr<const RenderedRoot>& root :
         kustomize_.BuildAll(repo_, revision, *index->layout, plain, options_.load)) {
      if (!root->error.empty()) {
        manifest::LoadError error;
        error.path = root->root.file;
        error.message = absl::StrCat("kustomize root not built: ", root->error);
        index->loaded.errors.push_back(std::move(error));
      }
      index->loaded.resources.insert(index->loaded.resources.end(), root->resources.begin(),
                                     root->resources.end());
      index->loaded.errors.insert(index->loaded.errors.end(), root->errors.begin(),
                                  root->errors.end());
      index->containers.insert(root->containers.begin(), root->containers.end());
      index->roots[root->root.file] = std::move(root);
    }
  }
  metrics_.index_files.Add({{"source", "reused"}}).Increment(static_cast<double>(reused));
  metrics_.index_files.Add({{"source", "parsed"}}).Increment(static_cast<double>(parsed));
  const size_t loaded = index->loaded.resources.size();
  manifest::FinishLoad(index->loaded);
  index->had_duplicates = index->loaded.resources.size() != loaded;
  CacheIndex(index);
  return std::shared_ptr<const Index>(index);
}

void Writer::CacheIndex(std::shared_ptr<const Index> index) {
  const std::string revision = index->revision;
  // The head's index stays: readers of older revisions must not push it out, or every
  // request at the head would build it again.
  const std::string head = CurrentHead().revision;
  absl::MutexLock lock(&index_mu_);
  if (index_cache_.count(revision) == 0) index_order_.push_back(revision);
  index_cache_[revision] = std::move(index);
  if (index_order_.size() > kIndexCacheSize) DropOldestIndex(head);
}

void Writer::MakeRoomForIndex() {
  const std::string head = CurrentHead().revision;
  absl::MutexLock lock(&index_mu_);
  if (index_order_.size() >= kIndexCacheSize) DropOldestIndex(head);
}

void Writer::DropOldestIndex(const std::string& head) {
  if (index_order_.empty()) return;
  auto oldest = index_order_.begin();
  if (*oldest == head && index_order_.size() > 1) ++oldest;
  index_cache_.erase(*oldest);
  index_order_.erase(oldest);
}

absl::StatusOr<ApplyOutcome> Writer::Apply(const ApplyRequest& request) {
  if (options_.readonly) {
    return absl::FailedPreconditionError(
        "git-writer runs read-only (--git_readonly): it reads the repo but makes no commits");
  }
  if (request.edits.empty()) return absl::InvalidArgumentError("no edits given");
  // A standby refuses at once, naming the leader, rather than after the queue.
  if (!request.dry_run) FERRY_RETURN_IF_ERROR(MayWrite());
  const auto queued = std::chrono::steady_clock::now();
  metrics_.queue_length.Increment();
  absl::MutexLock queue(&apply_mu_);
  metrics_.queue_length.Decrement();
  metrics_.queue_wait_seconds.Observe(Since(queued));
  absl::MutexLock lock(&repo_mu_);
  absl::StatusOr<ApplyOutcome> out = ApplyLocked(request);
  // Whatever the outcome, the mirror keeps no refs of a branch per job (they would pile up):
  // upstream holds it. A fixed push branch keeps its two, so that the next write to it need
  // not download Ferry's pending commits again.
  if (absl::StrContains(options_.push_branch, kJobField)) {
    if (absl::StatusOr<std::string> branch = PushBranchOf(request); branch.ok()) {
      repo_.ForgetBranch(*branch);
    }
  }
  StartMaintenanceIfDue();
  return out;
}

absl::StatusOr<ApplyOutcome> Writer::ApplyLocked(const ApplyRequest& request) {
  ApplyOutcome out;
  for (int attempt = 0;; ++attempt) {
    // Where the time goes, in the "pushed" line: fetch, index, edit, commit, push (with the
    // job note).
    log::Laps laps;
    FERRY_ASSIGN_OR_RETURN(HeadInfo head, RefreshLocked());
    const int64_t fetch_ms = laps.Next();
    FERRY_ASSIGN_OR_RETURN(std::shared_ptr<const Index> index, LoadIndex(head.revision));
    const int64_t index_ms = laps.Next();
    EditedFiles files;
    FERRY_RETURN_IF_ERROR(EditFiles(request.edits, *index, head.revision, files, out.edits));
    std::vector<std::shared_ptr<const RenderedRoot>> verified;
    FERRY_RETURN_IF_ERROR(
        VerifyKustomize(request.edits, *index, head.revision, files, out.edits, verified));
    // On every attempt: a rebase onto a new upstream head may make an edit fail.
    if (request.all_or_nothing) FERRY_RETURN_IF_ERROR(AllEditsApplied(request.edits, out.edits));
    std::map<std::string, std::string> changed = ChangedFiles(files, request.omit_diff, out.diff);
    if (changed.empty()) {
      out.no_changes = true;
      return out;
    }
    if (request.dry_run) return out;
    DropParsedTrees(files);
    const int64_t edit_ms = laps.Next();

    const CommitSpec spec = CommitSpecOf(request, out.edits, head.revision, std::move(changed));
    // Leadership may have ended while this request waited in the queue, fetched or edited.
    FERRY_RETURN_IF_ERROR(MayWrite());
    FERRY_ASSIGN_OR_RETURN(std::string commit, repo_.CreateCommit(spec));
    // Release branches: the commit, made on the source head as always (the edits' "from"
    // values are what the source branch holds), goes onto the push branch instead.
    PushPlan plan;
    plan.tip = plan.commit = commit;
    if (!options_.push_branch.empty()) {
      FERRY_ASSIGN_OR_RETURN(std::string branch, PushBranchOf(request));
      FERRY_ASSIGN_OR_RETURN(plan, PlanPushBranch(branch, commit, head.revision));
      out.pushed_branch = plan.branch;
      out.dropped = plan.dropped;
      if (plan.no_changes) {
        out.no_changes = true;
        return out;
      }
    }
    const int64_t commit_ms = laps.Next();
    // The job note goes with the commit, in the same push (not with a push branch: it goes
    // on the commit holding the change, FinishPushBranch).
    std::string note_error;
    absl::Status pushed = Push(plan.tip, plan.branch, plan.expected, request.note, &note_error);
    const int64_t push_ms = laps.Next();
    if (pushed.ok() && !options_.push_branch.empty()) {
      FinishPushBranch(plan, request, out);
      return out;
    }
    if (pushed.ok()) {
      out.revision = commit;
      kustomize_.Remember(repo_, commit, verified);
      if (!note_error.empty()) {
        log::Warn("job note not stored", {{"revision", commit}, {"error", note_error}});
      }
      Pushed(commit, index, std::move(files));
      log::Info("pushed", {{"revision", commit},
                           {"files", static_cast<int>(spec.files.size())},
                           {"retries", out.retries},
                           {"fetch_ms", fetch_ms},
                           {"index_ms", index_ms},
                           {"edit_ms", edit_ms},
                           {"commit_ms", commit_ms},
                           {"push_ms", push_ms}});
      return out;
    }
    if (pushed.code() != absl::StatusCode::kAborted) return pushed;
    if (attempt >= options_.push_retries) {
      return absl::AbortedError(
          absl::StrCat("upstream kept moving: push rejected ", attempt + 1, " times; try again"));
    }
    ++out.retries;
    log::Info("push rejected, retrying on the new upstream head", {{"attempt", attempt + 1}});
  }
}

void Writer::FinishPushBranch(const PushPlan& plan, const ApplyRequest& request,
                              ApplyOutcome& out) {
  // The source branch did not move: nothing new to serve. The job note goes on the commit
  // holding the change.
  out.revision = plan.commit;
  const char* outcome = plan.created ? "created" : plan.force ? "rebuilt" : "fast_forward";
  metrics_.push_branch_writes.Add({{"outcome", outcome}}).Increment();
  metrics_.push_branch_dropped.Increment(static_cast<double>(plan.dropped.size()));
  if (!request.note.empty()) {
    if (absl::Status noted = repo_.AddNote(
            plan.commit, NoteWithPushedBranch(request.note, plan.branch), options_.committer);
        !noted.ok()) {
      log::Warn("job note not stored",
                {{"revision", plan.commit}, {"error", std::string(noted.message())}});
    }
  }
  log::Info("pushed to the push branch", {{"branch", plan.branch},
                                          {"revision", plan.commit},
                                          {"tip", plan.tip},
                                          {"rebuilt", plan.force},
                                          {"dropped", static_cast<int>(plan.dropped.size())},
                                          {"retries", out.retries}});
}

absl::Status Writer::EditFiles(const std::vector<EditRequest>& edits, const Index& index,
                               const std::string& revision, EditedFiles& files,
                               std::vector<EditOutcome>& outcomes) const {
  outcomes.assign(edits.size(), EditOutcome{});
  // Plain files are edited side by side, each file by one thread and its edits in request
  // order: files share nothing, and parsing is most of an edit. What kustomize renders may
  // be decided in a file other edits read, so those edits follow, one by one.
  std::map<std::string, std::vector<size_t>> by_file;  // path -> edits, in request order
  std::vector<size_t> rendered;
  for (size_t i = 0; i < edits.size(); ++i) {
    const manifest::Resource* found = index.Find(edits[i].workload);
    if (found != nullptr && index.RootOf(*found) == nullptr) {
      by_file[found->source.path].push_back(i);
    } else {
      rendered.push_back(i);  // or not found: EditFile says so
    }
  }
  struct FileWork {
    const std::string* path;
    const std::vector<size_t>* edits;
    FileState* file;
    absl::Status error;
  };
  std::vector<FileWork> work;
  for (const auto& [path, group] : by_file) {
    auto [it, inserted] = files.try_emplace(path);
    work.push_back({&path, &group, &it->second, absl::OkStatus()});
  }
  RunInParallel(work.size(), [&](size_t w) {
    FileWork& one = work[w];
    LoadFileState(index, *one.path, *one.file);
    for (size_t i : *one.edits) {
      one.error = EditInFile(edits[i], *one.path, *one.file, outcomes[i]);
      if (!one.error.ok()) return;
    }
  });
  for (const FileWork& one : work) FERRY_RETURN_IF_ERROR(one.error);
  for (size_t i : rendered) {
    FERRY_RETURN_IF_ERROR(EditFile(edits[i], index, revision, files, outcomes[i]));
  }
  // A file an edit grows past what git-writer reads would be skipped by the next index (and
  // by every reader of the commit): its edits fail, and it stays as it was.
  for (auto& [path, file] : files) {
    if (!file.changed || file.content.size() <= options_.max_file_bytes) continue;
    const std::string why = absl::StrCat(
        limits::OverLimit(absl::StrCat("the edited ", names::Escape(path)),
                          limits::kManifestFileBytes, options_.max_file_bytes, file.content.size()),
        "; the file is left as it is");
    file.content = file.original;
    file.changed = false;
    for (EditOutcome& o : outcomes) {
      if (o.path != path || !o.changed) continue;
      o.changed = false;
      o.status = absl::ResourceExhaustedError(why);
    }
  }
  return absl::OkStatus();
}

absl::Status Writer::EditFile(const EditRequest& edit, const Index& index,
                              const std::string& revision, EditedFiles& files,
                              EditOutcome& result) const {
  const manifest::Resource* found = index.Find(edit.workload);
  if (found == nullptr) {
    result.status = absl::NotFoundError(absl::StrCat(
        "workload ", edit.workload, " is not in the repository at ", revision.substr(0, 12)));
    return absl::OkStatus();
  }
  if (const RenderedRoot* root = index.RootOf(*found)) {
    return EditRendered(edit, index, *root, *found, files, result);
  }
  const std::string& path = found->source.path;
  return EditInFile(edit, path, OpenFile(index, path, files), result);
}

absl::Status Writer::EditInFile(const EditRequest& edit, const std::string& path, FileState& file,
                                EditOutcome& result) const {
  result.path = path;
  auto res = std::find_if(file.resources.begin(), file.resources.end(),
                          [&](const manifest::Resource& r) { return r.id == edit.workload; });
  if (res == file.resources.end()) {  // the index and the file disagree
    return absl::InternalError(absl::StrCat(names::Escape(path), ": workload ",
                                            names::Escape(edit.workload),
                                            " is in the index but not in its file"));
  }
  if (edit.policy.has_value() && !res->node.has_node()) {
    // A policy change reads the workload's containers (tag_all) from its parsed tree, which
    // the index does not keep.
    if (absl::Status parsed = manifest::ParseResourceDocument(file.content, *res, options_.load);
        !parsed.ok()) {
      result.status = parsed;
      return absl::OkStatus();
    }
  }
  return Replace(EditContent(edit, file.content, *res), res->source, file, result);
}

absl::Status Writer::Replace(absl::StatusOr<manifest::EditResult> edited,
                             const manifest::Source& source, FileState& file,
                             EditOutcome& result) const {
  if (!edited.ok()) {
    result.status = edited.status();
    return absl::OkStatus();
  }
  if (edited->changes.empty()) return absl::OkStatus();
  std::string old_content = std::move(file.content);
  file.content = std::move(edited->content);
  file.changed = true;
  result.changed = true;
  return manifest::ReindexEditedDocument(file.resources, source, old_content, file.content,
                                         edited->document, options_.load);
}

absl::Status Writer::EditRendered(const EditRequest& edit, const Index& index,
                                  const RenderedRoot& root, const manifest::Resource& rendered,
                                  EditedFiles& files, EditOutcome& result) const {
  result.path = root.root.file;
  absl::StatusOr<kustomize::EditTarget> target;
  if (edit.image.has_value()) {
    const manifest::ImageChange& change = *edit.image;
    auto containers = index.containers.find(ContainersKey(rendered));
    const manifest::Container* container = nullptr;
    if (containers != index.containers.end()) {
      for (const manifest::Container& c : *containers->second) {
        if (c.name == change.container) container = &c;
      }
    }
    if (container == nullptr) {
      result.status = absl::NotFoundError(
          absl::StrCat("container ", names::Escape(change.container), " is not in ", rendered.id));
      return absl::OkStatus();
    }
    if (change.from_image.has_value() && !image::SameImage(container->image, *change.from_image)) {
      result.status = absl::AbortedError(
          absl::StrCat("container ", change.container, " of ", rendered.id, " is now ",
                       container->image, ", not ", *change.from_image, "; plan the change again"));
      return absl::OkStatus();
    }
    target = kustomize::ImageTarget(
        *index.layout, root.root, root.origins, rendered.id, container->image,
        [&](const std::string& path) { return OpenFile(index, path, files).content; });
  } else if (edit.policy.has_value()) {
    target = kustomize::PolicyTarget(*index.layout, root.root, root.origins, rendered.id);
  } else {
    result.status = absl::InvalidArgumentError("edit has neither an image nor a policy");
    return absl::OkStatus();
  }
  if (!target.ok()) {
    result.status = target.status();
    return absl::OkStatus();
  }
  result.path = target->file;
  FileState& file = OpenFile(index, target->file, files);
  if (target->image_entry >= 0) {
    absl::StatusOr<std::string> edited = manifest::SetKustomizeImage(
        file.content, target->image_entry, edit.image->to_image, options_.load.limits);
    if (!edited.ok()) {
      result.status = edited.status();
    } else if (*edited != file.content) {
      file.content = *std::move(edited);
      file.changed = true;
      result.changed = true;
    }
    return absl::OkStatus();
  }
  auto res = std::find_if(file.resources.begin(), file.resources.end(),
                          [&](const manifest::Resource& r) { return r.id == target->id; });
  if (res == file.resources.end()) {
    result.status = absl::InternalError(
        absl::StrCat(names::Escape(target->file), " defines no ", names::Escape(target->id)));
    return absl::OkStatus();
  }
  if (edit.image.has_value()) {
    manifest::ImageChange literal = *edit.image;
    literal.from_image.reset();  // compared with what kustomize renders, above
    return Replace(manifest::SetImage(file.content, *res, literal, options_.load), res->source,
                   file, result);
  }
  absl::StatusOr<std::vector<manifest::AnnotationChange>> changes =
      manifest::PolicyAnnotationChanges(rendered, *edit.policy);
  if (!changes.ok() || changes->empty()) {
    result.status = changes.status();
    return absl::OkStatus();
  }
  return Replace(manifest::SetAnnotations(file.content, *res, *changes, options_.load), res->source,
                 file, result);
}

absl::Status Writer::VerifyKustomize(const std::vector<EditRequest>& edits, const Index& index,
                                     const std::string& revision, const EditedFiles& files,
                                     std::vector<EditOutcome>& outcomes,
                                     std::vector<std::shared_ptr<const RenderedRoot>>& verified) {
  if (index.layout == nullptr) return absl::OkStatus();
  std::map<std::string, std::string> changed;
  for (const auto& [path, file] : files) {
    if (file.changed && index.layout->Uses(path)) changed[path] = file.content;
  }
  auto reads = [](const RenderedRoot& root, const std::string& path) {
    return root.root.Reads(path);
  };
  std::vector<const kustomize::Root*> affected;
  std::vector<const RenderedRoot*> before;
  for (const auto& [file, root] : index.roots) {
    if (!root->error.empty()) continue;  // not built before the edit either
    bool reads_changed = false;
    for (const auto& [path, content] : changed) reads_changed = reads_changed || reads(*root, path);
    if (!reads_changed) continue;
    affected.push_back(&root->root);
    before.push_back(root.get());
  }
  std::map<std::string, std::shared_ptr<const RenderedRoot>> rebuilt;  // by root file
  // kustomize reads plain texts: copied only when a root is built again.
  std::vector<std::shared_ptr<const RenderedRoot>> after = kustomize_.BuildEdited(
      repo_, revision, *index.layout, affected,
      affected.empty() ? std::map<std::string, std::string>() : PlainTexts(index), changed,
      options_.load);
  for (size_t i = 0; i < after.size(); ++i) {
    if (!after[i]->error.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("after the edit, kustomize root ",
                                                        names::Escape(affected[i]->folder),
                                                        " no longer builds: ", after[i]->error));
    }
    verified.push_back(after[i]);
    if (after[i]->output != before[i]->output) rebuilt[affected[i]->file] = std::move(after[i]);
  }
  for (size_t i = 0; i < edits.size(); ++i) {
    EditOutcome& out = outcomes[i];
    if (!out.status.ok()) continue;
    if (out.changed) {
      for (const auto& [file, after] : rebuilt) {
        if (reads(*after, out.path)) out.roots.push_back(file);
      }
    }
    if (edits[i].policy.has_value()) {
      FERRY_RETURN_IF_ERROR(VerifyRenderedPolicy(edits[i], index, rebuilt));
      continue;
    }
    if (!out.changed || !edits[i].image.has_value()) continue;
    const manifest::Resource* found = index.Find(edits[i].workload);
    if (found == nullptr) continue;
    const RenderedRoot* root = index.RootOf(*found);
    if (root == nullptr) continue;
    // What the workload's root renders now (unchanged when the edit did not reach it).
    auto changed_root = rebuilt.find(root->root.file);
    const RenderedRoot& now = changed_root != rebuilt.end() ? *changed_root->second : *root;
    std::string rendered_image = "(nothing)";
    for (const auto& [key, containers] : now.containers) {
      if (key != ContainersKey(*found)) continue;
      for (const manifest::Container& c : *containers) {
        if (c.name == edits[i].image->container) rendered_image = c.image;
      }
    }
    if (!image::SameImage(rendered_image, edits[i].image->to_image)) {
      return absl::FailedPreconditionError(
          absl::StrCat("after editing ", names::Escape(out.path), ", kustomize renders ",
                       rendered_image, " for container ", names::Escape(edits[i].image->container),
                       " of ", edits[i].workload, ", not ", edits[i].image->to_image,
                       ": something else on root ", names::Escape(root->root.folder),
                       " decides the image (a patch or another images: entry); edit it by hand"));
    }
  }
  return absl::OkStatus();
}

absl::Status Writer::VerifyRenderedPolicy(
    const EditRequest& edit, const Index& index,
    const std::map<std::string, std::shared_ptr<const RenderedRoot>>& rebuilt) const {
  const manifest::Resource* found = index.Find(edit.workload);
  if (found == nullptr) return absl::OkStatus();
  const RenderedRoot* root = index.RootOf(*found);
  if (root == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<manifest::AnnotationChange>> wanted =
      manifest::PolicyAnnotationChanges(*found, *edit.policy);
  if (!wanted.ok()) return absl::OkStatus();  // the edit itself reported it
  auto changed_root = rebuilt.find(root->root.file);
  const RenderedRoot& now = changed_root != rebuilt.end() ? *changed_root->second : *root;
  auto rendered = std::find_if(now.resources.begin(), now.resources.end(),
                               [&](const manifest::Resource& r) { return r.id == edit.workload; });
  for (const manifest::AnnotationChange& c : *wanted) {
    std::optional<std::string> value;
    if (rendered != now.resources.end()) {
      auto a = rendered->annotations.find(c.key);
      if (a != rendered->annotations.end()) value = a->second;
    }
    if (value == c.value) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "kustomize root ", names::Escape(root->root.folder.empty() ? "." : root->root.folder),
        " renders the annotation ", names::Escape(c.key), " of ", edit.workload, " as ",
        value.has_value() ? names::Escape(*value) : "(none)",
        " whatever its file says: a patch or commonAnnotations decide it; change it there"));
  }
  return absl::OkStatus();
}

absl::StatusOr<manifest::EditResult> Writer::EditContent(const EditRequest& edit,
                                                         const std::string& content,
                                                         const manifest::Resource& resource) const {
  if (edit.image.has_value()) {
    return manifest::SetImage(content, resource, *edit.image, options_.load);
  }
  if (!edit.policy.has_value()) {
    return absl::InvalidArgumentError("edit has neither an image nor a policy");
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<manifest::AnnotationChange> changes,
                         manifest::PolicyAnnotationChanges(resource, *edit.policy));
  if (changes.empty()) return manifest::EditResult{};  // nothing to change
  return manifest::SetAnnotations(content, resource, changes, options_.load);
}

std::map<std::string, std::string> Writer::ChangedFiles(const EditedFiles& files, bool omit_diff,
                                                        std::string& diff) {
  std::map<std::string, std::string> changed;
  diff.clear();
  for (const auto& [path, file] : files) {
    if (!file.changed) continue;
    changed[path] = file.content;
    if (!omit_diff) absl::StrAppend(&diff, repo_.Diff(path, file.original, file.content));
  }
  return changed;
}

CommitSpec Writer::CommitSpecOf(const ApplyRequest& request,
                                const std::vector<EditOutcome>& outcomes, const std::string& parent,
                                std::map<std::string, std::string> changed) const {
  CommitSpec spec;
  spec.parent = parent;
  spec.files = std::move(changed);
  spec.message = request.message.empty() ? Summary(request.edits, outcomes) : request.message;
  if (options_.commit_template != nullptr) {
    CommitFields fields{request.job_id, request.job_kind,
                        request.user,   request.cause_message,
                        spec.message,   ChangesOf(request.edits, outcomes)};
    // Room for the suffix and the trailer, added below.
    const size_t reserved = options_.message_suffix.size() + 2 +
                            (request.job_id.empty() ? 0 : request.job_id.size() + 14);
    const size_t max = options_.max_commit_message_bytes;
    std::string rendered =
        options_.commit_template->Render(fields, max > reserved ? max - reserved : 0);
    // A template that renders only blanks leaves Ferry's own message.
    if (!absl::StripAsciiWhitespace(rendered).empty()) spec.message = std::move(rendered);
  }
  if (!options_.message_suffix.empty()) {
    absl::StrAppend(&spec.message, spec.message.back() == '\n' ? "" : "\n\n",
                    options_.message_suffix);
  }
  spec.message = WithJobTrailer(std::move(spec.message), request.job_id);
  spec.author = request.author.value_or(options_.committer);
  spec.committer = options_.committer;
  return spec;
}

absl::Status Writer::Push(const std::string& commit, const std::string& branch,
                          const std::string& expected, const std::string& note,
                          std::string* note_error) {
  // Fencing: no push once leadership is over. The repository asks again right before it
  // sends and aborts a push that outlives the leadership (Libgit2Options::push_permit). A
  // push that the remote received anyway (sent just before the deadline, or by a paused
  // process that woke up past it) is still safe: it is compare-and-set, so it lands only on
  // the head it was made on and never replaces the new leader's commits.
  FERRY_RETURN_IF_ERROR(MayWrite());
  const auto push_start = std::chrono::steady_clock::now();
  absl::Status pushed =
      !branch.empty() ? repo_.PushTo(branch, commit, expected)
      : note.empty()  ? repo_.PushBranch(commit)
                      : repo_.PushBranchWithNote(commit, note, options_.committer, note_error);
  if (pushed.ok()) {
    metrics_.push_seconds.Add({{"outcome", "ok"}}, kSecondsBuckets).Observe(Since(push_start));
    metrics_.commits.Increment();
  } else if (pushed.code() != absl::StatusCode::kAborted) {
    metrics_.push_seconds.Add({{"outcome", "error"}}, kSecondsBuckets).Observe(Since(push_start));
  } else {
    metrics_.push_seconds.Add({{"outcome", "rejected"}}, kSecondsBuckets)
        .Observe(Since(push_start));
    metrics_.push_conflicts.Increment();
  }
  return pushed;
}

namespace {

// At most this many commits on the push branch that the source branch does not have.
constexpr size_t kMaxPendingCommits = 1000;

// "abc123def456 ("subject" by Name <email>)", cut to a line.
std::string Describe(const BranchCommit& c) {
  std::string subject = c.subject.substr(0, 72);
  return absl::StrCat(c.id.substr(0, 12), " (\"", subject, "\" by ", c.committer.name.substr(0, 64),
                      " <", c.committer.email.substr(0, 64), ">)");
}

}  // namespace

bool Writer::IsFerrys(const BranchCommit& c) {
  if (c.job.empty()) return false;
  if (options_.own_signatures == nullptr) {
    return c.committer.name == options_.committer.name &&
           c.committer.email == options_.committer.email;
  }
  // A commit's signature never changes: checked once (a plan asks about each pending commit
  // twice, and every write of the branch again).
  if (auto it = ferrys_.find(c.id); it != ferrys_.end()) return it->second;
  absl::StatusOr<std::pair<std::string, std::string>> signed_commit = repo_.CommitSignature(c.id);
  absl::Status own = signed_commit.ok() ? options_.own_signatures->Verify(signed_commit->second,
                                                                          signed_commit->first)
                                        : signed_commit.status();
  if (!own.ok()) {
    log::Info("push branch commit not signed by Ferry's key",
              {{"commit", c.id}, {"reason", std::string(own.message())}});
  }
  // Only verdicts (signed or not, by Ferry's key or not) are kept, not failed checks.
  if (own.ok() || absl::IsPermissionDenied(own) || absl::IsNotFound(own)) {
    if (ferrys_.size() >= kMaxVerified) ferrys_.clear();
    ferrys_.emplace(c.id, own.ok());
  }
  return own.ok();
}

absl::StatusOr<std::string> Writer::PushBranchOf(const ApplyRequest& request) const {
  if (!absl::StrContains(options_.push_branch, kJobField)) return options_.push_branch;
  if (request.job_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("--git_push_branch ", options_.push_branch,
                                                      " names ", kJobField,
                                                      ", but this change comes without a job id"));
  }
  return absl::StrReplaceAll(options_.push_branch, {{kJobField, request.job_id}});
}

absl::StatusOr<std::string> Writer::ReplayPending(const std::vector<BranchCommit>& pending,
                                                  std::string onto, const std::string& why,
                                                  std::vector<std::string>& dropped) {
  for (const BranchCommit& c : pending) {
    if (!IsFerrys(c)) continue;
    // Any error (a signing failure above all) stops the whole write: nothing is pushed.
    FERRY_ASSIGN_OR_RETURN(ReplayResult next, repo_.Replay(c.id, onto, options_.committer));
    if (!next.conflict) {
      if (next.commit == onto) {
        log::Info("pending commit already applied", {{"commit", c.id}});
      }
      onto = std::move(next.commit);
      continue;
    }
    dropped.push_back(absl::StrCat(Describe(c), ": dropped, ", why, ": ", next.reason));
    log::Warn("pending commit dropped from the push branch",
              {{"commit", c.id}, {"reason", dropped.back()}});
  }
  return onto;
}

absl::StatusOr<bool> Writer::FastForwardPushBranch(PushPlan& plan, const std::string& commit) {
  // Only Ferry's commits on top of the source head: this change goes on top of them.
  FERRY_ASSIGN_OR_RETURN(ReplayResult ff, repo_.Replay(commit, plan.expected, options_.committer));
  if (ff.conflict) return false;
  plan.no_changes = ff.commit == plan.expected;  // a pending commit made this change already
  plan.tip = plan.commit = ff.commit;
  return true;
}

absl::StatusOr<bool> Writer::RebuildPushBranch(PushPlan& plan,
                                               const std::vector<BranchCommit>& pending,
                                               const std::string& commit,
                                               const std::string& source) {
  // The source moved (or someone else's commits go): rebuilt on the source head, Ferry's
  // pending commits first, then this change.
  std::vector<std::string> dropped = plan.dropped;
  FERRY_ASSIGN_OR_RETURN(
      std::string tip,
      ReplayPending(pending, source, "it conflicts with the source branch now", dropped));
  ReplayResult on_top;
  on_top.commit = commit;
  if (tip != source) {
    FERRY_ASSIGN_OR_RETURN(on_top, repo_.Replay(commit, tip, options_.committer));
  }
  if (on_top.conflict) return false;
  plan.no_changes = on_top.commit == tip;
  plan.tip = plan.commit = on_top.commit;
  plan.force = true;
  plan.dropped = std::move(dropped);
  return true;
}

absl::StatusOr<Writer::PushPlan> Writer::PlanPushBranch(const std::string& branch,
                                                        const std::string& commit,
                                                        const std::string& source) {
  PushPlan plan;
  plan.branch = branch;
  plan.tip = plan.commit = commit;
  absl::StatusOr<std::string> current = repo_.FetchBranch(branch);
  if (absl::IsNotFound(current.status())) {  // created on the source head
    plan.created = true;
    return plan;
  }
  if (!current.ok()) return current.status();
  plan.expected = *current;
  FERRY_ASSIGN_OR_RETURN(std::vector<BranchCommit> pending,
                         repo_.CommitsBetween(source, *current, kMaxPendingCommits));
  for (const BranchCommit& c : pending) {
    if (IsFerrys(c)) continue;
    if (!options_.push_branch_force) {
      metrics_.push_branch_writes.Add({{"outcome", "refused"}}).Increment();
      return absl::FailedPreconditionError(absl::StrCat(
          "push branch ", branch, " holds commit ", Describe(c),
          " that Ferry did not make; Ferry does not overwrite it: merge or delete the branch, "
          "or start git-writer with --git_push_branch_force to rebuild it without that commit"));
    }
    plan.dropped.push_back(
        absl::StrCat(Describe(c), ": someone else's commit, dropped (--git_push_branch_force)"));
  }
  FERRY_ASSIGN_OR_RETURN(bool on_source, repo_.IsAncestor(source, *current));
  FERRY_ASSIGN_OR_RETURN(bool planned, on_source&& plan.dropped.empty()
                                           ? FastForwardPushBranch(plan, commit)
                                           : RebuildPushBranch(plan, pending, commit, source));
  if (planned) return plan;
  // This change conflicts with one of Ferry's pending commits (the same lines: an image
  // released again before the first release was merged). The newer change wins: the branch
  // becomes the source head, this change, then the pending commits that still apply.
  FERRY_ASSIGN_OR_RETURN(
      plan.tip, ReplayPending(pending, commit, "superseded by a newer change", plan.dropped));
  plan.commit = commit;
  plan.force = true;
  return plan;
}

void Writer::Pushed(const std::string& commit, std::shared_ptr<const Index> base,
                    EditedFiles files) {
  bool kustomize_changed = false;
  for (const auto& [path, file] : files) {
    kustomize_changed =
        kustomize_changed || (file.changed && base->layout != nullptr && base->layout->Uses(path));
  }
  HeadInfo now = CurrentHead();
  // Checked before its index is cached: a cached index is served without a check (IndexAt).
  if (absl::Status checked = CheckSigned(commit); !checked.ok()) {
    // Ferry's own commit, signed with a key the allowed signers do not hold: pushed, but not
    // served (the last verified revision stays).
    now.verify_error =
        absl::StrCat("Ferry's commit ", commit.substr(0, 12), " is not served: ", checked.message(),
                     " (add --git_signing_key_path's key to the allowed signers)");
    log::Warn("own commit not verified", {{"revision", commit}, {"error", now.verify_error}});
    metrics_.head_verified.Set(0);
    SetHead(now);
  } else {
    if (kustomize_changed) {
      // The roots that read what changed are built again (the others come from the cache).
      if (absl::StatusOr<std::shared_ptr<const Index>> next = LoadIndex(commit); !next.ok()) {
        log::Warn("index of the new commit not built",
                  {{"revision", commit}, {"error", std::string(next.status().message())}});
      }
    } else {
      absl::MutexLock lock(&pending_mu_);
      pending_index_ =
          std::make_shared<PendingIndex>(PendingIndex{commit, std::move(base), std::move(files)});
    }
    now.revision = commit;
    now.commit_time = repo_.CommitTime(commit).value_or(absl::Now());
    SetHead(now);
  }
}

Writer::FileState& Writer::OpenFile(const Index& index, const std::string& path,
                                    EditedFiles& files) const {
  auto [it, inserted] = files.try_emplace(path);
  LoadFileState(index, path, it->second);
  return it->second;
}

void Writer::LoadFileState(const Index& index, const std::string& path, FileState& file) const {
  if (file.loaded) return;
  file.loaded = true;
  file.original = file.content = *index.files.at(path);
  if (const std::vector<size_t>* defined = index.ResourcesIn(path)) {
    // What the index read from the file; the edit parses only the document it changes.
    for (size_t i : *defined) file.resources.push_back(index.loaded.resources[i]);
  } else {
    file.resources = manifest::LoadFile(path, file.content, options_.load).resources;
  }
}

void Writer::DropParsedTrees(EditedFiles& files) {
  for (auto& [path, file] : files) {
    file.original.clear();
    file.original.shrink_to_fit();
    for (manifest::Resource& r : file.resources) {
      if (!r.node.has_node()) continue;
      // Only a changed file's resources go into the next index as they are here.
      if (file.changed) {
        file.fresh[ContainersKey(r)] =
            Share(manifest::IsWorkloadKind(r.kind) ? FindContainers(r)
                                                   : std::vector<manifest::Container>());
      }
      r.node = manifest::NodeHandle();
      r.document = manifest::NodeHandle();
    }
  }
}

namespace {
// The resources of the changed file `file` by id, when they are the ones `base` read from it
// (ResourcesIn): the k-th of the result takes the place of the k-th of `at` in the next index,
// which keeps its order by id. Empty (and false returned) when an edit added, removed or
// renamed a resource, or the base cannot say what the file defines. An edit puts the
// resources of the document it changed last in `file.resources`, so they are matched by id,
// not by place.
template <typename File>
bool SameIdsInPlace(const Index& base, const std::string& path, const File& file,
                    std::vector<const manifest::Resource*>& by_id) {
  by_id.clear();
  const std::vector<size_t>* at = base.ResourcesIn(path);
  if (at == nullptr || at->size() != file.resources.size()) return false;
  for (const manifest::Resource& r : file.resources) by_id.push_back(&r);
  std::sort(by_id.begin(), by_id.end(),
            [](const manifest::Resource* a, const manifest::Resource* b) { return a->id < b->id; });
  for (size_t k = 0; k < at->size(); ++k) {
    if (base.loaded.resources[(*at)[k]].id != by_id[k]->id) return false;
  }
  return true;
}

// Whether every changed file of `files` defines the ids `base` read from it (SameIdsInPlace).
template <typename Files>
bool ResourcesStayInPlace(const Index& base, const Files& files) {
  std::vector<const manifest::Resource*> by_id;
  for (const auto& [path, file] : files) {
    if (file.changed && !SameIdsInPlace(base, path, file, by_id)) return false;
  }
  return true;
}
}  // namespace

std::shared_ptr<const Index> Writer::IndexAfterCommit(const std::string& commit, const Index& base,
                                                      const EditedFiles& files) {
  auto next = std::make_shared<Index>();
  next->revision = commit;
  next->files = base.files;
  next->unreadable = base.unreadable;  // Ferry edits none of them
  next->blobs = base.blobs;  // the changed files' new blobs are not known here: parsed anew
  next->had_duplicates = base.had_duplicates;
  next->layout = base.layout;  // only plain files changed (see Pushed)
  next->roots = base.roots;
  size_t edited = 0;
  for (const auto& [path, file] : files) {
    if (!file.changed) continue;
    next->blobs.erase(path);
    next->files[path] = std::make_shared<const std::string>(file.content);
    edited += file.resources.size();
  }
  if (ResourcesStayInPlace(base, files)) {
    // The usual release: image and policy edits leave each file's resources where they
    // were, so the next index is the base with those replaced, without sorting 20,000
    // resources again or rebuilding the containers of every workload.
    next->loaded = base.loaded;
    next->containers = base.containers;
    next->by_path = base.PathView();  // every resource keeps its place
    // The base's ListWorkloads entries, when it has them, for the workloads of the files that
    // did not change: the first listing of the new revision makes only the others
    // (GitWriterService). Complete once answers_made is set, and never written again.
    if (base.answers_made.load(std::memory_order_acquire)) next->answers = base.answers;
    std::vector<const manifest::Resource*> by_id;
    for (const auto& [path, file] : files) {
      if (!file.changed) continue;
      SameIdsInPlace(base, path, file, by_id);  // true: ResourcesStayInPlace
      const std::vector<size_t>& at = *base.ResourcesIn(path);
      for (size_t k = 0; k < at.size(); ++k) {
        const manifest::Resource& r = *by_id[k];
        if (!next->answers.empty()) std::string().swap(next->answers[at[k]]);  // made anew
        manifest::Resource& slot = next->loaded.resources[at[k]];
        const std::string key = ContainersKey(r);
        if (r.node.has_node()) {  // parsed anew, its tree still here (no DropParsedTrees)
          if (manifest::IsWorkloadKind(r.kind)) next->containers[key] = Share(FindContainers(r));
          slot = r;
          slot.node = manifest::NodeHandle();
          slot.document = manifest::NodeHandle();
          continue;
        }
        if (auto fresh = file.fresh.find(key);
            fresh != file.fresh.end() && manifest::IsWorkloadKind(r.kind)) {
          next->containers[key] = fresh->second;
        }
        slot = r;
      }
    }
    return next;
  }
  next->loaded.resources.reserve(base.loaded.resources.size() + edited);  // at most
  for (const manifest::Resource& r : base.loaded.resources) {
    auto f = files.find(r.source.path);
    if (f == files.end() || !f->second.changed) AddKept(r, base, *next);
  }
  for (const manifest::LoadError& e : base.loaded.errors) next->loaded.errors.push_back(e);
  for (const auto& [path, file] : files) {
    if (!file.changed) continue;
    // The edited documents were parsed anew; the others of the file were read from the index
    // (LoadFileState) and keep their containers, whose key an edit elsewhere does not move.
    for (const manifest::Resource& r : file.resources) {
      if (r.node.has_node()) {  // parsed anew, its tree still here (no DropParsedTrees)
        AddParsed(r, *next);
        continue;
      }
      auto fresh = file.fresh.find(ContainersKey(r));
      if (fresh == file.fresh.end()) {
        AddKept(r, base, *next);
        continue;
      }
      if (manifest::IsWorkloadKind(r.kind)) next->containers.insert(*fresh);
      next->loaded.resources.push_back(r);
    }
  }
  manifest::FinishLoad(next->loaded);
  return next;
}

absl::Status Writer::SetSyncMarker(const std::string& tag, const std::string& revision) {
  if (options_.readonly) {
    return absl::FailedPreconditionError(
        "git-writer runs read-only (--git_readonly): the sync marker cannot be moved");
  }
  FERRY_RETURN_IF_ERROR(MayWrite());
  absl::MutexLock lock(&repo_mu_);
  FERRY_RETURN_IF_ERROR(CheckMarkerMovesForward(tag, revision));
  FERRY_RETURN_IF_ERROR(MayWrite());  // again: the lock may have been waited for
  absl::Status set = repo_.SetTag(tag, revision, "Synced by Ferry", options_.committer);
  StartMaintenanceIfDue();
  return set;
}

void Writer::StartMaintenanceIfDue() {
  if (maintaining_ || stopping_) return;
  std::unique_ptr<Maintenance> due = repo_.DueMaintenance();
  if (due == nullptr) return;
  maintaining_ = true;
  // Set once the thread holds it; the thread clears it under repo_mu_, held here.
  Maintenance* const running = due.get();
  // The last one has ended (maintaining_ was false): its thread only remains to be joined.
  if (maintenance_.joinable()) maintenance_.join();
  maintenance_ = std::thread([this, work = std::move(due)]() mutable {
    while (work != nullptr) {
      absl::Status status = work->Run();  // beside the writes
      absl::MutexLock lock(&repo_mu_);
      if (status.ok()) status = work->Finish();
      running_maintenance_ = nullptr;
      work = nullptr;
      if (absl::IsCancelled(status)) {
        log::Info("mirror fold cancelled: git-writer is stopping");
      } else if (!status.ok()) {
        log::Warn("repacking the mirror failed", {{"error", std::string(status.message())}});
      } else if (!stopping_) {
        // Due again at once when 32 more writes came meanwhile, or when the fold was set
        // aside (the next one keeps every object).
        work = repo_.DueMaintenance();
        running_maintenance_ = work.get();
      }
      if (work == nullptr) maintaining_ = false;
    }
  });
  running_maintenance_ = running;
}

void Writer::WaitForMaintenance() {
  std::thread running;
  {
    absl::MutexLock lock(&repo_mu_);
    running = std::move(maintenance_);
  }
  if (running.joinable()) running.join();
}

Writer::~Writer() {
  {
    // The one running is cancelled (a fold at 10,000 workloads takes seconds, and may take
    // up to kRepackTimeout); no other starts.
    absl::MutexLock lock(&repo_mu_);
    stopping_ = true;
    if (running_maintenance_ != nullptr) running_maintenance_->Cancel();
  }
  WaitForMaintenance();
}

absl::Status Writer::MayWrite() const {
  if (!options_.write_permit) return absl::OkStatus();
  absl::StatusOr<absl::Duration> validity = options_.write_permit();
  return validity.ok() ? absl::OkStatus() : validity.status();
}

absl::Status Writer::CheckMarkerMovesForward(const std::string& tag, const std::string& revision) {
  absl::StatusOr<std::string> marker = repo_.TagTarget(tag);
  if (!marker.ok() || *marker == revision) return absl::OkStatus();  // no marker yet, or same
  absl::StatusOr<bool> backwards = repo_.IsAncestor(revision, *marker);
  if (!backwards.ok() || !*backwards) return absl::OkStatus();  // cannot tell, or not behind
  // The marker is ahead of `revision`. While it is still on the branch's history, `revision`
  // is a sync that finished late (a slow or deposed syncer): refused. When upstream was reset
  // to before the marker, the marker follows the branch back.
  const std::string head = CurrentHead().revision;
  if (head.empty()) return absl::OkStatus();
  absl::StatusOr<bool> on_branch = repo_.IsAncestor(*marker, head);
  if (!on_branch.ok() || !*on_branch) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the sync marker ", tag, " is at ", marker->substr(0, 12), ", which already contains ",
      revision.substr(0, 12), ": it does not move backwards"));
}

absl::StatusOr<std::string> Writer::GetSyncMarker(const std::string& tag) {
  absl::MutexLock lock(&repo_mu_);
  return repo_.TagTarget(tag);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Writer::ListNotes(int limit) {
  absl::MutexLock lock(&repo_mu_);
  return repo_.ListNotes(limit);
}

}  // namespace ferry::git_writer
