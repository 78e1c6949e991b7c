// Writer against real git repositories (bare upstream over file://, changed by the git CLI
// like another user would) through Libgit2Repository.
#include "services/git-writer/writer.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_id_test_cases.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/git_writer_service.h"
#include "services/git-writer/libgit2_repository.h"
#include "tests/support/git_repo.h"

namespace ferry::git_writer {
namespace {

// The first container image of the index's i-th resource, as the index found it.
std::string ImageIn(const Index& index, size_t i) {
  auto found = index.containers.find(ContainersKey(index.loaded.resources.at(i)));
  if (found == index.containers.end() || found->second->empty()) return "(no container)";
  return (*found->second)[0].image;
}

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::Eq;
using ::testing::HasSubstr;

using testing::GitRepo;

std::string Deployment(const std::string& name, const std::string& image,
                       const std::string& extra_annotations = "") {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
                      "\n  namespace: apps  # team apps\n", extra_annotations,
                      "spec:\n  template:\n    spec:\n      containers:\n      - name: ", name,
                      "\n        image: ", image, " # managed by Ferry\n");
}

// Forwards to a real repository; lets a test act just before a push.
class HookedRepository : public Repository {
 public:
  explicit HookedRepository(Repository& inner) : inner_(inner) {}
  std::function<void()> before_push;
  // Called (from the fetching thread) before every fetch; a non-OK status fails the fetch.
  std::function<absl::Status()> before_fetch;
  std::atomic<int> fetches{0};

  absl::StatusOr<std::string> Fetch() override {
    ++fetches;
    if (before_fetch) FERRY_RETURN_IF_ERROR(before_fetch());
    return inner_.Fetch();
  }
  absl::StatusOr<std::string> Head() override { return inner_.Head(); }
  absl::StatusOr<absl::Time> CommitTime(const std::string& r) override {
    return inner_.CommitTime(r);
  }
  absl::StatusOr<std::vector<RepoFile>> ReadManifests(const std::string& r,
                                                      const std::vector<std::string>& p) override {
    return inner_.ReadManifests(r, p);
  }
  absl::StatusOr<std::string> TreeId(const std::string& r, const std::string& p) override {
    return inner_.TreeId(r, p);
  }
  absl::Status ExportTree(const std::string& r, const std::string& p,
                          const std::string& d) override {
    return inner_.ExportTree(r, p, d);
  }
  absl::StatusOr<std::string> CreateCommit(const CommitSpec& s) override {
    return inner_.CreateCommit(s);
  }
  absl::Status PushBranch(const std::string& c) override {
    if (before_push) {
      auto hook = std::move(before_push);
      before_push = nullptr;
      hook();
    }
    return inner_.PushBranch(c);
  }
  absl::Status PushBranchWithNote(const std::string& c, const std::string& t, const Signature& w,
                                  std::string* e) override {
    if (before_push) {
      auto hook = std::move(before_push);
      before_push = nullptr;
      hook();
    }
    return inner_.PushBranchWithNote(c, t, w, e);
  }
  absl::Status AddNote(const std::string& c, const std::string& t, const Signature& w) override {
    return inner_.AddNote(c, t, w);
  }
  absl::StatusOr<std::string> ReadNote(const std::string& c) override { return inner_.ReadNote(c); }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListNotes(int l) override {
    return inner_.ListNotes(l);
  }
  absl::Status SetTag(const std::string& n, const std::string& c, const std::string& m,
                      const Signature& w) override {
    return inner_.SetTag(n, c, m, w);
  }
  absl::StatusOr<std::string> TagTarget(const std::string& n) override {
    return inner_.TagTarget(n);
  }
  absl::StatusOr<std::pair<std::string, std::string>> CommitSignature(
      const std::string& c) override {
    return inner_.CommitSignature(c);
  }
  std::string Diff(const std::string& p, const std::string& a, const std::string& b) override {
    return inner_.Diff(p, a, b);
  }
  absl::StatusOr<bool> IsAncestor(const std::string& a, const std::string& c) override {
    return inner_.IsAncestor(a, c);
  }
  // Called on the housekeeping's thread after each Run of the inner repository's
  // housekeeping, before its Finish.
  std::function<void()> after_maintenance_run;
  std::unique_ptr<Maintenance> DueMaintenance() override {
    std::unique_ptr<Maintenance> due = inner_.DueMaintenance();
    if (due == nullptr || !after_maintenance_run) return due;
    return std::make_unique<HookedMaintenance>(std::move(due), after_maintenance_run);
  }

 private:
  class HookedMaintenance : public Maintenance {
   public:
    HookedMaintenance(std::unique_ptr<Maintenance> inner, std::function<void()> after_run)
        : inner_(std::move(inner)), after_run_(std::move(after_run)) {}
    absl::Status Run() override {
      absl::Status status = inner_->Run();
      after_run_();
      return status;
    }
    absl::Status Finish() override { return inner_->Finish(); }
    void Cancel() override { inner_->Cancel(); }

   private:
    std::unique_ptr<Maintenance> inner_;
    std::function<void()> after_run_;
  };
  Repository& inner_;
};

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto upstream = GitRepo::Create({
        {"apps/web.yaml", Deployment("web", "nginx:1.25")},
        {"apps/api.yaml", Deployment("api", "example/api:1.0.0")},
        {"README.md", "not a manifest\n"},
    });
    FERRY_ASSERT_OK(upstream);
    upstream_ = *std::move(upstream);
    OpenWriter({});
  }

  void OpenWriter(WriterOptions options, WritePermit push_permit = nullptr) {
    writer_.reset();
    hooked_.reset();
    repo_.reset();
    Libgit2Options o;
    o.push_permit = std::move(push_permit);
    o.url = upstream_->url();
    o.branch = "main";
    o.mirror_dir = upstream_->dir() + "/mirror.git";
    o.tags = {"ferry-sync"};
    auto repo = Libgit2Repository::Open(o);
    FERRY_ASSERT_OK(repo);
    repo_ = *std::move(repo);
    hooked_ = std::make_unique<HookedRepository>(*repo_);
    options.committer = {"Ferry", "ferry@example.com"};
    writer_ = std::make_unique<Writer>(*hooked_, options, metrics_);
  }

  // A Refresh on a thread of its own, held inside its fetch until `release` is notified;
  // returns once the fetch is held.
  std::thread HeldFetch(absl::Notification& release) {
    auto started = std::make_shared<absl::Notification>();
    hooked_->before_fetch = [started, &release] {
      if (!started->HasBeenNotified()) started->Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    };
    std::thread fetch([this] { (void)writer_->Refresh(); });
    started->WaitForNotification();
    return fetch;
  }

  // The index carried over to Ferry's commit `revision` against one a new Writer loads from
  // scratch: the same resources, sources, annotations, containers and files, and no parsed
  // documents kept.
  void ExpectCarriedIndexMatchesAFreshOne(const std::string& revision) {
    FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> carried, writer_->IndexAt(revision));
    prometheus::Registry registry;
    WriterMetrics metrics(registry);
    Writer fresh(*repo_, WriterOptions{}, metrics);
    FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> loaded, fresh.IndexAt(revision));
    ASSERT_EQ(carried->loaded.resources.size(), loaded->loaded.resources.size());
    for (size_t i = 0; i < loaded->loaded.resources.size(); ++i) {
      const manifest::Resource& a = carried->loaded.resources[i];
      const manifest::Resource& b = loaded->loaded.resources[i];
      EXPECT_EQ(std::tie(a.id, a.kind, a.source.path, a.source.document, a.source.list_item,
                         a.source.line, a.source.begin, a.source.end, a.source.document_hash,
                         a.annotations),
                std::tie(b.id, b.kind, b.source.path, b.source.document, b.source.list_item,
                         b.source.line, b.source.begin, b.source.end, b.source.document_hash,
                         b.annotations))
          << b.id;
      EXPECT_EQ(ImageIn(*carried, i), ImageIn(*loaded, i)) << b.id;
      EXPECT_FALSE(a.node.has_node()) << a.id << ": the index keeps no parsed documents";
    }
    // The containers of every resource served (one built from scratch also holds those of a
    // duplicate that FinishLoad dropped, which nothing reads).
    for (const manifest::Resource& r : loaded->loaded.resources) {
      const std::string key = ContainersKey(r);
      auto a = carried->containers.find(key);
      auto b = loaded->containers.find(key);
      ASSERT_EQ(a == carried->containers.end(), b == loaded->containers.end()) << r.id;
      if (b == loaded->containers.end()) continue;
      const std::vector<manifest::Container>& was = *a->second;
      const std::vector<manifest::Container>& is = *b->second;
      ASSERT_EQ(was.size(), is.size()) << r.id;
      for (size_t i = 0; i < is.size(); ++i) {
        EXPECT_EQ(std::tie(was[i].name, was[i].image, was[i].init),
                  std::tie(is[i].name, is[i].image, is[i].init))
            << r.id;
      }
    }
    if (!loaded->had_duplicates) {
      EXPECT_EQ(*carried->PathView(), *loaded->PathView());
    }
    ASSERT_EQ(carried->files.size(), loaded->files.size());
    for (const auto& [path, text] : loaded->files) {
      auto carried_text = carried->files.find(path);
      ASSERT_NE(carried_text, carried->files.end()) << path;
      EXPECT_EQ(*carried_text->second, *text) << path;
    }
  }

  // The bare upstream repository's folder.
  std::string UpstreamDir() const {
    return std::string(absl::StripPrefix(upstream_->url(), "file://"));
  }

  // A release of web's image `to` with the job note {"id":"job-1"}.
  ApplyRequest ReleaseWithNote(const std::string& to) {
    ApplyRequest req;
    req.edits = {ImageEdit("apps:deployment/web", "web", to)};
    req.note = "{\"id\":\"job-1\"}";
    return req;
  }

  EditRequest ImageEdit(const std::string& workload, const std::string& container,
                        const std::string& to, std::optional<std::string> from = std::nullopt) {
    EditRequest e;
    e.workload = workload;
    e.image = manifest::ImageChange{container, to, from};
    return e;
  }

  // Locks `workload` as `user`.
  EditRequest LockEdit(const std::string& workload, const std::string& user) {
    EditRequest e;
    e.workload = workload;
    e.policy = manifest::PolicyUpdate{};
    e.policy->locked = true;
    e.policy->locked_user = user;
    return e;
  }

  prometheus::Registry registry_;
  WriterMetrics metrics_{registry_};
  std::unique_ptr<GitRepo> upstream_;
  std::unique_ptr<Libgit2Repository> repo_;
  std::unique_ptr<HookedRepository> hooked_;
  std::unique_ptr<Writer> writer_;
};

TEST(PacksToFoldTest, MergesTheSmallPacksUntilTheRestIsAGeometricProgression) {
  struct Case {
    std::vector<uint32_t> sizes;  // sorted, smallest first
    size_t folded;
  };
  const Case cases[] = {
      {{}, 0},
      {{5}, 1},                  // one pack: nothing to merge
      {{4, 4, 4, 4}, 4},         // equals merge
      {{3, 4, 5000}, 2},         // the writes since the last fold, not the base
      {{4, 4, 100, 5000}, 2},    // 8 < 100/2: the progression holds above
      {{40, 50, 100, 5000}, 3},  // 40+50 = 90 > 100/2: the 100 joins
      {{40, 50, 100, 300}, 4},   // and then the 300: everything (all that refs reach)
      {{1, 1, 3, 9}, 4},         // each under twice the sum before it
      {{1, 5, 5, 5, 5}, 5},      // a small pack below never stops the fold
      {{3, 7, 7, 7}, 4},
      {{1, 5, 5, 100}, 3},
      {{1, 2, 4, 8, 16}, 1},  // already a progression: nothing to do
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PacksToFold(c.sizes), c.folded) << ::testing::PrintToString(c.sizes);
  }
}

