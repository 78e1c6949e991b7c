#include "services/api/notifier.h"

#include <algorithm>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "lib/log/log.h"
#include "lib/runtime/proto_time.h"

namespace ferry::api {
namespace {

using ferry::v1::Job;
using ferry::v1::WorkloadResult;

// An automatic revert of a release whose rollout failed.
constexpr auto kJobKindRevert = ferry::v1::JOB_KIND_REVERT;

// The longest `text`, and the longest of what others wrote (errors, reasons, messages) in it.
constexpr size_t kMaxText = 3000;
constexpr size_t kMaxTextString = 300;
// Container updates named per workload in the text.
constexpr size_t kMaxTextUpdates = 3;

std::string KindName(ferry::v1::JobKind kind) {
  if (kind == kJobKindRevert) return "revert";
  return JobKindName(kind);
}

// `s` cut to at most `max` bytes, never inside a UTF-8 sequence, the cut marked "...".
std::string Cut(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "...";
}

// Slack's mrkdwn escapes for what others wrote: a "<" would start a link, "&" an entity.
std::string Escape(const std::string& s, size_t max = kMaxTextString) {
  return absl::StrReplaceAll(Cut(s, max), {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}});
}

std::string ShortRevision(const std::string& revision) { return revision.substr(0, 7); }
std::string ShortId(const std::string& id) { return id.substr(0, 8); }

std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", runtime::FromProtoTimestamp(ts),
                          absl::UTCTimeZone());
}

// "and 3 more" lines and fields.
std::string More(size_t n) { return absl::StrCat("and ", n, " more"); }

// "acme/web:1.2 -> 1.3" when only the tag (or digest) changed, "a -> b" otherwise; the
// images escaped for Slack, the arrow not.
std::string ImageChange(const std::string& from, const std::string& to) {
  auto split = [](const std::string& image) -> std::pair<std::string, std::string> {
    if (size_t at = image.find('@'); at != std::string::npos) {
      return {image.substr(0, at), image.substr(at + 1)};
    }
    const size_t slash = image.rfind('/');
    const size_t colon = image.rfind(':');
    if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
      return {image.substr(0, colon), image.substr(colon + 1)};
    }
    return {image, ""};
  };
  const auto [from_name, from_tag] = split(from);
  const auto [to_name, to_tag] = split(to);
  if (!from.empty() && from_name == to_name && !from_tag.empty() && !to_tag.empty()) {
    return absl::StrCat(Escape(from), " -> ", Escape(to_tag));
  }
  return absl::StrCat(from.empty() ? "(none)" : Escape(from), " -> ", Escape(to));
}

const char* StatusName(ferry::v1::WorkloadResultStatus status) {
  switch (status) {
    case ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS:
      return "success";
    case ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED:
      return "skipped";
    case ferry::v1::WORKLOAD_RESULT_STATUS_IGNORED:
      return "ignored";
    case ferry::v1::WORKLOAD_RESULT_STATUS_FAILED:
      return "failed";
    default:
      return "unspecified";
  }
}

bool ReleaseLike(ferry::v1::JobKind kind) {
  return kind == ferry::v1::JOB_KIND_RELEASE || kind == ferry::v1::JOB_KIND_AUTOMATED_RELEASE ||
         kind == kJobKindRevert;
}

// " by alice", or "" without a user.
std::string By(const std::string& user) { return user.empty() ? "" : " by " + Escape(user, 200); }

// The fields every job event has.
nlohmann::json JobBase(const Job& job, const char* event) {
  nlohmann::json e;
  e["event"] = event;
  e["source"] = "job";
  e["job"] = job.id();
  e["kind"] = KindName(job.kind());
  e["state"] = job.state() == ferry::v1::JOB_STATE_SUCCEEDED ? "succeeded" : "failed";
  e["revision"] = job.revision();
  e["error"] = Cut(job.error(), kMaxEventString);
  e["user"] = Cut(job.cause().user(), kMaxEventString);
  e["message"] = Cut(job.cause().message(), kMaxEventString);
  e["time"] = Rfc3339(job.has_finished() ? job.finished() : job.submitted());
  if (!job.reverts_job().empty()) e["reverts_job"] = job.reverts_job();
  if (!job.source().empty()) e["source_name"] = job.source();
  return e;
}

