// Libgit2Repository's TreeId, ExportTree, the kustomization files ReadManifests serves and
// the dates of the commits it makes,
// against real repositories: a bare upstream over file:// made with the git CLI, and trees
// git refuses to make (symlinks, submodules, hostile names) written with libgit2 into it.
#include <git2.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/libgit2_repository.h"
#include "tests/support/git_repo.h"

namespace ferry::git_writer {
namespace {

namespace fs = std::filesystem;

using ::ferry::testing::GitRepo;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// The value, or the error as text (which no tree id equals).
std::string ValueOf(const absl::StatusOr<std::string>& id) {
  return id.ok() ? *id : id.status().ToString();
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) == 0;
}

// Writes objects into the bare upstream with libgit2 and moves its branch.
class UpstreamWriter {
 public:
  explicit UpstreamWriter(const GitRepo& upstream) : branch_("refs/heads/" + upstream.branch()) {
    git_libgit2_init();
    EXPECT_EQ(git_repository_open_bare(&repo_, (upstream.dir() + "/upstream.git").c_str()), 0);
  }
  ~UpstreamWriter() {
    git_repository_free(repo_);
    git_libgit2_shutdown();
  }

  git_oid Blob(const std::string& content) {
    git_oid id;
    EXPECT_EQ(git_blob_create_from_buffer(&id, repo_, content.data(), content.size()), 0);
    return id;
  }

  // A tree object written as raw bytes, so names libgit2's tree builder refuses ("..", "/",
  // control characters) can be made. `entries` (mode, name, id) must be sorted by name.
  git_oid RawTree(const std::vector<std::tuple<std::string, std::string, git_oid>>& entries) {
    std::string bytes;
    for (const auto& [mode, name, id] : entries) {
      absl::StrAppend(&bytes, mode, " ", name, std::string(1, '\0'),
                      absl::string_view(reinterpret_cast<const char*>(id.id), GIT_OID_RAWSZ));
    }
    git_odb* odb = nullptr;
    git_oid id;
    EXPECT_EQ(git_repository_odb(&odb, repo_), 0);
    EXPECT_EQ(git_odb_write(&id, odb, bytes.data(), bytes.size(), GIT_OBJECT_TREE), 0);
    git_odb_free(odb);
    return id;
  }

  // Commits the head's tree with `entries` (path -> mode, id) added or replaced, moves the
  // branch to it and returns it.
  std::string Commit(const std::vector<std::tuple<std::string, git_filemode_t, git_oid>>& entries) {
    git_oid head_id;
    EXPECT_EQ(git_reference_name_to_id(&head_id, repo_, branch_.c_str()), 0);
    git_commit* head = nullptr;
    git_tree* tree = nullptr;
    EXPECT_EQ(git_commit_lookup(&head, repo_, &head_id), 0);
    EXPECT_EQ(git_commit_tree(&tree, head), 0);
    std::vector<git_tree_update> updates;
    for (const auto& [path, mode, id] : entries) {
      updates.push_back({GIT_TREE_UPDATE_UPSERT, id, mode, path.c_str()});
    }
    git_oid tree_id;
    git_oid commit_id;
    EXPECT_EQ(git_tree_create_updated(&tree_id, repo_, tree, updates.size(), updates.data()), 0);
    git_tree* new_tree = nullptr;
    git_signature* who = nullptr;
    EXPECT_EQ(git_tree_lookup(&new_tree, repo_, &tree_id), 0);
    EXPECT_EQ(git_signature_now(&who, "Tester", "tester@example.com"), 0);
    const git_commit* parents[] = {head};
    EXPECT_EQ(git_commit_create(&commit_id, repo_, branch_.c_str(), who, who, "UTF-8", "tree",
                                new_tree, 1, parents),
              0);
    git_signature_free(who);
    git_tree_free(new_tree);
    git_tree_free(tree);
    git_commit_free(head);
    return git_oid_tostr_s(&commit_id);
  }

  git_oid HeadId() {
    git_oid id;
    EXPECT_EQ(git_reference_name_to_id(&id, repo_, branch_.c_str()), 0);
    return id;
  }

