// Answers that may be a moment old, shared by the readers of the same moment: the cluster's
// workloads in cluster-syncer (a listing costs seconds at 10,000 workloads), a repository's
// tags in the api (one ListTags for every reader instead of one each).
#pragma once

#include <algorithm>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"

namespace ferry::runtime {

// How a snapshot older than max_age is made anew.
enum class Refresh {
  // By the caller who finds it too old, who waits for the load.
  kByCaller,
  // Behind the callers, on a thread of the cache's own: a caller who finds it too old but at
  // most max_stale old is answered with it at once. For a loader that costs seconds, whose
  // callers can do with a snapshot a few seconds older.
  kInBackground,
};

// A snapshot of T per key, made by a loader. Thread-safe.
template <typename T>
class SnapshotCache {
 public:
  using Loader = std::function<absl::StatusOr<T>(const std::string& key)>;
  using Outcome = absl::StatusOr<std::shared_ptr<const T>>;

  // Keys remembered at once; the oldest snapshot goes first.
  SnapshotCache(Loader load, Clock& clock, absl::Duration max_age, absl::Duration max_stale,
                size_t max_keys, Refresh refresh = Refresh::kByCaller)
      : load_(std::move(load)),
        clock_(clock),
        max_age_(max_age),
        max_stale_(std::max(max_age, max_stale)),
        max_keys_(std::max<size_t>(1, max_keys)),
        refresh_(refresh) {}

  SnapshotCache(const SnapshotCache&) = delete;
  SnapshotCache& operator=(const SnapshotCache&) = delete;

  // Waits for the loads running behind the callers (Refresh::kInBackground).
  ~SnapshotCache() {
    std::vector<Refresher> running;
    {
      absl::MutexLock lock(&mu_);
      running.swap(refreshers_);
    }
    for (Refresher& r : running) r.thread.join();
  }

  // The snapshot of `key`:
  // - the one made at most max_age ago;
  // - else, while another caller is making a new one, the last one when it is at most
  //   max_stale old; with Refresh::kInBackground, the same when no one is (a load then
  //   starts behind the caller), unless the caller gave a max_age of its own;
  // - else the outcome of the load in progress, waited for and shared, its failure too;
  // - else a new one, loaded by this caller without the lock (the others are answered
  //   meanwhile). A failed load is not kept: the next caller loads again.
  // `max_age`, when given, replaces the cache's own for this call (at most max_stale): a
  // caller that can do with an older snapshot does not wait for a new one (with
  // Refresh::kInBackground, one older than the cache's own max_age starts a load behind it).
  // A caller waiting for another's load gives up at `deadline` (DEADLINE_EXCEEDED); a load of
  // its own is bounded by the loader.
  Outcome Get(const std::string& key, std::optional<absl::Duration> max_age = std::nullopt,
              absl::Time deadline = absl::InfiniteFuture()) ABSL_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<Load> mine;
    std::optional<Outcome> answer;
    std::vector<std::thread> finished;  // loads behind the callers, joined without the lock
    {
      absl::MutexLock lock(&mu_);
      const absl::Duration wanted =
          max_age.has_value() ? std::clamp(*max_age, absl::ZeroDuration(), max_stale_) : max_age_;
      Lookup found = Find(key, clock_.Now(), wanted, /*strict=*/wanted < max_age_,
                          /*stale_ok=*/refresh_ == Refresh::kInBackground && !max_age.has_value());
      if (found.answer.has_value()) {
        if (found.behind != nullptr) finished = StartBehind(key, std::move(found.behind));
        answer = std::move(found.answer);
      } else if (found.wait != nullptr) {
        Load* load = found.wait.get();
        ++waiting_;
        const bool done = mu_.AwaitWithDeadline(
            absl::Condition(
                +[](Load* l) ABSL_NO_THREAD_SAFETY_ANALYSIS { return l->done; }, load),
            deadline);
        --waiting_;
        if (!done) {
          return absl::DeadlineExceededError(
              "the caller's deadline passed while it waited for a load in progress");
        }
        return load->outcome;
      } else {
        mine = std::move(found.mine);
      }
    }
    for (std::thread& t : finished) t.join();
    if (answer.has_value()) return *std::move(answer);
    return LoadAndStore(key, *mine);
  }