// The changed and failed workloads of a release-like job.
struct Outcomes {
  std::vector<const WorkloadResult*> changed, failed;
  size_t skipped = 0;
};

Outcomes SortResults(const Job& job) {
  Outcomes out;
  for (const WorkloadResult& r : job.results()) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) out.changed.push_back(&r);
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED) out.failed.push_back(&r);
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED) ++out.skipped;
  }
  return out;
}

// "workloads" (changed then failed, bounded), "workloads_more" and "skipped".
void AddWorkloads(const Outcomes& outcomes, nlohmann::json& e) {
  nlohmann::json workloads = nlohmann::json::array();
  size_t total = 0;
  for (const auto* list : {&outcomes.changed, &outcomes.failed}) {
    for (const WorkloadResult* r : *list) {
      if (total++ >= kMaxEventListed) continue;
      nlohmann::json w;
      w["workload"] = Cut(r->workload(), kMaxEventString);
      w["status"] = StatusName(r->status());
      if (!r->reason().empty()) w["reason"] = Cut(r->reason(), kMaxEventString);
      nlohmann::json updates = nlohmann::json::array();
      for (int i = 0; i < r->updates_size() && i < static_cast<int>(kMaxEventListed); ++i) {
        const ferry::v1::ContainerUpdate& u = r->updates(i);
        updates.push_back({{"container", Cut(u.container(), kMaxEventString)},
                           {"from", Cut(u.from_image(), kMaxEventString)},
                           {"to", Cut(u.to_image(), kMaxEventString)}});
      }
      w["updates"] = std::move(updates);
      if (static_cast<size_t>(r->updates_size()) > kMaxEventListed) {
        w["updates_more"] = r->updates_size() - kMaxEventListed;
      }
      workloads.push_back(std::move(w));
    }
  }
  e["workloads"] = std::move(workloads);
  if (total > kMaxEventListed) e["workloads_more"] = total - kMaxEventListed;
  e["skipped"] = outcomes.skipped;
}

// "acme:deployment/web (web: acme/web:1.2 -> 1.3)"; a failed one with its reason.
std::string WorkloadText(const WorkloadResult& r) {
  std::string out = Escape(r.workload());
  std::vector<std::string> parts;
  for (int i = 0; i < r.updates_size() && i < static_cast<int>(kMaxTextUpdates); ++i) {
    const ferry::v1::ContainerUpdate& u = r.updates(i);
    parts.push_back(
        absl::StrCat(Escape(u.container()), ": ", ImageChange(u.from_image(), u.to_image())));
  }
  if (static_cast<size_t>(r.updates_size()) > kMaxTextUpdates) {
    parts.push_back(More(r.updates_size() - kMaxTextUpdates));
  }
  if (!parts.empty()) absl::StrAppend(&out, " (", absl::StrJoin(parts, ", "), ")");
  if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED && !r.reason().empty()) {
    absl::StrAppend(&out, ": ", Escape(r.reason()));
  }
  return out;
}

// "\n• a\n• b\n• and 3 more" for `items`, at most kMaxTextListed of them.
template <typename T, typename F>
std::string Bullets(const std::vector<T>& items, F text) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < kMaxTextListed; ++i) {
    absl::StrAppend(&out, "\n• ", text(items[i]));
  }
  if (items.size() > kMaxTextListed)
    absl::StrAppend(&out, "\n• ", More(items.size() - kMaxTextListed));
  return out;
}

// The message of the job's last stage ("nothing to release: ..."), or "".
std::string LastStageMessage(const Job& job) {
  return job.stages_size() == 0 ? "" : job.stages(job.stages_size() - 1).message();
}