 private:
  std::string branch_;
  git_repository* repo_ = nullptr;
};

constexpr char kKustomization[] = "resources:\n- deploy.yaml\n";
constexpr char kDeploy[] = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

class RepositoryExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_ASSERT_OK_AND_ASSIGN(upstream_, GitRepo::Create({
                                              {"apps/base/kustomization.yaml", kKustomization},
                                              {"apps/base/deploy.yaml", kDeploy},
                                              {"apps/Kustomization", "resources:\n- base\n"},
                                              {"apps/Kustomization.txt", "notes\n"},
                                              {"apps/kustomization", "lower case\n"},
                                              {"README.md", "not a manifest\n"},
                                          }));
    OpenMirror(limits::kManifestTreeBytes.default_value);
  }

  void OpenMirror(uint64_t max_tree_bytes) {
    repo_.reset();
    Libgit2Options options;
    options.url = upstream_->url();
    options.mirror_dir = upstream_->dir() + "/mirror.git";
    options.max_tree_bytes = max_tree_bytes;
    FERRY_ASSERT_OK_AND_ASSIGN(repo_, Libgit2Repository::Open(options));
    FERRY_ASSERT_OK_AND_ASSIGN(head_, repo_->Fetch());
  }

  // Makes the libgit2 commit `write` (given the upstream) the head, and fetches it.
  template <typename Write>
  void CommitUpstream(Write write) {
    {
      UpstreamWriter writer(*upstream_);
      head_ = write(writer);
    }
    FERRY_ASSERT_OK_AND_ASSIGN(std::string fetched, repo_->Fetch());
    ASSERT_EQ(fetched, head_);
  }

  // A new empty folder to export into.
  std::string NewDest() {
    const std::string dest = absl::StrCat(upstream_->dir(), "/export-", dests_++);
    fs::create_directory(dest);
    return dest;
  }

  std::string GitTreeId(const std::string& spec) {
    return std::string(absl::StripAsciiWhitespace(upstream_->Git("rev-parse " + spec)));
  }

  std::unique_ptr<GitRepo> upstream_;
  std::unique_ptr<Libgit2Repository> repo_;
  std::string head_;
  int dests_ = 0;
};

TEST_F(RepositoryExportTest, TreeIdIsGitsTreeIdOfTheFolder) {
  const std::string root = GitTreeId(head_ + "^{tree}");
  const std::string base = GitTreeId(head_ + ":apps/base");
  ASSERT_EQ(root.size(), 40u);
  ASSERT_EQ(base.size(), 40u);
  EXPECT_EQ(ValueOf(repo_->TreeId(head_, "")), root);
  EXPECT_EQ(ValueOf(repo_->TreeId(head_, ".")), root);
  EXPECT_EQ(ValueOf(repo_->TreeId(head_, "apps/base")), base);
  EXPECT_EQ(ValueOf(repo_->TreeId(head_, "apps/base/")), base);
}

TEST_F(RepositoryExportTest, TreeIdChangesOnlyForFoldersThatChanged) {
  FERRY_ASSERT_OK_AND_ASSIGN(const std::string base, repo_->TreeId(head_, "apps/base"));
  FERRY_ASSERT_OK_AND_ASSIGN(const std::string apps, repo_->TreeId(head_, "apps"));
  FERRY_ASSERT_OK_AND_ASSIGN(std::string next,
                             upstream_->CommitWithCli({{"apps/other.yaml", kDeploy}}, "other"));
  FERRY_ASSERT_OK_AND_ASSIGN(std::string fetched, repo_->Fetch());
  ASSERT_EQ(fetched, next);
  EXPECT_EQ(ValueOf(repo_->TreeId(next, "apps/base")), base);
  EXPECT_NE(ValueOf(repo_->TreeId(next, "apps")), apps);
}

