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
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/runtime/clock.h"

namespace ferry::runtime {

// A snapshot of T per key, made by a loader. Thread-safe.
template <typename T>
class SnapshotCache {
 public:
  using Loader = std::function<absl::StatusOr<T>(const std::string& key)>;
  using Outcome = absl::StatusOr<std::shared_ptr<const T>>;

  // Keys remembered at once; the oldest snapshot goes first.
  SnapshotCache(Loader load, Clock& clock, absl::Duration max_age, absl::Duration max_stale,
                size_t max_keys)
      : load_(std::move(load)),
        clock_(clock),
        max_age_(max_age),
        max_stale_(std::max(max_age, max_stale)),
        max_keys_(std::max<size_t>(1, max_keys)) {}

  // The snapshot of `key`:
  // - the one made at most max_age ago;
  // - else, while another caller is making a new one, the last one when it is at most
  //   max_stale old;
  // - else the outcome of the load in progress, waited for and shared, its failure too;
  // - else a new one, loaded by this caller without the lock (the others are answered
  //   meanwhile). A failed load is not kept: the next caller loads again.
  // `max_age`, when given, replaces the cache's own for this call (at most max_stale): a
  // caller that can do with an older snapshot does not wait for a new one. A caller waiting
  // for another's load gives up at `deadline` (DEADLINE_EXCEEDED); a load of its own is
  // bounded by the loader.
  Outcome Get(const std::string& key, std::optional<absl::Duration> max_age = std::nullopt,
              absl::Time deadline = absl::InfiniteFuture()) ABSL_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<Load> mine;
    {
      absl::MutexLock lock(&mu_);
      Lookup found = Find(
          key, clock_.Now(),
          max_age.has_value() ? std::clamp(*max_age, absl::ZeroDuration(), max_stale_) : max_age_);
      if (found.answer.has_value()) return *std::move(found.answer);
      if (found.wait != nullptr) {
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
      }
      mine = std::move(found.mine);
    }
    const absl::Time started = clock_.Now();
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
    Store(key, started, *mine, outcome);
    return outcome;
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
    bool done = false;
    Outcome outcome;
  };
  // The answer when there is one without loading, or the load to wait for (`wait`), or,
  // when both are empty, the load this caller was registered to make (`mine`).
  struct Lookup {
    std::optional<Outcome> answer;
    std::shared_ptr<Load> wait;
    std::shared_ptr<Load> mine;
  };

  Lookup Find(const std::string& key, absl::Time now, absl::Duration max_age)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Lookup out;
    auto in_progress = loads_.find(key);
    if (auto found = entries_.find(key); found != entries_.end()) {
      const absl::Duration age = now - found->second.made;
      if (age <= max_age || (age <= max_stale_ && in_progress != loads_.end())) {
        out.answer = found->second.value;
        return out;
      }
    }
    if (in_progress != loads_.end()) {
      out.wait = in_progress->second;
      return out;
    }
    out.mine = std::make_shared<Load>();
    loads_[key] = out.mine;
    return out;
  }

  // Records the outcome of `load` (started at `started`) and wakes its waiters.
  void Store(const std::string& key, absl::Time started, Load& load, Outcome outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (outcome.ok()) {
      entries_[key] = Entry{started, *outcome};
      if (entries_.size() > max_keys_) {
        auto oldest = std::min_element(
            entries_.begin(), entries_.end(),
            [](const auto& a, const auto& b) { return a.second.made < b.second.made; });
        entries_.erase(oldest);
      }
    }
    load.outcome = std::move(outcome);
    load.done = true;
    loads_.erase(key);
  }

  const Loader load_;
  Clock& clock_;
  const absl::Duration max_age_;
  const absl::Duration max_stale_;
  const size_t max_keys_;
  mutable absl::Mutex mu_;  // never held while loading
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Load>> loads_ ABSL_GUARDED_BY(mu_);
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::runtime
