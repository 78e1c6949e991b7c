#include "services/api/sources.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
  if (!named()) return &sources_.front();
  if (name.empty()) {
    if (sources_.size() == 1) return &sources_.front();
    return absl::InvalidArgumentError(absl::StrCat(what, " needs a source: this api serves ",
                                                   sources_.size(), " (", Names(),
                                                   "); name one (ferryctl --source)"));
  }
  for (const Source& s : sources_) {
    if (s.name == name) return &s;
  }
  return absl::InvalidArgumentError(absl::StrCat("source: no source is named '", name.substr(0, 64),
                                                 "' (sources: ", Names(), ")"));
}

absl::StatusOr<const Source*> Sources::Holding(absl::string_view name,
                                               const std::vector<std::string>& ids,
                                               const CallBudget& budget) const {
  if (!name.empty() || sources_.size() == 1) return Named(name, "");
  const std::set<std::string> wanted(ids.begin(), ids.end());
  std::vector<const Source*> holding;
  std::vector<std::string> unanswered;
  // A source that is down is not waited for (--peer_wait): it fails its lookup at once, and
  // another source defining the workloads still answers.
  CallBudget lookup = budget;
  lookup.await_peer = false;
  for (const Source& s : sources_) {
    absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git =
        s.peers->ListAllInGit(ByIds(ids), lookup);
    if (!in_git.ok()) {
      unanswered.push_back(absl::StrCat(s.name, ": ", in_git.status().message()));
      continue;
    }
    size_t found = 0;
    for (const ferry::v1::ManifestWorkload& w : in_git->workloads()) found += wanted.count(w.id());
    if (found == wanted.size()) holding.push_back(&s);
  }
  const std::string which =
      wanted.size() == 1 ? absl::StrCat("workload ", *wanted.begin()) : "the workloads";
  if (holding.size() == 1) return holding.front();
  if (holding.size() > 1) {
    std::vector<std::string> names;
    for (const Source* s : holding) names.push_back(s->name);
    return absl::InvalidArgumentError(absl::StrCat(which, " is in several sources (",
                                                   absl::StrJoin(names, ", "),
                                                   "): name one (ferryctl --source)"));
  }
  if (!unanswered.empty()) {
    return absl::UnavailableError(
        absl::StrCat(which, " is in no source that answered; the others did not: ",
                     absl::StrJoin(unanswered, "; "), " (or name the source: ferryctl --source)"));
  }
  return absl::NotFoundError(
      absl::StrCat(which, " is in no source's repository (sources: ", Names(), ")"));
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
