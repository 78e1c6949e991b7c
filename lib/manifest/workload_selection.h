// Which workloads one internal ListWorkloads call answers with: those after a page's last
// id, at most a page of them, only some named ones. git-writer (its index) and
// cluster-syncer (the cluster's workloads) read the request's fields through this, so a
// page means the same on both sides and the api can merge their pages.
//
// Pure and thread-safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::manifest {

class WorkloadSelection {
 public:
  // Ids one request may name.
  static constexpr size_t kMaxIds = 1000;

  // From a request's fields: `start_after` (empty: from the first workload; otherwise any
  // text up to WorkloadId::kMaxBytes, compared only), `limit` (0: no limit) and `ids`
  // (empty: every workload; otherwise at most kMaxIds workload ids, WorkloadId::Parse's
  // grammar). InvalidArgument naming the field otherwise.
  static absl::StatusOr<WorkloadSelection> Make(std::string start_after, int64_t limit,
                                                const std::vector<std::string>& ids);

  // The first page: every workload.
  WorkloadSelection() = default;

  bool first_page() const { return start_after_.empty(); }
  // Whether the request names its workloads (`ids`): then only those are visited.
  bool named() const { return !ids_.empty(); }

  // Walks `items`, sorted by id (`id_of(item)`), and calls `emit` on each selected one that
  // `accept`s, in order, until the limit is reached; `emit` returns whether it answered the
  // item (one it turns away does not count). Returns true when more accepted items follow
  // (the answer's `more`). With ids, only those are looked up (binary search), so a request
  // about a few workloads costs as little as they do.
  template <typename Items, typename IdOf, typename Accept, typename Emit>
  bool Page(const Items& items, IdOf id_of, Accept accept, Emit emit) const {
    size_t taken = 0;
    auto visit = [&](auto begin, auto end) {
      for (auto it = begin; it != end; ++it) {
        if (!accept(*it)) continue;
        if (limit_ > 0 && taken == limit_) return true;
        if (emit(*it)) ++taken;
      }
      return false;
    };
    auto id_below = [&](const auto& item, const std::string& id) { return id_of(item) < id; };
    if (ids_.empty()) {
      auto first = std::upper_bound(
          items.begin(), items.end(), start_after_,
          [&](const std::string& id, const auto& item) { return id < id_of(item); });
      return visit(first, items.end());
    }
    for (auto id = ids_.upper_bound(start_after_); id != ids_.end(); ++id) {
      auto first = std::lower_bound(items.begin(), items.end(), *id, id_below);
      auto last = first;
      while (last != items.end() && id_of(*last) == *id) ++last;
      if (visit(first, last)) return true;
    }
    return false;
  }

 private:
  std::string start_after_;
  size_t limit_ = 0;
  std::set<std::string> ids_;
};

}  // namespace ferry::manifest
