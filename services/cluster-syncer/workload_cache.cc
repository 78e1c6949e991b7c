#include "services/cluster-syncer/workload_cache.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ferry::cluster_syncer {

WorkloadListCache::WorkloadListCache(Lister list, runtime::Clock& clock, absl::Duration max_age,
                                     absl::Duration max_stale)
    : list_(std::move(list)),
      clock_(clock),
      max_age_(max_age),
      max_stale_(std::max(max_age, max_stale)) {}

WorkloadListCache::Outcome WorkloadListCache::Get(const std::string& namespace_) {
  std::shared_ptr<Listing> mine;
  {
    absl::MutexLock lock(&mu_);
    Lookup found = Find(namespace_, clock_.Now());
    if (found.answer.has_value()) return *std::move(found.answer);
    if (found.wait != nullptr) {
      Listing* listing = found.wait.get();
      ++waiting_;
      mu_.Await(absl::Condition(
          +[](Listing* l) ABSL_NO_THREAD_SAFETY_ANALYSIS { return l->done; }, listing));
      --waiting_;
      return listing->outcome;
    }
    mine = std::move(found.mine);
  }
  const absl::Time started = clock_.Now();
  absl::StatusOr<Workloads> listed = absl::InternalError("the cluster listing failed");
  try {
    listed = list_(namespace_);
  } catch (const std::exception& e) {  // the waiters must be woken whatever happens
    listed = absl::InternalError(absl::StrCat("the cluster listing failed: ", e.what()));
  }
  Outcome outcome = listed.ok() ? Outcome(std::make_shared<const Workloads>(*std::move(listed)))
                                : Outcome(listed.status());
  absl::MutexLock lock(&mu_);
  Store(namespace_, started, *mine, outcome);
  return outcome;
}

int WorkloadListCache::Waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

WorkloadListCache::Lookup WorkloadListCache::Find(const std::string& namespace_, absl::Time now) {
  Lookup out;
  auto in_progress = listings_.find(namespace_);
  if (auto found = entries_.find(namespace_); found != entries_.end()) {
    const absl::Duration age = now - found->second.listed;
    if (age <= max_age_ || (age <= max_stale_ && in_progress != listings_.end())) {
      out.answer = found->second.workloads;
      return out;
    }
  }
  if (in_progress != listings_.end()) {
    out.wait = in_progress->second;
    return out;
  }
  out.mine = std::make_shared<Listing>();
  listings_[namespace_] = out.mine;
  return out;
}

void WorkloadListCache::Store(const std::string& namespace_, absl::Time started, Listing& listing,
                              Outcome outcome) {
  if (outcome.ok()) {
    entries_[namespace_] = Entry{started, *outcome};
    if (entries_.size() > kMaxNamespaces) {
      auto oldest = std::min_element(
          entries_.begin(), entries_.end(),
          [](const auto& a, const auto& b) { return a.second.listed < b.second.listed; });
      entries_.erase(oldest);
    }
  }
  listing.outcome = std::move(outcome);
  listing.done = true;
  listings_.erase(namespace_);
}

}  // namespace ferry::cluster_syncer
