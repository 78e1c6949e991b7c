// The scanning logic: which repositories are watched, what their tags are, and what
// changed. Tags are listed every scan; metadata is fetched only for tags not known yet;
// known tags are re-checked with a HEAD of their manifest on an adaptive interval (longer
// while the digest stays, back to the minimum when it moves). Everything learned goes to
// the persistent cache first.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"
#include "services/registry-scanner/cache.h"
#include "services/registry-scanner/metadata.h"
#include "services/registry-scanner/registry_client.h"

namespace ferry::registry_scanner {

struct ScannerOptions {
  MetadataOptions metadata;
  // How often a watched repository's tags are listed.
  absl::Duration scan_interval = absl::Minutes(5);
  // Bounds of the adaptive re-check interval of known tags.
  absl::Duration min_recheck = absl::Minutes(5);
  absl::Duration max_recheck = absl::Hours(24);
  // Repositories unwatched for this long are forgotten.
  absl::Duration expire_after = absl::Hours(24 * 7);
  // Tags of one repository whose metadata (or re-check) is fetched at once during a scan:
  // --registry_concurrency, the requests the operator allows in flight per registry host
  // (the rate-limited HTTP client holds every request to that bound, across all scans).
  // Also the number of tag fetcher threads per registry host, shared by the scans of that
  // host (at most kMaxScanConcurrency).
  int concurrency = 8;
  // Asked before every scan and every change of the watch set (leader election: only the
  // leader scans); what it refuses is not done, and its status (Unavailable naming the
  // leader) is the answer. Unset: everything is allowed.
  std::function<absl::Status()> permit;
};

// Tag fetchers per registry host at most, whatever --registry_concurrency says.
inline constexpr int kMaxScanConcurrency = 64;
// Repositories the binary's scan queue scans at once.
inline constexpr int kScanWorkers = 4;

struct TagEvent {
  enum class Kind { kNewTag, kTagMoved, kRepositoryError };
  uint64_t sequence = 0;
  Kind kind = Kind::kNewTag;
  std::string repository;
  TagRecord tag;
  std::string previous_digest;
  std::string error;
  absl::Time time;
};

struct ScannerMetrics {
  explicit ScannerMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& scans;  // {outcome}
  prometheus::Histogram& scan_seconds;
  prometheus::Gauge& tags_known;
  prometheus::Gauge& watched;
  prometheus::Family<prometheus::Gauge>& last_scan;  // {repository}
  prometheus::Counter& metadata_fetches;             // cache misses
  prometheus::Counter& cache_hits;
};

// Thread-safe.
class Scanner {
 public:
  // `clock` decides what is due (scan interval, backoff, re-checks, expiry) and stamps what
  // is stored and emitted; the scan-duration metric stays in real time.
  Scanner(RegistryClient& client, Cache& cache, ScannerOptions options, ScannerMetrics& metrics,
          runtime::Clock& clock = runtime::SystemClock());
  // Stops the tag fetchers. No scan may be in progress (stop the ScanQueue first).
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // Replaces the watch set ("registry/path" names). Returns (added, removed). The permit's
  // status when it refuses.
  absl::StatusOr<std::pair<std::vector<std::string>, std::vector<std::string>>> Watch(
      const std::vector<std::string>& repositories);

  // Scans `repository` now; the permit's status, and nothing scanned, when it refuses. With
  // `unless_scanned`, a repository that has been scanned once is
  // not scanned again, nor one that another caller scanned while this one waited for it
  // (`scans_seen`: the number of scans that had ended when this caller came): its outcome is
  // the answer, a failure too. Its registry requests go out with `priority` (kInteractive:
  // someone waits for this scan, e.g. a push webhook's), and so are its tags' fetches taken
  // ahead of other scans' by the host's fetchers.
  absl::Status Scan(const std::string& repository, bool unless_scanned = false,
                    uint64_t scans_seen = 0, http::Priority priority = http::Priority::kBackground);