TEST_F(WriterTest, ReadsHeadManifestsAndIndex) {
  absl::StatusOr<HeadInfo> head = writer_->Refresh();
  FERRY_ASSERT_OK(head);
  EXPECT_EQ(head->revision, upstream_->Head());
  EXPECT_TRUE(head->fetch_error.empty());
  EXPECT_EQ(metrics_.ready.Value(), 1);

  auto files = writer_->ReadManifests("", {});
  FERRY_ASSERT_OK(files);
  ASSERT_EQ(files->size(), 2u);  // README.md is not a manifest
  EXPECT_EQ((*files)[0].path, "apps/api.yaml");
  EXPECT_EQ((*files)[1].content, Deployment("web", "nginx:1.25"));

  auto index = writer_->IndexAt("");
  FERRY_ASSERT_OK(index);
  ASSERT_EQ((*index)->loaded.resources.size(), 2u);
  EXPECT_EQ((*index)->loaded.resources[1].id, "apps:deployment/web");

  EXPECT_THAT(writer_->ReadManifests("", {"../etc"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(writer_->ReadManifests("", {"nope"}), StatusIs(absl::StatusCode::kNotFound));
}

// Before the first revision, ServedHead (what Head answers) waits for the first fetch in
// progress instead of queueing a fetch of its own behind it (at 10,000 workloads the first
// fetch takes seconds); past its deadline it says the fetch still runs.
TEST_F(WriterTest, ServedHeadWaitsForTheFirstFetchInsteadOfFetchingAgain) {
  absl::Notification release;
  std::thread first = HeldFetch(release);
  // A ServedHead that fetched itself would wait for the first fetch's lock: after 10 s the
  // test fails (and lets the fetch go) rather than hanging.
  auto during = std::async(std::launch::async, [&] {
    return writer_->ServedHead(absl::Now() + absl::Milliseconds(50));
  });
  if (during.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "ServedHead waited for the fetch's lock";
    release.Notify();
  }
  EXPECT_THAT(during.get(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("no revision yet: a fetch from upstream is still running (for ")));
  // Whether it starts before or after the fetch ends, it answers with that fetch's head.
  absl::StatusOr<HeadInfo> waited;
  std::thread reader([&] { waited = writer_->ServedHead(absl::Now() + absl::Seconds(60)); });
  if (!release.HasBeenNotified()) release.Notify();
  first.join();
  reader.join();
  FERRY_ASSERT_OK(waited);
  EXPECT_EQ(waited->revision, upstream_->Head());
  EXPECT_EQ(hooked_->fetches, 1);
  // With a revision, no fetch at all.
  FERRY_ASSERT_OK_AND_ASSIGN(HeadInfo head, writer_->ServedHead(absl::Now()));
  EXPECT_EQ(head.revision, upstream_->Head());
  EXPECT_EQ(hooked_->fetches, 1);

  // With no fetch in progress it fetches, and a failure is the answer.
  OpenWriter({});
  hooked_->before_fetch = [] { return absl::UnavailableError("upstream is down"); };
  EXPECT_THAT(writer_->ServedHead(absl::Now() + absl::Seconds(60)),
              StatusIs(absl::StatusCode::kUnavailable, Eq("no revision yet: upstream is down")));
  EXPECT_EQ(hooked_->fetches, 1);
}

// A Head whose caller has gone stops waiting for the first fetch within a slice
// (Writer::kCancelCheck) instead of holding its thread until its deadline.
TEST_F(WriterTest, ServedHeadStopsWaitingWhenItsCallerHasGone) {
  absl::Notification release;
  std::thread first = HeldFetch(release);
  std::atomic<int> asked{0};
  auto waiting = std::async(std::launch::async, [&] {
    return writer_->ServedHead(absl::Now() + absl::Seconds(60), [&] { return ++asked >= 2; });
  });
  const bool ended = waiting.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  release.Notify();
  first.join();
  hooked_->before_fetch = nullptr;  // it refers to `release`
  ASSERT_TRUE(ended) << "ServedHead kept waiting for a caller that had gone";
  EXPECT_THAT(waiting.get(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("no revision yet")));
  EXPECT_EQ(asked.load(), 2);
  EXPECT_EQ(hooked_->fetches, 1);
}

// Readers of older revisions do not push the head's index out of the cache (it keeps 2):
// a read at the head afterwards is answered from it, not built again.
TEST_F(WriterTest, TheHeadsIndexStaysWhileOlderRevisionsAreRead) {
  auto built = [&] {
    return metrics_.index_files.Add({{"source", "parsed"}}).Value() +
           metrics_.index_files.Add({{"source", "reused"}}).Value();
  };
  const std::string first = upstream_->Head();
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.30")}}, "Second"));
  const std::string second = upstream_->Head();
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.31")}}, "Third"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(auto head, writer_->IndexAt(""));
  FERRY_ASSERT_OK(writer_->IndexAt(second).status());
  FERRY_ASSERT_OK(writer_->IndexAt(first).status());
  const double before = built();
  FERRY_ASSERT_OK_AND_ASSIGN(auto again, writer_->IndexAt(""));
  EXPECT_EQ(again.get(), head.get()) << "the head's index, as cached";
  EXPECT_EQ(built(), before);
}

TEST_F(WriterTest, ANewUpstreamRevisionParsesOnlyTheFilesItChanged) {
  auto parsed = [&](const char* source) {
    return metrics_.index_files.Add({{"source", source}}).Value();
  };
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(auto first, writer_->IndexAt(""));
  EXPECT_EQ(parsed("parsed"), 2);
  EXPECT_EQ(parsed("reused"), 0);

  // Someone else changes one file and adds one: those two are parsed, the other is reused.
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.30")},
                                            {"apps/db.yaml", Deployment("db", "postgres:16")}},
                                           "Upstream change"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(auto second, writer_->IndexAt(""));
  EXPECT_EQ(parsed("parsed"), 4);
  EXPECT_EQ(parsed("reused"), 1);
  // The same index as a parse of everything.
  ASSERT_EQ(second->loaded.resources.size(), 3u);
  EXPECT_EQ(second->loaded.resources[0].id, "apps:deployment/api");
  EXPECT_EQ(second->loaded.resources[0].source.path, "apps/api.yaml");
  EXPECT_EQ(second->loaded.resources[2].id, "apps:deployment/web");
  EXPECT_EQ(ImageIn(*second, 2), "nginx:1.30");
  EXPECT_EQ(ImageIn(*first, 1), "nginx:1.25");

  // A Ferry commit's index is derived from its parent's; the next upstream revision parses
  // the file that commit changed (its blob is not known) and reuses the rest.
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/api", "api", "example/api:1.1.0")};
  FERRY_ASSERT_OK(writer_->Apply(req));
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/db.yaml", Deployment("db", "postgres:17")}},
                                           "Upstream again"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(auto third, writer_->IndexAt(""));
  EXPECT_EQ(parsed("parsed"), 6) << "api.yaml (Ferry's commit) and db.yaml (upstream's)";
  EXPECT_EQ(parsed("reused"), 2);
  ASSERT_EQ(third->loaded.resources.size(), 3u);
  EXPECT_EQ(ImageIn(*third, 0), "example/api:1.1.0");
  EXPECT_EQ(ImageIn(*third, 1), "postgres:17");
}

TEST_F(WriterTest, AWorkloadDefinedTwiceIsStillIndexedWhenOneCopyGoes) {
  // web is defined in apps/web.yaml and again in apps/zz-copy.yaml: the index keeps the
  // first and reports the second as a duplicate.
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/zz-copy.yaml", Deployment("web", "nginx:1.99")}}, "A copy"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(auto twice, writer_->IndexAt(""));
  ASSERT_EQ(twice->loaded.resources.size(), 2u);
  EXPECT_EQ(twice->loaded.resources[1].source.path, "apps/web.yaml");
  // The first copy goes: the other one, unchanged, is the workload now.
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/web.yaml", "# moved\n"}}, "Drop a copy"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(auto once, writer_->IndexAt(""));
  ASSERT_EQ(once->loaded.resources.size(), 2u);
  EXPECT_EQ(once->loaded.resources[1].id, "apps:deployment/web");
  EXPECT_EQ(once->loaded.resources[1].source.path, "apps/zz-copy.yaml");
  EXPECT_TRUE(once->loaded.errors.empty()) << once->loaded.errors[0].ToString();
}

TEST_F(WriterTest, ImageEditIsOneCommitWithOnlyThatLineAndAJobNote) {
  const std::string before = upstream_->Head();
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26", "nginx:1.25")};
  req.author = Signature{"alice", "alice@example.com"};
  req.note = "{\"id\":\"job-1\"}";
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  FERRY_ASSERT_OK(out->edits[0].status);
  EXPECT_EQ(out->revision, upstream_->Head());
  EXPECT_EQ(upstream_->Git("rev-parse " + out->revision + "^"), before + "\n");
  EXPECT_EQ(upstream_->Show(out->revision, "apps/web.yaml"), Deployment("web", "nginx:1.26"));
  EXPECT_EQ(upstream_->Git("diff --numstat " + before + " " + out->revision),
            "1\t1\tapps/web.yaml\n");
  EXPECT_EQ(upstream_->Git("log -1 '--format=%an|%ae|%cn|%s' " + out->revision),
            "alice|alice@example.com|Ferry|Release apps:deployment/web web: nginx:1.26\n");
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out->revision), "{\"id\":\"job-1\"}");
  EXPECT_NE(out->diff.find("-        image: nginx:1.25 # managed by Ferry"), std::string::npos)
      << out->diff;
  EXPECT_EQ(metrics_.commits.Value(), 1);
  auto notes = writer_->ListNotes(10);
  FERRY_ASSERT_OK(notes);
  ASSERT_EQ(notes->size(), 1u);
  EXPECT_EQ((*notes)[0].first, out->revision);
}

// The packfiles (`.pack`) of the bare repo `git_dir`, by path.
std::set<std::string> PackFiles(const std::string& git_dir) {
  std::set<std::string> packs;
  for (const auto& entry : std::filesystem::directory_iterator(git_dir + "/objects/pack")) {
    if (entry.path().extension() == ".pack") packs.insert(entry.path().string());
  }
  return packs;
}

// `git fsck` finds every object the refs of the bare repo `git_dir` need.
void ExpectFsckClean(const std::string& git_dir) {
  int rc = -1;
  const std::string fsck =
      testing::RunCommand("git --git-dir=" + git_dir + " fsck --no-dangling 2>&1", &rc);
  EXPECT_EQ(rc, 0) << fsck;
}

// The packs of `git_dir` that are not in `before`.
std::set<std::string> PacksSince(const std::string& git_dir, const std::set<std::string>& before) {
  std::set<std::string> added;
  for (const std::string& p : PackFiles(git_dir)) {
    if (!before.count(p)) added.insert(p);
  }
  return added;
}

// `git verify-pack -v` of the pack `pack`: a line per object ("<id> <type> ...").
std::string ListPack(const GitRepo& any, const std::string& pack) {
  return any.Git("verify-pack -v " +
                 std::filesystem::path(pack).replace_extension(".idx").string());
}

TEST_F(WriterTest, AReleaseAndItsJobNoteGoUpInOnePush) {
  const std::string upstream_dir = UpstreamDir();
  const std::set<std::string> before = PackFiles(upstream_dir);
  ApplyRequest req = ReleaseWithNote("nginx:1.26");
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  ASSERT_EQ(out->revision, upstream_->Head());
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out->revision), "{\"id\":\"job-1\"}");
  // A push to a file:// upstream writes one pack.
  const std::set<std::string> added = PacksSince(upstream_dir, before);
  ASSERT_EQ(added.size(), 1u);
  const std::string listed = ListPack(*upstream_, *added.begin());
  EXPECT_TRUE(absl::StrContains(listed, out->revision + " commit")) << listed;
  const std::string notes_commit(
      absl::StripAsciiWhitespace(upstream_->Git("rev-parse refs/notes/ferry")));
  EXPECT_TRUE(absl::StrContains(listed, notes_commit + " commit")) << listed;
  // Written into upstream by Ferry itself (file://): git reads it whole.
  EXPECT_EQ(upstream_->Git("fsck --strict --no-dangling && echo fsck-ok"), "fsck-ok\n");
}

// The object ids a `git verify-pack -v` listing names.
std::set<std::string> PackedIds(const std::string& listing) {
  std::set<std::string> ids;
  for (absl::string_view line : absl::StrSplit(listing, '\n')) {
    const absl::string_view id = line.substr(0, line.find(' '));
    if (id.size() == 40 && id.find_first_not_of("0123456789abcdef") == absl::string_view::npos) {
      ids.emplace(id);
    }
  }
  return ids;
}