nlohmann::json ReleaseEvent(const Job& job) {
  const char* event = job.kind() == ferry::v1::JOB_KIND_AUTOMATED_RELEASE ? "automated_release"
                      : job.kind() == kJobKindRevert                      ? "revert"
                                                                          : "release";
  const char* verb = job.kind() == ferry::v1::JOB_KIND_AUTOMATED_RELEASE ? "automated release"
                     : job.kind() == kJobKindRevert                      ? "revert"
                                                                         : "release";
  nlohmann::json e = JobBase(job, event);
  const Outcomes outcomes = SortResults(job);
  AddWorkloads(outcomes, e);
  const std::string pushed =
      job.revision().empty() ? "" : absl::StrCat(" pushed at ", ShortRevision(job.revision()));
  std::string text = absl::StrCat("Ferry: ", verb);
  if (outcomes.changed.empty()) {
    absl::StrAppend(&text, " job ", ShortId(job.id()), By(job.cause().user()), ": nothing changed");
    if (const std::string m = LastStageMessage(job); !m.empty()) {
      absl::StrAppend(&text, " (", Escape(m), ")");
    }
  } else if (outcomes.changed.size() == 1) {
    absl::StrAppend(&text, " of ", WorkloadText(*outcomes.changed[0]), pushed,
                    By(job.cause().user()));
  } else {
    absl::StrAppend(&text, " of ", outcomes.changed.size(), " workloads", pushed,
                    By(job.cause().user()));
  }
  if (!job.cause().message().empty()) absl::StrAppend(&text, ": ", Escape(job.cause().message()));
  if (outcomes.changed.size() > 1) {
    absl::StrAppend(
        &text, Bullets(outcomes.changed, [](const WorkloadResult* r) { return WorkloadText(*r); }));
  }
  if (!outcomes.failed.empty()) {
    absl::StrAppend(&text, "\n", outcomes.failed.size(),
                    " failed:", Bullets(outcomes.failed, [](const WorkloadResult* r) {
                      return WorkloadText(*r);
                    }));
  }
  e["text"] = Cut(text, kMaxText);
  return e;
}

struct Lock {
  std::string workload, user, message;
};

// The locks a policy or revert job made. A revert job records its lock in no policy change:
// it locks each workload it reverted, as its cause's user, with its cause's message
// ("<workload>: automatic revert of job ...") as the lock message.
std::vector<Lock> LocksOf(const Job& job) {
  std::vector<Lock> locks;
  if (job.kind() == kJobKindRevert && job.policy_changes_size() == 0) {
    for (const WorkloadResult& r : job.results()) {
      if (r.status() != ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) continue;
      std::string message = job.cause().message();
      if (absl::StartsWith(message, r.workload() + ": ")) {
        message = message.substr(r.workload().size() + 2);
      }
      locks.push_back({r.workload(), job.cause().user(), message});
    }
    return locks;
  }
  for (const ferry::v1::WorkloadPolicyChanges& w : job.policy_changes()) {
    for (const ferry::v1::PolicyChange& c : w.changes()) {
      if (!c.has_lock()) continue;
      locks.push_back({w.workload(), c.lock().user().empty() ? job.cause().user() : c.lock().user(),
                       c.lock().message()});
    }
  }
  return locks;
}

nlohmann::json LockEvent(const Job& job, const std::vector<Lock>& locks) {
  nlohmann::json e = JobBase(job, "lock");
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < locks.size() && i < kMaxEventListed; ++i) {
    list.push_back({{"workload", Cut(locks[i].workload, kMaxEventString)},
                    {"user", Cut(locks[i].user, kMaxEventString)},
                    {"message", Cut(locks[i].message, kMaxEventString)}});
  }
  e["locks"] = std::move(list);
  if (locks.size() > kMaxEventListed) e["locks_more"] = locks.size() - kMaxEventListed;
  auto one = [](const Lock& l) {
    std::string s = absl::StrCat(Escape(l.workload), " locked", By(l.user));
    if (!l.message.empty()) absl::StrAppend(&s, ": ", Escape(l.message));
    return s;
  };
  std::string text = "Ferry: ";
  if (locks.size() == 1) {
    absl::StrAppend(&text, one(locks[0]));
  } else {
    absl::StrAppend(&text, locks.size(), " workloads locked", Bullets(locks, one));
  }
  e["text"] = Cut(text, kMaxText);
  return e;
}

