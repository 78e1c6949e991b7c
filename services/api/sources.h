// The sources one api serves: each a repo (its git-writer) and the cluster synced from it
// (its cluster-syncer), with one registry-scanner for all (--source flags, config.h). With
// one unnamed source (no --source) everything behaves as it always did; with several, every
// workload is named by its source and id, and each request that changes or reads one source
// is routed to it:
//   - a request naming a source goes to it (an unknown name is INVALID_ARGUMENT listing the
//     sources);
//   - a request naming workloads but no source goes to the one source whose git defines
//     them all (NOT_FOUND when none does, INVALID_ARGUMENT when several do, UNAVAILABLE
//     when a source that might does not answer);
//   - a request about a whole source (a sync, a release of every workload, the deploy key,
//     an export) must name one;
//   - lists without a source read source after source, in name order, one source per page.
// A source whose peers are down fails the requests routed to it alone.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ferry/v1/git_writer.pb.h"
#include "services/api/executor.h"
#include "services/api/peers.h"

namespace ferry::api {

// One source: its name ("" for the one unnamed source), the clients of its peers (whose
// registry client is the shared scanner's), the executor of its jobs and the runner they
// run on (a source of its own: jobs stuck on a source that is down never hold the workers
// of another).
struct Source {
  std::string name;
  const PeerClients* peers = nullptr;
  Executor* executor = nullptr;
  JobRunner* runner = nullptr;
};

// How long the lookup of the source that defines some workloads waits for each source.
inline constexpr absl::Duration kSourceLookupTimeout = absl::Seconds(5);

// The sources, in name order. Immutable; thread-safe.
class Sources {
 public:
  // `sources`: one unnamed, or several named with unique names. Each PeerClients, Executor
  // and JobRunner outlives this object.
  explicit Sources(std::vector<Source> sources);

  // Whether the sources are named (several, or one given by --source): answers name them.
  bool named() const { return !sources_.front().name.empty(); }
  const std::vector<Source>& all() const { return sources_; }
  // The clients of the first source, for calls to the one registry-scanner they share.
  const PeerClients& shared() const { return *sources_.front().peers; }

  // The source `name`. INVALID_ARGUMENT for a name that is not a DNS label (not echoed), a
  // name no source has (with one unnamed source: any name), and for "" when there are
  // several sources: `what` ("a sync", ...) then says what needs one.
  absl::StatusOr<const Source*> Named(absl::string_view name, absl::string_view what) const;

  // The source `name` (as Named), or with `name` "" and several sources the one whose git
  // defines every workload in `ids`, asked with one ListWorkloads per source at once, each
  // within kSourceLookupTimeout and `budget`, none waited for when down. NOT_FOUND when no
  // source defines them all; INVALID_ARGUMENT when several do (or `ids` is empty);
  // UNAVAILABLE naming the sources that did not answer when one did not (it might define
  // them: the request must then name its source).
  absl::StatusOr<const Source*> Holding(absl::string_view name, const std::vector<std::string>& ids,
                                        const CallBudget& budget) const;

  // The first source at or after `name` in name order for a list continuing there (""
  // for the first); null when none is.
  const Source* From(absl::string_view name) const;
  // The source after `source`; null after the last.
  const Source* After(const Source& source) const;

  // "a, b": the sources' names, for messages.
  std::string Names() const;

 private:
  std::vector<Source> sources_;
};

// `status` of a call to `source`'s peers, its message prefixed with "source NAME: " when
// the source is named; the code is kept.
absl::Status SourceError(const Source& source, const absl::Status& status);

// The ListManifestWorkloads request of the workloads `ids`.
ferry::v1::ListManifestWorkloadsRequest ByIds(const std::vector<std::string>& ids);

}  // namespace ferry::api