// The objects `to` reaches that `from` does not (`from` empty: all of them), by id.
std::set<std::string> ObjectsBetween(const GitRepo& repo, const std::string& from,
                                     const std::string& to) {
  std::set<std::string> ids;
  const std::string listed =
      repo.Git("rev-list --objects " + to + (from.empty() ? "" : " --not " + from));
  for (absl::string_view line : absl::StrSplit(listed, '\n', absl::SkipEmpty())) {
    ids.emplace(line.substr(0, line.find(' ')));
  }
  return ids;
}

TEST_F(WriterTest, EachPushSendsWhatUpstreamLacksAndNothingMore) {
  // Files at several depths: a release changes one, and its push walks only that path.
  auto upstream = GitRepo::Create({
      {"clusters/prod/apps/db.yaml", Deployment("db", "postgres:15.1")},
      {"clusters/prod/apps/web.yaml", Deployment("web", "nginx:1.25")},
      {"clusters/stage/apps/cache.yaml", Deployment("cache", "redis:7.0")},
      {"clusters/prod/README.md", "not a manifest\n"},
  });
  FERRY_ASSERT_OK(upstream);
  upstream_ = *std::move(upstream);
  OpenWriter({});
  const std::string upstream_dir = UpstreamDir();
  std::string notes_before;  // none before the first note
  for (const char* tag : {"15.2", "15.3", "15.4"}) {
    const std::string head_before = upstream_->Head();
    const std::set<std::string> packs_before = PackFiles(upstream_dir);
    ApplyRequest req;
    req.edits = {ImageEdit("apps:deployment/db", "db", absl::StrCat("postgres:", tag))};
    req.note = absl::StrCat("{\"id\":\"job-", tag, "\"}");
    absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
    FERRY_ASSERT_OK(out);
    ASSERT_EQ(out->revision, upstream_->Head());
    const std::string notes(
        absl::StripAsciiWhitespace(upstream_->Git("rev-parse refs/notes/ferry")));
    std::set<std::string> lacked = ObjectsBetween(*upstream_, head_before, out->revision);
    for (const std::string& id : ObjectsBetween(*upstream_, notes_before, notes)) lacked.insert(id);
    // The commit, the root tree, clusters/, prod/, apps/, db.yaml; and the note's objects.
    EXPECT_GE(lacked.size(), 6u + 3u) << tag;
    const std::set<std::string> added = PacksSince(upstream_dir, packs_before);
    ASSERT_EQ(added.size(), 1u) << tag;
    EXPECT_EQ(PackedIds(ListPack(*upstream_, *added.begin())), lacked) << tag;
    notes_before = notes;
  }
  // The sync tag on a revision upstream has: the tag object alone.
  const std::set<std::string> packs_before = PackFiles(upstream_dir);
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", upstream_->Head()));
  const std::set<std::string> added = PacksSince(upstream_dir, packs_before);
  ASSERT_EQ(added.size(), 1u);
  const std::string tag(absl::StripAsciiWhitespace(upstream_->Git("rev-parse ferry-sync")));
  EXPECT_EQ(PackedIds(ListPack(*upstream_, *added.begin())), std::set<std::string>{tag});
  EXPECT_EQ(upstream_->Git("fsck --strict --no-dangling && echo fsck-ok"), "fsck-ok\n");
}

TEST_F(WriterTest, APushAfterOneThatNeverReachedUpstreamStillSendsAllItLacks) {
  // A push is refused before it sends anything: its blob and trees are in the mirror, not
  // upstream. The same release again makes the same blob and trees, so the mirror's pack of
  // that write holds only the new commit and note: not enough for upstream, which has the
  // parents of both (a note went up first), so the push's pack comes from the tree diff.
  auto refuse = std::make_shared<std::atomic<bool>>(false);
  OpenWriter({}, [refuse]() -> absl::StatusOr<absl::Duration> {
    if (*refuse) return absl::UnavailableError("not the leader (test)");
    return absl::Minutes(1);
  });
  FERRY_ASSERT_OK(writer_->Apply(ReleaseWithNote("nginx:1.26")));
  const std::string head_before = upstream_->Head();
  ApplyRequest req = ReleaseWithNote("nginx:1.27");
  *refuse = true;
  EXPECT_THAT(writer_->Apply(req), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(upstream_->Head(), head_before);
  *refuse = false;
  req.note = "{\"id\":\"job-2\"}";  // a new note: the mirror's pack is not empty
  const std::set<std::string> packs_before = PackFiles(UpstreamDir());
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  ASSERT_EQ(out->revision, upstream_->Head());
  const std::set<std::string> added = PacksSince(UpstreamDir(), packs_before);
  ASSERT_EQ(added.size(), 1u);
  const std::set<std::string> sent = PackedIds(ListPack(*upstream_, *added.begin()));
  for (const std::string& id : ObjectsBetween(*upstream_, head_before, out->revision)) {
    EXPECT_TRUE(sent.count(id)) << id << " not sent";
  }
  EXPECT_EQ(upstream_->Git("fsck --strict --no-dangling && echo fsck-ok"), "fsck-ok\n");
}

TEST_F(WriterTest, WhenUpstreamRefusesTheNotesRefTheCommitLandsWithoutItsNote) {
  // A lock on upstream's notes ref: the file:// transport cannot move that ref alone.
  const std::string upstream_dir = UpstreamDir();
  std::filesystem::create_directories(upstream_dir + "/refs/notes");
  { std::ofstream(upstream_dir + "/refs/notes/ferry.lock") << ""; }
  const std::set<std::string> before = PackFiles(upstream_dir);
  ApplyRequest req = ReleaseWithNote("nginx:1.26");
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(out->retries, 0);
  EXPECT_EQ(out->revision, upstream_->Head());
  EXPECT_EQ(upstream_->Git("notes --ref=ferry list"), "");
  EXPECT_EQ(PackFiles(upstream_dir).size(), before.size() + 1) << "one push, commit and note";
  // The mirror's notes ref went back: no note of a commit upstream has none of.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> none = writer_->ListNotes(10);
  FERRY_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());

  std::filesystem::remove(upstream_dir + "/refs/notes/ferry.lock");
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.27")};
  req.note = "{\"id\":\"job-2\"}";
  out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out->revision), "{\"id\":\"job-2\"}");
  auto notes = writer_->ListNotes(10);
  FERRY_ASSERT_OK(notes);
  ASSERT_EQ(notes->size(), 1u);
  EXPECT_EQ((*notes)[0].first, out->revision);
}

TEST_F(WriterTest, AnEditThatGrowsAFilePastTheFileLimitFailsAloneAndLeavesTheFile) {
  WriterOptions options;
  // Both files are under it, and stay so unless an edit adds more than 2 bytes.
  options.max_file_bytes = Deployment("api", "example/api:1.0.0").size() + 2;
  ASSERT_LE(Deployment("web", "nginx:1.25").size(), options.max_file_bytes);
  OpenWriter(options);
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.25-a-much-longer-tag"),
               ImageEdit("apps:deployment/api", "api", "example/api:1.0.1")};
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_THAT(out->edits[0].status, StatusIs(absl::StatusCode::kResourceExhausted,
                                             HasSubstr("--max_manifest_file_bytes")));
  EXPECT_FALSE(out->edits[0].changed);
  FERRY_EXPECT_OK(out->edits[1].status);
  ASSERT_EQ(out->revision, upstream_->Head());
  EXPECT_EQ(upstream_->Show(out->revision, "apps/web.yaml"), Deployment("web", "nginx:1.25"));
  EXPECT_EQ(upstream_->Show(out->revision, "apps/api.yaml"),
            Deployment("api", "example/api:1.0.1"));
  // The new head's index still reads the file, unchanged.
  absl::StatusOr<std::shared_ptr<const Index>> index = writer_->IndexAt("");
  FERRY_ASSERT_OK(index);
  EXPECT_EQ((*index)->revision, out->revision);
  EXPECT_EQ(*(*index)->files.at("apps/web.yaml"), Deployment("web", "nginx:1.25"));
  EXPECT_TRUE((*index)->unreadable.empty());
}

TEST_F(WriterTest, ACallerThatReadsNoDiffGetsNone) {
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  req.omit_diff = true;
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(out->revision, upstream_->Head());
  EXPECT_EQ(out->diff, "");
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.27")};
  req.omit_diff = false;
  out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_TRUE(absl::StrContains(out->diff, "+        image: nginx:1.27")) << out->diff;
}

TEST_F(WriterTest, ANotesRefMovedUpstreamSinceTheFetchCostsTheNoteNotTheCommit) {
  // Someone else's note upstream between Ferry's fetch and its push.
  const std::string head = upstream_->Head();
  hooked_->before_push = [&] { upstream_->Git("notes --ref=ferry add -m theirs " + head); };
  ApplyRequest req = ReleaseWithNote("nginx:1.26");
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  const std::string theirs(
      absl::StripAsciiWhitespace(upstream_->Git("notes --ref=ferry show " + head)));
  EXPECT_EQ(theirs, "theirs");
  EXPECT_EQ(out->retries, 0);
  EXPECT_EQ(out->revision, upstream_->Head());
  // Theirs alone ("<note blob> <commit>"): Ferry's note was refused, its commit was not.
  const std::string blob(
      absl::StripAsciiWhitespace(upstream_->Git("notes --ref=ferry list " + head)));
  EXPECT_EQ(upstream_->Git("notes --ref=ferry list"), absl::StrCat(blob, " ", head, "\n"));
}

TEST_F(WriterTest, TheFirstSyncTagSendsTheTagAloneNotTheHistoryUpstreamHas) {
  const std::string upstream_dir = UpstreamDir();
  FERRY_ASSERT_OK(writer_->Refresh());
  const std::set<std::string> before = PackFiles(upstream_dir);
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", upstream_->Head()));
  ASSERT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), upstream_->Head() + "\n");
  int objects = 0;
  for (const std::string& p : PacksSince(upstream_dir, before)) {
    for (absl::string_view line : absl::StrSplit(ListPack(*upstream_, p), '\n')) {
      if (line.size() > 41 && line[40] == ' ') ++objects;
    }
  }
  EXPECT_LE(objects, 1) << "upstream has the commit and everything below it";
}

// An edited file keeps its mode (the commit looks each folder's tree up once).
TEST_F(WriterTest, AnEditedFileKeepsItsMode) {
  const std::string work = upstream_->dir() + "/chmod";
  int status = 0;
  const std::string out = testing::RunCommand(
      absl::StrCat("git clone -q ", upstream_->url(), " ", work, " && cd ", work,
                   " && chmod +x apps/web.yaml && git add apps/web.yaml && git -c user.name=t",
                   " -c user.email=t@example.com commit -qm chmod && git push -q origin HEAD 2>&1"),
      &status);
  ASSERT_EQ(status, 0) << out;
  FERRY_ASSERT_OK(writer_->Refresh());
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26", "nginx:1.25"),
               ImageEdit("apps:deployment/api", "api", "example/api:1.1.0")};
  absl::StatusOr<ApplyOutcome> applied = writer_->Apply(req);
  FERRY_ASSERT_OK(applied);
  EXPECT_EQ(upstream_->Git("ls-tree " + applied->revision + " apps/web.yaml").substr(0, 6),
            "100755");
  EXPECT_EQ(upstream_->Git("ls-tree " + applied->revision + " apps/api.yaml").substr(0, 6),
            "100644");
  EXPECT_EQ(upstream_->Show(applied->revision, "apps/web.yaml"), Deployment("web", "nginx:1.26"));
}

TEST_F(WriterTest, DryRunAndNoOpMakeNoCommit) {
  const std::string before = upstream_->Head();
  ApplyRequest dry;
  dry.edits = {ImageEdit("apps:deployment/api", "api", "example/api:1.1.0")};
  dry.dry_run = true;
  auto out = writer_->Apply(dry);
  FERRY_ASSERT_OK(out);
  EXPECT_TRUE(out->revision.empty());
  EXPECT_FALSE(out->no_changes);
  EXPECT_NE(out->diff.find("+        image: example/api:1.1.0"), std::string::npos) << out->diff;
  ApplyRequest same;
  same.edits = {ImageEdit("apps:deployment/api", "api", "example/api:1.0.0")};
  auto noop = writer_->Apply(same);
  FERRY_ASSERT_OK(noop);
  EXPECT_TRUE(noop->no_changes);
  EXPECT_EQ(upstream_->Head(), before);
  EXPECT_EQ(metrics_.commits.Value(), 0);
}