  // The snapshot of `key` made at most `max_age` ago (at most max_stale), or null: never a
  // load, nor a wait for one. For a caller with a cheaper way to an answer than a load.
  std::shared_ptr<const T> Peek(const std::string& key, absl::Duration max_age) const
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto found = entries_.find(key);
    if (found == entries_.end() ||
        clock_.Now() - found->second.made > std::min(max_age, max_stale_)) {
      return nullptr;
    }
    return found->second.value;
  }

  // Callers now waiting for a load in progress.
  int Waiting() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return waiting_;
  }

 private:
  struct Entry {
    absl::Time made;
    std::shared_ptr<const T> value;
  };
  // A load in progress, and its outcome once done (both under mu_).
  struct Load {
    absl::Time started;
    bool done = false;
    Outcome outcome;
  };
  // The answer when there is one without loading, or the load to wait for (`wait`), or,
  // when both are empty, the load this caller was registered to make (`mine`). `behind`: a
  // load registered to run behind the answer (Refresh::kInBackground).
  struct Lookup {
    std::optional<Outcome> answer;
    std::shared_ptr<Load> wait;
    std::shared_ptr<Load> mine;
    std::shared_ptr<Load> behind;
  };

  // `strict`: the caller asked for a snapshot newer than the cache's own max_age, and gets
  // one made at most `max_age` ago: not an older one while a load is in progress, and not
  // the outcome of a load that started longer ago (a load of its own then replaces it).
  Lookup Find(const std::string& key, absl::Time now, absl::Duration max_age, bool strict,
              bool stale_ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Lookup out;
    auto in_progress = loads_.find(key);
    const bool loading = in_progress != loads_.end();
    if (auto found = entries_.find(key); found != entries_.end()) {
      const absl::Duration age = now - found->second.made;
      if (age <= max_age || (!strict && age <= max_stale_ && (loading || stale_ok))) {
        out.answer = found->second.value;
        if (refresh_ == Refresh::kInBackground && age > max_age_ && !loading) {
          out.behind = Register(key, now);
        }
        return out;
      }
    }
    if (loading && (!strict || now - in_progress->second->started <= max_age)) {
      out.wait = in_progress->second;
      return out;
    }
    out.mine = Register(key, now);
    return out;
  }

  // A new load of `key`, starting `now`; it is the one the key's next callers wait for.
  std::shared_ptr<Load> Register(const std::string& key, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto load = std::make_shared<Load>();
    load->started = now;
    loads_[key] = load;
    return load;
  }

  // Runs the loader for `key` without the lock, then records its outcome in `load`.
  Outcome LoadAndStore(const std::string& key, Load& load) ABSL_LOCKS_EXCLUDED(mu_) {
    Outcome outcome = absl::InternalError("the load failed");
    try {  // the waiters must be woken whatever happens
      absl::StatusOr<T> loaded = load_(key);
      outcome = loaded.ok() ? Outcome(std::make_shared<const T>(*std::move(loaded)))
                            : Outcome(loaded.status());
    } catch (const std::exception& e) {
      outcome = absl::InternalError(absl::StrCat("the load failed: ", e.what()));
    } catch (...) {
      outcome = absl::InternalError("the load failed");
    }
    absl::MutexLock lock(&mu_);
    Store(key, load, outcome);
    return outcome;
  }

  // Starts `load` of `key` on a thread of its own; returns the threads of the earlier loads
  // behind the callers that have ended (their outcome stored), for the caller to join.
  std::vector<std::thread> StartBehind(const std::string& key, std::shared_ptr<Load> load)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::thread> ended;
    std::vector<Refresher> running;
    for (Refresher& r : refreshers_) {
      if (r.load->done) {
        ended.push_back(std::move(r.thread));
      } else {
        running.push_back(std::move(r));
      }
    }
    refreshers_ = std::move(running);
    try {
      refreshers_.reserve(refreshers_.size() + 1);  // push_back below cannot throw
      // No caller waits for its outcome: it is stored for the next ones.
      std::thread thread([this, key, load] { (void)LoadAndStore(key, *load); });
      refreshers_.push_back({load, std::move(thread)});
    } catch (...) {
      // Not started: the load ends here, so the key's next caller starts another.
      Store(key, *load, absl::ResourceExhaustedError("no thread for a load behind the callers"));
    }
    return ended;
  }

  // Records the outcome of `load` and wakes its waiters. A snapshot replaces the key's last
  // one only when its load started later (a strict caller's load may end first).
  void Store(const std::string& key, Load& load, Outcome outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (outcome.ok()) {
      auto found = entries_.find(key);
      if (found == entries_.end() || found->second.made <= load.started) {
        entries_[key] = Entry{load.started, *outcome};
      }
      if (entries_.size() > max_keys_) {
        auto oldest = std::min_element(
            entries_.begin(), entries_.end(),
            [](const auto& a, const auto& b) { return a.second.made < b.second.made; });
        entries_.erase(oldest);
      }
    }
    load.outcome = std::move(outcome);
    load.done = true;
    if (auto it = loads_.find(key); it != loads_.end() && it->second.get() == &load) {
      loads_.erase(it);
    }
  }

  const Loader load_;
  Clock& clock_;
  const absl::Duration max_age_;
  const absl::Duration max_stale_;
  const size_t max_keys_;
  const Refresh refresh_;
  mutable absl::Mutex mu_;  // never held while loading
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Load>> loads_ ABSL_GUARDED_BY(mu_);
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  // The loads behind the callers (Refresh::kInBackground) and their threads, joined once
  // ended (by the next one to start, or the destructor).
  struct Refresher {
    std::shared_ptr<Load> load;
    std::thread thread;
  };
  std::vector<Refresher> refreshers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::runtime
