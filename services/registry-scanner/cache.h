// The scanner's persistent knowledge, in SQLite: tags with their metadata per repository,
// and each repository's scan state. Survives restarts, so a restarted scanner answers at
// once and only refreshes. A cache that cannot be opened or has another schema is rebuilt;
// one of the previous schema (1, before first_seen) is migrated in place: its tags count as
// first seen at the migration (later than the truth, so a soak time is never cut short).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/registry-scanner/metadata.h"

struct sqlite3;

namespace ferry::registry_scanner {

// One cached tag.
struct TagRecord {
  std::string tag;
  TagMetadata metadata;
  absl::Time checked;               // last time the digest was confirmed
  absl::Duration recheck_interval;  // when to confirm it again (adaptive)
  // When the scanner first saw the tag (a soak time counts from it when the image has no
  // creation time). Kept by the cache: a PutTag of a tag already stored keeps the stored
  // value whatever this says. A tag deleted from the registry (and so from the cache) and
  // pushed again is new: it is first seen again, and soaks again.
  std::optional<absl::Time> first_seen;
};

// One repository's scan state.
struct RepositoryRecord {
  std::string name;  // "registry/path"
  bool watched = false;
  std::optional<absl::Time> last_scan;  // last successful scan
  std::string last_error;               // of the last scan; empty when it succeeded
  absl::Time last_watched;              // when it was last in the watch set
};

// Thread-safe.
class Cache {
 public:
  // Opens (creating) the cache file. A corrupt file or one with another schema version is
  // moved aside and rebuilt empty; only an unusable directory is an error.
  static absl::StatusOr<std::unique_ptr<Cache>> Open(const std::string& path);
  ~Cache();

  // True when the file was rebuilt at Open (corrupt or incompatible).
  bool rebuilt() const { return rebuilt_; }

  // Stores `record` (replacing the tag's metadata and re-check state); the first_seen of a
  // tag already stored with the same digest is kept; a new tag's, or a moved one's (another
  // digest), is record.first_seen (else record.checked).
  absl::Status PutTag(const std::string& repository, const TagRecord& record);
  // Every one of `records`, in one transaction (one sync of the file): all or none.
  absl::Status PutTags(const std::string& repository, const std::vector<TagRecord>& records);
  absl::Status DeleteTag(const std::string& repository, const std::string& tag);
  absl::StatusOr<std::vector<TagRecord>> Tags(const std::string& repository);
  // Number of cached tags per repository (one query; no rows are decoded).
  absl::StatusOr<std::map<std::string, int>> TagCounts();

  absl::Status PutRepository(const RepositoryRecord& record);
  // A scan's outcome: record.last_scan and record.last_error. A repository already stored
  // keeps its watch state (watched, last_watched) whatever `record` says, so a scan that
  // read the record before a Watch changed it does not undo that change; a new one is
  // stored as `record`.
  absl::Status PutScanOutcome(const RepositoryRecord& record);
  absl::StatusOr<std::optional<RepositoryRecord>> Repository(const std::string& name);
  absl::StatusOr<std::vector<RepositoryRecord>> Repositories();

  // Forgets repositories (and their tags) not watched since `before`.
  absl::StatusOr<int> ExpireUnwatched(absl::Time before);

 private:
  Cache() = default;
  absl::Status Exec(const std::string& sql);
  // Binds `r` to `sql` (an insert of the five repository columns) and runs it.
  absl::Status StepRepository(const RepositoryRecord& r, const char* sql);
  // Schema 1 -> 2 in one transaction: tags gain first_seen = `now`.
  absl::Status MigrateFrom1(absl::Time now);

  absl::Mutex mu_;
  sqlite3* db_ = nullptr;
  bool rebuilt_ = false;
};

}  // namespace ferry::registry_scanner