TEST_F(WriterTest, BadEditsFailAloneAndTheRestIsCommitted) {
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.27", "nginx:1.20"),  // stale
               ImageEdit("apps:deployment/nope", "x", "a:1"),
               ImageEdit("apps:deployment/api", "nope", "a:1"),
               ImageEdit("apps:deployment/api", "api", "example/api:2.0.0")};
  auto out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_THAT(out->edits[0].status,
              StatusIs(absl::StatusCode::kAborted, HasSubstr("is now nginx:1.25, not nginx:1.20")));
  EXPECT_THAT(out->edits[1].status, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(out->edits[2].status, StatusIs(absl::StatusCode::kNotFound));
  FERRY_EXPECT_OK(out->edits[3].status);
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/web.yaml"), Deployment("web", "nginx:1.25"));
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/api.yaml"),
            Deployment("api", "example/api:2.0.0"));
}

TEST_F(WriterTest, RejectedPushIsRetriedOnTheNewHeadKeepingBothChanges) {
  hooked_->before_push = [&] {
    // Someone else pushes a change to another file between our fetch and our push.
    FERRY_ASSERT_OK(upstream_->CommitWithCli(
        {{"apps/other.yaml", "kind: ConfigMap\nmetadata:\n  name: o\n"}}, "Other change"));
  };
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  auto out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(out->retries, 1);
  EXPECT_EQ(metrics_.push_conflicts.Value(), 1);
  EXPECT_EQ(out->revision, upstream_->Head());
  // Linear history: our commit sits on top of theirs.
  EXPECT_EQ(upstream_->Git("log --format=%s"),
            "Release apps:deployment/web web: nginx:1.26\nOther change\nInitial manifests\n");
  EXPECT_EQ(upstream_->Git("rev-list --merges HEAD"), "");
}

TEST_F(WriterTest, ConflictingUpstreamChangeAbortsTheEdit) {
  hooked_->before_push = [&] {
    FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.30")}},
                                             "Manual bump"));
  };
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26", "nginx:1.25")};
  auto out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_THAT(out->edits[0].status, StatusIs(absl::StatusCode::kAborted));
  EXPECT_TRUE(out->no_changes);
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/web.yaml"), Deployment("web", "nginx:1.30"));
}

TEST_F(WriterTest, AllOrNothingCommitsNothingWhenAnyEditFails) {
  const std::string before = upstream_->Head();
  ApplyRequest req;
  req.all_or_nothing = true;
  req.edits = {ImageEdit("apps:deployment/api", "api", "example/api:2.0.0"),
               ImageEdit("apps:deployment/web", "web", "nginx:1.27", "nginx:1.20")};  // stale
  EXPECT_THAT(writer_->Apply(req),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("edit 2 (apps:deployment/web container web) failed: ")));
  EXPECT_EQ(upstream_->Head(), before);
  EXPECT_EQ(metrics_.commits.Value(), 0);
  // No compare-and-set lost: the first failure's code.
  req.edits = {ImageEdit("apps:deployment/api", "api", "example/api:2.0.0"),
               ImageEdit("apps:deployment/nope", "x", "a:1")};
  EXPECT_THAT(writer_->Apply(req),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("apps:deployment/nope")));
  EXPECT_EQ(upstream_->Head(), before);
  // Every edit applies: one commit as usual.
  req.edits = {ImageEdit("apps:deployment/api", "api", "example/api:2.0.0", "example/api:1.0.0"),
               ImageEdit("apps:deployment/web", "web", "nginx:1.26", "nginx:1.25")};
  auto out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(out->revision, upstream_->Head());
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/web.yaml"), Deployment("web", "nginx:1.26"));
}

TEST_F(WriterTest, AllOrNothingIsCheckedAgainAfterARebase) {
  hooked_->before_push = [&] {
    // The first attempt's edits all applied; upstream changes web before the push.
    FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.30")}},
                                             "Manual bump"));
  };
  ApplyRequest req;
  req.all_or_nothing = true;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26", "nginx:1.25"),
               ImageEdit("apps:deployment/api", "api", "example/api:2.0.0")};
  EXPECT_THAT(writer_->Apply(req),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("apps:deployment/web")));
  EXPECT_EQ(upstream_->Git("log --format=%s"), "Manual bump\nInitial manifests\n");
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/api.yaml"),
            Deployment("api", "example/api:1.0.0"))
      << "the edit that still applied is not committed alone";
}

TEST_F(WriterTest, PolicyEditsWriteAnnotations) {
  ApplyRequest req;
  req.edits = {LockEdit("apps:deployment/api", "bob")};
  auto out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(
      upstream_->Show(upstream_->Head(), "apps/api.yaml"),
      Deployment(
          "api", "example/api:1.0.0",
          "  annotations:\n    ferry.dev/locked: \"true\"\n    ferry.dev/locked_user: bob\n"));
  EXPECT_EQ(upstream_->Git("log -1 --format=%s"), "Update policy of apps:deployment/api\n");

  // tag_all names the workload's containers, read from its parsed document: the index,
  // carried over from the commit above, keeps none.
  EditRequest all;
  all.workload = "apps:deployment/api";
  all.policy = manifest::PolicyUpdate{};
  all.policy->tag_all = std::optional<std::string>("glob:1.*");
  req.edits = {all};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome tagged, writer_->Apply(req));
  FERRY_ASSERT_OK(tagged.edits[0].status);
  EXPECT_TRUE(absl::StrContains(upstream_->Show(upstream_->Head(), "apps/api.yaml"),
                                "    fluxcd.io/tag.api: glob:1.*\n"))
      << upstream_->Show(upstream_->Head(), "apps/api.yaml");
}

TEST_F(WriterTest, SeveralEditsInOneFileAndOneCommit) {
  FERRY_ASSERT_OK(upstream_->CommitWithCli(
      {{"apps/both.yaml", Deployment("one", "a/one:1") + "---\n" + Deployment("two", "a/two:1")}},
      "Two in one file"));
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/one", "one", "a/one:2"),
               ImageEdit("apps:deployment/two", "two", "a/two:2")};
  auto out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/both.yaml"),
            Deployment("one", "a/one:2") + "---\n" + Deployment("two", "a/two:2"));
  EXPECT_EQ(upstream_->Git("rev-list --count HEAD"), "3\n");

  // The index carried over to the new revision matches one loaded from scratch.
  ExpectCarriedIndexMatchesAFreshOne(out->revision);
}

// The index after Ferry's own commit is carried over from the one the commit was made on
// when first asked for, not before the release is answered, and shares with it the texts and
// containers the commit did not change; a revision indexed before it (upstream moved on)
// drops it, and it is then loaded from the repository like any other.
TEST_F(WriterTest, TheIndexOfFerrysCommitIsCarriedOverWhenFirstAskedFor) {
  auto files = [&](const char* source) {
    return metrics_.index_files.Add({{"source", source}}).Value();
  };
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> base, writer_->IndexAt(""));
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome released, writer_->Apply(req));
  EXPECT_EQ(writer_->CurrentHead().revision, released.revision);
  EXPECT_EQ(files("carried"), 0) << "made before the release was answered";
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> carried, writer_->IndexAt(""));
  EXPECT_EQ(carried->revision, released.revision);
  EXPECT_EQ(files("carried"), 2);
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> again,
                             writer_->IndexAt(released.revision));
  EXPECT_EQ(again.get(), carried.get()) << "cached once made";
  ExpectCarriedIndexMatchesAFreshOne(released.revision);
  // Shared where nothing changed, not copied; made anew where the release wrote.
  EXPECT_EQ(carried->files.at("apps/api.yaml"), base->files.at("apps/api.yaml"));
  EXPECT_NE(carried->files.at("apps/web.yaml"), base->files.at("apps/web.yaml"));
  auto containers_of = [](const Index& index, const char* id) {
    const manifest::Resource* r = index.Find(id);
    return r == nullptr ? nullptr : index.containers.at(ContainersKey(*r));
  };
  EXPECT_EQ(containers_of(*carried, "apps:deployment/api"),
            containers_of(*base, "apps:deployment/api"));
  EXPECT_NE(containers_of(*carried, "apps:deployment/web"),
            containers_of(*base, "apps:deployment/web"));
  EXPECT_EQ(carried->PathView(), base->PathView()) << "every resource kept its place";

  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.27")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome second, writer_->Apply(req));
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/db.yaml", Deployment("db", "postgres:17")}},
                                           "Upstream moves on"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK(writer_->IndexAt("").status());  // the new upstream head's
  const double loaded = files("parsed") + files("reused");
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> older, writer_->IndexAt(second.revision));
  EXPECT_EQ(files("carried"), 2);
  EXPECT_EQ(files("parsed") + files("reused"), loaded + 2);
  const manifest::Resource* web = older->Find("apps:deployment/web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(ImageIn(*older, web - older->loaded.resources.data()), "nginx:1.27");
}

// With an id defined twice the index cannot say what each file defines, so the index after a
// release is built the general way (every resource placed and sorted again): it too equals
// one loaded from scratch, the duplicate's error included.
TEST_F(WriterTest, TheIndexCarriedOverARepoWithADuplicateIdEqualsAFreshOne) {
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/dup-a.yaml", Deployment("dup", "c/dup:1")},
                                            {"apps/dup-b.yaml", Deployment("dup", "c/dup:2")}},
                                           "The same workload twice"));
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer_->Apply(req));
  ASSERT_FALSE(out.revision.empty());
  FERRY_ASSERT_OK_AND_ASSIGN(auto carried, writer_->IndexAt(out.revision));
  EXPECT_TRUE(carried->had_duplicates);
  ExpectCarriedIndexMatchesAFreshOne(out.revision);
  std::string errors;
  for (const manifest::LoadError& e : carried->loaded.errors) absl::StrAppend(&errors, e.message);
  EXPECT_THAT(errors, HasSubstr("duplicate resource apps:deployment/dup"));
}

// A policy edit and an image edit in a file that mixes a workload, a Service and a List:
// the index carried over to the commit (from what the edits parsed, their trees dropped
// before the push) equals one loaded from scratch, annotations and containers included.
TEST_F(WriterTest, TheIndexCarriedOverAPolicyEditEqualsAFreshOne) {
  const std::string content = absl::StrCat(
      Deployment("one", "c/one:1"),
      "---\napiVersion: v1\nkind: Service\nmetadata: {name: one, namespace: apps}\n"
      "spec: {ports: [{port: 80}]}\n---\n",
      "apiVersion: v1\nkind: List\nitems:\n"
      "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: two, namespace: apps}\n"
      "  spec: {template: {spec: {containers: [{name: two, image: 'c/two:1'}]}}}\n"
      "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two, namespace: apps}\n");
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/mixed.yaml", content}}, "Mixed file"));
  ApplyRequest req;
  req.edits = {LockEdit("apps:deployment/one", "ann"),
               ImageEdit("apps:deployment/two", "two", "c/two:2", "c/two:1")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer_->Apply(req));
  for (const EditOutcome& e : out.edits) FERRY_ASSERT_OK(e.status);
  ExpectCarriedIndexMatchesAFreshOne(out.revision);
  FERRY_ASSERT_OK_AND_ASSIGN(auto carried, writer_->IndexAt(out.revision));
  const manifest::Resource* one = carried->Find("apps:deployment/one");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->annotations.count("ferry.dev/locked"), 1u);
  const manifest::Resource* two = carried->Find("apps:deployment/two");
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(ImageIn(*carried, static_cast<size_t>(two - carried->loaded.resources.data())),
            "c/two:2");
}

