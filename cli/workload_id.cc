#include "cli/workload_id.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/workload_id.h"

namespace ferry::cli {

absl::StatusOr<std::string> ParseWorkloadId(absl::string_view text,
                                            absl::string_view default_namespace) {
  absl::StatusOr<manifest::WorkloadId> id =
      manifest::WorkloadId::ParseLoose(text, default_namespace);
  if (!id.ok()) return id.status();
  return id->ToString();
}

namespace {

// Edit distance (insertions, deletions, substitutions) between `a` and `b`.
size_t Distance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "namespace/name" of an id "namespace:kind/name".
std::string LegacyForm(const manifest::WorkloadId& id) {
  return absl::StrCat(id.namespace_(), "/", id.name());
}

}  // namespace

bool IsLegacyWorkloadId(absl::string_view text) {
  const size_t slash = text.find('/');
  return text.find(':') == absl::string_view::npos && slash != absl::string_view::npos &&
         slash > 0 && slash + 1 < text.size() &&
         text.find('/', slash + 1) == absl::string_view::npos &&
         !manifest::IsWorkloadKind(text.substr(0, slash));
}

absl::StatusOr<std::string> ResolveLegacyWorkloadId(absl::string_view text,
                                                    const std::vector<std::string>& ids) {
  const absl::string_view ns = text.substr(0, text.find('/'));
  std::vector<manifest::WorkloadId> known;  // the ids that are workload ids
  for (const std::string& id : ids) {
    absl::StatusOr<manifest::WorkloadId> parsed = manifest::WorkloadId::Parse(id);
    if (parsed.ok()) known.push_back(*std::move(parsed));
  }
  std::vector<std::string> matches;
  std::set<std::string> namespaces;
  for (const manifest::WorkloadId& id : known) {
    if (LegacyForm(id) == text) matches.push_back(id.ToString());
    namespaces.insert(id.namespace_());
  }
  if (matches.size() == 1) return matches[0];
  if (matches.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("workload \"", text, "\" is ambiguous: name one of ",
                     absl::StrJoin(matches, ", "), " (namespace:kind/name)"));
  }
  if (!namespaces.count(std::string(ns))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workload \"", text, "\": no workload in namespace \"", ns, "\"",
        namespaces.empty()
            ? std::string(" (Ferry knows no workloads)")
            : absl::StrCat("; namespaces with workloads: ", absl::StrJoin(namespaces, ", "))));
  }
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const manifest::WorkloadId& id : known) {
    ranked.emplace_back(Distance(LegacyForm(id), text), id.ToString());
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> closest;
  for (size_t i = 0; i < ranked.size() && i < 3; ++i) closest.push_back(ranked[i].second);
  return absl::NotFoundError(
      absl::StrCat("workload \"", text, "\" not found; closest: ", absl::StrJoin(closest, ", ")));
}

}  // namespace ferry::cli
