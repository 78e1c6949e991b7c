#include "services/api/automation.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/image/reference.h"
#include "lib/log/log.h"

namespace ferry::api {

AutomationMetrics::AutomationMetrics(prometheus::Registry& registry)
    : runs_(prometheus::BuildCounter()
                .Name("ferry_automation_runs_total")
                .Help("Automation passes by outcome (released, nothing, error).")
                .Register(registry)),
      releases_(prometheus::BuildCounter()
                    .Name("ferry_automation_releases_total")
                    .Help("Containers released by the automation.")
                    .Register(registry)),
      incomplete_(prometheus::BuildCounter()
                      .Name("ferry_automation_incomplete_tags_total")
                      .Help("Tags the automation passed over because their metadata is "
                            "incomplete (no creation time where the ordering needs one).")
                      .Register(registry)),
      blocked_(prometheus::BuildGauge()
                   .Name("ferry_automation_blocked_containers")
                   .Help("Automated containers that could not be planned in the last pass "
                         "(registry error, invalid filter, no tag passing the filter).")
                   .Register(registry)),
      held_(prometheus::BuildGauge()
                .Name("ferry_automation_held_containers")
                .Help("Automated containers whose best tag was held back in the last pass "
                      "(soaking: min-age not reached, or rejected by an automatic revert).")
                .Register(registry)),
      workloads_(prometheus::BuildGauge()
                     .Name("ferry_workloads")
                     .Help("Workloads in git by policy (all, automated, locked, ignored).")
                     .Register(registry)) {}

Automation::Automation(const PeerClients& peers, JobStore& store, Executor& executor,
                       AutomationMetrics& metrics, absl::Duration interval, runtime::Clock& clock)
    : peers_(peers),
      store_(store),
      executor_(executor),
      metrics_(metrics),
      interval_(interval),
      clock_(clock),
      own_watch_list_(std::make_unique<ScannerWatchList>(peers)),
      watch_list_(own_watch_list_.get()) {
  AddSeries();
}

void Automation::AddSeries() {
  // The series exist from the start (a dashboard sees 0, not nothing).
  metrics_.releases_.Add(labels_);
  metrics_.incomplete_.Add(labels_);
  metrics_.blocked_.Add(labels_);
  metrics_.held_.Add(labels_);
}

void Automation::SetSource(std::string name, ScannerWatchList& watch_list) {
  // The unlabelled series of the constructor give way to this source's.
  metrics_.releases_.Remove(&metrics_.releases_.Add(labels_));
  metrics_.incomplete_.Remove(&metrics_.incomplete_.Add(labels_));
  metrics_.blocked_.Remove(&metrics_.blocked_.Add(labels_));
  metrics_.held_.Remove(&metrics_.held_.Add(labels_));
  source_ = std::move(name);
  labels_ = {{"source", source_}};
  AddSeries();
  own_watch_list_.reset();
  watch_list_ = &watch_list;
}

Automation::~Automation() { Stop(); }

void Automation::Start() {
  {
    absl::MutexLock lock(&mu_);
    triggered_ = true;
  }
  loop_ = std::thread([this] { Loop(); });
  events_ = std::thread([this] { FollowEvents(); });
}

void Automation::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (events_ctx_ != nullptr) events_ctx_->TryCancel();
  }
  if (loop_.joinable()) loop_.join();
  if (events_.joinable()) events_.join();
}

void Automation::Trigger() {
  {
    absl::MutexLock lock(&mu_);
    triggered_ = true;  // the unlock wakes Loop's wait
  }
}

void Automation::SetLeading(bool leading) {
  absl::MutexLock lock(&mu_);
  if (leading && !leading_) {
    triggered_ = true;  // the unlock wakes Loop's wait
    // The first pass sends the scanner the watch list whatever this replica sent it before
    // standing by: another leader may have set a different one since.
    watch_list_->Resend();
  }
  leading_ = leading;
}

bool Automation::Permitted(const char* when) {
  if (!permit_) return true;
  absl::Status permit = permit_();
  if (permit.ok()) return true;
  log::Info("automation: not the leader; no pass",
            {{"when", when}, {"reason", std::string(permit.message())}});
  return false;
}

void Automation::Loop() {
  // A pass that could not read git (git-writer not up yet, say) is retried soon (1 s, doubling
  // up to 30 s, never later than the interval) rather than an interval later.
  constexpr absl::Duration kFirstRetry = absl::Seconds(1);
  constexpr absl::Duration kMaxRetry = absl::Seconds(30);
  absl::Duration retry = kFirstRetry;
  absl::Duration pause = interval_;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      clock_.WaitUntil(mu_, clock_.Now() + pause, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (triggered_ && leading_);
      });
      if (stopping_) return;
      // A standby keeps waiting (a trigger stays pending until it leads).
      if (!leading_) continue;
      triggered_ = false;
    }
    RunOnce();
    bool failed;
    absl::Time wake_at;
    {
      absl::MutexLock pass(&pass_mu_);
      failed = last_pass_failed_;
      wake_at = wake_at_;
    }
    if (failed) {
      pause = std::min(retry, interval_);
      retry = std::min(retry * 2, kMaxRetry);
    } else {
      pause = interval_;
      retry = kFirstRetry;
    }
    // A soak ending before the next pass brings it forward; after a failed pass the retry's
    // backoff decides (a wake-up time left from an earlier pass would cancel the doubling).
    if (!failed && wake_at != absl::InfiniteFuture()) {
      pause = std::min(pause, std::max(wake_at - clock_.Now(), kMinWake));
    }
  }
}

