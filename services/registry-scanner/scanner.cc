#include "services/registry-scanner/scanner.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/log/log.h"

namespace ferry::registry_scanner {
namespace {

constexpr size_t kMaxEvents = 10000;

}  // namespace

// What came of one tag's job: a record to store (with the event to emit once it is stored),
// nothing (the tag was deleted meanwhile), or the error that fails the scan.
struct Scanner::TagOutcome {
  enum class State { kPending, kSkipped, kStore, kFailed };
  State state = State::kPending;
  TagRecord record;
  std::optional<TagEvent::Kind> event;
  std::string previous_digest;
  absl::Status status;
};

// One scan's tag jobs on its host's fetchers. The fields below `first_scan` are read and
// written with fetch_mu_ held.
struct Scanner::TagBatch {
  TagBatch(const std::string& registry, const std::string& path, const std::vector<TagJob>& jobs,
           absl::Time now, bool first_scan, http::Priority priority)
      : registry(registry),
        path(path),
        jobs(jobs),
        now(now),
        first_scan(first_scan),
        priority(priority) {}
  const std::string& registry;
  const std::string& path;
  const std::vector<TagJob>& jobs;
  const absl::Time now;
  const bool first_scan;
  const http::Priority priority;
  size_t next = 0;     // the next job to start
  size_t running = 0;  // jobs started and not finished
  size_t done = 0;     // jobs finished
  bool stop = false;   // no more jobs start
  std::vector<TagOutcome> outcomes;