// The ListWorkloads entries of a listed base come with the index carried over to Ferry's
// commit, but for the files the commit changed: a lock that inserts a line moves the
// documents below it, and those entries are made anew. The listing equals a fresh writer's.
TEST_F(WriterTest, TheListingOfACarriedIndexKeepsTheEntriesOfUnchangedFiles) {
  const std::string mixed = absl::StrCat(
      Deployment("one", "c/one:1"), "---\n",
      "apiVersion: v1\nkind: List\nitems:\n"
      "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: two, namespace: apps}\n"
      "  spec: {template: {spec: {containers: [{name: two, image: 'c/two:1'}]}}}\n");
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/mixed.yaml", mixed}}, "Mixed file"));
  FERRY_ASSERT_OK(writer_->Refresh());
  auto list = [](Writer& writer, const std::string& revision) {
    GitWriterService reader(writer, ServiceOptions{});
    ferry::v1::ListManifestWorkloadsRequest request;
    request.set_revision(revision);
    ferry::v1::ListManifestWorkloadsResponse response;
    EXPECT_TRUE(reader.ListWorkloads(nullptr, &request, &response).ok());
    std::map<std::string, std::string> out;
    for (const auto& w : response.workloads()) out[w.id()] = w.SerializeAsString();
    return out;
  };
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> base, writer_->IndexAt(""));
  const std::map<std::string, std::string> before = list(*writer_, base->revision);
  ASSERT_TRUE(base->answers_made);
  ApplyRequest req;
  req.edits = {LockEdit("apps:deployment/one", "ann"),
               ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer_->Apply(req));
  for (const EditOutcome& e : out.edits) FERRY_ASSERT_OK(e.status);
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> carried, writer_->IndexAt(out.revision));
  ASSERT_FALSE(carried->answers_made);
  ASSERT_EQ(carried->answers.size(), carried->loaded.resources.size()) << "not carried over";
  for (size_t i = 0; i < carried->loaded.resources.size(); ++i) {
    const manifest::Resource& r = carried->loaded.resources[i];
    const bool changed = r.source.path == "apps/mixed.yaml" || r.source.path == "apps/web.yaml";
    EXPECT_EQ(carried->answers[i].empty(), changed || !manifest::IsWorkloadKind(r.kind)) << r.id;
    if (!changed && manifest::IsWorkloadKind(r.kind)) {
      EXPECT_EQ(carried->answers[i], before.at(r.id)) << r.id;
    }
  }
  const std::map<std::string, std::string> after = list(*writer_, out.revision);
  prometheus::Registry registry;
  WriterMetrics metrics(registry);
  Writer fresh(*repo_, WriterOptions{}, metrics);
  EXPECT_EQ(after, list(fresh, out.revision));
  // What the commit changed is listed as it now is: the new image, the lock, the line moved.
  EXPECT_NE(after.at("apps:deployment/web"), before.at("apps:deployment/web"));
  EXPECT_NE(after.at("apps:deployment/one"), before.at("apps:deployment/one"));
  EXPECT_NE(after.at("apps:deployment/two"), before.at("apps:deployment/two"));
  EXPECT_EQ(after.at("apps:deployment/api"), before.at("apps:deployment/api"));
}

// An edit reads what its file defines from the index and parses only the document it
// changes: list items, several edits in one file and a second release on the index carried
// over from the first all land where a parse of the whole file would put them. With an id
// defined twice the index cannot say what a file defines, and the file is parsed again.
TEST_F(WriterTest, EditsFindTheirDocumentsThroughTheIndex) {
  const std::string list =
      "apiVersion: v1\nkind: List\nitems:\n"
      "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: two, namespace: apps}\n"
      "  spec: {template: {spec: {containers: [{name: two, image: 'b/two:1'}]}}}\n"
      "- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: three, namespace: apps}\n"
      "  spec: {template: {spec: {containers: [{name: three, image: 'b/three:1'}]}}}\n";
  const std::string content = absl::StrCat(Deployment("one", "b/one:1"), "---\n", list, "---\n",
                                           Deployment("four", "b/four:1"));
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/many.yaml", content}}, "Four in one file"));
  ApplyRequest first;
  first.edits = {ImageEdit("apps:deployment/three", "three", "b/three:2", "b/three:1"),
                 ImageEdit("apps:deployment/one", "one", "b/one:22", "b/one:1")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome one, writer_->Apply(first));
  for (const EditOutcome& e : one.edits) FERRY_ASSERT_OK(e.status);
  // The index carried over to the commit knows every workload's containers, the ones the
  // edits did not touch included, as an index loaded from scratch does.
  ExpectCarriedIndexMatchesAFreshOne(one.revision);
  FERRY_ASSERT_OK_AND_ASSIGN(auto carried, writer_->IndexAt(one.revision));
  EXPECT_EQ(ImageIn(*carried, 4), "b/two:1") << carried->loaded.resources[4].id;
  ApplyRequest second;  // on the index carried over from the first commit
  second.edits = {ImageEdit("apps:deployment/four", "four", "b/four:333", "b/four:1"),
                  ImageEdit("apps:deployment/two", "two", "b/two:2", "b/two:1")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome two, writer_->Apply(second));
  for (const EditOutcome& e : two.edits) FERRY_ASSERT_OK(e.status);
  std::string expected = absl::StrReplaceAll(content, {{"b/one:1", "b/one:22"},
                                                       {"b/two:1", "b/two:2"},
                                                       {"b/three:1", "b/three:2"},
                                                       {"b/four:1", "b/four:333"}});
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/many.yaml"), expected);

  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"apps/zz-copy.yaml", Deployment("web", "nginx:1.9")}},
                                           "A copy of web"));
  ApplyRequest third;
  third.edits = {ImageEdit("apps:deployment/three", "three", "b/three:3", "b/three:2"),
                 ImageEdit("apps:deployment/one", "one", "b/one:3", "b/one:22")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome three, writer_->Apply(third));
  for (const EditOutcome& e : three.edits) FERRY_ASSERT_OK(e.status);
  expected = absl::StrReplaceAll(expected, {{"b/one:22", "b/one:3"}, {"b/three:2", "b/three:3"}});
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "apps/many.yaml"), expected);
}

// Enough files for EditFiles to share them among threads: every edit lands in its file,
// each file's edits in request order, and each outcome stays with its own edit.
TEST_F(WriterTest, ManyFilesAreEditedSideBySideAndEveryOutcomeIsItsEdit) {
  constexpr int kFiles = 40;
  std::map<std::string, std::string> files;
  ApplyRequest req;
  for (int f = 0; f < kFiles; ++f) {
    const std::string a = absl::StrCat("a", f), b = absl::StrCat("b", f);
    files[absl::StrCat("apps/many-", f, ".yaml")] =
        absl::StrCat(Deployment(a, "x/a:1"), "---\n", Deployment(b, "x/b:1"));
    // The second edit of a file works on the first one's result; in every other file the
    // first edit moves the document of the second (a's new tag is longer).
    EditRequest edit_a = ImageEdit("apps:deployment/" + a, a, absl::StrCat("x/a:", f + 100));
    EditRequest edit_b = ImageEdit("apps:deployment/" + b, b, absl::StrCat("x/b:", f + 10));
    req.edits.push_back(f % 2 == 0 ? edit_a : edit_b);
    req.edits.push_back(f % 2 == 0 ? edit_b : edit_a);
  }
  req.edits.insert(req.edits.begin() + 7, ImageEdit("apps:deployment/nowhere", "c", "x/c:2"));
  req.edits.push_back(ImageEdit("apps:deployment/a3", "no-such-container", "x/a:9"));
  FERRY_ASSERT_OK(upstream_->CommitWithCli(files, "Many files"));
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer_->Apply(req));
  ASSERT_EQ(out.edits.size(), req.edits.size());
  for (size_t i = 0; i < req.edits.size(); ++i) {
    const std::string& workload = req.edits[i].workload;
    if (workload == "apps:deployment/nowhere") {
      EXPECT_THAT(out.edits[i].status, StatusIs(absl::StatusCode::kNotFound)) << i;
    } else if (req.edits[i].image->container == "no-such-container") {
      EXPECT_THAT(out.edits[i].status, StatusIs(absl::StatusCode::kNotFound)) << i;
      EXPECT_EQ(out.edits[i].path, "apps/many-3.yaml");
    } else {
      FERRY_EXPECT_OK(out.edits[i].status) << workload;
      EXPECT_TRUE(out.edits[i].changed) << workload;
      // apps:deployment/aF and bF are in apps/many-F.yaml
      const absl::string_view name = absl::StripPrefix(workload, "apps:deployment/");
      EXPECT_EQ(out.edits[i].path, absl::StrCat("apps/many-", name.substr(1), ".yaml"));
    }
  }
  for (int f = 0; f < kFiles; ++f) {
    EXPECT_EQ(upstream_->Show(out.revision, absl::StrCat("apps/many-", f, ".yaml")),
              absl::StrCat(Deployment(absl::StrCat("a", f), absl::StrCat("x/a:", f + 100)), "---\n",
                           Deployment(absl::StrCat("b", f), absl::StrCat("x/b:", f + 10))));
  }
}

TEST_F(WriterTest, ConcurrentRequestsWhileAnotherPusherCommitsLoseNothing) {
  std::vector<std::map<std::string, std::string>> extra;
  std::map<std::string, std::string> files;
  for (int i = 0; i < 20; ++i) {
    files[absl::StrCat("apps/w", i, ".yaml")] = Deployment(absl::StrCat("w", i), "img/w:1");
  }
  FERRY_ASSERT_OK(upstream_->CommitWithCli(files, "Twenty workloads"));
  std::atomic<bool> done{false};
  int cli_commits = 0;
  std::thread other([&] {
    // Bounded: at most 10 pushes, and only while the writers run.
    for (int i = 0; i < 10 && !done; ++i) {
      if (upstream_
              ->CommitWithCli({{absl::StrCat("notes/n", i, ".txt"), "x\n"}},
                              absl::StrCat("CLI ", i))
              .ok()) {
        ++cli_commits;
      }
    }
  });
  std::vector<std::thread> writers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 20; ++i) {
    writers.emplace_back([&, i] {
      ApplyRequest req;
      req.edits = {
          ImageEdit(absl::StrCat("apps:deployment/w", i), absl::StrCat("w", i), "img/w:2")};
      auto out = writer_->Apply(req);
      if (out.ok() && !out->revision.empty()) ++ok;
    });
  }
  for (auto& t : writers) t.join();
  done = true;
  other.join();
  EXPECT_EQ(ok, 20);
  const std::string head = upstream_->Head();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(upstream_->Show(head, absl::StrCat("apps/w", i, ".yaml")),
              Deployment(absl::StrCat("w", i), "img/w:2"));
  }
  // Each release exactly once, history linear.
  std::string log = upstream_->Git("log --format=%s");
  for (int i = 0; i < 20; ++i) {
    std::string subject = absl::StrCat("Release apps:deployment/w", i, " w", i, ": img/w:2\n");
    size_t first = log.find(subject);
    EXPECT_NE(first, std::string::npos) << subject;
    EXPECT_EQ(log.find(subject, first + 1), std::string::npos) << "twice: " << subject;
  }
  EXPECT_EQ(upstream_->Git("rev-list --merges HEAD"), "");
  EXPECT_EQ(upstream_->Git("rev-list --count HEAD"), absl::StrCat(2 + 20 + cli_commits, "\n"));
}

TEST_F(WriterTest, ReadOnlyRefusesWrites) {
  WriterOptions ro;
  ro.readonly = true;
  OpenWriter(ro);
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  auto out = writer_->Apply(req);
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read-only")));
  FERRY_EXPECT_OK(writer_->Refresh());
}

TEST_F(WriterTest, SyncMarkerMovesAndIsPushed) {
  FERRY_ASSERT_OK(writer_->Refresh());
  EXPECT_THAT(writer_->GetSyncMarker("ferry-sync"), StatusIs(absl::StatusCode::kNotFound));
  const std::string head = upstream_->Head();
  absl::Status marked = writer_->SetSyncMarker("ferry-sync", head);
  FERRY_ASSERT_OK(marked);
  EXPECT_EQ(*writer_->GetSyncMarker("ferry-sync"), head);
  EXPECT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), head + "\n");
  EXPECT_EQ(upstream_->Git("cat-file -t ferry-sync"), "tag\n");  // annotated
}