// A sync job that failed, or applied with objects that failed.
nlohmann::json SyncJobFailure(const Job& job) {
  nlohmann::json e = JobBase(job, "sync_failed");
  std::vector<const WorkloadResult*> failed;
  for (const WorkloadResult& r : job.results()) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED) failed.push_back(&r);
  }
  nlohmann::json errors = nlohmann::json::array();
  for (size_t i = 0; i < failed.size() && i < kMaxEventListed; ++i) {
    errors.push_back({{"resource", Cut(failed[i]->workload(), kMaxEventString)},
                      {"error", Cut(failed[i]->reason(), kMaxEventString)}});
  }
  e["failed"] = failed.size();
  e["errors"] = std::move(errors);
  if (failed.size() > kMaxEventListed) e["errors_more"] = failed.size() - kMaxEventListed;
  std::string text;
  if (job.state() == ferry::v1::JOB_STATE_FAILED) {
    text = absl::StrCat("Ferry: sync job ", ShortId(job.id()), By(job.cause().user()),
                        " failed: ", Escape(job.error()));
  } else {
    text = absl::StrCat("Ferry: sync of ", ShortRevision(job.revision()), By(job.cause().user()),
                        " failed for ", failed.size(), failed.size() == 1 ? " object" : " objects",
                        Bullets(failed, [](const WorkloadResult* r) {
                          return absl::StrCat(Escape(r->workload()), ": ", Escape(r->reason()));
                        }));
  }
  e["text"] = Cut(text, kMaxText);
  return e;
}

nlohmann::json FailedJob(const Job& job) {
  nlohmann::json e = JobBase(job, "job_failed");
  if (ReleaseLike(job.kind())) AddWorkloads(SortResults(job), e);
  e["text"] = Cut(absl::StrCat("Ferry: ", KindName(job.kind()), " job ", ShortId(job.id()),
                               By(job.cause().user()), " failed: ", Escape(job.error())),
                  kMaxText);
  return e;
}

// How a sync job's error starts when cluster-syncer answered with the sync's own error
// (Executor::Apply: "cluster-syncer: " + SyncResult.error); an unreachable syncer's error names
// its address ("cluster-syncer at HOST:PORT ...").
constexpr char kSyncerErrorPrefix[] = "cluster-syncer: ";

bool SyncJobFailed(const Job& job) {
  if (job.state() == ferry::v1::JOB_STATE_FAILED) return true;
  return std::any_of(job.results().begin(), job.results().end(), [](const WorkloadResult& r) {
    return r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED;
  });
}

// A sync failure's objects as OnSyncResult compares them: sorted, one per line.
std::string FailedObjectsKey(std::vector<std::string> objects) {
  std::sort(objects.begin(), objects.end());
  return absl::StrCat("objects:\n", absl::StrJoin(objects, "\n"));
}

// The URL's path, query or fragment ("" without): a secret in Slack's webhooks, never logged.
std::string PathOf(const NotifyTarget& target) {
  const size_t scheme = target.url.find("://");
  const size_t start =
      target.url.find_first_of("/?#", scheme == std::string::npos ? 0 : scheme + 3);
  return start == std::string::npos ? "" : target.url.substr(start);
}

// `message` without the target's URL, path or token.
std::string Scrub(const NotifyTarget& target, std::string message) {
  std::vector<std::pair<std::string, std::string>> secrets = {{target.url, target.host}};
  if (const std::string path = PathOf(target); path.size() > 1) secrets.push_back({path, "/..."});
  if (!target.token.empty()) secrets.push_back({target.token, "(token)"});
  for (const auto& [secret, replacement] : secrets) {
    message = absl::StrReplaceAll(message, {{secret, replacement}});
  }
  return Cut(message, kMaxTextString);
}

}  // namespace

std::vector<nlohmann::json> EventsForJob(const Job& job) {
  std::vector<nlohmann::json> events;
  if (job.dry_run() || (job.state() != ferry::v1::JOB_STATE_SUCCEEDED &&
                        job.state() != ferry::v1::JOB_STATE_FAILED)) {
    return events;
  }
  if (job.kind() == ferry::v1::JOB_KIND_SYNC) {
    if (SyncJobFailed(job)) events.push_back(SyncJobFailure(job));
    return events;
  }
  if (job.state() == ferry::v1::JOB_STATE_FAILED) {
    events.push_back(FailedJob(job));
    return events;
  }
  if (ReleaseLike(job.kind())) events.push_back(ReleaseEvent(job));
  if (job.kind() == ferry::v1::JOB_KIND_POLICY || job.kind() == kJobKindRevert) {
    if (std::vector<Lock> locks = LocksOf(job); !locks.empty()) {
      events.push_back(LockEvent(job, locks));
    }
  }
  return events;
}

