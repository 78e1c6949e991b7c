#include "services/cluster-syncer/workload_watch.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/http/url.h"
#include "lib/kube/json_fields.h"
#include "lib/kube/list.h"
#include "lib/log/log.h"
#include "lib/status/status_macros.h"

namespace ferry::cluster_syncer {
namespace {

// The key of a workload in entries_: its id first, so that entries_ is in id order.
std::string KeyOf(const std::string& id, const std::string& group) {
  return absl::StrCat(id, "\n", group);
}

}  // namespace

WorkloadWatch::WorkloadWatch(kube::KubeApi& client, kube::Discovery& discovery, ToListed to_listed,
                             WatchTiming timing)
    : client_(client), discovery_(discovery), to_listed_(std::move(to_listed)), timing_(timing) {
  absl::MutexLock lock(&mu_);
  kinds_.resize(WorkloadKinds().size());
}

WorkloadWatch::~WorkloadWatch() { Stop(); }

void WorkloadWatch::Start(StartWhen wait) {
  for (size_t k = 0; k < WorkloadKinds().size(); ++k) {
    threads_.emplace_back([this, k, wait] {
      if (wait) wait(stop_);
      Run(k);
    });
  }
}

void WorkloadWatch::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

bool WorkloadWatch::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopped = [this] { return stop_.load(); };
  mu_.AwaitWithTimeout(absl::Condition(&stopped), d);
  return !stop_;
}

bool WorkloadWatch::Answering() {
  const absl::Time now = absl::Now();
  for (const KindState& kind : kinds_) {
    if (!kind.listed || now - kind.failing_since > timing_.failure_grace) return false;
  }
  return true;
}

std::shared_ptr<const std::vector<ListedWorkload>> WorkloadWatch::Named(
    const std::string& ns, const std::vector<std::string>& ids) {
  std::vector<std::string> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  auto out = std::make_shared<std::vector<ListedWorkload>>();
  absl::MutexLock lock(&mu_);
  if (!Answering()) return nullptr;
  for (const std::string& id : sorted) {
    // Its entries: the key is the id, "\n", then the group (two groups serve HelmRelease).
    const std::string prefix = id + "\n";
    for (auto it = entries_.lower_bound(prefix);
         it != entries_.end() && absl::StartsWith(it->first, prefix); ++it) {
      // The id itself: an object's name from the API may hold a "\n" (never a request's id).
      if (it->second.workload.id != id) continue;
      if (ns.empty() || it->second.namespace_ == ns) out->push_back(it->second.workload);
    }
  }
  return out;
}

std::shared_ptr<const std::vector<ListedWorkload>> WorkloadWatch::Workloads(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  if (!Answering()) return nullptr;
  auto it = answers_.find(ns);
  if (it == answers_.end()) {
    if (answers_.size() >= kWorkloadListNamespaces) answers_.clear();  // bounded by namespaces
    it = answers_.emplace(ns, std::make_pair(uint64_t{0}, nullptr)).first;
  }
  auto& [made_at, answer] = it->second;
  if (answer == nullptr || made_at != version_) {
    auto out = std::make_shared<std::vector<ListedWorkload>>();
    for (const auto& [key, entry] : entries_) {
      if (ns.empty() || entry.namespace_ == ns) out->push_back(entry.workload);
    }
    answer = std::move(out);
    made_at = version_;
  }
  return answer;
}

void WorkloadWatch::Failing(size_t k) {
  absl::MutexLock lock(&mu_);
  if (kinds_[k].failing_since == absl::InfiniteFuture()) kinds_[k].failing_since = absl::Now();
}

bool WorkloadWatch::EraseKind(size_t k) {
  const size_t before = entries_.size();
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.kind == k ? entries_.erase(it) : std::next(it);
  }
  return entries_.size() != before;
}

void WorkloadWatch::Healthy(size_t k) {
  absl::MutexLock lock(&mu_);
  kinds_[k].failing_since = absl::InfiniteFuture();
}

