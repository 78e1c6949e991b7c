#include "services/cluster-syncer/sync_loop.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "lib/limits/limits.h"
#include "lib/log/laps.h"
#include "lib/log/log.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/proto_time.h"

namespace ferry::cluster_syncer {
namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoNanoseconds(d);
}

absl::StatusCode CodeOf(const grpc::Status& s) {
  return static_cast<absl::StatusCode>(s.error_code());
}

}  // namespace

SyncLoop::SyncLoop(ferry::v1::GitWriter::StubInterface& git, kube::KubeApi& kube, Syncer& syncer,
                   SyncMetrics& metrics, Options options, runtime::Clock& clock)
    : git_(git),
      kube_(kube),
      syncer_(syncer),
      metrics_(metrics),
      options_(std::move(options)),
      clock_(clock) {}

SyncLoop::~SyncLoop() { Stop(); }

void SyncLoop::Start() {
  watcher_ = std::thread([this] { WatchHeads(); });
  worker_ = std::thread([this] { Work(); });
}

SyncLoop::TrackedCall::TrackedCall(SyncLoop& loop, grpc::ClientContext& context)
    : loop_(loop), context_(context) {
  absl::MutexLock lock(&loop_.mu_);
  loop_.calls_.insert(&context_);
  if (loop_.stop_) context_.TryCancel();
}

SyncLoop::TrackedCall::~TrackedCall() {
  absl::MutexLock lock(&loop_.mu_);
  loop_.calls_.erase(&context_);
}

void SyncLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (watch_context_ != nullptr) watch_context_->TryCancel();
    for (grpc::ClientContext* call : calls_) call->TryCancel();
  }
  if (watcher_.joinable()) watcher_.join();
  if (worker_.joinable()) worker_.join();
}

void SyncLoop::SetReadinessSink(std::function<void(bool)> sink) {
  absl::MutexLock lock(&mu_);
  readiness_sink_ = std::move(sink);
  reported_ready_ = ready_ && leading_;
  if (readiness_sink_) readiness_sink_(reported_ready_);
}

void SyncLoop::Trigger(const std::string& revision) {
  {
    absl::MutexLock lock(&mu_);
    triggered_ = true;
    if (!revision.empty()) {
      wanted_revision_ = revision;
      git_served_ = true;
    }
  }
}

void SyncLoop::SetLeading(bool leading) {
  // Whoever led meanwhile may have written: what this instance last left is not trusted.
  if (leading != Leading()) syncer_.ForgetRecord();
  absl::MutexLock lock(&mu_);
  if (leading && !leading_) {  // a new leader syncs at once
    triggered_ = true;
    kicked_ = true;
  }
  leading_ = leading;
  ReportReadiness();
}

bool SyncLoop::Leading() const {
  absl::MutexLock lock(&mu_);
  return leading_;
}

void SyncLoop::ReportReadiness() {
  const bool ready = ready_ && leading_;
  if (ready != reported_ready_ && readiness_sink_) readiness_sink_(ready);
  reported_ready_ = ready;
}

absl::StatusOr<absl::Duration> SyncLoop::WriteValidity() const {
  if (!options_.write_permit) return absl::InfiniteDuration();
  return options_.write_permit();
}