std::optional<nlohmann::json> EventForSyncFailure(const ferry::v1::SyncResult& result,
                                                  const std::string& source) {
  if (result.error().empty() && result.failed() == 0 && result.errors_size() == 0) {
    return std::nullopt;
  }
  nlohmann::json e;
  e["event"] = "sync_failed";
  e["source"] = "cluster-syncer";
  e["revision"] = result.revision();
  e["error"] = Cut(result.error(), kMaxEventString);
  e["failed"] = result.failed();
  e["applied"] = result.applied();
  nlohmann::json errors = nlohmann::json::array();
  for (int i = 0; i < result.errors_size() && i < static_cast<int>(kMaxEventListed); ++i) {
    const ferry::v1::ResourceError& r = result.errors(i);
    errors.push_back({{"resource", Cut(r.resource(), kMaxEventString)},
                      {"path", Cut(r.path(), kMaxEventString)},
                      {"error", Cut(r.error(), kMaxEventString)}});
  }
  e["errors"] = std::move(errors);
  if (static_cast<size_t>(result.errors_size()) > kMaxEventListed) {
    e["errors_more"] = result.errors_size() - kMaxEventListed;
  }
  e["time"] = Rfc3339(result.finished());
  if (!source.empty()) e["source_name"] = source;
  std::string of =
      result.revision().empty() ? "" : absl::StrCat(" of ", ShortRevision(result.revision()));
  if (!source.empty()) of = absl::StrCat(" (source ", Escape(source, 64), ")", of);
  std::string text;
  if (!result.error().empty()) {
    text = absl::StrCat("Ferry: cluster-syncer's sync", of, " failed: ", Escape(result.error()));
  } else {
    std::vector<const ferry::v1::ResourceError*> errors_list;
    for (const auto& r : result.errors()) errors_list.push_back(&r);
    const int failed = std::max(result.failed(), result.errors_size());
    text = absl::StrCat("Ferry: cluster-syncer's sync", of, " failed for ", failed,
                        failed == 1 ? " object" : " objects",
                        Bullets(errors_list, [](const ferry::v1::ResourceError* r) {
                          return absl::StrCat(Escape(r->resource()), ": ", Escape(r->error()));
                        }));
  }
  e["text"] = Cut(text, kMaxText);
  return e;
}

NotifierMetrics::NotifierMetrics(prometheus::Registry& registry)
    : outcomes_(prometheus::BuildCounter()
                    .Name("ferry_notifications_total")
                    .Help("Notification deliveries by target (the --notify_url's position) and "
                          "outcome (delivered, retried, failed, dropped).")
                    .Register(registry)),
      queue_length_(prometheus::BuildGauge()
                        .Name("ferry_notification_queue_length")
                        .Help("Notifications waiting or being sent, by target.")
                        .Register(registry)),
      events_(prometheus::BuildCounter()
                  .Name("ferry_notification_events_total")
                  .Help("Notification events produced, by event (release, lock, ...).")
                  .Register(registry)) {}

Notifier::Notifier(std::vector<NotifyTarget> targets, http::HttpClient& http,
                   NotifierMetrics& metrics, runtime::Clock& clock, NotifierOptions options)
    : http_(http), metrics_(metrics), clock_(clock), options_(std::move(options)) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < targets.size(); ++i) {
    Target& t = targets_.emplace_back();
    t.config = std::move(targets[i]);
    if (t.config.index == 0) t.config.index = i + 1;
    t.label = absl::StrCat(t.config.index);
    // Every outcome is exported from the start, at 0.
    for (const char* outcome : {"delivered", "retried", "failed", "dropped"}) {
      metrics_.outcomes_.Add({{"target", t.label}, {"outcome", outcome}});
    }
    SetQueueGauge(t);
  }
}

Notifier::~Notifier() { Stop(absl::ZeroDuration()); }

void Notifier::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  for (Target& t : targets_) {
    t.thread = std::thread([this, &t] { Deliver(t); });
  }
}

