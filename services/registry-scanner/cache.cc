#include "services/registry-scanner/cache.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/log/log.h"

namespace ferry::registry_scanner {
namespace {

constexpr int kSchemaVersion = 2;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repositories(
  name TEXT PRIMARY KEY, watched INTEGER NOT NULL, last_scan INTEGER, last_error TEXT NOT NULL,
  last_watched INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tags(
  repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL,
  created INTEGER, created_source INTEGER NOT NULL, platforms TEXT NOT NULL,
  labels TEXT NOT NULL, incomplete TEXT NOT NULL, checked INTEGER NOT NULL,
  recheck_seconds INTEGER NOT NULL, first_seen INTEGER, PRIMARY KEY(repository, tag));
)sql";

// From schema 1: tags gain first_seen (appended, as ALTER TABLE does), set to the migration
// time for the tags already known.
constexpr char kMigrate1To2[] = R"sql(
ALTER TABLE tags ADD COLUMN first_seen INTEGER;
UPDATE tags SET first_seen = ?1;
UPDATE meta SET value = '2' WHERE key = 'schema';
)sql";

int64_t ToNanos(absl::Time t) { return absl::ToUnixNanos(t); }
absl::Time FromNanos(int64_t n) { return absl::FromUnixNanos(n); }

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Text(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Null(int i) { sqlite3_bind_null(stmt_, i); }
  std::string ColumnText(int i) {
    const unsigned char* t = sqlite3_column_text(stmt_, i);
    return t == nullptr ? "" : reinterpret_cast<const char*>(t);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

absl::Status DbError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("cache: ", what, ": ", sqlite3_errmsg(db)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Cache>> Cache::Open(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::unique_ptr<Cache> cache(new Cache());
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (cache->db_ != nullptr) {
      sqlite3_close(cache->db_);
      cache->db_ = nullptr;
    }
    if (sqlite3_open(path.c_str(), &cache->db_) != SQLITE_OK) {
      return absl::FailedPreconditionError(absl::StrCat("cannot open cache ", path));
    }
    sqlite3_busy_timeout(cache->db_, 5000);
    bool usable = cache->Exec("PRAGMA journal_mode=WAL").ok() && cache->Exec(kSchema).ok();
    if (usable) {
      std::optional<std::string> version;
      {
        Statement q(cache->db_, "SELECT value FROM meta WHERE key='schema'");
        usable = q.ok();
        if (usable && sqlite3_step(q.get()) == SQLITE_ROW) version = q.ColumnText(0);
      }
      if (usable && version.has_value()) {
        usable = *version == std::to_string(kSchemaVersion) ||
                 (*version == "1" && cache->MigrateFrom1(absl::Now()).ok());
      } else if (usable) {
        usable =
            cache->Exec(absl::StrCat("INSERT INTO meta VALUES('schema','", kSchemaVersion, "')"))
                .ok();
      }
    }
    if (usable) {
      Statement check(cache->db_, "PRAGMA quick_check");
      usable = check.ok() && sqlite3_step(check.get()) == SQLITE_ROW && check.ColumnText(0) == "ok";
    }
    if (usable) return cache;
    // Corrupt or another version: it is only a cache; start over.
    sqlite3_close(cache->db_);
    cache->db_ = nullptr;
    const std::string aside = absl::StrCat(path, ".broken-", getpid());
    std::filesystem::rename(path, aside, ec);
    std::filesystem::remove(path + "-wal", ec);
    std::filesystem::remove(path + "-shm", ec);
    log::Warn("cache unusable, rebuilding", {{"path", path}, {"moved_to", aside}});
    cache->rebuilt_ = true;
  }
  return absl::FailedPreconditionError(absl::StrCat("cannot create cache ", path));
}

Cache::~Cache() {
  if (db_ != nullptr) sqlite3_close(db_);
}

absl::Status Cache::MigrateFrom1(absl::Time now) {
  if (!Exec("BEGIN IMMEDIATE").ok()) return DbError(db_, "migrate");
  const std::string sql = absl::StrReplaceAll(kMigrate1To2, {{"?1", absl::StrCat(ToNanos(now))}});
  if (absl::Status s = Exec(sql); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  log::Info("cache migrated", {{"from_schema", "1"}, {"to_schema", "2"}});
  return absl::OkStatus();
}

absl::Status Cache::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("cache: ", message));
  }
  return absl::OkStatus();
}

namespace {

// An upsert: a tag already stored keeps its first_seen while its digest stays (or one side's
// digest is unknown); a tag pushed again with another digest is a new image, seen anew (its
// soak time starts again when the image has no creation time).
constexpr char kPutTag[] =
    "INSERT INTO tags(repository,tag,digest,media_type,created,created_source,platforms,labels,"
    "incomplete,checked,recheck_seconds,first_seen) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12) "
    "ON CONFLICT(repository,tag) DO UPDATE SET digest=excluded.digest,"
    "media_type=excluded.media_type,created=excluded.created,"
    "created_source=excluded.created_source,platforms=excluded.platforms,"
    "labels=excluded.labels,incomplete=excluded.incomplete,checked=excluded.checked,"
    "recheck_seconds=excluded.recheck_seconds,"
    "first_seen=CASE WHEN tags.digest=excluded.digest OR tags.digest='' OR excluded.digest='' "
    "THEN COALESCE(tags.first_seen,excluded.first_seen) ELSE excluded.first_seen END";

// Binds `r` of `repository` to a kPutTag statement and runs it.
bool StepPutTag(Statement& s, const std::string& repository, const TagRecord& r) {
  nlohmann::json platforms = nlohmann::json::array();
  for (const Platform& p : r.metadata.platforms) {
    platforms.push_back({{"os", p.os},
                         {"architecture", p.architecture},
                         {"variant", p.variant},
                         {"digest", p.digest}});
  }
  s.Text(1, repository);
  s.Text(2, r.tag);
  s.Text(3, r.metadata.digest);
  s.Text(4, r.metadata.media_type);
  if (r.metadata.created)
    s.Int(5, ToNanos(*r.metadata.created));
  else
    s.Null(5);
  s.Int(6, static_cast<int>(r.metadata.created_source));
  s.Text(7, platforms.dump());
  s.Text(8, nlohmann::json(r.metadata.labels).dump());
  s.Text(9, r.metadata.incomplete_reason);
  s.Int(10, ToNanos(r.checked));
  s.Int(11, absl::ToInt64Seconds(r.recheck_interval));
  s.Int(12, ToNanos(r.first_seen.value_or(r.checked)));
  const bool done = sqlite3_step(s.get()) == SQLITE_DONE;
  sqlite3_reset(s.get());
  sqlite3_clear_bindings(s.get());
  return done;
}

}  // namespace

absl::Status Cache::PutTag(const std::string& repository, const TagRecord& r) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, kPutTag);
  if (!s.ok()) return DbError(db_, "put tag");
  if (!StepPutTag(s, repository, r)) return DbError(db_, "put tag");
  return absl::OkStatus();
}