// A sync that finishes after a newer one (a slow or deposed syncer) does not take the marker
// back; the same revision again is fine, and after upstream was reset to before the marker,
// the marker follows the branch back.
TEST_F(WriterTest, SyncMarkerDoesNotMoveBackwards) {
  FERRY_ASSERT_OK(writer_->Refresh());
  const std::string first = upstream_->Head();
  FERRY_ASSERT_OK_AND_ASSIGN(
      std::string second,
      upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.26")}}, "web 1.26"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", second));

  EXPECT_THAT(
      writer_->SetSyncMarker("ferry-sync", first),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not move backwards")));
  EXPECT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), second + "\n");
  EXPECT_EQ(*writer_->GetSyncMarker("ferry-sync"), second);
  FERRY_EXPECT_OK(writer_->SetSyncMarker("ferry-sync", second));

  // Upstream reset to the first commit: the marker may follow.
  upstream_->Git("update-ref refs/heads/main " + first);
  FERRY_ASSERT_OK(writer_->Refresh());
  ASSERT_EQ(writer_->CurrentHead().revision, first);
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", first));
  EXPECT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), first + "\n");
}

TEST_F(WriterTest, UnreachableUpstreamKeepsTheLastHead) {
  FERRY_ASSERT_OK(writer_->Refresh());
  const std::string head = writer_->CurrentHead().revision;
  std::filesystem::rename(upstream_->dir() + "/upstream.git", upstream_->dir() + "/moved.git");
  absl::StatusOr<HeadInfo> again = writer_->Refresh();
  EXPECT_THAT(again, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(writer_->CurrentHead().revision, head);
  EXPECT_FALSE(writer_->CurrentHead().fetch_error.empty());
  EXPECT_EQ(metrics_.ready.Value(), 0);
  auto files = writer_->ReadManifests("", {});
  FERRY_EXPECT_OK(files);  // still served from the mirror
  std::filesystem::rename(upstream_->dir() + "/moved.git", upstream_->dir() + "/upstream.git");
}

TEST_F(WriterTest, UnknownBranchIsNotFound) {
  Libgit2Options o;
  o.url = upstream_->url();
  o.branch = "nope";
  o.mirror_dir = upstream_->dir() + "/mirror2.git";
  auto repo = Libgit2Repository::Open(o);
  FERRY_ASSERT_OK(repo);
  auto fetched = (*repo)->Fetch();
  EXPECT_THAT(fetched,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("branch nope does not exist")));
}

// Each write leaves a small pack; every so often the mirror's packs are folded into one and
// the object database reopened, with every ref still resolving and writes going on.
TEST_F(WriterTest, ManyWritesKeepFewPacksAndEveryRef) {
  for (int i = 0; i < 40; ++i) {
    ApplyRequest req;
    req.edits = {ImageEdit("apps:deployment/web", "web", absl::StrCat("nginx:2.", i))};
    req.note = absl::StrCat("{\"id\":\"job-", i, "\"}");
    absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
    FERRY_ASSERT_OK(out) << i;
    ASSERT_EQ(out->revision, upstream_->Head()) << i;
  }
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", upstream_->Head()));
  // The fold runs beside the writes; its end is waited for.
  writer_->WaitForMaintenance();
  const std::set<std::string> packs = PackFiles(upstream_->dir() + "/mirror.git");
  EXPECT_LT(packs.size(), 40u);  // 41 writes (a commit with its note each, a tag), folded every 32
  EXPECT_EQ(*writer_->GetSyncMarker("ferry-sync"), upstream_->Head());
  auto notes = writer_->ListNotes(100);
  FERRY_ASSERT_OK(notes);
  EXPECT_EQ(notes->size(), 40u);
  auto files = writer_->ReadManifests("", {});
  FERRY_ASSERT_OK(files);
  EXPECT_EQ((*files)[1].content, Deployment("web", "nginx:2.39"));
  // A fresh mirror process reads the same history from the repacked mirror.
  OpenWriter({});
  FERRY_ASSERT_OK(writer_->Refresh());
  EXPECT_EQ(writer_->ListNotes(100)->size(), 40u);
}

// The Writer's fold of every pack (what the refs reach) runs beside the writes: a release
// made while it runs is not held off. The fold is then set aside, the one after it (every
// object kept) is put in place, and the mirror serves every release.
TEST_F(WriterTest, AReleaseIsNotHeldOffByAFoldOfEveryPack) {
  // Shared with the fold's thread, which may outlive a test that failed early.
  struct Hold {
    absl::Notification fold_ran, release_made;
    std::atomic<int> runs{0};
  };
  auto hold = std::make_shared<Hold>();
  absl::Notification& fold_ran = hold->fold_ran;
  absl::Notification& release_made = hold->release_made;
  std::atomic<int>& runs = hold->runs;
  hooked_->after_maintenance_run = [hold] {
    if (++hold->runs > 1) return;
    hold->fold_ran.Notify();
    // At most a minute: without the release, the test fails below rather than hangs.
    hold->release_made.WaitForNotificationWithTimeout(absl::Minutes(1));
  };
  auto release = [&](const std::string& image) {
    ApplyRequest req;
    req.edits = {ImageEdit("apps:deployment/web", "web", image)};
    return writer_->Apply(req);
  };
  for (int i = 0; i < 32; ++i) FERRY_ASSERT_OK(release(absl::StrCat("nginx:2.", i))) << i;
  ASSERT_TRUE(fold_ran.WaitForNotificationWithTimeout(absl::Minutes(1)));
  // The fold's Run is over and its thread held before Finish: a write now must not wait.
  absl::StatusOr<ApplyOutcome> during = release("nginx:3.0");
  release_made.Notify();
  FERRY_ASSERT_OK(during);
  EXPECT_EQ(during->revision, upstream_->Head());
  writer_->WaitForMaintenance();
  EXPECT_EQ(runs.load(), 2) << "the fold set aside was not followed by one keeping every object";
  const std::string mirror = upstream_->dir() + "/mirror.git";
  EXPECT_LE(PackFiles(mirror).size(), 2u);
  ExpectFsckClean(mirror);
  auto files = writer_->ReadManifests("", {"apps/web.yaml"});
  FERRY_ASSERT_OK(files);
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].content, Deployment("web", "nginx:3.0"));
}

// A commit of `image` for apps/web.yaml on the mirror's head, pushed by the mirror alone: no
// Writer, so no fold starts on its own.
void PushWithoutWriter(Libgit2Repository& repo, const std::string& image) {
  CommitSpec spec;
  spec.parent = *repo.Head();
  spec.files = {{"apps/web.yaml", Deployment("web", image)}};
  spec.message = "release " + image;
  spec.author = spec.committer = {"Ferry", "ferry@example.com"};
  absl::StatusOr<std::string> commit = repo.CreateCommit(spec);
  FERRY_ASSERT_OK(commit);
  FERRY_ASSERT_OK(repo.PushBranch(*commit));
}

// The due fold of `repo` (whose mirror is `mirror`), with `after_run` and then a release of
// `image` between its Run and its Finish, is put in place: the mirror holds its pack and the
// release's, nothing more is due, and git reads every object.
void ExpectFoldPutInPlaceBesideAWrite(Libgit2Repository& repo, const std::string& mirror,
                                      const std::string& image,
                                      const std::function<void()>& after_run) {
  std::unique_ptr<Maintenance> fold = repo.DueMaintenance();
  ASSERT_NE(fold, nullptr);
  FERRY_ASSERT_OK(fold->Run());
  after_run();
  PushWithoutWriter(repo, image);
  FERRY_ASSERT_OK(fold->Finish());
  EXPECT_EQ(PackFiles(mirror).size(), 2u);
  EXPECT_EQ(repo.DueMaintenance(), nullptr);
  ExpectFsckClean(mirror);
}

// A fold that merges every pack keeps what the refs reach, and runs beside the writes like
// any other. Should one come meanwhile, the fold is set aside, for that write may rely on an
// object the fold left out; the fold after it keeps every object and is put in place.
TEST_F(WriterTest, AFoldOfWhatTheRefsReachIsSetAsideWhenTheMirrorWasWrittenMeanwhile) {
  const std::string mirror = upstream_->dir() + "/mirror.git";
  FERRY_ASSERT_OK(repo_->Fetch());
  EXPECT_EQ(repo_->DueMaintenance(), nullptr);  // nothing written yet
  for (int i = 0; i < 32; ++i) PushWithoutWriter(*repo_, absl::StrCat("nginx:2.", i));
  std::unique_ptr<Maintenance> fold = repo_->DueMaintenance();
  ASSERT_NE(fold, nullptr);
  const std::set<std::string> before = PackFiles(mirror);
  FERRY_ASSERT_OK(fold->Run());  // a small repo: every pack merges, into what the refs reach
  const std::set<std::string> written = PacksSince(mirror, before);
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(PackFiles(mirror).size(), before.size() + 1);  // Run removes nothing
  PushWithoutWriter(*repo_, "nginx:3.0");
  const std::set<std::string> meanwhile = PacksSince(mirror, before);
  FERRY_ASSERT_OK(fold->Finish());
  std::set<std::string> kept = before;
  for (const std::string& p : meanwhile) {
    if (!written.count(p)) kept.insert(p);
  }
  EXPECT_EQ(PackFiles(mirror), kept) << "the fold was put in place, or the old packs went";

  // Due at once, keeping every object, beside the writes.
  ExpectFoldPutInPlaceBesideAWrite(*repo_, mirror, "nginx:3.1", [] {});
  // The mirror serves the last release.
  auto files = repo_->ReadManifests(*repo_->Head(), {"apps"});
  FERRY_ASSERT_OK(files);
  ASSERT_FALSE(files->empty());
  EXPECT_EQ(files->back().content, Deployment("web", "nginx:3.1"));
}

// An object no ref of `mirror` reaches, in a pack of its own (not loose): its id.
std::string UnreachableBlobInAPack(const std::string& mirror, const std::string& text) {
  int rc = -1;
  const std::string blob(absl::StripAsciiWhitespace(testing::RunCommand(
      "echo " + text + " | git --git-dir=" + mirror + " hash-object -w --stdin", &rc)));
  EXPECT_EQ(rc, 0);
  testing::RunCommand(absl::StrCat("echo ", blob, " | git --git-dir=", mirror, " pack-objects -q ",
                                   mirror, "/objects/pack/pack"),
                      &rc);
  EXPECT_EQ(rc, 0);
  std::filesystem::remove(mirror + "/objects/" + blob.substr(0, 2) + "/" + blob.substr(2));
  return blob;
}

// The due fold of `repo` (whose mirror is `mirror`), run and finished with nothing written
// between, replaces every pack: the mirror holds only the pack it wrote.
void ExpectFoldOfEveryPackPutInPlace(Libgit2Repository& repo, const std::string& mirror) {
  std::unique_ptr<Maintenance> fold = repo.DueMaintenance();
  ASSERT_NE(fold, nullptr);
  const std::set<std::string> before = PackFiles(mirror);
  FERRY_ASSERT_OK(fold->Run());
  const std::set<std::string> written = PacksSince(mirror, before);
  FERRY_ASSERT_OK(fold->Finish());
  EXPECT_EQ(PackFiles(mirror), written) << "the fold of every pack was not put in place";
}