  bool Claimable() const { return !stop && next < jobs.size(); }
  bool Finished() const { return running == 0 && !Claimable(); }
};

Scanner::TagOutcome Scanner::RunTagJob(const std::string& registry, const std::string& path,
                                       const TagJob& job, absl::Time now, bool first_scan,
                                       http::Priority priority) {
  TagOutcome out;
  auto failed = [&out](absl::Status status) {
    out.state = TagOutcome::State::kFailed;
    out.status = std::move(status);
    return std::move(out);
  };
  if (!job.known) {
    metrics_.metadata_fetches.Increment();
    absl::StatusOr<TagMetadata> m =
        FetchTagMetadata(client_, registry, path, job.tag, options_.metadata, priority);
    if (!m.ok()) {
      if (m.status().code() == absl::StatusCode::kNotFound) {  // deleted meanwhile
        out.state = TagOutcome::State::kSkipped;
        return out;
      }
      return failed(m.status());
    }
    out.state = TagOutcome::State::kStore;
    out.record.tag = job.tag;
    out.record.metadata = *std::move(m);
    out.record.checked = now;
    out.record.recheck_interval = options_.min_recheck;
    out.record.first_seen = now;  // the cache keeps an earlier one
    if (!first_scan) out.event = TagEvent::Kind::kNewTag;
    return out;
  }
  absl::StatusOr<std::string> digest = client_.ManifestDigest(registry, path, job.tag, priority);
  if (!digest.ok()) {
    if (digest.status().code() == absl::StatusCode::kNotFound) {
      out.state = TagOutcome::State::kSkipped;
      return out;
    }
    return failed(digest.status());
  }
  out.record = *job.known;
  out.state = TagOutcome::State::kStore;
  TagRecord& r = out.record;
  if (*digest == r.metadata.digest) {
    r.checked = now;
    r.recheck_interval = std::min(r.recheck_interval * 2, options_.max_recheck);
    return out;
  }
  out.previous_digest = r.metadata.digest;
  absl::StatusOr<TagMetadata> m =
      FetchTagMetadata(client_, registry, path, job.tag, options_.metadata, priority);
  if (!m.ok()) return failed(m.status());
  r.metadata = *std::move(m);
  r.checked = now;
  r.first_seen = now;  // another image: its soak starts again (the cache resets it too)
  r.recheck_interval = options_.min_recheck;
  out.event = TagEvent::Kind::kTagMoved;
  return out;
}

absl::Status Scanner::StoreOutcomes(const std::string& repository,
                                    std::vector<TagOutcome>& outcomes) {
  std::vector<TagRecord> records;
  for (const TagOutcome& o : outcomes) {
    if (o.state == TagOutcome::State::kStore) records.push_back(o.record);
  }
  if (records.empty()) return absl::OkStatus();
  if (absl::Status s = records.size() == 1 ? cache_.PutTag(repository, records[0])
                                           : cache_.PutTags(repository, records);
      !s.ok()) {
    return s;
  }
  for (TagOutcome& o : outcomes) {
    if (o.state != TagOutcome::State::kStore || !o.event) continue;
    TagEvent e;
    e.kind = *o.event;
    e.repository = repository;
    e.tag = std::move(o.record);
    e.previous_digest = std::move(o.previous_digest);
    Emit(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status Scanner::RunTagJobs(const std::string& repository, const std::string& registry,
                                 const std::string& path, const std::vector<TagJob>& jobs,
                                 absl::Time now, bool first_scan, http::Priority priority) {
  const size_t n = jobs.size();
  const size_t threads =
      std::min(n, static_cast<size_t>(std::clamp(options_.concurrency, 1, kMaxScanConcurrency)));
  // One at a time: each tag is stored (and its event emitted) before the next is fetched.
  auto one_at_a_time = [&]() -> absl::Status {
    for (const TagJob& job : jobs) {
      std::vector<TagOutcome> one;
      one.push_back(RunTagJob(registry, path, job, now, first_scan, priority));
      if (one[0].state == TagOutcome::State::kFailed) return one[0].status;
      if (absl::Status s = StoreOutcomes(repository, one); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  if (threads <= 1) return one_at_a_time();
  // The host's fetchers take the jobs in list order (in turn with other scans of the host);
  // this thread stores the outcomes in list order, a few at a time (one transaction, and
  // one wake-up of this thread, per `threads` answers rather than per answer), and emits
  // their events after them, as a sequential scan would.
  TagBatch batch(registry, path, jobs, now, first_scan, priority);
  Fetchers* fetchers = nullptr;
  {
    absl::MutexLock lock(&fetch_mu_);
    fetchers = &fetchers_[registry];
    while (fetchers->threads < static_cast<int>(threads)) {
      try {
        fetch_threads_.emplace_back([this, registry] { FetchLoop(registry); });
      } catch (const std::system_error&) {
        break;  // fewer threads; with none, this one does the work
      }
      ++fetchers->threads;
    }
    if (fetchers->threads > 0) {
      batch.outcomes.resize(n);
      fetchers->batches.push_back(&batch);
    }
  }
  if (batch.outcomes.empty()) return one_at_a_time();  // no fetcher could be started
  // No job of this scan starts after this; returns once none is running (`batch` is ours).
  auto stop = [&] {
    absl::MutexLock lock(&fetch_mu_);
    batch.stop = true;
    std::erase(fetchers->batches, &batch);
    auto none_running = [&batch] { return batch.running == 0; };
    fetch_mu_.Await(absl::Condition(&none_running));
  };
  absl::Status failure;  // the first in list order
  absl::Status store_error;
  for (size_t frontier = 0; frontier < n;) {
    std::vector<TagOutcome> ready;
    {
      absl::MutexLock lock(&fetch_mu_);
      const size_t enough = std::min(n, frontier + threads);
      auto ready_or_done = [&] {
        if (batch.Finished()) return true;
        return batch.outcomes[frontier].state != TagOutcome::State::kPending &&
               batch.done >= enough;
      };
      fetch_mu_.Await(absl::Condition(&ready_or_done));
      while (frontier < n && batch.outcomes[frontier].state != TagOutcome::State::kPending) {
        ready.push_back(std::move(batch.outcomes[frontier++]));
      }
      // Nothing runs and the next job never started (stopped): nothing more comes.
      if (ready.empty()) frontier = n;
    }
    for (const TagOutcome& o : ready) {
      if (o.state == TagOutcome::State::kFailed && failure.ok()) failure = o.status;
    }
    if (!store_error.ok()) continue;
    store_error = StoreOutcomes(repository, ready);
    if (!store_error.ok()) stop();
  }
  stop();
  return store_error.ok() ? failure : store_error;
}

void Scanner::FetchLoop(const std::string& registry) {
  absl::MutexLock lock(&fetch_mu_);
  Fetchers& fetchers = fetchers_[registry];  // std::map: the reference stays valid
  auto work = [this, &fetchers]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fetch_mu_) {
    return stopping_ || !fetchers.batches.empty();
  };
  while (true) {
    fetch_mu_.Await(absl::Condition(&work));
    if (stopping_) return;
    // The first interactive scan keeps its turn until its jobs have all started; the others
    // take turns.
    auto turn = std::find_if(fetchers.batches.begin(), fetchers.batches.end(), [](TagBatch* b) {
      return b->priority == http::Priority::kInteractive;
    });
    if (turn == fetchers.batches.end()) turn = fetchers.batches.begin();
    TagBatch* batch = *turn;
    fetchers.batches.erase(turn);
    const size_t i = batch->next++;
    ++batch->running;
    if (batch->Claimable()) {
      if (batch->priority == http::Priority::kInteractive) {
        fetchers.batches.push_front(batch);
      } else {
        fetchers.batches.push_back(batch);  // the next scan's turn
      }
    }
    fetch_mu_.Unlock();
    TagOutcome outcome = RunTagJob(batch->registry, batch->path, batch->jobs[i], batch->now,
                                   batch->first_scan, batch->priority);
    fetch_mu_.Lock();
    // After a failure no more jobs start: the scan fails and is retried after a backoff.
    if (outcome.state == TagOutcome::State::kFailed && !batch->stop) {
      batch->stop = true;
      std::erase(fetchers.batches, batch);
    }
    batch->outcomes[i] = std::move(outcome);
    ++batch->done;
    --batch->running;  // the last touch: its scan may end now
  }
}

Scanner::~Scanner() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&fetch_mu_);
    stopping_ = true;
    threads.swap(fetch_threads_);
  }
  for (std::thread& t : threads) t.join();
}

ScannerMetrics::ScannerMetrics(prometheus::Registry& registry)
    : scans(prometheus::BuildCounter()
                .Name("ferry_registry_scans_total")
                .Help("Repository scans, by outcome (ok, error).")
                .Register(registry)),
      scan_seconds(prometheus::BuildHistogram()
                       .Name("ferry_registry_scan_duration_seconds")
                       .Help("Time to scan one repository.")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5,
                                                                        1, 2.5, 5, 10, 30, 60})),
      tags_known(prometheus::BuildGauge()
                     .Name("ferry_registry_tags_known")
                     .Help("Tags known across watched repositories.")
                     .Register(registry)
                     .Add({})),
      watched(prometheus::BuildGauge()
                  .Name("ferry_registry_watched_repositories")
                  .Help("Repositories in the watch set.")
                  .Register(registry)
                  .Add({})),
      last_scan(prometheus::BuildGauge()
                    .Name("ferry_registry_last_successful_scan_timestamp_seconds")
                    .Help("Unix time of each watched repository's last successful scan.")
                    .Register(registry)),
      metadata_fetches(prometheus::BuildCounter()
                           .Name("ferry_registry_cache_misses_total")
                           .Help("Tags whose metadata had to be fetched from the registry.")
                           .Register(registry)
                           .Add({})),
      cache_hits(prometheus::BuildCounter()
                     .Name("ferry_registry_cache_hits_total")
                     .Help("Tags answered from the cache during scans.")
                     .Register(registry)
                     .Add({})) {}

Scanner::Scanner(RegistryClient& client, Cache& cache, ScannerOptions options,
                 ScannerMetrics& metrics, runtime::Clock& clock)
    : client_(client),
      cache_(cache),
      options_(std::move(options)),
      metrics_(metrics),
      clock_(clock) {}

absl::StatusOr<std::pair<std::string, std::string>> Scanner::SplitRepository(
    const std::string& repository) {
  size_t slash = repository.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repository.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "repository \"", repository, "\": use registry/path, e.g. docker.io/library/nginx"));
  }
  return std::make_pair(repository.substr(0, slash), repository.substr(slash + 1));
}

