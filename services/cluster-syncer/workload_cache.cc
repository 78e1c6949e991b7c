#include "services/cluster-syncer/workload_cache.h"

#include <algorithm>
#include <utility>

namespace ferry::cluster_syncer {

WorkloadListCache::WorkloadListCache(Lister list, runtime::Clock& clock, absl::Duration max_age)
    : list_(std::move(list)), clock_(clock), max_age_(max_age) {}

absl::StatusOr<std::shared_ptr<const WorkloadListCache::Workloads>> WorkloadListCache::Get(
    const std::string& namespace_) {
  absl::MutexLock lock(&mu_);
  auto found = entries_.find(namespace_);
  if (found != entries_.end() && clock_.Now() - found->second.listed <= max_age_) {
    return found->second.workloads;
  }
  const absl::Time started = clock_.Now();
  absl::StatusOr<Workloads> listed = list_(namespace_);
  if (!listed.ok()) return listed.status();
  auto workloads = std::make_shared<const Workloads>(*std::move(listed));
  entries_[namespace_] = Entry{started, workloads};
  if (entries_.size() > kMaxNamespaces) {
    auto oldest = std::min_element(
        entries_.begin(), entries_.end(),
        [](const auto& a, const auto& b) { return a.second.listed < b.second.listed; });
    entries_.erase(oldest);
  }
  return workloads;
}

}  // namespace ferry::cluster_syncer