// Tags of tags, and refs to a blob and a tree, survive a fold of every pack: each tag on the
// way is packed, and what a ref names is packed with what it holds, commit or not.
TEST_F(WriterTest, AFoldOfWhatTheRefsReachKeepsTagsOfTagsAndRefsToBlobsAndTrees) {
  const std::string mirror = upstream_->dir() + "/mirror.git";
  const std::string git = "git --git-dir=" + mirror + " -c user.name=t -c user.email=t@e ";
  FERRY_ASSERT_OK(repo_->Fetch());
  for (int i = 0; i < 32; ++i) PushWithoutWriter(*repo_, absl::StrCat("nginx:2.", i));
  int rc = -1;
  // outer -> inner -> the head commit; refs/tags/inner then deleted, so only outer names it.
  testing::RunCommand(git + "tag -a -m inner inner refs/heads/main", &rc);
  ASSERT_EQ(rc, 0);
  testing::RunCommand(git + "tag -a -m outer outer inner", &rc);
  ASSERT_EQ(rc, 0);
  const std::string inner(
      absl::StripAsciiWhitespace(testing::RunCommand(git + "rev-parse refs/tags/inner", &rc)));
  testing::RunCommand(git + "update-ref -d refs/tags/inner", &rc);
  ASSERT_EQ(rc, 0);
  const std::string blob = UnreachableBlobInAPack(mirror, "named-by-a-ref");
  testing::RunCommand(git + "update-ref refs/tags/a-blob " + blob, &rc);
  ASSERT_EQ(rc, 0);
  testing::RunCommand(git + "update-ref refs/tags/a-tree refs/heads/main^{tree}", &rc);
  ASSERT_EQ(rc, 0);
  // Objects git wrote loose go into packs, so that the fold merges every one.
  testing::RunCommand(git + "repack -q", &rc);
  ASSERT_EQ(rc, 0);
  ExpectFoldOfEveryPackPutInPlace(*repo_, mirror);
  for (const std::string& id : {inner, blob}) {
    testing::RunCommand("git --git-dir=" + mirror + " cat-file -e " + id, &rc);
    EXPECT_EQ(rc, 0) << "the fold dropped " << id;
  }
  ExpectFsckClean(mirror);
}

// A ref that moves while a fold of what the refs reach runs, even with no pack written (a
// failed push's refs put back, a fetch of a branch that went back), may name an object the
// fold left out: the fold is set aside, the object stays, and the next fold keeps every
// object.
TEST_F(WriterTest, AFoldOfWhatTheRefsReachIsSetAsideWhenARefMovedMeanwhile) {
  const std::string mirror = upstream_->dir() + "/mirror.git";
  FERRY_ASSERT_OK(repo_->Fetch());
  for (int i = 0; i < 32; ++i) PushWithoutWriter(*repo_, absl::StrCat("nginx:2.", i));
  const std::string blob = UnreachableBlobInAPack(mirror, "left-out");
  std::unique_ptr<Maintenance> fold = repo_->DueMaintenance();
  ASSERT_NE(fold, nullptr);
  const std::set<std::string> before = PackFiles(mirror);
  FERRY_ASSERT_OK(fold->Run());  // every pack merges, into what the refs reach: not the blob
  ASSERT_EQ(PacksSince(mirror, before).size(), 1u);
  { std::ofstream(mirror + "/refs/tags/moved") << blob << "\n"; }  // no pack written
  FERRY_ASSERT_OK(fold->Finish());
  EXPECT_EQ(PackFiles(mirror), before) << "the fold was put in place";
  int rc = -1;
  testing::RunCommand("git --git-dir=" + mirror + " cat-file -e " + blob, &rc);
  EXPECT_EQ(rc, 0) << "the fold dropped an object a ref names";
  // The next one keeps every object (the blob too), and is put in place.
  ExpectFoldPutInPlaceBesideAWrite(*repo_, mirror, "nginx:3.0", [] {});
  testing::RunCommand("git --git-dir=" + mirror + " cat-file -e " + blob, &rc);
  EXPECT_EQ(rc, 0) << "the fold dropped an object a ref names";
}

// With nothing written and no ref moved meanwhile, a fold of what the refs reach is put in
// place, and what no ref reaches is gone.
TEST_F(WriterTest, AFoldOfWhatTheRefsReachDropsWhatNoRefReaches) {
  const std::string mirror = upstream_->dir() + "/mirror.git";
  FERRY_ASSERT_OK(repo_->Fetch());
  for (int i = 0; i < 32; ++i) PushWithoutWriter(*repo_, absl::StrCat("nginx:2.", i));
  const std::string blob = UnreachableBlobInAPack(mirror, "garbage");
  ExpectFoldOfEveryPackPutInPlace(*repo_, mirror);
  int rc = -1;
  testing::RunCommand("git --git-dir=" + mirror + " cat-file -e " + blob + " 2>/dev/null", &rc);
  EXPECT_NE(rc, 0) << "the unreachable object was kept";
  ExpectFsckClean(mirror);
  EXPECT_EQ(repo_->DueMaintenance(), nullptr);
}

// A fold that fails (here its repack program) is not tried again at the next write, but
// once as many writes came again.
TEST_F(WriterTest, AFoldThatFailedWaitsForAsManyWritesAgain) {
  Libgit2Options o;
  o.url = upstream_->url();
  o.branch = "main";
  o.mirror_dir = upstream_->dir() + "/failing-mirror.git";
  o.repack_program = "/bin/false";
  auto repo = Libgit2Repository::Open(o);
  FERRY_ASSERT_OK(repo);
  FERRY_ASSERT_OK((*repo)->Fetch());
  for (int i = 0; i < 32; ++i) PushWithoutWriter(**repo, absl::StrCat("nginx:2.", i));
  std::unique_ptr<Maintenance> fold = (*repo)->DueMaintenance();
  ASSERT_NE(fold, nullptr);
  EXPECT_THAT(fold->Run(), StatusIs(absl::StatusCode::kInternal, HasSubstr("exit code 1")));
  fold.reset();
  for (int i = 0; i < 31; ++i) {
    PushWithoutWriter(**repo, absl::StrCat("nginx:3.", i));
    ASSERT_EQ((*repo)->DueMaintenance(), nullptr) << i;
  }
  PushWithoutWriter(**repo, "nginx:4.0");
  EXPECT_NE((*repo)->DueMaintenance(), nullptr);
}

// A Writer that goes while a fold runs cancels it: the repack child is killed rather than
// waited for (up to kRepackTimeout), so a git-writer shutting down is not held by a fold.
TEST_F(WriterTest, AWriterThatGoesCancelsTheFoldItRuns) {
  const std::string dir = upstream_->dir() + "/slow-repack";
  std::filesystem::create_directories(dir);
  const std::string program = dir + "/repack";
  {
    std::ofstream script(program);
    script << "#!/bin/sh\necho $$ > " << dir << "/pid\ntouch " << dir << "/started\nsleep 30\n"
           << "touch " << dir << "/finished\nexit 1\n";
  }
  std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  Libgit2Options o;
  o.url = upstream_->url();
  o.branch = "main";
  o.mirror_dir = upstream_->dir() + "/cancelled-mirror.git";
  o.repack_program = program;
  auto repo = Libgit2Repository::Open(o);
  FERRY_ASSERT_OK(repo);
  WriterOptions options;
  options.committer = {"Ferry", "ferry@example.com"};
  auto writer = std::make_unique<Writer>(**repo, options, metrics_);
  for (int i = 0; i < 32; ++i) {
    ApplyRequest req;
    req.edits = {ImageEdit("apps:deployment/web", "web", absl::StrCat("nginx:2.", i))};
    FERRY_ASSERT_OK(writer->Apply(req)) << i;
  }
  // The fold's child has started (30 s at most on a loaded machine).
  for (int i = 0; i < 3000 && !std::filesystem::exists(dir + "/started"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(std::filesystem::exists(dir + "/started")) << "no fold started";
  writer.reset();
  EXPECT_FALSE(std::filesystem::exists(dir + "/finished")) << "the fold was waited for";
  std::ifstream pid_file(dir + "/pid");
  pid_t pid = 0;
  pid_file >> pid;
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), -1) << "the repack child still runs";
  // The mirror is whole.
  FERRY_EXPECT_OK((*repo)->Fetch());
  ExpectFsckClean(o.mirror_dir);
}

// A git-writer that only fetches (read-only here; the same for an upstream others write
// to) folds the packs its fetches bring, as it does those of its own writes; a fetch that
// brings nothing counts for nothing.
TEST_F(WriterTest, PacksThatFetchesBringAreFoldedToo) {
  WriterOptions options;
  options.readonly = true;
  OpenWriter(options);
  const std::string mirror = upstream_->dir() + "/mirror.git";
  auto folds = std::make_shared<std::atomic<int>>(0);  // shared with the fold's thread
  hooked_->after_maintenance_run = [folds] { ++*folds; };
  for (int i = 0; i < 32; ++i) {
    FERRY_ASSERT_OK(upstream_->CommitWithCli(
        {{"apps/web.yaml", Deployment("web", absl::StrCat("nginx:2.", i))}}, "someone else"));
    absl::StatusOr<HeadInfo> head = writer_->Refresh();
    FERRY_ASSERT_OK(head) << i;
    ASSERT_EQ(head->revision, upstream_->Head()) << i;
  }
  writer_->WaitForMaintenance();
  EXPECT_GE(folds->load(), 1);
  EXPECT_LE(PackFiles(mirror).size(), 2u) << "the fetched packs were not folded";
  *folds = 0;
  for (int i = 0; i < 40; ++i) FERRY_ASSERT_OK(writer_->Refresh());
  writer_->WaitForMaintenance();
  EXPECT_EQ(folds->load(), 0) << "fetches that brought nothing counted";
  ExpectFsckClean(mirror);
  auto files = writer_->ReadManifests("", {"apps/web.yaml"});
  FERRY_ASSERT_OK(files);
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].content, Deployment("web", "nginx:2.31"));
}

// A ref naming an object that is not on disk (as while a write moved the ref and has not
// written its objects yet) turns a fold of what the refs reach into one of every object,
// which is put in place whatever was written meanwhile.
TEST_F(WriterTest, AFoldMeetingARefToAnObjectNotWrittenYetKeepsEveryObject) {
  const std::string mirror = upstream_->dir() + "/mirror.git";
  FERRY_ASSERT_OK(repo_->Fetch());
  for (int i = 0; i < 32; ++i) PushWithoutWriter(*repo_, absl::StrCat("nginx:2.", i));
  const std::string blob = UnreachableBlobInAPack(mirror, "unreachable");
  const std::string ref = mirror + "/refs/heads/in-progress";
  { std::ofstream(ref) << std::string(40, '7') << "\n"; }
  ExpectFoldPutInPlaceBesideAWrite(*repo_, mirror, "nginx:3.0",
                                   [&] { std::filesystem::remove(ref); });
  int rc = -1;
  testing::RunCommand("git --git-dir=" + mirror + " cat-file -e " + blob, &rc);
  EXPECT_EQ(rc, 0) << "the fold dropped an object";
}

// What the repack child prints is what its parent reads back; anything else is refused.
TEST(FoldResultTest, TheChildsAnswerReadsBackAndNothingElseIsTakenForOne) {
  FoldResult fold;
  fold.reachable_only = true;
  fold.new_pack = "pack-" + std::string(40, 'a');
  fold.replaced = {"pack-" + std::string(40, '1'), "pack-" + std::string(40, 'f')};
  absl::StatusOr<FoldResult> read = FoldResult::Parse(fold.Serialize());
  FERRY_ASSERT_OK(read);
  EXPECT_TRUE(read->reachable_only);
  EXPECT_EQ(read->new_pack, fold.new_pack);
  EXPECT_EQ(read->replaced, fold.replaced);
  EXPECT_FALSE(read->new_pack_existed);
  fold.new_pack_existed = true;  // a pack the fold found again: never removed
  read = FoldResult::Parse(fold.Serialize());
  FERRY_ASSERT_OK(read);
  EXPECT_TRUE(read->new_pack_existed);
  EXPECT_EQ(read->new_pack, fold.new_pack);
  fold.roots_digest = RootsDigest(
      {{"refs/heads/main", std::string(40, 'c')}, {"refs/notes/ferry", std::string(40, 'd')}});
  EXPECT_EQ(fold.roots_digest.size(), 64u);
  EXPECT_NE(fold.roots_digest, RootsDigest({{"refs/heads/main", std::string(40, 'c')}}));
  EXPECT_NE(fold.roots_digest, RootsDigest({{"refs/heads/main", std::string(40, 'c')},
                                            {"refs/notes/ferry", std::string(40, 'e')}}));
  read = FoldResult::Parse(fold.Serialize());
  FERRY_ASSERT_OK(read);
  EXPECT_EQ(read->roots_digest, fold.roots_digest);
  FERRY_ASSERT_OK(FoldResult::Parse("all\n"));  // nothing worth folding
  for (const std::string& bad : std::vector<std::string>{
           "", "all\nreplaces pack-" + std::string(40, 'a') + "\n",
           "all\nnew ../pack-" + std::string(40, 'a') + "\n",
           "all\nnew pack-" + std::string(40, 'a') + "\nexisting pack-" + std::string(40, 'b') +
               "\n",
           "all\nnew pack-" + std::string(39, 'a') + "\n", "some\n",
           "all\nnew pack-" + std::string(40, 'a') + "\nreplaces pack-" + std::string(40, 'a') +
               "\n",
           "all\nnew pack-" + std::string(40, 'a') + "\nreplaces pack-" + std::string(40, 'b') +
               "\nreplaces pack-" + std::string(40, 'b') + "\n",
           "all\nnew pack-" + std::string(40, 'A') + "\n",
           "all\nroots " + std::string(64, 'c') + "\n",
           "reachable\nroots " + std::string(64, 'c') + "\nroots " + std::string(64, 'd') + "\n",
           "reachable\nroots " + std::string(63, 'c') + "\n",
           "reachable\nroots " + std::string(64, 'C') + "\n", "reachable\nroots\n"}) {
    EXPECT_THAT(FoldResult::Parse(bad), StatusIs(absl::StatusCode::kInternal)) << bad;
  }
}