absl::StatusOr<std::pair<std::vector<std::string>, std::vector<std::string>>> Scanner::Watch(
    const std::vector<std::string>& repositories) {
  if (options_.permit) {
    if (absl::Status permit = options_.permit(); !permit.ok()) return permit;
  }
  for (const std::string& r : repositories) {
    if (absl::StatusOr<std::pair<std::string, std::string>> s = SplitRepository(r); !s.ok()) {
      return s.status();
    }
  }
  std::set<std::string> wanted(repositories.begin(), repositories.end());
  absl::StatusOr<std::vector<RepositoryRecord>> known = cache_.Repositories();
  if (!known.ok()) return known.status();
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::set<std::string> present;
  const absl::Time now = clock_.Now();
  for (RepositoryRecord& r : *known) {
    present.insert(r.name);
    bool want = wanted.count(r.name) > 0;
    if (want && !r.watched) added.push_back(r.name);
    if (!want && r.watched) removed.push_back(r.name);
    if (want) r.last_watched = now;
    if (want != r.watched || want) {
      r.watched = want;
      if (absl::Status s = cache_.PutRepository(r); !s.ok()) return s;
    }
  }
  for (const std::string& name : wanted) {
    if (present.count(name)) continue;
    RepositoryRecord r;
    r.name = name;
    r.watched = true;
    r.last_watched = now;
    if (absl::Status s = cache_.PutRepository(r); !s.ok()) return s;
    added.push_back(name);
  }
  metrics_.watched.Set(static_cast<double>(wanted.size()));
  return std::make_pair(added, removed);
}

