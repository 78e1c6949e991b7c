#include "services/api/sources.h"

#include <algorithm>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_selection.h"

namespace ferry::api {

Sources::Sources(std::vector<Source> sources) : sources_(std::move(sources)) {
  std::sort(sources_.begin(), sources_.end(),
            [](const Source& a, const Source& b) { return a.name < b.name; });
}

std::string Sources::Names() const {
  std::vector<std::string> names;
  for (const Source& s : sources_) names.push_back(s.name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<const Source*> Sources::Named(absl::string_view name, absl::string_view what) const {
  if (!name.empty() && !manifest::IsDnsLabel(name)) {
    return absl::InvalidArgumentError(
        "source: a source's name is a DNS label (lower-case letters, digits and '-', at most 63 "
        "characters)");
  }
  if (!named()) {
    if (name.empty()) return &sources_.front();
    return absl::InvalidArgumentError(
        "source: this api serves one repo and cluster, without a name; leave source empty (is "
        "FERRY_SOURCE or --source set for another api?)");
  }
  if (name.empty()) {
    if (sources_.size() == 1) return &sources_.front();
    return absl::InvalidArgumentError(absl::StrCat(what, " needs a source: this api serves ",
                                                   sources_.size(), " (", Names(),
                                                   "); name one (ferryctl --source)"));
  }
  for (const Source& s : sources_) {
    if (s.name == name) return &s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("source: no source is named '", name, "' (sources: ", Names(), ")"));
}

absl::StatusOr<const Source*> Sources::Holding(absl::string_view name,
                                               const std::vector<std::string>& ids,
                                               const CallBudget& budget) const {
  if (!name.empty() || sources_.size() == 1) return Named(name, "");
  const std::set<std::string> wanted(ids.begin(), ids.end());
  if (wanted.empty()) return Named(name, "a request naming no workload");
  // Every source is asked at once, each within kSourceLookupTimeout (and the budget): one
  // that hangs costs that much, not the whole budget. One that is down is not waited for
  // (--peer_wait): its lookup fails at once.
  CallBudget lookup = budget.AtMost(kSourceLookupTimeout);
  lookup.await_peer = false;
  std::vector<absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse>> answers(
      sources_.size(), absl::UnknownError("not asked"));
  {
    std::vector<std::thread> askers;
    for (size_t i = 0; i < sources_.size(); ++i) {
      askers.emplace_back(
          [&, i] { answers[i] = sources_[i].peers->ListAllInGit(ByIds(ids), lookup); });
    }
    for (std::thread& t : askers) t.join();
  }
  std::vector<std::string> holding, unanswered;
  const Source* found = nullptr;
  for (size_t i = 0; i < sources_.size(); ++i) {
    const Source& s = sources_[i];
    if (!answers[i].ok()) {
      unanswered.push_back(absl::StrCat(s.name, ": ", answers[i].status().message()));
      continue;
    }
    std::set<std::string> defined;
    for (const ferry::v1::ManifestWorkload& w : answers[i]->workloads()) {
      if (wanted.count(w.id()) > 0) defined.insert(w.id());
    }
    if (defined.size() == wanted.size()) {
      holding.push_back(s.name);
      found = &s;
    }
  }
  const std::string which = wanted.size() == 1 ? absl::StrCat("workload ", *wanted.begin())
                                               : absl::StrCat("the ", wanted.size(), " workloads");
  const char* is = wanted.size() == 1 ? " is" : " are";
  if (holding.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(which, is, " in several sources (",
                                                   absl::StrJoin(holding, ", "),
                                                   "): name one (ferryctl --source)"));
  }
  // A source that did not answer may define them too: routing by what the others answered
  // would send the request to another source while its own is down.
  if (!unanswered.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot tell which source defines ", which,
                                               ": source ", absl::StrJoin(unanswered, "; source "),
                                               "; name the source (ferryctl --source)"));
  }
  if (found != nullptr) return found;
  return absl::NotFoundError(
      absl::StrCat(which, is, " in no source's repository (sources: ", Names(), ")"));
}

const Source* Sources::From(absl::string_view name) const {
  for (const Source& s : sources_) {
    if (s.name >= name) return &s;
  }
  return nullptr;
}

const Source* Sources::After(const Source& source) const {
  for (size_t i = 0; i + 1 < sources_.size(); ++i) {
    if (&sources_[i] == &source) return &sources_[i + 1];
  }
  return nullptr;
}

absl::Status SourceError(const Source& source, const absl::Status& status) {
  if (source.name.empty() || status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("source ", source.name, ": ", status.message()));
}

ferry::v1::ListManifestWorkloadsRequest ByIds(const std::vector<std::string>& ids) {
  ferry::v1::ListManifestWorkloadsRequest request;
  // Over git-writer's limit of ids, the whole index is read (and looked through).
  if (ids.size() <= manifest::WorkloadSelection::kMaxIds) {
    for (const std::string& id : ids) request.add_ids(id);
  }
  return request;
}

}  // namespace ferry::api