void SyncLoop::WatchHeads() {
  absl::Duration backoff = absl::Seconds(1);
  while (true) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      watch_context_ = &context;
    }
    context.set_wait_for_ready(true);  // connects as soon as git-writer is up
    std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::HeadResponse>> stream =
        git_.WatchHead(&context, ferry::v1::WatchHeadRequest());
    ferry::v1::HeadResponse head;
    bool got_any = false;
    while (stream->Read(&head)) {
      got_any = true;
      backoff = absl::Seconds(1);
      Trigger(head.revision());
    }
    grpc::Status status = stream->Finish();
    {
      absl::MutexLock lock(&mu_);
      watch_context_ = nullptr;
      if (stop_) return;
      if (!got_any) {
        log::Warn("git-writer head stream failed; retrying",
                  {{"error", status.error_message()},
                   {"retry_in_ms", absl::ToInt64Milliseconds(backoff)}});
      }
      clock_.WaitUntil(mu_, clock_.Now() + backoff,
                       [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; });
      if (stop_) return;
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void SyncLoop::Work() {
  absl::Time next_due = clock_.Now();  // first sync at once
  absl::Duration backoff = absl::Seconds(1);
  while (true) {
    std::string revision;
    bool due = false;  // the interval passed, a retry, or a new leader: list the cluster
    {
      absl::MutexLock lock(&mu_);
      clock_.WaitUntil(mu_, next_due,
                       [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || triggered_; });
      if (stop_) return;
      due = clock_.Now() >= next_due || kicked_;
      if (!triggered_ && !due) continue;
      triggered_ = false;
      kicked_ = false;
      revision = wanted_revision_;
      // A head that is already applied (WatchHead repeats the current one on connect)
      // waits for the interval.
      if (!due && last_ && last_->error.empty() && last_->revision == revision) continue;
    }
    if (!WritePermit().ok()) {
      // A standby: the leader syncs. SetLeading(true) wakes this loop when this one leads.
      next_due = clock_.Now() + options_.interval;
      continue;
    }
    SyncReport report;
    {
      absl::MutexLock lock(&sync_mu_);
      report =
          RunSync(revision, false, false, due ? Syncer::Live::kList : Syncer::Live::kFromRecord);
    }
    ReturnSyncMemory();
    if (report.error.empty()) {
      backoff = absl::Seconds(1);
      // A sync from the record leaves the next listing where it was.
      if (!report.from_record) next_due = clock_.Now() + options_.interval;
    } else {
      log::Warn("sync failed; retrying",
                {{"error", report.error}, {"retry_in_ms", absl::ToInt64Milliseconds(backoff)}});
      next_due = clock_.Now() + backoff;
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
}

SyncReport SyncLoop::SyncNow(const std::string& revision, bool dry_run, bool skip_if_applied) {
  if (absl::Status permit = WritePermit(); !dry_run && !permit.ok()) {
    SyncReport refused;
    refused.revision = revision;
    refused.started = refused.finished = clock_.Now();
    refused.error = std::string(permit.message());
    refused.error_code = permit.code();
    return refused;
  }
  SyncReport report;
  {
    absl::MutexLock lock(&sync_mu_);
    if (skip_if_applied && !dry_run && !revision.empty()) {
      // A release job asks for the revision it pushed, which WatchHead has usually brought
      // here already: the sync that applied it (or the one in progress, waited for above
      // through sync_mu_) is the answer, not a second sync of the same files.
      absl::MutexLock state(&mu_);
      if (last_ && last_->revision == revision && last_->error.empty() && last_->failed == 0) {
        return *last_;
      }
    }
    // A release's own revision is written from the record, as WatchHead's sync of it would.
    report = RunSync(revision, dry_run, revision.empty(),
                     skip_if_applied ? Syncer::Live::kFromRecord : Syncer::Live::kList);
  }
  ReturnSyncMemory();
  return report;
}

void SyncLoop::ReturnSyncMemory() {
  // The sync's files, objects and listings are freed by now: give their pages back, so that
  // the resident size between syncs is what the syncer keeps rather than its high-water mark.
  // Outside sync_mu_: a SyncNow waiting for the sync's result (a release job's) has it
  // without waiting for this too.
  runtime::ReturnFreeMemory();
}

SyncReport SyncLoop::RunSync(const std::string& wanted, bool dry_run, bool fetch_first,
                             Syncer::Live live) {
  SyncReport report;
  report.started = clock_.Now();
  auto fail = [&](const absl::Status& status) {
    report.error = std::string(status.message());
    report.error_code = status.code();
    report.finished = clock_.Now();
  };
  std::string revision = wanted;
  if (revision.empty()) {
    absl::StatusOr<std::string> head = HeadRevision(fetch_first);
    if (head.ok()) {
      revision = *std::move(head);
    } else {
      fail(head.status());
    }
  }
  if (report.error.empty()) {
    report.revision = revision;
    log::Laps laps;
    // Files unchanged since the revision the syncer parsed last come without their text.
    absl::StatusOr<std::vector<ManifestFileContent>> files =
        ReadManifests(revision, syncer_.ParsedRevision());
    const int64_t read_ms = laps.Next();
    if (files.ok()) {
      report = syncer_.Sync(revision, *std::move(files), dry_run, live,
                            [&] { return ReadManifests(revision, ""); });
      report.phases.read_ms = read_ms;
    } else {
      fail(files.status());
    }
  }
  report.revision = revision;
  if (dry_run) return report;
  // Leadership lost during the sync: the new leader records its own syncs.
  if (!WritePermit().ok()) return report;
  // A revision the caller asked for that does not exist is the caller's mistake, not a sync.
  if (!wanted.empty() && (report.error_code == absl::StatusCode::kNotFound ||
                          report.error_code == absl::StatusCode::kInvalidArgument)) {
    return report;
  }
  Record(report);
  return report;
}

bool SyncLoop::AwaitGitConnection(absl::Time deadline) {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return false;
    }
    // Slices short enough for Stop() not to wait for the whole deadline.
    if (options_.git_connected(std::min(deadline, absl::Now() + absl::Milliseconds(250)))) {
      return true;
    }
    if (absl::Now() >= deadline) return false;
  }
}

absl::StatusOr<std::string> SyncLoop::HeadRevision(bool fetch_first) {
  // Head first, waiting up to 5 s for the connection (git-writer may be starting, or its
  // channel backing off after a failure), then for the answer (a fresh git-writer's first
  // fetch); then, when asked to, a fetch.
  constexpr absl::Duration kConnectWait = absl::Seconds(5);
  absl::Duration answer_wait = kConnectWait;
  if (options_.git_connected) {
    if (!AwaitGitConnection(absl::Now() + kConnectWait)) {
      absl::MutexLock lock(&mu_);
      if (stop_) return absl::CancelledError("git-writer: not asked, the syncer is stopping");
      return absl::UnavailableError(absl::StrCat(
          "git-writer: no connection within ", absl::FormatDuration(kConnectWait),
          " (is it running, is --git_writer_address its address, do the peer TLS settings "
          "match, and does one of its replicas lead?)"));
    }
    // A git-writer that served a revision before is not in its first fetch: one that does
    // not answer within 5 s now is failing, and the sync says so.
    absl::MutexLock lock(&mu_);
    if (!git_served_) answer_wait = absl::Seconds(limits::kFirstFetchWait.default_value);
  }
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(Deadline(answer_wait));
  ferry::v1::HeadResponse head;
  grpc::Status s;
  {
    TrackedCall tracked(*this, ctx);
    s = git_.Head(&ctx, ferry::v1::HeadRequest(), &head);
  }
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    git_served_ = true;
  }
  if (s.ok() && fetch_first) {
    grpc::ClientContext fetch_ctx;
    fetch_ctx.set_deadline(Deadline(absl::Seconds(60)));
    TrackedCall tracked(*this, fetch_ctx);
    s = git_.Notify(&fetch_ctx, ferry::v1::NotifyRequest(), &head);
  }
  if (!s.ok()) {
    return absl::Status(s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                            ? absl::StatusCode::kUnavailable
                            : CodeOf(s),
                        absl::StrCat("git-writer: ", s.error_message()));
  }
  return head.revision();
}

