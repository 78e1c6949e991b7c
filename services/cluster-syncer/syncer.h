// Applies the manifests of one git revision to the cluster with server-side apply.
//
// - Order: Namespaces; CRDs, ServiceAccounts, (Cluster)Roles, Services, PersistentVolumes;
//   quotas, Secrets, ConfigMaps, bindings, PVCs, Ingresses; workloads; everything else.
//   Objects of one rank are applied in parallel (bounded). CRDs applied in a sync are waited
//   for (Established) before the custom resources that need them.
// - Every applied object carries the label ferry.dev/sync-set=<set>, and the annotations
//   ferry.dev/checksum (of its manifest) and ferry.dev/source (the file it came from). Live
//   objects are listed per kind by that label: an object whose checksum matches is not
//   written again, so a sync with nothing changed sends no write request.
// - Errors are per resource: a broken document, an unknown kind or a rejected object fails
//   alone and is listed with its reason.
// - Garbage collection (opt-in): labelled objects that are no longer in git are deleted in
//   reverse order, except those marked ignore / sync_only, and those whose source file
//   failed to parse in this sync (their manifests might still be there).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/kube/discovery.h"
#include "lib/kube/kube_api.h"
#include "lib/manifest/document.h"
#include "lib/runtime/clock.h"

namespace ferry::cluster_syncer {

inline constexpr char kSyncSetLabel[] = "ferry.dev/sync-set";
inline constexpr char kChecksumAnnotation[] = "ferry.dev/checksum";
inline constexpr char kSourceAnnotation[] = "ferry.dev/source";
inline constexpr char kFieldManager[] = "ferry";

struct SyncOptions {
  // Value of the sync-set label: which objects this Ferry owns.
  std::string sync_set = "ferry";
  // Only these namespaces (and Namespace objects of these names); empty for all.
  std::set<std::string> allow_namespaces;
  std::string default_namespace = "default";
  bool garbage_collection = false;
  // Garbage collection reports what it would delete and deletes nothing.
  bool gc_dry_run = false;
  // Take over fields another field manager owns (otherwise such objects fail with the
  // conflict).
  bool force_conflicts = true;
  int parallelism = 8;
  // How long to wait for a CRD applied in this sync to be served.
  absl::Duration crd_wait = absl::Seconds(30);
  // Limits on each manifest document (--max_manifest_*): a document over one is reported as
  // a failure of its file; the other files are applied.
  manifest::DocumentLimits manifest_limits;
};

// One manifest file at a revision.
struct ManifestFileContent {
  std::string path;
  std::string content;
  // Set when git-writer did not serve the file (too big, a name that is not UTF-8): the file
  // fails to load and nothing it held is pruned.
  std::string load_error = {};
  // Served as at Syncer::ParsedRevision() (ReadManifests' known_revision): `content` is empty
  // and the file's parse is the one the syncer kept, when that parse is of a text whose
  // manifest::DocumentHash is `hash` (else the text is read again).
  bool unchanged = false;
  uint64_t hash = 0;
};

struct ResourceFailure {
  std::string resource;  // "namespace:kind/name"; empty when the document has no identity
  std::string path;
  std::string error;
};

struct SyncReport {
  std::string revision;
  absl::Time started;
  absl::Time finished;
  int applied = 0;
  int unchanged = 0;
  int failed = 0;
  int pruned = 0;
  int skipped = 0;  // ignored by policy or outside the allowed namespaces
  std::vector<ResourceFailure> errors;
  std::vector<std::string> pruned_ids;  // deleted (or, in dry-run, would be)
  // Set when the sync could not run at all (API or git-writer unreachable, unknown
  // revision), with the code to answer with.
  std::string error;
  absl::StatusCode error_code = absl::StatusCode::kOk;
  // The cluster was not listed: the sync took what the last one left (Syncer::Live).
  bool from_record = false;
  // Where the time went (real milliseconds), for the sync's log line: reading the files from
  // git-writer (SyncLoop), parsing them, listing the live objects, applying, pruning.
  struct Phases {
    int64_t read_ms = 0;
    int64_t parse_ms = 0;
    int64_t list_ms = 0;
    int64_t apply_ms = 0;
    int64_t prune_ms = 0;
  } phases;
  // The files of the revision: with their text, without it (unchanged since the revision
  // the syncer had parsed), and read again (every file of the revision, whole) because an
  // object of one of those was written or their parse was missing or did not match.
  struct Files {
    int sent = 0;
    int known = 0;
    int read_again = 0;
  } files;
};

class SyncMetrics {
 public:
  explicit SyncMetrics(prometheus::Registry& registry);
  void Record(const SyncReport& report);