absl::Time Scanner::NextScan(const RepositoryRecord& record) const {
  absl::Time next =
      record.last_scan ? *record.last_scan + options_.scan_interval : absl::InfinitePast();
  absl::MutexLock lock(&attempts_mu_);
  auto it = attempts_.find(record.name);
  if (it != attempts_.end() && it->second.failures > 0) {
    absl::Duration backoff = absl::Seconds(5);
    for (int i = 1; i < it->second.failures && backoff < options_.scan_interval; ++i) backoff *= 2;
    next = it->second.last + std::min(backoff, options_.scan_interval);
  }
  return next;
}

absl::Mutex* Scanner::RepositoryMutex(const std::string& repository) {
  absl::MutexLock lock(&repo_mu_map_mu_);
  std::unique_ptr<absl::Mutex>& mu = repo_mu_[repository];
  if (!mu) mu = std::make_unique<absl::Mutex>();
  return mu.get();
}

absl::Status Scanner::Scan(const std::string& repository, bool unless_scanned, uint64_t scans_seen,
                           http::Priority priority) {
  if (options_.permit) {
    if (absl::Status permit = options_.permit(); !permit.ok()) return permit;
  }
  absl::StatusOr<std::pair<std::string, std::string>> parts = SplitRepository(repository);
  if (!parts.ok()) return parts.status();
  const auto& [registry, path] = *parts;
  {
    absl::MutexLock lock(&attempts_mu_);
    ++attempts_[repository].waiting;
  }
  absl::MutexLock scan_lock(RepositoryMutex(repository));
  {
    absl::MutexLock lock(&attempts_mu_);
    --attempts_[repository].waiting;
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::optional<RepositoryRecord>> existing = cache_.Repository(repository);
  if (!existing.ok()) return existing.status();
  if (unless_scanned && existing->has_value() && (*existing)->last_scan.has_value()) {
    return absl::OkStatus();
  }
  {
    absl::MutexLock lock(&attempts_mu_);
    Attempts& attempts = attempts_[repository];
    if (unless_scanned && attempts.finished != scans_seen) {
      // Another caller's scan ran while this one waited, and failed (else last_scan is set).
      return absl::UnavailableError(existing->has_value() && !(*existing)->last_error.empty()
                                        ? (*existing)->last_error
                                        : absl::StrCat("the scan of ", repository, " failed"));
    }
    attempts.last = clock_.Now();
  }
  absl::Cleanup count_finished = [this, &repository] {
    absl::MutexLock lock(&attempts_mu_);
    ++attempts_[repository].finished;
  };
  RepositoryRecord record;
  record.name = repository;
  if (existing->has_value()) record = **existing;
  const bool first_scan = !record.last_scan.has_value();

  auto fail = [&](const absl::Status& status) {
    {
      absl::MutexLock lock(&attempts_mu_);
      ++attempts_[repository].failures;
    }
    metrics_.scans.Add({{"outcome", "error"}}).Increment();
    record.last_error = std::string(status.message());
    (void)cache_.PutScanOutcome(record);
    TagEvent e;
    e.kind = TagEvent::Kind::kRepositoryError;
    e.repository = repository;
    e.error = record.last_error;
    Emit(std::move(e));
    log::Warn("scan failed", {{"repository", repository}, {"error", record.last_error}});
    return status;
  };

  absl::StatusOr<std::vector<std::string>> tags = client_.ListTags(registry, path, priority);
  if (!tags.ok()) return fail(tags.status());
  absl::StatusOr<std::vector<TagRecord>> cached = cache_.Tags(repository);
  if (!cached.ok()) return fail(cached.status());
  std::map<std::string, TagRecord> known;
  for (TagRecord& t : *cached) known.emplace(t.tag, std::move(t));

  const absl::Time now = clock_.Now();
  std::set<std::string> listed(tags->begin(), tags->end());
  // The tags that need the registry: new ones (metadata) and known ones due for a re-check.
  std::vector<TagJob> jobs;
  for (const std::string& tag : *tags) {
    auto it = known.find(tag);
    if (it == known.end()) {
      jobs.push_back({tag, std::nullopt});
      continue;
    }
    metrics_.cache_hits.Increment();
    if (now - it->second.checked < it->second.recheck_interval) continue;
    jobs.push_back({tag, it->second});
  }
  if (absl::Status s = RunTagJobs(repository, registry, path, jobs, now, first_scan, priority);
      !s.ok()) {
    return fail(s);
  }
  for (const auto& [tag, r] : known) {
    if (!listed.count(tag)) (void)cache_.DeleteTag(repository, tag);
  }
  {
    absl::MutexLock lock(&attempts_mu_);
    attempts_[repository].failures = 0;
  }
  record.last_scan = now;
  record.last_error.clear();
  // Only the scan's outcome: a Watch during the scan may have changed the watch state.
  if (absl::Status s = cache_.PutScanOutcome(record); !s.ok()) return s;
  metrics_.scans.Add({{"outcome", "ok"}}).Increment();
  metrics_.scan_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (record.watched) {
    metrics_.last_scan.Add({{"repository", repository}})
        .Set(absl::ToDoubleSeconds(now - absl::UnixEpoch()));
  }
  return absl::OkStatus();
}

std::vector<std::string> Scanner::DueRepositories() {
  std::vector<std::string> due;
  absl::StatusOr<std::vector<RepositoryRecord>> repos = cache_.Repositories();
  if (!repos.ok()) return due;
  const std::map<std::string, int> counts =
      cache_.TagCounts().value_or(std::map<std::string, int>());
  double tags = 0;
  const absl::Time now = clock_.Now();
  for (const RepositoryRecord& r : *repos) {
    if (!r.watched) continue;
    if (NextScan(r) <= now) due.push_back(r.name);
    if (auto it = counts.find(r.name); it != counts.end()) tags += it->second;
  }
  metrics_.tags_known.Set(tags);
  (void)cache_.ExpireUnwatched(now - options_.expire_after);
  return due;
}

int Scanner::ScansWaiting(const std::string& repository) const {
  absl::MutexLock lock(&attempts_mu_);
  auto it = attempts_.find(repository);
  return it != attempts_.end() ? it->second.waiting : 0;
}

int Scanner::ScansFetching(const std::string& registry) {
  absl::MutexLock lock(&fetch_mu_);
  auto it = fetchers_.find(registry);
  return it != fetchers_.end() ? static_cast<int>(it->second.batches.size()) : 0;
}

absl::StatusOr<std::vector<TagRecord>> Scanner::Tags(const std::string& repository,
                                                     http::Priority priority) {
  absl::StatusOr<std::optional<RepositoryRecord>> record = cache_.Repository(repository);
  if (!record.ok()) return record.status();
  if (!record->has_value() || !(*record)->last_scan.has_value()) {
    // Readers of a repository never scanned share its first scan, its failure too: the ones
    // that waited for it take its outcome (ListTags from every ListImages of the api had each
    // scanned again).
    uint64_t scans_seen;
    {
      absl::MutexLock lock(&attempts_mu_);
      scans_seen = attempts_[repository].finished;
    }
    if (absl::Status s = Scan(repository, /*unless_scanned=*/true, scans_seen, priority); !s.ok()) {
      return s;
    }
  }
  return cache_.Tags(repository);
}

absl::StatusOr<std::vector<RepositoryRecord>> Scanner::Repositories() {
  return cache_.Repositories();
}

void Scanner::Emit(TagEvent event) {
  {
    absl::MutexLock lock(&events_mu_);
    event.sequence = ++sequence_;
    event.time = clock_.Now();
    events_.push_back(std::move(event));
    if (events_.size() > kMaxEvents) events_.pop_front();
  }
}

uint64_t Scanner::LastSequence() const {
  absl::MutexLock lock(&events_mu_);
  return sequence_;
}

std::vector<TagEvent> Scanner::WaitForEvents(uint64_t after, absl::Duration timeout) {
  absl::MutexLock lock(&events_mu_);
  auto newer = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(events_mu_) { return sequence_ > after; };
  events_mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
  std::vector<TagEvent> out;
  for (const TagEvent& e : events_) {
    if (e.sequence > after) out.push_back(e);
  }
  return out;
}

bool Scanner::IsWatched(const std::string& repository) {
  absl::StatusOr<std::optional<RepositoryRecord>> r = cache_.Repository(repository);
  return r.ok() && r->has_value() && (*r)->watched;
}

ScanQueue::ScanQueue(Scanner& scanner, int workers, int interactive_workers) : scanner_(scanner) {
  for (int i = 0; i < std::max(1, workers); ++i) threads_.emplace_back([this] { Run(false); });
  for (int i = 0; i < interactive_workers; ++i) threads_.emplace_back([this] { Run(true); });
}

ScanQueue::~ScanQueue() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

bool ScanQueue::Request(const std::string& repository, const std::string& expected_tag,
                        http::Priority priority) {
  if (!scanner_.IsWatched(repository)) return false;
  {
    absl::MutexLock lock(&mu_);
    pending_.insert(repository);
    const bool interactive = priority == http::Priority::kInteractive;
    if (interactive) interactive_.insert(repository);
    ++changes_;
    if (!expected_tag.empty()) {
      Expected& e = expected_[repository];
      e.tags.insert(expected_tag);
      e.attempts = 0;
      e.interactive = e.interactive || interactive;
    }
  }
  return true;
}

bool ScanQueue::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_.empty() && busy_ == 0 && retry_at_.empty();
  };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

