// Release branches (--git_push_branch) against real git: a bare upstream over file://, the
// source branch and the push branch changed, merged and checked with the git CLI.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/config.h"
#include "services/git-writer/git_writer_service.h"
#include "services/git-writer/libgit2_repository.h"
#include "services/git-writer/signer.h"
#include "services/git-writer/writer.h"
#include "tests/support/git_repo.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::GitRepo;
using ::ferry::testing::RunCommand;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kBranch[] = "ferry/releases";
constexpr char kNextJob[] = "<next job>";  // Release: a new job id each time

std::string Deployment(const std::string& name, const std::string& image) {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
                      "\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n"
                      "      - name: ",
                      name, "\n        image: ", image, "\n");
}

// Forwards to a real repository; lets a test act just before a push to a push branch.
class HookedRepository : public Repository {
 public:
  explicit HookedRepository(Repository& inner) : inner_(inner) {}
  std::function<void()> before_push_to;

  absl::StatusOr<std::string> Fetch() override { return inner_.Fetch(); }
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
  absl::Status PushBranch(const std::string& c) override { return inner_.PushBranch(c); }
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
  absl::StatusOr<std::string> FetchBranch(const std::string& b) override {
    return inner_.FetchBranch(b);
  }
  absl::StatusOr<std::vector<BranchCommit>> CommitsBetween(const std::string& b,
                                                           const std::string& t,
                                                           size_t l) override {
    return inner_.CommitsBetween(b, t, l);
  }
  absl::StatusOr<bool> IsAncestor(const std::string& a, const std::string& c) override {
    return inner_.IsAncestor(a, c);
  }
  absl::StatusOr<ReplayResult> Replay(const std::string& c, const std::string& o,
                                      const Signature& w) override {
    return inner_.Replay(c, o, w);
  }
  absl::Status PushTo(const std::string& b, const std::string& c, const std::string& e) override {
    if (before_push_to) {
      auto hook = std::move(before_push_to);
      before_push_to = nullptr;
      hook();
    }
    return inner_.PushTo(b, c, e);
  }
  void ForgetBranch(const std::string& b) override { inner_.ForgetBranch(b); }

 private:
  Repository& inner_;
};