void Notifier::Count(const Target& target, const char* outcome, double n) {
  metrics_.outcomes_.Add({{"target", target.label}, {"outcome", outcome}}).Increment(n);
}

void Notifier::SetQueueGauge(const Target& target) {
  metrics_.queue_length_.Add({{"target", target.label}})
      .Set(static_cast<double>(target.queue.size() + (target.sending ? 1 : 0)));
}

void Notifier::Notify(const nlohmann::json& event) {
  // Invalid UTF-8 (a peer's error message) is replaced rather than thrown on.
  auto body = std::make_shared<const std::string>(
      event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  metrics_.events_.Add({{"event", event.value("event", "unknown")}}).Increment();
  absl::MutexLock lock(&mu_);
  for (Target& t : targets_) {
    if (stopping_) {
      Count(t, "dropped");
      continue;
    }
    if (t.queue.size() >= std::max<size_t>(options_.queue_capacity, 1)) {
      t.queue.pop_front();
      Count(t, "dropped");
    }
    t.queue.push_back(body);
    SetQueueGauge(t);
  }
}

void Notifier::OnJobFinished(const Job& job) {
  if (job.kind() == ferry::v1::JOB_KIND_SYNC && !job.dry_run()) {
    if (!SyncJobFailed(job)) {
      absl::MutexLock lock(&sync_mu_);
      failing_.erase(job.source());
    } else if (job.state() == ferry::v1::JOB_STATE_SUCCEEDED) {
      // Applied with failed objects: the same failure as the syncer's stream reports.
      std::vector<std::string> objects;
      for (const WorkloadResult& r : job.results()) {
        if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_FAILED) objects.push_back(r.workload());
      }
      if (!NewSyncFailure(job.source(), FailedObjectsKey(std::move(objects)))) {
        return;  // announced already
      }
    } else if (absl::StartsWith(job.error(), kSyncerErrorPrefix)) {
      // The syncer ran the sync and it failed as a whole: the same failure as its stream's
      // result with that error (OnSyncResult's key).
      const std::string error = job.error().substr(sizeof(kSyncerErrorPrefix) - 1);
      if (!NewSyncFailure(job.source(), absl::StrCat("error: ", error))) {
        return;  // announced already
      }
    }
    // A sync job that never reached the syncer (unreachable, no answer, git-writer failed)
    // is always announced: the syncer's stream says nothing of it.
  }
  for (const nlohmann::json& event : EventsForJob(job)) Notify(event);
}

bool Notifier::NewSyncFailure(const std::string& source, const std::string& key) {
  absl::MutexLock lock(&sync_mu_);
  std::string& failing = failing_[source];
  if (key == failing) return false;
  failing = key;
  return true;
}

void Notifier::OnSyncResult(const ferry::v1::SyncResult& result, const std::string& source) {
  std::optional<nlohmann::json> event = EventForSyncFailure(result, source);
  if (!event) {
    absl::MutexLock lock(&sync_mu_);
    failing_.erase(source);
    return;
  }
  std::string key;
  if (!result.error().empty()) {
    key = absl::StrCat("error: ", result.error());
  } else {
    std::vector<std::string> objects;
    for (const ferry::v1::ResourceError& e : result.errors()) objects.push_back(e.resource());
    key = FailedObjectsKey(std::move(objects));
  }
  if (NewSyncFailure(source, key)) Notify(*event);
}