void Automation::FollowEvents() {
  uint64_t next_sequence = 0;
  // Until the first subscription (and after a lost stream) events may have been missed: a
  // pass once (re)connected looks at every tag.
  bool lost = true;
  bool unreachable = false;
  absl::Duration backoff = absl::Milliseconds(250);
  for (;;) {
    ferry::v1::WatchEventsRequest request;
    request.set_from_sequence(next_sequence);
    PeerCall call;
    absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::TagEvent>>> opened =
        peers_.registry.Open(&RegistryScannerStub::WatchEvents, request,
                             peers_.Until(absl::InfiniteFuture(), /*await_peer=*/false), call);
    {
      absl::MutexLock lock(&mu_);
      if (!opened.ok()) return;  // not opened: the api is shutting down
      events_ctx_ = &call.context();
      if (stopping_) call.context().TryCancel();  // Stop() came first: the stream ends at once
    }
    auto& stream = *opened;
    ferry::v1::TagEvent event;
    // The scanner sends its initial metadata once the subscription is in place; events that
    // came while the stream was down are looked for by a pass.
    stream->WaitForInitialMetadata();
    // Every Ferry server's answer carries initial metadata (ferry-version); a stream that
    // never reached the scanner has none.
    const bool connected = !call.context().GetServerInitialMetadata().empty();
    if (connected && lost) {
      // The scanner at the other end may be another one (a new leader of its replicas, or
      // one restarted on an empty volume) that does not have the watch list: the pass sends
      // it again.
      watch_list_->Resend();
      Trigger();
      lost = false;
    }
    while (stream->Read(&event)) {
      next_sequence = event.sequence() + 1;
      if (event.kind() != ferry::v1::TAG_EVENT_KIND_NEW_TAG &&
          event.kind() != ferry::v1::TAG_EVENT_KIND_TAG_MOVED) {
        continue;
      }
      bool automated;
      {
        absl::MutexLock lock(&mu_);
        automated = automated_repositories_.count(event.repository()) > 0;
      }
      if (automated) {
        log::Info("automation: new tag",
                  {{"repository", event.repository()}, {"tag", event.tag().tag()}});
        Trigger();
      }
    }
    grpc::Status s = stream->Finish();
    absl::MutexLock lock(&mu_);
    events_ctx_ = nullptr;
    if (stopping_ || peers_.shutting_down()) return;
    // Said once per outage, not on every reconnect attempt.
    if (connected || !unreachable) {
      log::Warn("automation: registry-scanner event stream ended; reconnecting",
                {{"error", s.error_message()}});
    }
    unreachable = !connected;
    lost = true;
    if (connected) backoff = absl::Milliseconds(250);
    clock_.WaitUntil(mu_, clock_.Now() + backoff,
                     [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; });
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

std::optional<std::string> Automation::RunOnce() {
  absl::MutexLock pass(&pass_mu_);
  if (!Permitted("start")) return EndPass("standby", std::nullopt);
  const CallBudget budget = peers_.ForStage(Stage::kPlanning);  // the pass's reads
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git =
      peers_.ListAllInGit(ferry::v1::ListManifestWorkloadsRequest(), budget);
  if (!in_git.ok()) {
    log::Warn("automation: cannot read git", {{"error", std::string(in_git.status().message())}});
    last_pass_failed_ = true;
    wake_at_ = absl::InfiniteFuture();  // nothing was planned: no soak to wake up for
    return EndPass("error", std::nullopt);
  }
  last_pass_failed_ = false;
  WatchRepositoriesOf(*in_git);

  TagCache tags(peers_.registry, budget);
  std::vector<ferry::v1::ManifestWorkload> workloads(in_git->workloads().begin(),
                                                     in_git->workloads().end());
  std::vector<AutomationCandidate> planned = PlanAutomation(workloads, tags.Lookup(), clock_.Now());
  std::vector<std::string> notes;
  const int releases = RecordPlan(planned, notes);
  if (releases == 0) return EndPass("nothing", std::nullopt);
  // Planning took a while: leadership may have lapsed since the pass began. The last check
  // before the job exists (git-writer's compare-and-set edits still refuse a move another
  // replica committed meanwhile: its from_image no longer matches).
  if (!Permitted("submit")) return EndPass("standby", std::nullopt);

  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_AUTOMATED_RELEASE);
  job.mutable_cause()->set_message("automation");
  job.set_source(source_);
  job = store_.Submit(job);
  store_.Start(job.id());
  std::string planning = absl::StrCat(releases, " container(s) to release");
  if (!notes.empty()) absl::StrAppend(&planning, "; ", absl::StrJoin(notes, "; "));
  executor_.RunAutomated(job, planned, planning);
  std::optional<ferry::v1::Job> finished = store_.Get(job.id());
  const bool ok = finished.has_value() && finished->state() == ferry::v1::JOB_STATE_SUCCEEDED;
  if (ok) metrics_.releases_.Add(labels_).Increment(releases);
  return EndPass(ok ? "released" : "error", job.id());
}

std::optional<std::string> Automation::EndPass(const char* outcome,
                                               std::optional<std::string> job_id) {
  std::map<std::string, std::string> labels = labels_;
  labels["outcome"] = outcome;
  metrics_.runs_.Add(labels).Increment();
  ++passes_;
  return job_id;
}

void Automation::WatchRepositoriesOf(const ferry::v1::ListManifestWorkloadsResponse& in_git) {
  std::set<std::string> repositories, automated;
  int automated_count = 0, locked = 0, ignored = 0;
  for (const ferry::v1::ManifestWorkload& w : in_git.workloads()) {
    const bool is_automated = AutomationApplies(w.policy());
    automated_count += w.policy().automated();
    locked += w.policy().locked();
    ignored += w.policy().ignore() != ferry::v1::IGNORE_MODE_UNSPECIFIED;
    for (const ferry::v1::Container& c : w.containers()) {
      absl::StatusOr<image::Reference> ref = image::Reference::Parse(c.image());
      if (!ref.ok()) continue;
      repositories.insert(ref->Repository());
      if (is_automated) automated.insert(ref->Repository());
    }
  }
  for (const auto& [policy, count] : {std::pair<const char*, int>{"all", in_git.workloads_size()},
                                      {"automated", automated_count},
                                      {"locked", locked},
                                      {"ignored", ignored}}) {
    std::map<std::string, std::string> labels = labels_;
    labels["policy"] = policy;
    metrics_.workloads_.Add(labels).Set(count);
  }
  {
    absl::MutexLock lock(&mu_);
    automated_repositories_ = automated;
  }
  watch_list_->Set(source_, std::move(repositories));
}

void ScannerWatchList::Resend() { resend_ = true; }

void ScannerWatchList::Set(const std::string& source, std::set<std::string> repositories) {
  absl::MutexLock send(&send_mu_);
  std::set<std::string> all;
  {
    absl::MutexLock lock(&mu_);
    by_source_[source] = std::move(repositories);
    for (const auto& [name, of_source] : by_source_) {
      all.insert(of_source.begin(), of_source.end());
    }
    // A Resend() from now on (while the call below runs) sends the list again next time.
    if (!resend_.exchange(false) && sent_ == all) return;
    sent_.reset();
  }
  ferry::v1::WatchRequest watch;
  for (const std::string& r : all) watch.add_repositories(r);
  absl::StatusOr<ferry::v1::WatchResponse> answer =
      peers_.registry.Call(&RegistryScannerStub::Watch, watch,
                           peers_.Until(absl::Now() + kPeerCallTimeout, /*await_peer=*/false));
  if (!answer.ok()) {
    log::Warn("automation: cannot set the scanner's watch list",
              {{"error", std::string(answer.status().message())}});
    return;  // sent_ stays empty: the next Set sends it
  }
  // Refused repositories are logged once: the list is recorded as sent, so it is not sent
  // again until it changes.
  for (const ferry::v1::RefusedRepository& r : answer->refused()) {
    log::Warn("automation: the scanner refused to watch a repository",
              {{"reason", r.reason()}, {"code", absl::StrCat(r.code())}});
  }
  absl::MutexLock lock(&mu_);
  sent_ = std::move(all);
}

int Automation::RecordPlan(const std::vector<AutomationCandidate>& planned,
                           std::vector<std::string>& notes) {
  int releases = 0, blocked = 0, incomplete = 0, held = 0;
  absl::Time wake_at = absl::InfiniteFuture();
  for (const AutomationCandidate& a : planned) {
    incomplete += a.incomplete;
    held += a.held;
    wake_at = std::min(wake_at, a.wake_at);
    if (!a.to_image.empty())
      ++releases;
    else if (a.incomplete == 0 && !a.held)
      ++blocked;  // registry error, bad filter, policy error, no candidate
    if (!a.note.empty()) {
      notes.push_back(a.container.empty()
                          ? absl::StrCat(a.workload, ": ", a.note)
                          : absl::StrCat(a.workload, " ", a.container, ": ", a.note));
    }
  }
  wake_at_ = wake_at;
  metrics_.incomplete_.Add(labels_).Increment(incomplete);
  metrics_.blocked_.Add(labels_).Set(blocked);
  metrics_.held_.Add(labels_).Set(held);
  for (const std::string& note : notes) log::Info("automation", {{"note", note}});
  return releases;
}

}  // namespace ferry::api