// Signs with a real SSH key; after `succeed` more signatures, fails as ssh-keygen does when
// its key is gone (or it is killed): FailedPrecondition.
class FailingSigner : public Signer {
 public:
  explicit FailingSigner(std::unique_ptr<Signer> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::string> Sign(absl::string_view payload) override {
    if (succeed >= 0 && succeed-- == 0) {
      return absl::FailedPreconditionError("ssh-keygen -Y sign with /keys/sign failed: killed");
    }
    return inner_->Sign(payload);
  }
  const SigningKey& key() const override { return inner_->key(); }
  int succeed = -1;  // < 0: every signature succeeds

 private:
  std::unique_ptr<Signer> inner_;
};

class PushBranchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto upstream = GitRepo::Create({
        {"apps/web.yaml", Deployment("web", "nginx:1.25")},
        {"apps/api.yaml", Deployment("api", "example/api:1.0.0")},
    });
    FERRY_ASSERT_OK(upstream);
    upstream_ = *std::move(upstream);
    OpenWriter(false);
  }

  void OpenWriter(bool force, const std::string& branch = kBranch,
                  std::shared_ptr<Signer> signer = nullptr) {
    writer_.reset();
    hooked_.reset();
    repo_.reset();
    Libgit2Options o;
    o.url = upstream_->url();
    o.branch = "main";
    o.mirror_dir = upstream_->dir() + "/mirror.git";
    o.signer = signer;
    auto repo = Libgit2Repository::Open(o);
    FERRY_ASSERT_OK(repo);
    repo_ = *std::move(repo);
    WriterOptions options;
    options.committer = {"Ferry", "ferry@example.com"};
    if (o.signer != nullptr) {
      auto own = SshVerifier::ForKey(o.signer->key().public_key);
      FERRY_ASSERT_OK(own);
      options.own_signatures = *std::move(own);
    }
    options.push_branch = branch;
    options.push_branch_force = force;
    hooked_ = std::make_unique<HookedRepository>(*repo_);
    writer_ = std::make_unique<Writer>(*hooked_, options, metrics_);
  }

  absl::StatusOr<ApplyOutcome> Release(const std::string& workload, const std::string& to,
                                       const std::string& from, const std::string& job = kNextJob) {
    ApplyRequest request;
    // Ferry's commits carry their job's trailer (the api always sends a job).
    request.job_id = job == kNextJob ? absl::StrCat("job-", ++jobs_) : job;
    EditRequest e;
    e.workload = workload;
    e.image = manifest::ImageChange{workload.substr(workload.find('/') + 1), to, from};
    request.edits = {e};
    request.note = "{\"job\":\"" + to + "\"}";
    return writer_->Apply(request);
  }

  // `git <args>` in a scratch clone of upstream with the given branch checked out, as
  // someone else ("Tester") would work; returns its output and fails the test on error.
  std::string InClone(const std::string& branch, const std::string& commands) {
    const std::string work = absl::StrCat(upstream_->dir(), "/clone-", clones_++);
    const std::string env =
        "GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com GIT_COMMITTER_NAME=Tester "
        "GIT_COMMITTER_EMAIL=tester@example.com GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent";
    int status = 0;
    std::string out =
        RunCommand(absl::StrCat("export ", env, "; git clone -q -b ", branch, " ", upstream_->url(),
                                " ", work, " 2>&1 && cd ", work, " && ", commands, " 2>&1"),
                   &status);
    EXPECT_EQ(status, 0) << out;
    std::filesystem::remove_all(work);
    return out;
  }

  // The mirror's branch refs (refs/heads/, refs/remotes/) other than the source branch's.
  std::string MirrorRefsBesidesMain() {
    int status = 0;
    const std::string out = RunCommand(
        absl::StrCat("git --git-dir=", upstream_->dir(),
                     "/mirror.git for-each-ref --format='%(refname)' refs/heads refs/remotes"),
        &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_THAT(out, HasSubstr("refs/remotes/origin/main\n"));  // the listing works
    std::string others;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      if (line != "refs/heads/main" && line != "refs/remotes/origin/main") {
        absl::StrAppend(&others, line, "\n");
      }
    }
    return others;
  }

  std::string RevParse(const std::string& rev) {
    return std::string(absl::StripAsciiWhitespace(upstream_->Git("rev-parse " + rev)));
  }

  prometheus::Registry registry_;
  WriterMetrics metrics_{registry_};
  std::unique_ptr<GitRepo> upstream_;
  std::unique_ptr<Libgit2Repository> repo_;
  std::unique_ptr<HookedRepository> hooked_;
  std::unique_ptr<Writer> writer_;
  int clones_ = 0;
  int jobs_ = 0;
};

TEST_F(PushBranchTest, AReleaseLandsOnThePushBranchAndMainStays) {
  const std::string main_before = upstream_->Head();
  absl::StatusOr<ApplyOutcome> out = Release("apps:deployment/web", "nginx:1.26", "nginx:1.25");
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(out->pushed_branch, kBranch);
  EXPECT_TRUE(out->dropped.empty());
  EXPECT_EQ(RevParse("main"), main_before);
  EXPECT_EQ(RevParse(kBranch), out->revision);
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "^")), main_before);
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.26"));
  EXPECT_THAT(upstream_->Show("main", "apps/web.yaml"), HasSubstr("image: nginx:1.25"));
  // The job note is on the commit; the served head is still main.
  EXPECT_THAT(upstream_->Git("notes --ref=refs/notes/ferry show " + out->revision),
              HasSubstr("nginx:1.26"));
  EXPECT_EQ(writer_->CurrentHead().revision, main_before);

  // A second release fast-forwards the branch: Ferry's first commit stays below it.
  absl::StatusOr<ApplyOutcome> second =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  FERRY_ASSERT_OK(second);
  EXPECT_EQ(RevParse(kBranch), second->revision);
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "^")), out->revision);
  EXPECT_EQ(RevParse("main"), main_before);
  EXPECT_EQ(MirrorRefsBesidesMain(),
            absl::StrCat("refs/heads/", kBranch, "\nrefs/remotes/origin/", kBranch, "\n"));
  EXPECT_EQ(metrics_.push_branch_writes.Add({{"outcome", "created"}}).Value(), 1);
  EXPECT_EQ(metrics_.push_branch_writes.Add({{"outcome", "fast_forward"}}).Value(), 1);
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.26"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/api.yaml"), HasSubstr("image: example/api:1.1.0"));
}