Notifier::Outcome Notifier::Send(const Target& target, const std::string& body,
                                 absl::Duration* retry_after) {
  *retry_after = absl::ZeroDuration();
  http::Request request;
  request.method = "POST";
  request.url = target.config.url;
  request.headers = {{"Content-Type", "application/json"}};
  if (!target.config.token.empty()) {
    request.headers.push_back({"Authorization", "Bearer " + target.config.token});
  }
  request.body = body;
  request.timeout = options_.request_timeout;
  // A redirect could carry the token elsewhere: it is an answer like any other 3xx.
  request.follow_redirects = false;
  absl::StatusOr<http::Response> response = http_.Send(request);
  if (!response.ok()) {
    if (response.status().code() == absl::StatusCode::kFailedPrecondition) {
      log::Error("notification not delivered, giving up",
                 {{"target", target.config.Describe()},
                  {"error", Scrub(target.config, std::string(response.status().message()))}});
      return Outcome::kFailed;
    }
    log::Warn("notification not delivered, retrying",
              {{"target", target.config.Describe()},
               {"error", Scrub(target.config, std::string(response.status().message()))}});
    return Outcome::kRetry;
  }
  const long status = response->status;
  if (status >= 200 && status < 300) return Outcome::kDelivered;
  if (status == 429 || status == 408 || status >= 500) {
    int64_t seconds = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(response->Header("retry-after")), &seconds) &&
        seconds > 0) {
      *retry_after = absl::Seconds(seconds);
    }
    log::Warn("notification not delivered, retrying",
              {{"target", target.config.Describe()}, {"status", static_cast<int64_t>(status)}});
    return Outcome::kRetry;
  }
  // The receiver's body is not logged: it may echo the request.
  log::Error("notification refused, giving up",
             {{"target", target.config.Describe()}, {"status", static_cast<int64_t>(status)}});
  return Outcome::kFailed;
}

void Notifier::Deliver(Target& target) {
  std::mt19937 jitter(
      static_cast<uint32_t>(target.config.index * 7919 + absl::ToUnixNanos(absl::Now())));
  for (;;) {
    std::shared_ptr<const std::string> body;
    {
      absl::MutexLock lock(&mu_);
      clock_.WaitUntil(mu_, absl::InfiniteFuture(), [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return abandon_ || stopping_ || !target.queue.empty();
      });
      if (abandon_ || target.queue.empty()) return;  // stopped, or stopping and drained
      body = std::move(target.queue.front());
      target.queue.pop_front();
      target.sending = true;
    }
    absl::Duration backoff = options_.first_retry;
    const char* outcome = nullptr;
    while (outcome == nullptr) {
      absl::Duration retry_after;
      switch (Send(target, *body, &retry_after)) {
        case Outcome::kDelivered:
          outcome = "delivered";
          continue;
        case Outcome::kFailed:
          outcome = "failed";
          continue;
        case Outcome::kRetry:
          break;
      }
      absl::MutexLock lock(&mu_);
      if (abandon_) {
        outcome = "dropped";
        continue;
      }
      Count(target, "retried");
      // Up to 20% less than the doubling delay, so that many apis do not retry in step.
      const double spread = std::uniform_real_distribution<double>(0.8, 1.0)(jitter);
      const absl::Duration wait =
          std::min(std::max(retry_after, backoff * spread), options_.max_retry);
      backoff = std::min(backoff * 2, options_.max_retry);
      clock_.WaitUntil(mu_, clock_.Now() + wait,
                       [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return abandon_; });
    }
    absl::MutexLock lock(&mu_);
    Count(target, outcome);
    target.sending = false;
    SetQueueGauge(target);
  }
}

void Notifier::Stop(absl::Duration grace) {
  std::vector<std::thread*> threads;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    if (started_) {
      clock_.WaitUntil(mu_, clock_.Now() + grace, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return std::all_of(targets_.begin(), targets_.end(),
                           [](const Target& t) { return t.queue.empty() && !t.sending; });
      });
    }
    abandon_ = true;
    for (Target& t : targets_) {
      if (!t.queue.empty()) {
        log::Warn(
            "notifications dropped at shutdown",
            {{"target", t.config.Describe()}, {"events", static_cast<int64_t>(t.queue.size())}});
      }
      Count(t, "dropped", static_cast<double>(t.queue.size()));
      t.queue.clear();
      SetQueueGauge(t);
      if (t.thread.joinable()) threads.push_back(&t.thread);
    }
  }
  if (options_.cancel_transfers != nullptr) options_.cancel_transfers->store(true);
  for (std::thread* thread : threads) thread->join();
}

size_t Notifier::QueueLength(size_t index) const {
  absl::MutexLock lock(&mu_);
  if (index >= targets_.size()) return 0;
  return targets_[index].queue.size() + (targets_[index].sending ? 1 : 0);
}

SyncFailureWatch::SyncFailureWatch(const PeerClients& peers, Notifier& notifier,
                                   runtime::Clock& clock, std::string source)
    : peers_(peers), notifier_(notifier), clock_(clock), source_(std::move(source)) {}