absl::StatusOr<std::vector<ManifestFileContent>> SyncLoop::ReadManifests(
    const std::string& revision, const std::string& known_revision) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(120)));
  ferry::v1::ReadManifestsRequest request;
  request.set_revision(revision);
  request.set_known_revision(known_revision);
  std::vector<ManifestFileContent> files;
  grpc::Status s;
  {
    TrackedCall tracked(*this, ctx);
    auto stream = git_.ReadManifests(&ctx, request);
    ferry::v1::ManifestFile file;
    while (stream->Read(&file)) {
      for (int i = 0; i < file.unchanged_paths_size(); ++i) {
        if (file.unchanged_paths(i).empty()) continue;
        // A name without its hash is never taken as known (Syncer::Parse).
        const uint64_t hash = i < file.unchanged_hashes_size() ? file.unchanged_hashes(i) : 0;
        files.push_back({std::move(*file.mutable_unchanged_paths(i)), "", "", true, hash});
      }
      if (file.path().empty()) continue;  // a message of unchanged paths alone
      files.push_back({file.path(), std::move(*file.mutable_content()), file.load_error()});
    }
    s = stream->Finish();
  }
  if (!s.ok()) {
    return absl::Status(
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? absl::StatusCode::kUnavailable
                                                              : CodeOf(s),
        absl::StrCat("git-writer: reading manifests at ", revision, ": ", s.error_message()));
  }
  return files;
}