TEST_F(PushBranchTest, AMovedSourceBranchRebuildsThePushBranchWithFerrysPendingCommit) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  absl::StatusOr<std::string> moved =
      upstream_->CommitWithCli({{"apps/db.yaml", Deployment("db", "postgres:16")}}, "add db");
  FERRY_ASSERT_OK(moved);

  absl::StatusOr<ApplyOutcome> out =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  FERRY_ASSERT_OK(out);
  EXPECT_TRUE(out->dropped.empty());
  EXPECT_EQ(RevParse("main"), *moved);
  // main + the earlier release re-applied + this one.
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "~2")), *moved);
  EXPECT_EQ(RevParse(kBranch), out->revision);
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.26"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/api.yaml"), HasSubstr("image: example/api:1.1.0"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/db.yaml"), HasSubstr("postgres:16"));
  // Both commits are Ferry's, with their messages.
  EXPECT_EQ(upstream_->Git(absl::StrCat("log --format=%cn main..", kBranch)), "Ferry\nFerry\n");
}

TEST_F(PushBranchTest, APendingCommitThatNoLongerAppliesIsDroppedAndReported) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  // Someone changes the same line on main.
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.27")}}, "web 1.27"));
  absl::StatusOr<ApplyOutcome> out =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  FERRY_ASSERT_OK(out);
  ASSERT_EQ(out->dropped.size(), 1u);
  EXPECT_THAT(out->dropped[0], HasSubstr("conflicts with the source branch"));
  EXPECT_EQ(metrics_.push_branch_writes.Add({{"outcome", "rebuilt"}}).Value(), 1);
  EXPECT_EQ(metrics_.push_branch_dropped.Value(), 1);
  EXPECT_THAT(out->dropped[0], HasSubstr("apps/web.yaml"));
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "^")), upstream_->Head());
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.27"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/api.yaml"), HasSubstr("image: example/api:1.1.0"));
}

TEST_F(PushBranchTest, ASigningFailureWhileRebuildingFailsTheWriteAndKeepsThePendingCommit) {
  const std::string key = upstream_->dir() + "/sign";
  int status = 0;
  const std::string made = RunCommand(
      absl::StrCat("ssh-keygen -q -t ed25519 -N '' -C ferry -f ", key, " 2>&1"), &status);
  ASSERT_EQ(status, 0) << made;
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> ssh, SshSigner::Create(key));
  auto signer = std::make_shared<FailingSigner>(std::move(ssh));
  OpenWriter(false, kBranch, signer);
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  const std::string pending = RevParse(kBranch);
  // main moves: the next release rebuilds the branch, re-applying (and signing) the pending
  // commit, which fails after the release's own commit was signed.
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/db.yaml", Deployment("db", "postgres:16")}}, "add db"));
  signer->succeed = 1;
  absl::StatusOr<ApplyOutcome> out =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  EXPECT_THAT(out.status(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("sign")));
  EXPECT_EQ(RevParse(kBranch), pending);
  EXPECT_EQ(metrics_.push_branch_dropped.Value(), 0);

  // The key signs again: the pending commit is kept, rebuilt on the moved main.
  signer->succeed = -1;
  FERRY_ASSERT_OK_AND_ASSIGN(
      ApplyOutcome again, Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0"));
  EXPECT_TRUE(again.dropped.empty());
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.26"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/api.yaml"), HasSubstr("image: example/api:1.1.0"));
}