SyncFailureWatch::~SyncFailureWatch() { Stop(); }

void SyncFailureWatch::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  started_ = clock_.Now();
  thread_ = std::thread([this] { Follow(); });
}

void SyncFailureWatch::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void SyncFailureWatch::Follow() {
  constexpr absl::Duration kFirstRetry = absl::Milliseconds(250);
  absl::Duration backoff = kFirstRetry;
  bool unreachable = false;
  for (;;) {
    PeerCall call;
    absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::SyncResult>>> opened =
        peers_.cluster.Open(&ClusterSyncerStub::WatchSync, ferry::v1::WatchSyncRequest(),
                            peers_.Until(absl::InfiniteFuture(), /*await_peer=*/false), call);
    {
      absl::MutexLock lock(&mu_);
      if (!opened.ok()) return;  // not opened: the api is shutting down
      ctx_ = &call.context();
      if (stopping_) call.context().TryCancel();
    }
    bool connected = false;
    ferry::v1::SyncResult result;
    while ((*opened)->Read(&result)) {
      connected = true;
      // The first answer is the last sync, maybe from before this api started.
      if (result.has_finished() && runtime::FromProtoTimestamp(result.finished()) < started_) {
        continue;
      }
      if (announce_ && !announce_()) continue;  // a standby replica: the leader announces
      notifier_.OnSyncResult(result, source_);
    }
    grpc::Status s = (*opened)->Finish();
    absl::MutexLock lock(&mu_);
    ctx_ = nullptr;
    if (stopping_ || peers_.shutting_down()) return;
    // Said once per outage, not on every reconnect attempt.
    if (connected || !unreachable) {
      log::Warn("notifications: cluster-syncer's sync stream ended; reconnecting",
                {{"error", s.error_message()}, {"source", source_}});
    }
    unreachable = !connected;
    if (connected) backoff = kFirstRetry;
    clock_.WaitUntil(mu_, clock_.Now() + backoff,
                     [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; });
    if (stopping_) return;
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

namespace {

http::CurlOptions NotifyCurlOptions(const std::vector<NotifyTarget>& targets,
                                    std::shared_ptr<std::atomic<bool>> cancel) {
  http::CurlOptions curl;
  curl.user_agent = "ferry-api";
  curl.cancelled = std::move(cancel);
  for (const NotifyTarget& t : targets) {
    if (absl::StartsWithIgnoreCase(t.url, "http://")) curl.insecure_hosts.push_back(t.host);
  }
  return curl;
}

NotifierOptions WithCancel(std::shared_ptr<std::atomic<bool>> cancel) {
  NotifierOptions options;
  options.cancel_transfers = std::move(cancel);
  return options;
}

}  // namespace

Notifications::Notifications(std::vector<NotifyTarget> targets,
                             const std::vector<std::pair<std::string, const PeerClients*>>& sources,
                             JobStore& jobs, prometheus::Registry& registry)
    : targets_(std::move(targets)),
      http_(NotifyCurlOptions(targets_, cancel_)),
      metrics_(registry),
      notifier_(targets_, http_, metrics_, runtime::SystemClock(), WithCancel(cancel_)) {
  for (const auto& [name, peers] : sources) {
    sync_failures_.push_back(
        std::make_unique<SyncFailureWatch>(*peers, notifier_, runtime::SystemClock(), name));
  }
  if (targets_.empty()) return;
  jobs.SetFinishObserver([this](const Job& job) { notifier_.OnJobFinished(job); });
}

void Notifications::Start() {
  if (targets_.empty()) return;
  for (const NotifyTarget& t : targets_) {
    log::Info("notifications", {{"target", t.Describe()}, {"token", !t.token.empty()}});
  }
  notifier_.Start();
  for (auto& watch : sync_failures_) watch->Start();
}

void Notifications::StopWatching() {
  for (auto& watch : sync_failures_) watch->Stop();
}

void Notifications::AnnounceSyncsWhile(std::function<bool()> leading) {
  for (auto& watch : sync_failures_) watch->SetGate(leading);
}

void Notifications::Stop(absl::Duration grace) { notifier_.Stop(grace); }

}  // namespace ferry::api