 private:
  prometheus::Family<prometheus::Counter>& syncs_;
  prometheus::Family<prometheus::Counter>& objects_;
  prometheus::Family<prometheus::Counter>& files_;
  prometheus::Histogram& duration_;
  prometheus::Gauge& last_success_;
  prometheus::Family<prometheus::Gauge>& revision_;
  absl::Mutex mu_;
  // The one series kept: the last revision.
  prometheus::Gauge* revision_series_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class Syncer {
 public:
  // How a sync learns which objects the cluster holds, and with which checksum.
  enum class Live {
    // It lists every kind it applies: an object deleted or re-annotated out of band since
    // is written again.
    kList,
    // It takes the checksums the last sync that ended without an error left (its record),
    // and writes what changed in git since: cost that grows with the change, not the repo.
    // Out-of-band changes wait for the next listing sync. Lists as kList when there is no
    // record (the first sync, after a failed one), on a dry run, and with garbage collection
    // (which lists every kind anyway).
    kFromRecord,
  };

  // Reads every file of the sync's revision again, whole: the text of files that came
  // `unchanged`, when the sync needs it after all.
  using Reread = std::function<absl::StatusOr<std::vector<ManifestFileContent>>()>;

  // `clock` times the sync and the wait for new CRDs.
  Syncer(kube::KubeApi& client, kube::Discovery& discovery, SyncOptions options,
         runtime::Clock& clock = runtime::SystemClock());
  // Applies `files` (the manifests of `revision`). `dry_run`: the API server validates
  // everything (dryRun=All), nothing is stored. Taken by value: the text of a file parsed
  // in this sync is freed once parsed (its objects are held until applied).
  // Files marked `unchanged` take the parse kept of ParsedRevision() (the caller holds one
  // sync at a time between asking for it and this call) when it is of a text with their
  // `hash`; `reread` gives their text when an object of theirs is written, or that parse is
  // missing, failed or of another text (without it, such a sync fails).
  SyncReport Sync(const std::string& revision, std::vector<ManifestFileContent> files, bool dry_run,
                  Live live = Live::kList, const Reread& reread = nullptr);
  // The revision whose parse the syncer keeps (the last one synced, dry runs included); empty
  // before the first sync. ReadManifests' known_revision.
  std::string ParsedRevision() const;
  // Drops the record: the next sync lists (another instance may have written since, e.g.
  // while this one did not lead).
  void ForgetRecord();
  const SyncOptions& options() const { return options_; }

 private:
  // What a sync needs of a file between syncs: its resources' identities and checksums.
  struct ParsedFile;
  struct FileParse {
    std::shared_ptr<const ParsedFile> file;
    // The resources' objects as JSON text, by index (empty where one has none); none when
    // `file` came from the cache.
    std::vector<std::string> objects;
  };
  class Texts;
  // Each file's parse, taken from the cache when the file is unchanged since the last sync;
  // a file that came `unchanged` and is not in the cache gets its text from `texts` first.
  // Unavailable when that read fails.
  absl::StatusOr<std::vector<FileParse>> Parse(const std::string& revision,
                                               std::vector<ManifestFileContent>& files,
                                               Texts& texts);
  FileParse ParseFile(const ManifestFileContent& file) const;

  kube::KubeApi& client_;
  kube::Discovery& discovery_;
  const SyncOptions options_;
  runtime::Clock& clock_;
  mutable absl::Mutex cache_mu_;
  // By path. Identities and checksums only: the objects of 20,000 resources would hold
  // tens of MB between syncs for the rare write of one that is unchanged in git.
  std::map<std::string, std::shared_ptr<const ParsedFile>> parse_cache_ ABSL_GUARDED_BY(cache_mu_);
  std::string parse_revision_ ABSL_GUARDED_BY(cache_mu_);  // of parse_cache_
  // What the last sync without an error left in the cluster: "kind|namespace|name" ->
  // checksum of the objects it applied or found unchanged (~3 MB at 20,000 objects).
  // Null: no such sync since the start, or the last one failed.
  std::shared_ptr<const std::map<std::string, std::string>> record_ ABSL_GUARDED_BY(cache_mu_);
};

// The apply rank of a kind (0 first).
int ApplyRank(const std::string& group, const std::string& kind);

}  // namespace ferry::cluster_syncer