TEST_F(PushBranchTest, ANewerReleaseOfTheSameContainerSupersedesThePendingOne) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  FERRY_ASSERT_OK(Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0"));
  // Planned from main (which still has 1.25), as the api does.
  absl::StatusOr<ApplyOutcome> out = Release("apps:deployment/web", "nginx:1.27", "nginx:1.25");
  FERRY_ASSERT_OK(out);
  ASSERT_EQ(out->dropped.size(), 1u);
  EXPECT_THAT(out->dropped[0], HasSubstr("superseded by a newer change"));
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "~2")), upstream_->Head());
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "~1")), out->revision);
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.27"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/api.yaml"), HasSubstr("image: example/api:1.1.0"));
}

TEST_F(PushBranchTest, AMergeIntoMainIsServedAndTheNextReleaseStartsFromIt) {
  absl::StatusOr<ApplyOutcome> out = Release("apps:deployment/web", "nginx:1.26", "nginx:1.25");
  FERRY_ASSERT_OK(out);
  InClone("main", absl::StrCat("git merge -q --no-ff -m 'Merge release' origin/", kBranch,
                               " && git push -q origin main"));
  const std::string merged = upstream_->Head();
  ASSERT_NE(merged, out->revision);
  // git-writer serves the merge (the syncer follows Head: its own tests apply a moved head).
  absl::StatusOr<HeadInfo> head = writer_->Refresh();
  FERRY_ASSERT_OK(head);
  EXPECT_EQ(head->revision, merged);
  absl::StatusOr<std::shared_ptr<const Index>> index = writer_->IndexAt("");
  FERRY_ASSERT_OK(index);
  EXPECT_THAT(*(*index)->files.at("apps/web.yaml"), HasSubstr("image: nginx:1.26"));

  // The next release goes on top of the merge; nothing is dropped.
  absl::StatusOr<ApplyOutcome> next = Release("apps:deployment/web", "nginx:1.27", "nginx:1.26");
  FERRY_ASSERT_OK(next);
  EXPECT_TRUE(next->dropped.empty());
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "^")), merged);
  EXPECT_EQ(RevParse("main"), merged);
}

TEST_F(PushBranchTest, SomeoneElsesCommitIsNeverOverwrittenWithoutForce) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  InClone(kBranch, absl::StrCat("echo '# reviewed' >> apps/web.yaml && git commit -q -am "
                                "'review fix' && git push -q origin ",
                                kBranch));
  const std::string foreign = RevParse(kBranch);

  absl::StatusOr<ApplyOutcome> refused =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(kBranch)));
  EXPECT_THAT(refused.status().message(), HasSubstr(foreign.substr(0, 12)));
  EXPECT_THAT(refused.status().message(), HasSubstr("review fix"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--git_push_branch_force"));
  EXPECT_EQ(RevParse(kBranch), foreign);
  EXPECT_EQ(metrics_.push_branch_writes.Add({{"outcome", "refused"}}).Value(), 1);

  OpenWriter(/*force=*/true);
  absl::StatusOr<ApplyOutcome> forced =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  FERRY_ASSERT_OK(forced);
  ASSERT_EQ(forced->dropped.size(), 1u);
  EXPECT_THAT(forced->dropped[0], HasSubstr(foreign.substr(0, 12)));
  // Rebuilt from main: Ferry's earlier release and this one, the foreign commit gone.
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "~2")), upstream_->Head());
  EXPECT_EQ(upstream_->Git(absl::StrCat("log --format=%cn main..", kBranch)), "Ferry\nFerry\n");
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.26"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), ::testing::Not(HasSubstr("reviewed")));
}

// A committer name and email anyone can set: a commit with Ferry's but no Ferry-Job trailer
// is someone else's.
TEST_F(PushBranchTest, ACommitWithFerrysCommitterButNoJobTrailerIsSomeoneElses) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  InClone(kBranch, absl::StrCat("echo '# sneaked' >> apps/web.yaml && GIT_COMMITTER_NAME=Ferry "
                                "GIT_COMMITTER_EMAIL=ferry@example.com git commit -q -am "
                                "'looks like ferry' && git push -q origin ",
                                kBranch));
  const std::string foreign = RevParse(kBranch);
  EXPECT_EQ(upstream_->Git("log -1 --format=%cn " + foreign), "Ferry\n");
  EXPECT_THAT(Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("looks like ferry")));
  EXPECT_EQ(RevParse(kBranch), foreign);
}