absl::Status Cache::PutTags(const std::string& repository, const std::vector<TagRecord>& records) {
  absl::MutexLock lock(&mu_);
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return DbError(db_, "put tags");
  }
  absl::Status status;
  {
    Statement s(db_, kPutTag);
    if (!s.ok()) status = DbError(db_, "put tags");
    for (size_t i = 0; status.ok() && i < records.size(); ++i) {
      if (!StepPutTag(s, repository, records[i])) status = DbError(db_, "put tags");
    }
  }
  if (status.ok() && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = DbError(db_, "put tags");
  }
  if (!status.ok()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return status;
}

absl::Status Cache::DeleteTag(const std::string& repository, const std::string& tag) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "DELETE FROM tags WHERE repository=?1 AND tag=?2");
  s.Text(1, repository);
  s.Text(2, tag);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "delete tag");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TagRecord>> Cache::Tags(const std::string& repository) {
  absl::MutexLock lock(&mu_);
  Statement s(db_,
              "SELECT tag,digest,media_type,created,created_source,platforms,labels,incomplete,"
              "checked,recheck_seconds,first_seen FROM tags WHERE repository=?1 ORDER BY tag");
  if (!s.ok()) return DbError(db_, "tags");
  s.Text(1, repository);
  std::vector<TagRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    TagRecord r;
    r.tag = s.ColumnText(0);
    r.metadata.digest = s.ColumnText(1);
    r.metadata.media_type = s.ColumnText(2);
    if (sqlite3_column_type(s.get(), 3) != SQLITE_NULL) {
      r.metadata.created = FromNanos(sqlite3_column_int64(s.get(), 3));
    }
    r.metadata.created_source = static_cast<CreatedSource>(sqlite3_column_int(s.get(), 4));
    try {
      for (const auto& p : nlohmann::json::parse(s.ColumnText(5))) {
        r.metadata.platforms.push_back({p.value("os", ""), p.value("architecture", ""),
                                        p.value("variant", ""), p.value("digest", "")});
      }
      r.metadata.labels =
          nlohmann::json::parse(s.ColumnText(6)).get<std::map<std::string, std::string>>();
    } catch (const nlohmann::json::exception&) {
      continue;  // a damaged row is dropped; the next scan fetches the tag again
    }
    r.metadata.incomplete_reason = s.ColumnText(7);
    r.checked = FromNanos(sqlite3_column_int64(s.get(), 8));
    r.recheck_interval = absl::Seconds(sqlite3_column_int64(s.get(), 9));
    if (sqlite3_column_type(s.get(), 10) != SQLITE_NULL) {
      r.first_seen = FromNanos(sqlite3_column_int64(s.get(), 10));
    }
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::map<std::string, int>> Cache::TagCounts() {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "SELECT repository, COUNT(*) FROM tags GROUP BY repository");
  if (!s.ok()) return DbError(db_, "tag counts");
  std::map<std::string, int> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out[s.ColumnText(0)] = sqlite3_column_int(s.get(), 1);
  return out;
}