// The ids every caller takes or refuses alike (lib/manifest/workload_id_test_cases.h), through
// the service: one that is not an id is refused with WorkloadId's message before anything is
// written; a valid one reaches the writer (and is not in this repository).
TEST_F(WriterTest, ServiceTakesWorkloadIdsAsEveryServiceDoes) {
  GitWriterService service(*writer_, ServiceOptions{});
  const std::string before = upstream_->Head();
  for (const auto& c : manifest::testing::kWorkloadIdCases) {
    const std::string id(c.text);
    ferry::v1::ApplyUpdatesRequest request;
    ferry::v1::Edit* edit = request.add_edits();
    edit->set_workload(id);
    edit->mutable_image()->set_container("web");
    edit->mutable_image()->set_to_image("nginx:1.26");
    ferry::v1::ApplyUpdatesResponse response;
    const grpc::Status s = service.ApplyUpdates(nullptr, &request, &response);
    if (c.problem.empty()) {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound)) << id;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                              Eq(std::string(manifest::WorkloadId::Parse(id).status().message()))))
          << id;
    }
  }
  EXPECT_EQ(upstream_->Head(), before);
}

// A request naming workloads is answered from the index directly, a listing from the entries
// made once per revision: both give the same answer for the same workload, and a named id
// that is not a workload of the repo is simply not in the answer.
TEST_F(WriterTest, ServiceAnswersNamedWorkloadsAsItListsThem) {
  FERRY_ASSERT_OK(upstream_->CommitWithCli(
      {{"apps/web.yaml",
        Deployment("web", "nginx:1.25", "  annotations:\n    ferry.dev/tag.web: semver:~1\n")}},
      "A tag filter"));
  FERRY_ASSERT_OK(writer_->Refresh());
  GitWriterService service(*writer_, ServiceOptions{});
  ferry::v1::ListManifestWorkloadsRequest named_request;
  named_request.add_ids("apps:deployment/web");
  named_request.add_ids("apps:deployment/gone");
  ferry::v1::ListManifestWorkloadsResponse named;
  ASSERT_TRUE(service.ListWorkloads(nullptr, &named_request, &named).ok());
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> index, writer_->IndexAt(""));
  EXPECT_FALSE(index->answers_made) << "a named read made the entries of every workload";
  ferry::v1::ListManifestWorkloadsRequest all_request;
  ferry::v1::ListManifestWorkloadsResponse all;
  ASSERT_TRUE(service.ListWorkloads(nullptr, &all_request, &all).ok());
  EXPECT_TRUE(index->answers_made);
  // Once they are made, named reads use them: the same answer.
  ferry::v1::ListManifestWorkloadsResponse named_again;
  ASSERT_TRUE(service.ListWorkloads(nullptr, &named_request, &named_again).ok());
  ASSERT_EQ(named_again.workloads_size(), 1);
  EXPECT_EQ(named_again.workloads(0).SerializeAsString(), named.workloads(0).SerializeAsString());
  ASSERT_EQ(all.workloads_size(), 2);
  ASSERT_EQ(named.workloads_size(), 1);
  const ferry::v1::ManifestWorkload& listed = all.workloads(1);
  ASSERT_EQ(listed.id(), "apps:deployment/web");
  EXPECT_EQ(named.workloads(0).SerializeAsString(), listed.SerializeAsString());
  EXPECT_EQ(listed.policy().tag_filters().at("web"), "semver:~1");
  EXPECT_EQ(named.revision(), all.revision());
  EXPECT_FALSE(named.more());
}

// A reader that names the revision it holds gets only what changed since: after Ferry's own
// commit (the index carried over) and after one from upstream (the index built anew), and
// everything when that revision's index is not at hand.
TEST_F(WriterTest, ManifestsAtMarksTheFilesServedTheSameAtTheKnownRevision) {
  FERRY_ASSERT_OK(writer_->Refresh());
  const std::string first = writer_->CurrentHead().revision;
  auto unchanged_of = [](const Writer::ServedManifests& served) {
    std::map<std::string, bool> out;
    for (const Writer::ServedFile& f : served.files) {
      out[*f.path] = f.unchanged;
      EXPECT_FALSE(f.unchanged && !f.error.empty()) << *f.path;
    }
    return out;
  };
  using Marks = std::map<std::string, bool>;
  FERRY_ASSERT_OK_AND_ASSIGN(Writer::ServedManifests same, writer_->ManifestsAt(first, first));
  EXPECT_EQ(unchanged_of(same), (Marks{{"apps/api.yaml", true}, {"apps/web.yaml", true}}));
  FERRY_ASSERT_OK_AND_ASSIGN(Writer::ServedManifests whole, writer_->ManifestsAt(first));
  EXPECT_EQ(unchanged_of(whole), (Marks{{"apps/api.yaml", false}, {"apps/web.yaml", false}}));

  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome released, writer_->Apply(req));
  FERRY_ASSERT_OK_AND_ASSIGN(Writer::ServedManifests after_release,
                             writer_->ManifestsAt(released.revision, first));
  EXPECT_EQ(unchanged_of(after_release),
            (Marks{{"apps/api.yaml", true}, {"apps/web.yaml", false}}));
  for (const Writer::ServedFile& f : after_release.files) {
    if (*f.path == "apps/web.yaml") {
      EXPECT_THAT(*f.content, HasSubstr("nginx:1.26"));
    }
  }

  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/api.yaml", Deployment("api", "example/api:1.1.0")},
                                {"apps/db.yaml", Deployment("db", "postgres:17")}},
                               "Upstream"));
  FERRY_ASSERT_OK(writer_->Refresh());
  const std::string upstream_head = writer_->CurrentHead().revision;
  FERRY_ASSERT_OK_AND_ASSIGN(Writer::ServedManifests after_upstream,
                             writer_->ManifestsAt(upstream_head, released.revision));
  EXPECT_EQ(unchanged_of(after_upstream),
            (Marks{{"apps/api.yaml", false}, {"apps/db.yaml", false}, {"apps/web.yaml", true}}));
  // `first`'s index has left the cache (two are kept): nothing is marked, nothing built.
  FERRY_ASSERT_OK_AND_ASSIGN(Writer::ServedManifests from_first,
                             writer_->ManifestsAt(upstream_head, first));
  EXPECT_EQ(unchanged_of(from_first),
            (Marks{{"apps/api.yaml", false}, {"apps/db.yaml", false}, {"apps/web.yaml", false}}));
}

// known_revision is a full commit id, for the configured paths only.
TEST_F(WriterTest, ServiceRefusesAKnownRevisionItCannotUse) {
  FERRY_ASSERT_OK(writer_->Refresh());
  GitWriterService service(*writer_, ServiceOptions{});
  ferry::v1::ReadManifestsRequest short_id;
  short_id.set_known_revision("abc123");
  grpc::Status s = service.ReadManifests(nullptr, &short_id, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("known_revision must be a full 40-hex commit id"));
  ferry::v1::ReadManifestsRequest with_paths;
  with_paths.set_known_revision(writer_->CurrentHead().revision);
  with_paths.add_paths("apps");
  s = service.ReadManifests(nullptr, &with_paths, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("leave paths empty"));
}

// --git_commit_template: the message of a commit with an image and a policy change, read
// back with the git CLI, ends with the Ferry-Job trailer git itself parses.
TEST_F(WriterTest, CommitTemplateRendersTheMessageAndTheJobTrailerEndsIt) {
  absl::StatusOr<CommitTemplate> t = CommitTemplate::Parse(
      "{{kind}} by {{user}}: {{subject}}\n"
      "\n"
      "{{#images}}\n"
      "* {{workload}} {{container}}: {{from}} -> {{to}}\n"
      "{{/images}}\n"
      "{{#policies}}\n"
      "* {{workload}}: {{policy}}\n"
      "{{/policies}}\n"
      "\n"
      "{{message}}\n");
  FERRY_ASSERT_OK(t);
  WriterOptions options;
  options.commit_template = std::make_shared<const CommitTemplate>(*std::move(t));
  OpenWriter(options);
  FERRY_ASSERT_OK(writer_->Refresh());
  EditRequest lock;
  lock.workload = "apps:deployment/api";
  lock.policy = manifest::PolicyUpdate{};
  lock.policy->automated = true;
  lock.policy->tag_filters["api"] = "semver:~1";
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26", "nginx:1.25"), lock};
  req.job_id = "job-7";
  req.job_kind = "release";
  req.user = "Alice <alice@example.com>";
  req.cause_message = "CI build 12\r\nhttps://ci.example.com/12";
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  ASSERT_FALSE(out->revision.empty());
  EXPECT_EQ(upstream_->Git("log -1 --format=%B " + out->revision),
            "release by Alice <alice@example.com>: Release apps:deployment/web web: nginx:1.26\n"
            "\n"
            "* apps:deployment/web web: nginx:1.25 -> nginx:1.26\n"
            "* apps:deployment/api: automated, tag.api=semver:~1\n"
            "\n"
            "CI build 12\n"
            "https://ci.example.com/12\n"
            "\n"
            "Ferry-Job: job-7\n"
            "\n");
  EXPECT_EQ(
      upstream_->Git("log -1 '--format=%(trailers:key=Ferry-Job,valueonly)' " + out->revision),
      "job-7\n\n");

  // The list is cut to the commit message limit, with "and N more"; the trailer stays.
  options.max_commit_message_bytes = 170;
  OpenWriter(options);
  FERRY_ASSERT_OK(writer_->Refresh());
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.27", "nginx:1.26"),
               ImageEdit("apps:deployment/api", "api", "example/api:1.1.0", "example/api:1.0.0")};
  req.cause_message.clear();
  out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  const std::string cut = upstream_->Git("log -1 --format=%B " + out->revision);
  EXPECT_EQ(cut,
            "release by Alice <alice@example.com>: Release 2 images\n"
            "\n"
            "* apps:deployment/web web: nginx:1.26 -> nginx:1.27\n"
            "and 1 more\n"
            "\n"
            "Ferry-Job: job-7\n"
            "\n");
  EXPECT_LE(cut.size() - 1, 170u);
}

// Without a template, Ferry's own message gains the trailer too (after --git_ci_skip's
// marker); a commit of a request without a job has none.
TEST_F(WriterTest, JobTrailerWithoutTemplate) {
  WriterOptions options;
  options.message_suffix = "[ci skip]";
  OpenWriter(options);
  FERRY_ASSERT_OK(writer_->Refresh());
  ApplyRequest req;
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.26")};
  req.job_id = "job-8";
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(upstream_->Git("log -1 --format=%B " + out->revision),
            "Release apps:deployment/web web: nginx:1.26\n\n[ci skip]\n\nFerry-Job: job-8\n\n");
  EXPECT_EQ(
      upstream_->Git("log -1 --format=%B " + out->revision + " | git interpret-trailers --parse"),
      "Ferry-Job: job-8\n");
  req.edits = {ImageEdit("apps:deployment/web", "web", "nginx:1.27")};
  req.job_id.clear();
  out = writer_->Apply(req);
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(upstream_->Git("log -1 --format=%B " + out->revision),
            "Release apps:deployment/web web: nginx:1.27\n\n[ci skip]\n");
}

}  // namespace
}  // namespace ferry::git_writer