void ScanQueue::CheckExpected(const std::string& repository) {
  auto it = expected_.find(repository);
  if (it == expected_.end()) return;
  std::set<std::string> waiting = it->second.tags;
  mu_.Unlock();
  // The cache alone: a repository whose scan failed is not scanned again here (a retry is
  // scheduled below), so this worker is free for the next request.
  absl::StatusOr<std::vector<TagRecord>> known = scanner_.KnownTags(repository);
  mu_.Lock();
  it = expected_.find(repository);
  if (it == expected_.end()) return;
  if (known.ok()) {
    for (const TagRecord& t : *known) it->second.tags.erase(t.tag);
  }
  constexpr int kMaxAttempts = 6;
  if (it->second.tags.empty() || it->second.attempts >= kMaxAttempts) {
    if (!it->second.tags.empty()) {
      log::Warn("webhook announced tags the registry does not list",
                {{"repository", repository}, {"tags", absl::StrJoin(it->second.tags, ",")}});
    }
    expected_.erase(it);
    return;
  }
  retry_at_[repository] =
      scanner_.clock().Now() + absl::Milliseconds(100) * (1 << it->second.attempts);
  ++it->second.attempts;
}

void ScanQueue::Run(bool reserved) {
  absl::MutexLock lock(&mu_);
  while (true) {
    // Retries that are due join the pending scans.
    runtime::Clock& clock = scanner_.clock();
    const absl::Time now = clock.Now();
    absl::Time next_retry = absl::InfiniteFuture();
    for (auto it = retry_at_.begin(); it != retry_at_.end();) {
      if (it->second <= now) {
        pending_.insert(it->first);
        auto expected = expected_.find(it->first);
        if (expected != expected_.end() && expected->second.interactive) {
          interactive_.insert(it->first);
        }
        it = retry_at_.erase(it);
      } else {
        next_retry = std::min(next_retry, it->second);
        ++it;
      }
    }
    // A repository already being scanned waits in `pending_` for that scan to end. An
    // interactive one goes first; the reserved worker takes nothing else.
    std::string repository;
    for (const std::string& r : interactive_) {
      if (!running_.count(r)) {
        repository = r;
        break;
      }
    }
    const bool interactive = !repository.empty();
    for (auto it = pending_.begin(); !reserved && repository.empty() && it != pending_.end();
         ++it) {
      if (!running_.count(*it)) repository = *it;
    }
    if (stop_) return;
    if (repository.empty()) {
      const uint64_t seen = changes_;
      clock.WaitUntil(mu_, next_retry, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || changes_ != seen;
      });
      continue;
    }
    pending_.erase(repository);
    interactive_.erase(repository);
    running_.insert(repository);
    ++busy_;
    mu_.Unlock();
    (void)scanner_.Scan(repository, false, 0,
                        interactive ? http::Priority::kInteractive : http::Priority::kBackground);
    mu_.Lock();
    running_.erase(repository);
    CheckExpected(repository);
    --busy_;
    ++changes_;  // the unlock (at the next wait) wakes the idle workers
  }
}

}  // namespace ferry::registry_scanner