absl::Status Cache::PutRepository(const RepositoryRecord& r) {
  return StepRepository(r, "INSERT OR REPLACE INTO repositories VALUES(?1,?2,?3,?4,?5)");
}

absl::Status Cache::PutScanOutcome(const RepositoryRecord& r) {
  return StepRepository(r,
                        "INSERT INTO repositories VALUES(?1,?2,?3,?4,?5) ON CONFLICT(name) DO "
                        "UPDATE SET last_scan=excluded.last_scan,last_error=excluded.last_error");
}

absl::Status Cache::StepRepository(const RepositoryRecord& r, const char* sql) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, sql);
  if (!s.ok()) return DbError(db_, "put repository");
  s.Text(1, r.name);
  s.Int(2, r.watched ? 1 : 0);
  if (r.last_scan)
    s.Int(3, ToNanos(*r.last_scan));
  else
    s.Null(3);
  s.Text(4, r.last_error);
  s.Int(5, ToNanos(r.last_watched));
  if (sqlite3_step(s.get()) != SQLITE_DONE) return DbError(db_, "put repository");
  return absl::OkStatus();
}

namespace {
RepositoryRecord ReadRepository(Statement& s) {
  RepositoryRecord r;
  r.name = s.ColumnText(0);
  r.watched = sqlite3_column_int(s.get(), 1) != 0;
  if (sqlite3_column_type(s.get(), 2) != SQLITE_NULL) {
    r.last_scan = FromNanos(sqlite3_column_int64(s.get(), 2));
  }
  r.last_error = s.ColumnText(3);
  r.last_watched = FromNanos(sqlite3_column_int64(s.get(), 4));
  return r;
}
}  // namespace

absl::StatusOr<std::optional<RepositoryRecord>> Cache::Repository(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Statement s(db_,
              "SELECT name,watched,last_scan,last_error,last_watched FROM repositories "
              "WHERE name=?1");
  if (!s.ok()) return DbError(db_, "repository");
  s.Text(1, name);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::optional<RepositoryRecord>();
  return std::optional<RepositoryRecord>(ReadRepository(s));
}

absl::StatusOr<std::vector<RepositoryRecord>> Cache::Repositories() {
  absl::MutexLock lock(&mu_);
  Statement s(db_,
              "SELECT name,watched,last_scan,last_error,last_watched FROM repositories "
              "ORDER BY name");
  if (!s.ok()) return DbError(db_, "repositories");
  std::vector<RepositoryRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(ReadRepository(s));
  return out;
}

absl::StatusOr<int> Cache::ExpireUnwatched(absl::Time before) {
  absl::MutexLock lock(&mu_);
  Statement tags(db_,
                 "DELETE FROM tags WHERE repository IN (SELECT name FROM repositories "
                 "WHERE watched=0 AND last_watched<?1)");
  tags.Int(1, ToNanos(before));
  if (sqlite3_step(tags.get()) != SQLITE_DONE) return DbError(db_, "expire tags");
  Statement repos(db_, "DELETE FROM repositories WHERE watched=0 AND last_watched<?1");
  repos.Int(1, ToNanos(before));
  if (sqlite3_step(repos.get()) != SQLITE_DONE) return DbError(db_, "expire repositories");
  return sqlite3_changes(db_);
}

}  // namespace ferry::registry_scanner