// With signing, Ferry's commits are those signed by its own key: a commit with Ferry's
// committer and a Ferry-Job trailer, unsigned, is refused, and with --git_push_branch_force
// dropped (never re-created and signed with Ferry's key).
TEST_F(PushBranchTest, WithSigningACommitNotSignedByFerrysKeyIsSomeoneElses) {
  const std::string key = upstream_->dir() + "/sign";
  int status = 0;
  const std::string made = RunCommand(
      absl::StrCat("ssh-keygen -q -t ed25519 -N '' -C ferry -f ", key, " 2>&1"), &status);
  ASSERT_EQ(status, 0) << made;
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> ssh, SshSigner::Create(key));
  std::shared_ptr<Signer> signer = std::move(ssh);
  OpenWriter(false, kBranch, signer);
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  // Ferry's own signed commit is Ferry's: the next release goes on top of it.
  FERRY_ASSERT_OK(Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0"));
  EXPECT_EQ(upstream_->Git(absl::StrCat("rev-list --count main..", kBranch)), "2\n");
  InClone(kBranch, absl::StrCat("echo '# sneaked' >> apps/web.yaml && GIT_COMMITTER_NAME=Ferry "
                                "GIT_COMMITTER_EMAIL=ferry@example.com git commit -q -am "
                                "'looks like ferry' -m 'Ferry-Job: job-1' && git push -q origin ",
                                kBranch));
  const std::string foreign = RevParse(kBranch);
  EXPECT_THAT(Release("apps:deployment/web", "nginx:1.27", "nginx:1.25"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("looks like ferry")));
  EXPECT_EQ(RevParse(kBranch), foreign);

  OpenWriter(/*force=*/true, kBranch, signer);
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome forced,
                             Release("apps:deployment/web", "nginx:1.27", "nginx:1.25"));
  ASSERT_FALSE(forced.dropped.empty());
  EXPECT_THAT(forced.dropped[0], HasSubstr(foreign.substr(0, 12)));
  EXPECT_THAT(forced.dropped[0], HasSubstr("someone else's commit"));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), ::testing::Not(HasSubstr("sneaked")));
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.27"));
  EXPECT_THAT(upstream_->Git(absl::StrCat("log --format=%s main..", kBranch)),
              ::testing::Not(HasSubstr("looks like ferry")));
}

// Automation plans from main, which still has the old image: asking again for what the
// push branch already holds changes nothing (no new commit each time).
TEST_F(PushBranchTest, ARepeatedReleaseOfWhatThePushBranchHoldsIsNoChange) {
  absl::StatusOr<ApplyOutcome> first = Release("apps:deployment/web", "nginx:1.26", "nginx:1.25");
  FERRY_ASSERT_OK(first);
  absl::StatusOr<ApplyOutcome> again = Release("apps:deployment/web", "nginx:1.26", "nginx:1.25");
  FERRY_ASSERT_OK(again);
  EXPECT_TRUE(again->no_changes);
  EXPECT_EQ(again->pushed_branch, kBranch);
  EXPECT_EQ(RevParse(kBranch), first->revision);
}

// Someone pushes onto the push branch between Ferry's read of it and its push: even the
// forced push of a rebuilt branch does not overwrite that commit (compare-and-set).
TEST_F(PushBranchTest, ACommitPushedWhileFerryRebuildsTheBranchIsNotOverwritten) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/db.yaml", Deployment("db", "postgres:16")}}, "add db"));
  std::string foreign;
  hooked_->before_push_to = [&] {
    InClone(kBranch, absl::StrCat("echo '# reviewed' >> apps/web.yaml && git commit -q -am "
                                  "'review fix' && git push -q origin ",
                                  kBranch));
    foreign = RevParse(kBranch);
  };
  // The rebuild's push is refused; the retry reads the branch again and finds the commit.
  EXPECT_THAT(Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("review fix")));
  ASSERT_FALSE(foreign.empty());
  EXPECT_EQ(RevParse(kBranch), foreign);
  EXPECT_GE(metrics_.push_conflicts.Value(), 1);
}