void SyncLoop::Record(const SyncReport& report) {
  log::Laps laps;
  if (report.error.empty()) RecordState(report);
  const int64_t marker_ms = laps.Next();
  metrics_.Record(report);
  const bool ready = report.error.empty();
  {
    // The sink is called under the lock: SetReadinessSink(nullptr) returns only once no call
    // is in progress, so the server behind it can go away safely.
    absl::MutexLock lock(&mu_);
    last_ = report;
    ++sequence_;
    ready_ = ready;
    ReportReadiness();
  }
  log::Info("synced", {{"revision", report.revision},
                       {"applied", report.applied},
                       {"unchanged", report.unchanged},
                       {"failed", report.failed},
                       {"pruned", report.pruned},
                       {"error", report.error},
                       {"duration_ms", absl::ToInt64Milliseconds(report.finished - report.started)},
                       {"live", report.from_record ? "record" : "listed"},
                       {"files_sent", report.files.sent},
                       {"files_known", report.files.known},
                       {"files_read_again", report.files.read_again},
                       {"read_ms", report.phases.read_ms},
                       {"parse_ms", report.phases.parse_ms},
                       {"list_ms", report.phases.list_ms},
                       {"apply_ms", report.phases.apply_ms},
                       {"prune_ms", report.phases.prune_ms},
                       {"marker_ms", marker_ms}});
}

void SyncLoop::RecordState(const SyncReport& report) {
  if (options_.state == SyncState::kGit) {
    // git-writer force-moves the marker: a leader that paused since RunSync's check must not
    // move it back over its successor's. So the permit is asked for again right here, and the
    // call must be over while it holds (a call still in flight past it is cancelled by gRPC;
    // one git-writer already began may still land: see the README's limits).
    absl::StatusOr<absl::Duration> validity = WriteValidity();
    if (!validity.ok()) {
      log::Warn(
          "not moving the sync marker: this instance no longer leads",
          {{"revision", report.revision}, {"error", std::string(validity.status().message())}});
      return;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(std::min(absl::Seconds(60), *validity)));
    ferry::v1::SetSyncMarkerRequest request;
    request.set_revision(report.revision);
    ferry::v1::SyncMarker marker;
    TrackedCall tracked(*this, ctx);
    grpc::Status s = git_.SetSyncMarker(&ctx, request, &marker);
    if (!s.ok()) {
      log::Warn("could not move the sync marker",
                {{"revision", report.revision}, {"error", s.error_message()}});
    }
    return;
  }
  nlohmann::json state = {
      {"apiVersion", "v1"},
      {"kind", "ConfigMap"},
      {"metadata", {{"name", "ferry-sync-state"}, {"namespace", options_.state_namespace}}},
      {"data",
       {{"revision", report.revision},
        {"time", absl::FormatTime(absl::RFC3339_sec, report.finished, absl::UTCTimeZone())}}}};
  absl::StatusOr<nlohmann::json> applied = kube_.Apply(
      absl::StrCat("/api/v1/namespaces/", options_.state_namespace, "/configmaps/ferry-sync-state"),
      state, kFieldManager, true, false);
  if (!applied.ok()) {
    log::Warn("could not record the sync state in the cluster",
              {{"revision", report.revision}, {"error", std::string(applied.status().message())}});
  }
}

std::pair<uint64_t, std::optional<SyncReport>> SyncLoop::Last() {
  absl::MutexLock lock(&mu_);
  return {sequence_, last_};
}

std::pair<uint64_t, std::optional<SyncReport>> SyncLoop::WaitNext(uint64_t after,
                                                                  absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto next = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || sequence_ > after; };
  mu_.AwaitWithTimeout(absl::Condition(&next), timeout);
  return {sequence_, last_};
}

}  // namespace ferry::cluster_syncer