void WorkloadWatch::Run(size_t k) {
  // Named references, not a structured binding: lambdas below use them (clang 14 cannot
  // capture bindings).
  const std::string& group = WorkloadKinds()[k].first;
  const std::string& kind = WorkloadKinds()[k].second;
  std::string resource_version;  // where the watch resumes; empty: list first
  absl::Duration delay = timing_.retry_delay;
  bool gone_before = false;  // the last watch ended with 410 Gone, and had not been healthy
  // Marks the kind failing and waits `delay` (doubled for the next failure); false once
  // stopped.
  const auto failed = [&](const char* what, const absl::Status& status) {
    Failing(k);
    log::Warn("workload watch failed",
              {{"kind", kind}, {"during", what}, {"error", std::string(status.message())}});
    const bool go_on = Wait(delay);
    delay = std::min(delay * 2, timing_.max_retry_delay);
    return go_on;
  };
  while (!stop_) {
    absl::StatusOr<kube::ApiResource> api = discovery_.FindPreferred(group, kind);
    if (!api.ok() && api.status().code() == absl::StatusCode::kNotFound) {
      {  // not served (no such CRD): nothing of this kind runs, until it is served
        absl::MutexLock lock(&mu_);
        if (EraseKind(k)) ++version_;
        kinds_[k] = KindState{true, absl::InfiniteFuture()};
      }
      resource_version.clear();
      if (!Wait(timing_.absent_kind_recheck)) return;
      continue;
    }
    if (!api.ok()) {
      if (!failed("discovery", api.status())) return;
      continue;
    }
    if (resource_version.empty()) {
      if (absl::Status listed = List(k, *api, resource_version); !listed.ok()) {
        // NotFound: the kind may no longer be served (its CRD deleted); discovery says next.
        if (listed.code() == absl::StatusCode::kNotFound) (void)discovery_.Refresh();
        if (!failed("listing", listed)) return;
        continue;
      }
    }
    const absl::Time began = absl::Now();
    int64_t events = 0;
    absl::Status watched = Watch(k, *api, resource_version, events);
    if (stop_) return;
    // A watch that gave events or lasted a while was up: the next failure starts the
    // backoff afresh. One that ended at once with nothing (refused, cut by a proxy) was not.
    const bool was_up = events > 0 || absl::Now() - began >= timing_.up_after;
    if (was_up) {
      delay = timing_.retry_delay;
      gone_before = false;
    }
    if (watched.code() == absl::StatusCode::kAborted) {
      // Too old to resume (410 Gone, e.g. after a long quiet spell or an etcd compaction):
      // a new listing, at once unless the watch before this one ended the same way at once.
      resource_version.clear();
      if (!gone_before) {
        gone_before = true;
        log::Info("workload watch relists",
                  {{"kind", kind}, {"why", std::string(watched.message())}});
        continue;
      }
      if (!failed("watch", watched)) return;
      continue;
    }
    if (watched.ok() && was_up) {  // the server ended it (timeoutSeconds): resume
      Healthy(k);
      continue;
    }
    if (watched.code() == absl::StatusCode::kDeadlineExceeded && was_up) {
      // The stream went quiet for KubeApi::kWatchIdleTimeout: a quiet kind on a server that
      // sends no bookmarks, or a connection gone silent. Resumed at once: the first is
      // normal, and for the second the resume fails (no answer: Unavailable, the failure
      // path below) if the API cannot be reached.
      continue;
    }
    // Failed, or ended at once without an event: resumed where it stopped after a wait, so a
    // connection that breaks costs no new listing (the server answers 410 if it must).
    if (!failed("watch",
                watched.ok() ? absl::UnavailableError("the watch ended at once") : watched)) {
      return;
    }
  }
}

absl::Status WorkloadWatch::List(size_t k, const kube::ApiResource& api,
                                 std::string& resource_version) {
  const std::string& group = WorkloadKinds()[k].first;
  const std::string& kind = WorkloadKinds()[k].second;
  std::map<std::string, Entry> listed;
  FERRY_RETURN_IF_ERROR(kube::ForEachListItem(
      client_, api.CollectionPath(""), {.resource_version = &resource_version},
      [&](const nlohmann::json& object) {
        try {
          if (!object.is_object() || !Listed(kind, object)) return true;
          ClusterWorkloadInfo w = WorkloadOf(kind, object);
          if (w.name.empty()) return true;
          std::string key = KeyOf(w.id, group);
          std::string ns = w.namespace_;
          listed.emplace(std::move(key), Entry{k, std::move(ns), to_listed_(std::move(w))});
        } catch (const nlohmann::json::exception& e) {  // an object not of its kind's shape
          log::Warn("workload watch skips an object", {{"kind", kind}, {"error", e.what()}});
        }
        return true;
      }));
  ++listings_;
  absl::MutexLock lock(&mu_);
  EraseKind(k);
  entries_.merge(listed);
  ++version_;
  kinds_[k] = KindState{true, absl::InfiniteFuture()};
  return absl::OkStatus();
}

absl::Status WorkloadWatch::Watch(size_t k, const kube::ApiResource& api,
                                  std::string& resource_version, int64_t& events) {
  const std::string path = absl::StrCat(
      api.CollectionPath(""),
      "?watch=1&allowWatchBookmarks=true&resourceVersion=", http::UrlEncode(resource_version),
      "&timeoutSeconds=", absl::ToInt64Seconds(kWatchRequestTimeout));
  absl::Status gone;
  absl::Status watched = client_.Watch(
      path, kWatchRequestTimeout + absl::Seconds(30), stop_, [&](const nlohmann::json& event) {
        const std::string type = kube::StringField(event, "type");
        const nlohmann::json& object = kube::Field(event, "object");
        if (type == "ERROR") {  // a Status: 410 when the resourceVersion is too old to resume
          const nlohmann::json& code = kube::Field(object, "code");
          gone = absl::AbortedError(absl::StrCat("the watch ended with an error (HTTP ",
                                                 code.is_number() ? code.dump() : "?",
                                                 "): ", kube::StringField(object, "message")));
          return false;
        }
        if (++events == 1) Healthy(k);
        if (std::string rv = kube::StringField(kube::Field(object, "metadata"), "resourceVersion");
            !rv.empty()) {
          resource_version = std::move(rv);
        }
        Apply(k, type, object);
        return !stop_;
      });
  if (!gone.ok()) return gone;
  return watched;
}

void WorkloadWatch::Apply(size_t k, const std::string& type, const nlohmann::json& object) {
  if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") return;  // BOOKMARK
  if (!object.is_object()) return;
  const std::string& group = WorkloadKinds()[k].first;
  const std::string& kind = WorkloadKinds()[k].second;
  ClusterWorkloadInfo w;
  bool listed = false;
  try {
    w = WorkloadOf(kind, object);
    listed = Listed(kind, object);
  } catch (const nlohmann::json::exception& e) {  // an object not of its kind's shape
    log::Warn("workload watch skips an object", {{"kind", kind}, {"error", e.what()}});
    return;
  }
  if (w.name.empty()) return;  // not an object of the kind
  std::string key = KeyOf(w.id, group);
  if (type == "DELETED" || !listed) {
    absl::MutexLock lock(&mu_);
    if (entries_.erase(key) > 0) ++version_;
    return;
  }
  std::string ns = w.namespace_;
  Entry entry{k, std::move(ns), to_listed_(std::move(w))};
  absl::MutexLock lock(&mu_);
  entries_.insert_or_assign(std::move(key), std::move(entry));
  ++version_;
}

}  // namespace ferry::cluster_syncer