TEST_F(PushBranchTest, ADeletedPushBranchIsCreatedAgain) {
  FERRY_ASSERT_OK(Release("apps:deployment/web", "nginx:1.26", "nginx:1.25"));
  upstream_->Git(absl::StrCat("branch -D ", kBranch));
  ASSERT_EQ(RevParse(kBranch), kBranch);  // gone: rev-parse echoes the name on stdout
  absl::StatusOr<ApplyOutcome> out =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0");
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "^")), upstream_->Head());
  EXPECT_THAT(upstream_->Show(kBranch, "apps/web.yaml"), HasSubstr("image: nginx:1.25"));
}

TEST_F(PushBranchTest, AJobFieldMakesOneBranchPerJob) {
  OpenWriter(false, "ferry/release-{{job}}");
  const std::string main_before = upstream_->Head();
  absl::StatusOr<ApplyOutcome> first =
      Release("apps:deployment/web", "nginx:1.26", "nginx:1.25", "job-1");
  FERRY_ASSERT_OK(first);
  EXPECT_EQ(first->pushed_branch, "ferry/release-job-1");
  absl::StatusOr<ApplyOutcome> second =
      Release("apps:deployment/api", "example/api:1.1.0", "example/api:1.0.0", "job-2");
  FERRY_ASSERT_OK(second);
  EXPECT_EQ(second->pushed_branch, "ferry/release-job-2");
  // Each branch holds its own job's change on main.
  EXPECT_EQ(RevParse("ferry/release-job-1"), first->revision);
  EXPECT_EQ(RevParse("ferry/release-job-2"), second->revision);
  EXPECT_EQ(RevParse("ferry/release-job-2^"), main_before);
  EXPECT_THAT(upstream_->Show("ferry/release-job-2", "apps/web.yaml"),
              HasSubstr("image: nginx:1.25"));
  EXPECT_EQ(RevParse("main"), main_before);
  // Upstream holds the branches; the mirror keeps no ref of either (one per job would pile
  // up), while a fixed push branch keeps its own (AReleaseLandsOnThePushBranchAndMainStays).
  EXPECT_EQ(MirrorRefsBesidesMain(), "");

  EXPECT_THAT(Release("apps:deployment/web", "nginx:1.27", "nginx:1.25", ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("without a job id")));
  EXPECT_THAT(Release("apps:deployment/web", "nginx:1.27", "nginx:1.25", "bad..id"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a valid branch name")));
}

// Through the service: the response says which branch holds the change and, after a rebuild,
// which of Ferry's commits it lost; the job (the commit's note and trailer) names its job.
TEST_F(PushBranchTest, TheServiceAnswersWithThePushedBranchAndTheDroppedCommits) {
  GitWriterService service(*writer_, ServiceOptions{});
  auto apply = [&](const std::string& workload, const std::string& container,
                   const std::string& from, const std::string& to,
                   ferry::v1::ApplyUpdatesResponse* response) {
    ferry::v1::ApplyUpdatesRequest request;
    ferry::v1::Edit* edit = request.add_edits();
    edit->set_workload(workload);
    edit->mutable_image()->set_container(container);
    edit->mutable_image()->set_from_image(from);
    edit->mutable_image()->set_to_image(to);
    request.mutable_job()->set_id("job-" + to.substr(to.find(':') + 1));
    if (to.ends_with(":9999")) {  // a job the JSON mapping cannot write: past year 9999
      request.mutable_job()->mutable_submitted()->set_seconds(int64_t{1} << 40);
    }
    return service.ApplyUpdates(nullptr, &request, response);
  };
  ferry::v1::ApplyUpdatesResponse refused;
  grpc::Status bad_job = apply("apps:deployment/web", "web", "nginx:1.25", "nginx:9999", &refused);
  EXPECT_EQ(bad_job.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_job.error_message(), HasSubstr("job:"));
  const std::string main_before = RevParse("main");
  ferry::v1::ApplyUpdatesResponse first;
  ASSERT_TRUE(apply("apps:deployment/web", "web", "nginx:1.25", "nginx:1.26", &first).ok());
  EXPECT_EQ(first.pushed_branch(), kBranch);
  EXPECT_EQ(first.revision(), RevParse(kBranch));
  EXPECT_EQ(first.dropped_commits_size(), 0);
  EXPECT_EQ(RevParse(absl::StrCat(kBranch, "^")), main_before) << "the refused job pushed nothing";
  EXPECT_THAT(upstream_->Git("log -1 --format=%B " + first.revision()),
              HasSubstr("Ferry-Job: job-1.26"));
  // The job's note names the branch, so a job restored from it still says where it went.
  ferry::v1::Job noted;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  upstream_->Git("notes --ref=refs/notes/ferry show " + first.revision()), &noted)
                  .ok());
  EXPECT_EQ(noted.id(), "job-1.26");
  EXPECT_EQ(noted.pushed_branch(), kBranch);

  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"apps/web.yaml", Deployment("web", "nginx:1.27")}}, "web 1.27"));
  ferry::v1::ApplyUpdatesResponse second;
  ASSERT_TRUE(
      apply("apps:deployment/api", "api", "example/api:1.0.0", "example/api:1.1.0", &second).ok());
  EXPECT_EQ(second.pushed_branch(), kBranch);
  ASSERT_EQ(second.dropped_commits_size(), 1);
  EXPECT_THAT(second.dropped_commits(0), HasSubstr(first.revision().substr(0, 12)));
}