  // Callers of Scan (readers of a repository never scanned among them) waiting for a scan of
  // `repository` in progress to end. For tests that need them queued.
  int ScansWaiting(const std::string& repository) const;
  // Scans of `registry`'s repositories with tag jobs the host's fetchers have not started yet.
  // For tests that need them queued.
  int ScansFetching(const std::string& registry);

  // Watched repositories whose scan is due (also updates the tags-known gauge and expires
  // long-unwatched repositories).
  std::vector<std::string> DueRepositories();

  // Cached tags of `repository`; a repository never scanned is scanned first, with
  // `priority` (kInteractive: the caller answers someone waiting).
  absl::StatusOr<std::vector<TagRecord>> Tags(
      const std::string& repository, http::Priority priority = http::Priority::kBackground);
  // Cached tags of `repository` as they are, never scanning (none for a repository never
  // scanned): for a caller that can ask the registry for the one tag it needs instead.
  absl::StatusOr<std::vector<TagRecord>> KnownTags(const std::string& repository) {
    return cache_.Tags(repository);
  }

  // True when `repository` is in the watch set.
  bool IsWatched(const std::string& repository);

  // Number of cached tags per repository.
  absl::StatusOr<std::map<std::string, int>> TagCounts() { return cache_.TagCounts(); }

  absl::StatusOr<std::vector<RepositoryRecord>> Repositories();
  // When `record` should be scanned next: --scan_interval after its last successful scan,
  // or, while scans fail, after a backoff from the last attempt (5 s doubling per failure,
  // at most the scan interval), so a broken registry is not hammered.
  absl::Time NextScan(const RepositoryRecord& record) const;

  // Events with a sequence number above `after`, waiting up to `timeout` for the first
  // (real time: a caller's wait, not the scanner's clock).
  std::vector<TagEvent> WaitForEvents(uint64_t after, absl::Duration timeout);
  // The sequence number of the newest event (0 when none).
  uint64_t LastSequence() const;

  // "registry/path" -> ("registry", "path"). InvalidArgument for a name without both.
  static absl::StatusOr<std::pair<std::string, std::string>> SplitRepository(
      const std::string& repository);

  runtime::Clock& clock() const { return clock_; }

 private:
  void Emit(TagEvent event);

  // A listed tag that needs the registry: a new one (its metadata is fetched), or a known one
  // due for a re-check (a HEAD of its manifest; the metadata again when the digest moved).
  struct TagJob {
    std::string tag;
    std::optional<TagRecord> known;
  };
  struct TagOutcome;
  struct TagBatch;
  TagOutcome RunTagJob(const std::string& registry, const std::string& path, const TagJob& job,
                       absl::Time now, bool first_scan, http::Priority priority);
  // Runs `jobs` of `repository` on the tag fetchers of its registry host (below), up to
  // options_.concurrency at once for that host across every scan; stores what they learned
  // and emits its events in list order, several tags per transaction. After a failure no
  // more jobs start, the ones already answered are stored, and the first failure (in list
  // order) is returned.
  absl::Status RunTagJobs(const std::string& repository, const std::string& registry,
                          const std::string& path, const std::vector<TagJob>& jobs, absl::Time now,
                          bool first_scan, http::Priority priority);
  // Stores the records of `outcomes` (one transaction), then emits their events in order.
  absl::Status StoreOutcomes(const std::string& repository, std::vector<TagOutcome>& outcomes);

  // The tag fetchers of one registry host: up to options_.concurrency threads, started on
  // the first scan that needs them and kept until the scanner ends, shared by every scan of
  // that host. They take the next job of the scans in progress in turn, so each thread goes
  // from one answer straight to its next request: as many threads as the host allows
  // requests in flight, none waiting for a slot of the rate-limited client (a thread per tag
  // job of each scan had 4 scans x 8 threads hand 8 slots to each other, and the extra
  // thread switches took CPU from a registry on the same machine).
  struct Fetchers {
    // Scans with jobs not started yet, in turn; an interactive scan's jobs go first.
    std::deque<TagBatch*> batches;
    int threads = 0;
  };
  void FetchLoop(const std::string& registry);

