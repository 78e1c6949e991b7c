// Helpers for tests of WorkloadWatch: what it holds as one line, and a wait for a line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "services/cluster-syncer/workload_watch.h"

namespace ferry::cluster_syncer {

// "id image" of each workload of an answer of the watch; "(none)" for no answer.
inline std::string Line(const std::shared_ptr<const std::vector<ListedWorkload>>& workloads) {
  if (workloads == nullptr) return "(none)";
  std::vector<std::string> out;
  for (const ListedWorkload& w : *workloads) out.push_back(absl::StrCat(w.id, " ", w.message));
  return absl::StrJoin(out, ", ");
}

// "id image" of each workload the watch holds; "(none)" while it answers nothing.
inline std::string Watched(WorkloadWatch& watch, const std::string& ns) {
  return Line(watch.Workloads(ns));
}

// Waits up to 30 s for Watched(watch, ns) to be `want`; the last answer.
inline std::string WaitForWatched(WorkloadWatch& watch, const std::string& ns,
                                  const std::string& want) {
  std::string got = Watched(watch, ns);
  for (const absl::Time end = absl::Now() + absl::Seconds(30); got != want && absl::Now() < end;
       got = Watched(watch, ns)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return got;
}

// What the tests' WorkloadWatch keeps of a workload: its first container's image.
inline ListedWorkload ImageOnly(ClusterWorkloadInfo w) {
  return {w.id, w.containers.empty() ? "" : w.containers[0].image};
}

}  // namespace ferry::cluster_syncer