absl::StatusOr<Config> Parse(std::vector<std::string> args) {
  CLI::App app("ferry-git-writer");
  Flags flags;
  AddFlags(app, flags);
  args.insert(args.begin(), {"--git_url=file:///srv/config.git", "--state_dir=/tmp/x"});
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  app.parse(reversed);
  return ToConfig(flags);
}

TEST(PushBranchConfigTest, TheBranchIsAValidRefNameOtherThanTheSource) {
  absl::StatusOr<Config> config = Parse({"--git_push_branch=ferry/releases"});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->writer.push_branch, "ferry/releases");
  EXPECT_FALSE(config->writer.push_branch_force);
  config = Parse({"--git_push_branch=ferry/release-{{job}}"});
  FERRY_ASSERT_OK(config);
  EXPECT_EQ(config->writer.push_branch, "ferry/release-{{job}}");
  config = Parse({"--git_push_branch=ferry/releases", "--git_push_branch_force"});
  FERRY_ASSERT_OK(config);
  EXPECT_TRUE(config->writer.push_branch_force);

  for (const std::string bad : {"ferry..x", "ferry/x.lock", "a b", "-x", "ferry/", "x~1", "main",
                                "ferry/{{workload}}", "a:b", "x/{{job}}.lock", "{{job}"}) {
    EXPECT_THAT(Parse({"--git_push_branch=" + bad}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--git_push_branch")))
        << bad;
  }
  EXPECT_THAT(Parse({"--git_push_branch_force"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--git_push_branch_force")));
}

// One rule for the flag and for the branches a job id names.
TEST(PushBranchConfigTest, OneBranchNameRule) {
  FERRY_EXPECT_OK(Libgit2Repository::ValidateBranchName("ferry/release-job-1"));
  const std::string long_name = "ferry/" + std::string(195, 'a');
  FERRY_EXPECT_OK(Libgit2Repository::ValidateBranchName(long_name.substr(0, 200)));
  for (const std::string& bad : {long_name, std::string("-x"), std::string("a..b"),
                                 std::string("x.lock"), std::string("")}) {
    EXPECT_THAT(Libgit2Repository::ValidateBranchName(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a valid branch name")))
        << bad;
  }
  EXPECT_THAT(Parse({"--git_push_branch=" + long_name}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--git_push_branch")));
}

TEST(PushBranchConfigTest, TheBinaryExitsWithTwoNamingTheFlag) {
  int status = 0;
  const std::string out = RunCommand(
      absl::StrCat(FERRY_GIT_WRITER_BIN,
                   " --grpc_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 "
                   "--git_url=file:///nonexistent.git --state_dir=/tmp/ferry-push-branch-state "
                   "--git_push_branch='bad..name' 2>&1"),
      &status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_THAT(out, HasSubstr("--git_push_branch"));
  EXPECT_THAT(out, HasSubstr("bad..name"));
}

}  // namespace
}  // namespace ferry::git_writer