  RegistryClient& client_;
  Cache& cache_;
  const ScannerOptions options_;
  ScannerMetrics& metrics_;
  runtime::Clock& clock_;

  // One scan at a time per repository; different repositories scan in parallel (the
  // per-host rate limit keeps registries' load in check).
  absl::Mutex* RepositoryMutex(const std::string& repository);
  absl::Mutex repo_mu_map_mu_;
  std::map<std::string, std::unique_ptr<absl::Mutex>> repo_mu_ ABSL_GUARDED_BY(repo_mu_map_mu_);

  struct Attempts {
    absl::Time last = absl::InfinitePast();
    int failures = 0;
    uint64_t finished = 0;  // scans that ended, however
    int waiting = 0;        // callers of Scan waiting for the repository's scan lock
  };
  mutable absl::Mutex attempts_mu_;
  std::map<std::string, Attempts> attempts_ ABSL_GUARDED_BY(attempts_mu_);

  // Guards fetchers_, fetch_threads_, stopping_ and every TagBatch's shared state.
  absl::Mutex fetch_mu_;
  std::map<std::string, Fetchers> fetchers_ ABSL_GUARDED_BY(fetch_mu_);  // by registry host
  std::vector<std::thread> fetch_threads_ ABSL_GUARDED_BY(fetch_mu_);
  bool stopping_ ABSL_GUARDED_BY(fetch_mu_) = false;

  // WaitForEvents waits on a condition of events_mu_ (woken by Emit's unlock).
  mutable absl::Mutex events_mu_;
  std::deque<TagEvent> events_ ABSL_GUARDED_BY(events_mu_);  // bounded
  uint64_t sequence_ ABSL_GUARDED_BY(events_mu_) = 0;
};

// Runs requested scans (due ones and those webhooks ask for) on a few worker threads, each
// repository at most once per pending request, so one slow registry occupies one worker
// and never delays the others. Retries are timed by the scanner's clock. Interactive
// requests (a push webhook's, and their retries) are taken first, and `interactive_workers`
// more workers take only those: a push is scanned at once also while every other worker is
// busy.
class ScanQueue {
 public:
  explicit ScanQueue(Scanner& scanner, int workers = 4, int interactive_workers = 1);
  ~ScanQueue();
  // Queues a scan of `repository` when it is watched (a hint about anything else is
  // ignored). Returns whether it was queued. With `expected_tag` (a push webhook names the
  // tag), the scan is repeated a few times with growing pauses (0.1 s ... 3.2 s) until the
  // tag shows: registries may notify before the tag is listed.
  bool Request(const std::string& repository, const std::string& expected_tag = "",
               http::Priority priority = http::Priority::kBackground);
  // Waits until no scan is queued, running or waiting for a retry, at most `timeout` (real
  // time). Returns whether the queue is idle.
  bool WaitIdle(absl::Duration timeout);

 private:
  // `reserved`: takes interactive requests only.
  void Run(bool reserved);
  // After a scan of `repository`: drops the expected tags now known, schedules a retry for
  // the others (the caller holds mu_).
  void CheckExpected(const std::string& repository) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Expected {
    std::set<std::string> tags;
    int attempts = 0;
    bool interactive = false;  // its retries are interactive too
  };
  Scanner& scanner_;
  // Idle workers wait on a condition of mu_ (woken by the unlock after a change).
  absl::Mutex mu_;
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> running_ ABSL_GUARDED_BY(mu_);
  // The pending repositories whose scan is interactive.
  std::set<std::string> interactive_ ABSL_GUARDED_BY(mu_);
  // Repository -> tags a webhook announced.
  std::map<std::string, Expected> expected_ ABSL_GUARDED_BY(mu_);
  // Repository -> when to scan again.
  std::map<std::string, absl::Time> retry_at_ ABSL_GUARDED_BY(mu_);
  // Workers between taking a repository and having scheduled its retry (if any).
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  // Counts the changes an idle worker wakes for: a request, a scan's end (and the retry it
  // may have scheduled).
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ferry::registry_scanner