TEST_F(RepositoryExportTest, TreeIdErrors) {
  EXPECT_THAT(repo_->TreeId(head_, "apps/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("apps/missing")));
  EXPECT_THAT(repo_->TreeId(head_, "README.md"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo_->TreeId(std::string(40, 'a'), ""), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo_->TreeId(head_, "../etc"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->TreeId(head_, "/etc"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A commit made just after a second began carries that second. time() follows the kernel's
// coarse clock, which still names the second before for up to a tick after it ended: an
// automated release made the moment a tag's soak ended was dated before that moment.
TEST_F(RepositoryExportTest, ACommitMadeRightAfterASecondBeganCarriesThatSecond) {
  const Signature who{"Ferry", "ferry@example.com"};
  std::string parent = head_;
  for (int i = 0; i < 3; ++i) {
    const absl::Time second = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 1);
    absl::SleepFor(second - absl::Now() - absl::Milliseconds(5));
    while (absl::Now() < second) {
      std::this_thread::yield();
    }
    FERRY_ASSERT_OK_AND_ASSIGN(
        parent,
        repo_->CreateCommit({parent,
                             {{"apps/base/deploy.yaml", absl::StrCat(kDeploy, "# ", i, "\n")}},
                             "edit",
                             who,
                             who}));
    FERRY_ASSERT_OK_AND_ASSIGN(const absl::Time dated, repo_->CommitTime(parent));
    EXPECT_GE(dated, second) << "commit " << i << " is dated " << absl::FormatTime(dated)
                             << ", made after " << absl::FormatTime(second);
  }
}

TEST_F(RepositoryExportTest, ExportsTheFolderAtItsPathWithItsBytes) {
  const std::string dest = NewDest();
  FERRY_ASSERT_OK(repo_->ExportTree(head_, "apps/base", dest));
  EXPECT_EQ(ReadFile(dest + "/apps/base/kustomization.yaml"), kKustomization);
  EXPECT_EQ(ReadFile(dest + "/apps/base/deploy.yaml"), kDeploy);
  EXPECT_FALSE(Exists(dest + "/apps/Kustomization"));  // only the folder asked for
  EXPECT_FALSE(Exists(dest + "/README.md"));

  // Again, and a folder that holds it: the files are replaced.
  FERRY_ASSERT_OK(repo_->ExportTree(head_, "apps/base", dest));
  FERRY_ASSERT_OK(repo_->ExportTree(head_, "apps", dest));
  EXPECT_EQ(ReadFile(dest + "/apps/Kustomization"), "resources:\n- base\n");
  EXPECT_EQ(ReadFile(dest + "/apps/base/deploy.yaml"), kDeploy);

  const std::string whole = NewDest();
  FERRY_ASSERT_OK(repo_->ExportTree(head_, "", whole));
  EXPECT_EQ(ReadFile(whole + "/README.md"), "not a manifest\n");
  EXPECT_EQ(ReadFile(whole + "/apps/base/deploy.yaml"), kDeploy);
}

TEST_F(RepositoryExportTest, ExportsExecutablesAs0644AndSkipsSymlinksAndSubmodules) {
  CommitUpstream([](UpstreamWriter& w) {
    return w.Commit({
        {"apps/run.sh", GIT_FILEMODE_BLOB_EXECUTABLE, w.Blob("#!/bin/sh\necho hi\n")},
        {"apps/link.yaml", GIT_FILEMODE_LINK, w.Blob("../../../../etc/passwd")},
        {"apps/vendor", GIT_FILEMODE_COMMIT, w.HeadId()},
    });
  });
  const std::string dest = NewDest();
  FERRY_ASSERT_OK(repo_->ExportTree(head_, "apps", dest));
  EXPECT_EQ(ReadFile(dest + "/apps/run.sh"), "#!/bin/sh\necho hi\n");
  struct stat info;
  ASSERT_EQ(::stat((dest + "/apps/run.sh").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0644u);
  ASSERT_EQ(::stat((dest + "/apps/base/deploy.yaml").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0644u);
  EXPECT_FALSE(Exists(dest + "/apps/link.yaml"));
  EXPECT_FALSE(Exists(dest + "/apps/vendor"));
  // Nor does ReadManifests serve the symlink (its blob is the path it points to).
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<RepoFile> files, repo_->ReadManifests(head_, {"apps"}));
  for (const RepoFile& f : files) EXPECT_NE(f.path, "apps/link.yaml");
  EXPECT_THAT(repo_->ReadManifests(head_, {"apps/link.yaml"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("symlink")));
}

TEST_F(RepositoryExportTest, RefusesHostileNames) {
  struct Case {
    std::string name;
    std::string shown;
  };
  for (const Case& c : std::vector<Case>{{"..", "evil/.."},
                                         {".", "evil/."},
                                         {"a/b", "evil/a/b"},
                                         {"bad\xff.yaml", "evil/bad\\xff.yaml"},
                                         {"new\nline.yaml", "evil/new\\nline.yaml"}}) {
    SCOPED_TRACE(c.shown);
    CommitUpstream([&](UpstreamWriter& w) {
      return w.Commit(
          {{"evil", GIT_FILEMODE_TREE, w.RawTree({{"100644", c.name, w.Blob("kind: Secret\n")}})}});
    });
    const std::string dest = NewDest();
    EXPECT_THAT(repo_->ExportTree(head_, "evil", dest),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.shown)));
    EXPECT_THAT(repo_->ExportTree(head_, "", NewDest()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.shown)));
    // Nothing was written next to the export.
    EXPECT_FALSE(Exists(upstream_->dir() + "/kind"));
    EXPECT_FALSE(Exists(dest + "/evil/a"));
  }
}

TEST_F(RepositoryExportTest, NeverWritesThroughSymlinksInTheDestination) {
  const std::string outside = NewDest();
  std::ofstream(outside + "/deploy.yaml") << "outside\n";

  // A folder of the export that is a symlink to somewhere else: refused.
  const std::string dest = NewDest();
  fs::create_directory_symlink(outside, dest + "/apps");
  EXPECT_THAT(repo_->ExportTree(head_, "apps/base", dest), Not(::ferry::testing::IsOk()));
  EXPECT_FALSE(Exists(outside + "/base"));

  // A file of the export that is a symlink: the link is replaced, its target untouched.
  const std::string second = NewDest();
  fs::create_directories(second + "/apps/base");
  fs::create_symlink(outside + "/deploy.yaml", second + "/apps/base/deploy.yaml");
  FERRY_ASSERT_OK(repo_->ExportTree(head_, "apps/base", second));
  EXPECT_EQ(ReadFile(outside + "/deploy.yaml"), "outside\n");
  EXPECT_EQ(ReadFile(second + "/apps/base/deploy.yaml"), kDeploy);
  EXPECT_FALSE(fs::is_symlink(second + "/apps/base/deploy.yaml"));
}

TEST_F(RepositoryExportTest, ExportErrors) {
  EXPECT_THAT(repo_->ExportTree(head_, "apps/missing", NewDest()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo_->ExportTree(head_, "README.md", NewDest()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo_->ExportTree(head_, "../apps", NewDest()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(repo_->ExportTree(head_, "apps", upstream_->dir() + "/no-such-dest"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(RepositoryExportTest, ExportOverTheTreeLimitIsResourceExhausted) {
  OpenMirror(sizeof(kDeploy) + sizeof(kKustomization));  // apps/base fits, apps does not
  FERRY_EXPECT_OK(repo_->ExportTree(head_, "apps/base", NewDest()));
  EXPECT_THAT(
      repo_->ExportTree(head_, "apps", NewDest()),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("--max_manifest_tree_bytes")));
}

TEST_F(RepositoryExportTest, ReadManifestsListsKustomizationFiles) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<RepoFile> files, repo_->ReadManifests(head_, {}));
  std::vector<std::string> paths;
  for (const RepoFile& file : files) paths.push_back(file.path);
  EXPECT_THAT(paths, ::testing::ElementsAre("apps/Kustomization", "apps/base/deploy.yaml",
                                            "apps/base/kustomization.yaml"));
  EXPECT_EQ(files[0].content, "resources:\n- base\n");
  EXPECT_EQ(files[0].blob, GitTreeId(head_ + ":apps/Kustomization"));
  EXPECT_EQ(files[0].error, "");
}

}  // namespace
}  // namespace ferry::git_writer
