// ferry-git-writer against hostile requests and a hostile repo, as a real process on
// loopback over a real file:// upstream: bad authors, messages and names are refused with
// INVALID_ARGUMENT before anything is written, a failed write leaves the mirror as it was,
// files that cannot be served (too big, names that are not UTF-8) fail alone, answers stay
// within their limits, the diff of a release applies with `git apply`, and a long run of
// releases is folded by a child process, without rewriting the history, not in the
// service's own heap.
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/git_repo.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

using testing::GitRepo;
using testing::RunCommand;
using testing::Running;
using testing::StartArgv;

constexpr char kWorkload[] = "default:deployment/web";

std::string Deployment(const std::string& name, const std::string& image) {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
                      "\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n"
                      "      - name: ",
                      name, "\n        image: ", image, "\n");
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

// A git-writer on a fresh upstream holding `files` (apps/web.yaml by default).
struct GitWriter {
  explicit GitWriter(std::map<std::string, std::string> files = {},
                     std::vector<std::string> flags = {}) {
    if (files.empty()) files = {{"apps/web.yaml", Deployment("web", "nginx:1.25")}};
    auto created = GitRepo::Create(files);
    FERRY_EXPECT_OK(created);
    if (!created.ok()) return;
    repo = *std::move(created);
    std::vector<std::string> argv = {FERRY_GIT_WRITER_BIN,
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--git_url=" + repo->url(),
                                     "--state_dir=" + repo->dir() + "/state",
                                     "--git_poll_interval=1h"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    StartArgv(argv, running);
    if (running.grpc_port == 0) return;
    stub = ferry::v1::GitWriter::NewStub(running.Channel());
    // The first fetch: reads of the current head need one.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::HeadResponse head;
    grpc::Status status = stub->Head(&ctx, {}, &head);
    FERRY_EXPECT_OK(status);
  }

  bool ok() const { return stub != nullptr; }

  // The mirror's local branch ref (the push source), "" when it does not exist.
  std::string MirrorRef(const std::string& ref) const {
    return std::string(absl::StripAsciiWhitespace(
        RunCommand(absl::StrCat("git --git-dir=", repo->dir(),
                                "/state/mirror.git rev-parse --verify -q ", ref, " 2>/dev/null"))));
  }

  grpc::Status Apply(const ferry::v1::ApplyUpdatesRequest& request,
                     ferry::v1::ApplyUpdatesResponse* response = nullptr) {
    ferry::v1::ApplyUpdatesResponse ignored;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return stub->ApplyUpdates(&ctx, request, response ? response : &ignored);
  }

  grpc::Status List(ferry::v1::ListManifestWorkloadsResponse* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return stub->ListWorkloads(&ctx, {}, response);
  }

  grpc::Status Read(std::vector<ferry::v1::ManifestFile>* files,
                    const std::vector<std::string>& paths = {},
                    const std::string& known_revision = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ferry::v1::ReadManifestsRequest request;
    for (const std::string& p : paths) request.add_paths(p);
    request.set_known_revision(known_revision);
    auto stream = stub->ReadManifests(&ctx, request);
    ferry::v1::ManifestFile file;
    while (stream->Read(&file)) files->push_back(file);
    return stream->Finish();
  }

  std::unique_ptr<GitRepo> repo;
  Running running;
  std::unique_ptr<ferry::v1::GitWriter::Stub> stub;
};

// A release of the web container to `to` by `user` (none when empty).
ferry::v1::ApplyUpdatesRequest Release(const std::string& to, const std::string& user = "") {
  ferry::v1::ApplyUpdatesRequest request;
  ferry::v1::Edit* edit = request.add_edits();
  edit->set_workload(kWorkload);
  edit->mutable_image()->set_container("web");
  edit->mutable_image()->set_to_image(to);
  if (!user.empty()) request.mutable_cause()->set_user(user);
  return request;
}

TEST(HostileGitWriterTest, BadAuthorsAreInvalidArgumentAndTheNextWriteSucceeds) {
  GitWriter git;
  ASSERT_TRUE(git.ok());
  const std::string before = git.repo->Head();
  const std::map<std::string, std::string> bad = {
      {"x\ny", "control character (\\n)"},
      {"Eve\nx <e@x>", "control character (\\n)"},
      {"<>", "the email in <> is empty"},
      {"   ", "author is empty"},
      {"Al<ice> <a@x>", "'<' and '>' may only enclose the email"},
      {"Bob <not-an-email>", "is not local@domain"},
      {std::string(300, 'a'), "over the limit of 256 bytes"},
  };
  for (const auto& [user, message] : bad) {
    grpc::Status status = git.Apply(Release("nginx:1.26", user));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message))) << user;
  }
  EXPECT_EQ(git.repo->Head(), before);  // nothing was pushed

  ferry::v1::ApplyUpdatesResponse applied;
  grpc::Status status =
      git.Apply(Release("nginx:1.26", "Alice Liddell <alice@example.com>"), &applied);
  FERRY_ASSERT_OK(status);
  EXPECT_EQ(applied.revision(), git.repo->Head());
  EXPECT_EQ(git.repo->Git("log -1 --format=%an%n%ae " + applied.revision()),
            "Alice Liddell\nalice@example.com\n");
  // A bare name keeps Ferry's address.
  status = git.Apply(Release("nginx:1.27", "Jürgen"), &applied);
  FERRY_ASSERT_OK(status);
  EXPECT_EQ(git.repo->Git("log -1 --format=%an%n%ae " + applied.revision()),
            "Jürgen\nferry@localhost\n");
}

TEST(HostileGitWriterTest, AFailedPushLeavesTheMirrorAsItWas) {
  GitWriter git;
  ASSERT_TRUE(git.ok());
  ferry::v1::ApplyUpdatesResponse applied;
  FERRY_ASSERT_OK(git.Apply(Release("nginx:1.26"), &applied));
  const std::string pushed = applied.revision();
  ASSERT_EQ(git.MirrorRef("refs/heads/main"), pushed);

  // Upstream's branch is locked: the fetch works, the push of the new commit fails.
  const std::string lock = git.repo->dir() + "/upstream.git/refs/heads/main.lock";
  { std::ofstream(lock) << "locked by another writer\n"; }
  grpc::Status failed = git.Apply(Release("nginx:1.27"), &applied);
  EXPECT_THAT(failed, AllOf(Not(IsOk()), Not(StatusIs(absl::StatusCode::kInvalidArgument))));
  EXPECT_EQ(git.repo->Head(), pushed);
  EXPECT_EQ(git.MirrorRef("refs/heads/main"), pushed) << "the failed write moved a ref";
  EXPECT_EQ(git.MirrorRef("refs/remotes/origin/main"), pushed);

  std::filesystem::remove(lock);
  grpc::Status retried = git.Apply(Release("nginx:1.27"), &applied);
  FERRY_ASSERT_OK(retried);
  EXPECT_EQ(applied.revision(), git.repo->Head());
  EXPECT_TRUE(
      absl::StrContains(git.repo->Show(applied.revision(), "apps/web.yaml"), "image: nginx:1.27"));
  EXPECT_EQ(git.repo->Git("rev-parse " + applied.revision() + "^"), pushed + "\n");
}

TEST(HostileGitWriterTest, CommitMessagesAreTextWithinTheLimit) {
  GitWriter git({}, {"--max_commit_message_bytes=200"});
  ASSERT_TRUE(git.ok());
  const std::string before = git.repo->Head();
  struct Case {
    std::string message;
    std::string error;
  };
  const Case cases[] = {
      {std::string("Release\0hidden", 14), "control character (\\x00) at byte 7"},
      {"Release \x1b[31mred", "control character (\\x1b)"},
      {"Release\r\nCRLF", "control character (\\r)"},
      {std::string(201, 'm'),
       "commit message is 201 bytes, over the limit of 200 bytes (raise it with "
       "--max_commit_message_bytes)"},
  };
  for (const Case& c : cases) {
    ferry::v1::ApplyUpdatesRequest request = Release("nginx:1.26");
    request.set_message(c.message);
    grpc::Status status = git.Apply(request);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)))
        << c.error;
  }
  EXPECT_EQ(git.repo->Head(), before);

  ferry::v1::ApplyUpdatesRequest request = Release("nginx:1.26");
  request.set_message("Release web\n\n\t- nginx:1.26\n");
  ferry::v1::ApplyUpdatesResponse applied;
  FERRY_ASSERT_OK(git.Apply(request, &applied));
  EXPECT_EQ(git.repo->Git("log -1 --format=%B " + applied.revision()),
            "Release web\n\n\t- nginx:1.26\n\n");
}

TEST(HostileGitWriterTest, RequestNamesAreOneLineAndBounded) {
  GitWriter git;
  ASSERT_TRUE(git.ok());
  const std::string before = git.repo->Head();

  ferry::v1::ApplyUpdatesRequest pattern;
  ferry::v1::Edit* edit = pattern.add_edits();
  edit->set_workload(kWorkload);
  edit->mutable_policy()->mutable_set_tag_filter()->set_container("web");
  edit->mutable_policy()->mutable_set_tag_filter()->set_pattern("glob:1.*\nInjected subject");
  grpc::Status status = git.Apply(pattern);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("tag filter \"glob:1.*\\nInjected subject\" has a control "
                                         "character")));

  ferry::v1::ApplyUpdatesRequest workload = Release("nginx:1.26");
  workload.mutable_edits(0)->set_workload("default:deployment/web\nInjected");
  EXPECT_THAT(git.Apply(workload), StatusIs(absl::StatusCode::kInvalidArgument));

  ferry::v1::ApplyUpdatesRequest container = Release("nginx:1.26");
  container.mutable_edits(0)->mutable_image()->set_container(std::string(2000, 'c'));
  status = git.Apply(container);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("container: name is 2000 bytes")));

  ferry::v1::ApplyUpdatesRequest lock;
  edit = lock.add_edits();
  edit->set_workload(kWorkload);
  edit->mutable_policy()->mutable_lock()->set_user("eve\nx");
  EXPECT_THAT(git.Apply(lock), StatusIs(absl::StatusCode::kInvalidArgument));

  std::vector<ferry::v1::ManifestFile> files;
  status = git.Read(&files, {"apps/\nweb.yaml"});
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(git.repo->Head(), before);

  // A commit subject made from the request is one line.
  ferry::v1::ApplyUpdatesResponse applied;
  FERRY_ASSERT_OK(git.Apply(Release("nginx:1.26"), &applied));
  EXPECT_EQ(git.repo->Git("log -1 --format=%s " + applied.revision()),
            "Release default:deployment/web web: nginx:1.26\n");
}

TEST(HostileGitWriterTest, AFileOverTheSizeLimitFailsAloneAndIsNeverSent) {
  // 5 MiB: over gRPC's default 4 MiB receive limit, which stopped every sync before.
  std::string big = Deployment("big", "nginx:1.25") + "# " + std::string(5 << 20, 'x') + "\n";
  GitWriter git({{"apps/web.yaml", Deployment("web", "nginx:1.25")}, {"apps/big.yaml", big}});
  ASSERT_TRUE(git.ok());

  std::vector<ferry::v1::ManifestFile> files;
  grpc::Status status = git.Read(&files);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].path(), "apps/big.yaml");
  EXPECT_EQ(files[0].content(), "");
  EXPECT_TRUE(absl::StrContains(files[0].load_error(),
                                absl::StrCat("manifest file size is ", big.size(),
                                             " bytes, over the limit of 3145728 bytes (raise it "
                                             "with --max_manifest_file_bytes)")))
      << files[0].load_error();
  EXPECT_EQ(files[1].path(), "apps/web.yaml");
  EXPECT_EQ(files[1].load_error(), "");
  EXPECT_TRUE(absl::StrContains(files[1].content(), "image: nginx:1.25"));

  ferry::v1::ListManifestWorkloadsResponse index;
  status = git.List(&index);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(index.workloads_size(), 1);
  EXPECT_EQ(index.workloads(0).id(), kWorkload);
  ASSERT_EQ(index.load_errors_size(), 1);
  EXPECT_TRUE(absl::StrContains(index.load_errors(0), "apps/big.yaml: manifest file size is"))
      << index.load_errors(0);

  // The other file can still be released.
  FERRY_EXPECT_OK(git.Apply(Release("nginx:1.26")));
}

TEST(HostileGitWriterTest, AnswersOverTheirLimitsAreResourceExhaustedNamingTheFlag) {
  std::map<std::string, std::string> files;
  for (int i = 0; i < 20; ++i) {
    files[absl::StrCat("apps/w", i, ".yaml")] = Deployment(absl::StrCat("w", i), "nginx:1.25");
  }
  GitWriter git(files, {"--max_manifest_file_bytes=1000", "--max_manifest_tree_bytes=2000",
                        "--max_workload_index_bytes=1000"});
  ASSERT_TRUE(git.ok());
  std::vector<ferry::v1::ManifestFile> read;
  grpc::Status status = git.Read(&read);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("--max_manifest_tree_bytes")));

  // One folder fits the tree limit; its index does not fit the answer limit.
  GitWriter small({{"apps/web.yaml", Deployment("web", "nginx:1.25")}},
                  {"--max_workload_index_bytes=100"});
  ASSERT_TRUE(small.ok());
  ferry::v1::ListManifestWorkloadsResponse index;
  status = small.List(&index);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               AllOf(HasSubstr("workload index answer is "),
                                     HasSubstr("over the limit of 100 bytes (raise it with "
                                               "--max_workload_index_bytes)"))));
}

// A reader that names the revision it holds gets the files changed since whole, and the
// others by name, at most 1,000 to a message, all in path order; a revision git-writer has
// no index of gets everything whole.
TEST(HostileGitWriterTest, FilesUnchangedSinceAKnownRevisionComeByNameInBoundedBatches) {
  std::map<std::string, std::string> files = {{"apps/web.yaml", Deployment("web", "nginx:1.25")}};
  for (int i = 0; i < 2500; ++i) {
    files[absl::StrCat("config/cm-", 10000 + i, ".yaml")] =
        absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-", i, "}\n");
  }
  GitWriter git(files);
  ASSERT_TRUE(git.ok());
  std::vector<ferry::v1::ManifestFile> whole;
  FERRY_ASSERT_OK(git.Read(&whole));
  ASSERT_EQ(whole.size(), files.size());
  const std::string before = whole[0].revision();
  ferry::v1::ApplyUpdatesResponse released;
  FERRY_ASSERT_OK(git.Apply(Release("nginx:1.26"), &released));

  std::vector<ferry::v1::ManifestFile> since;
  FERRY_ASSERT_OK(git.Read(&since, {}, before));
  std::vector<std::string> order;  // every path, as the stream gives them
  std::vector<std::string> sent;
  int batches = 0;
  for (const ferry::v1::ManifestFile& m : since) {
    EXPECT_EQ(m.revision(), released.revision());
    EXPECT_LE(m.unchanged_paths_size(), 1000);
    if (m.unchanged_paths_size() > 0) {
      ++batches;
      EXPECT_EQ(m.path(), "");
      EXPECT_EQ(m.content(), "");
    }
    order.insert(order.end(), m.unchanged_paths().begin(), m.unchanged_paths().end());
    if (!m.path().empty()) {
      order.push_back(m.path());
      sent.push_back(m.path());
      EXPECT_THAT(m.content(), HasSubstr("nginx:1.26"));
    }
  }
  EXPECT_EQ(sent, std::vector<std::string>{"apps/web.yaml"});
  EXPECT_GE(batches, 3);
  std::vector<std::string> expected;
  for (const auto& [path, content] : files) expected.push_back(path);
  EXPECT_EQ(order, expected) << "every file once, in path order";

  std::vector<ferry::v1::ManifestFile> same;
  FERRY_ASSERT_OK(git.Read(&same, {}, released.revision()));
  std::vector<std::string> named;
  for (const ferry::v1::ManifestFile& m : same) {
    EXPECT_EQ(m.path(), "") << m.path();
    EXPECT_EQ(m.unchanged_hashes_size(), m.unchanged_paths_size());
    named.insert(named.end(), m.unchanged_paths().begin(), m.unchanged_paths().end());
  }
  EXPECT_EQ(named, expected);
  std::vector<ferry::v1::ManifestFile> unknown;
  FERRY_ASSERT_OK(git.Read(&unknown, {}, std::string(40, 'a')));
  EXPECT_EQ(unknown.size(), files.size());
  for (const ferry::v1::ManifestFile& m : unknown) EXPECT_EQ(m.unchanged_paths_size(), 0);
}

TEST(HostileGitWriterTest, FileNamesThatAreNotUtf8FailAloneEscaped) {
  GitWriter git({{"apps/web.yaml", Deployment("web", "nginx:1.25")},
                 {"default/bad\xff\xfe.yaml", Deployment("bad", "nginx:1.25")},
                 {"default/ctl\x1b.yaml", Deployment("ctl", "nginx:1.25")},
                 {"dir\xc0/inside.yaml", Deployment("inside", "nginx:1.25")}});
  ASSERT_TRUE(git.ok());

  ferry::v1::ListManifestWorkloadsResponse index;
  grpc::Status status = git.List(&index);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(index.workloads_size(), 1);
  EXPECT_EQ(index.workloads(0).id(), kWorkload);
  std::string errors;
  for (const std::string& e : index.load_errors()) absl::StrAppend(&errors, e, "\n");
  EXPECT_EQ(index.load_errors_size(), 3) << errors;
  EXPECT_TRUE(absl::StrContains(errors, "default/bad\\xff\\xfe.yaml: the file name is not UTF-8"))
      << errors;
  EXPECT_TRUE(absl::StrContains(errors, "default/ctl\\x1b.yaml: the file name")) << errors;
  EXPECT_TRUE(absl::StrContains(errors, "dir\\xc0: the folder name")) << errors;

  std::vector<ferry::v1::ManifestFile> files;
  status = git.Read(&files);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(files.size(), 4u);
  int served = 0;
  for (const ferry::v1::ManifestFile& f : files) {
    if (f.load_error().empty()) {
      ++served;
      EXPECT_EQ(f.path(), "apps/web.yaml");
    } else {
      EXPECT_EQ(f.content(), "") << f.path();
      EXPECT_TRUE(absl::StrContains(f.path(), "\\x")) << f.path();
    }
  }
  EXPECT_EQ(served, 1);
  FERRY_EXPECT_OK(git.Apply(Release("nginx:1.26")));
}

TEST(HostileGitWriterTest, TheDiffOfAReleaseAppliesWithGitApply) {
  GitWriter git;
  ASSERT_TRUE(git.ok());
  const std::string before = git.repo->Head();
  ferry::v1::ApplyUpdatesResponse applied;
  FERRY_ASSERT_OK(git.Apply(Release("nginx:1.26"), &applied));
  EXPECT_TRUE(absl::StrContains(applied.diff(), "--- a/apps/web.yaml\n+++ b/apps/web.yaml\n"))
      << applied.diff();

  const std::string work = git.repo->dir() + "/apply-check";
  int rc = -1;
  RunCommand(absl::StrCat("git clone -q ", git.repo->url(), " ", work, " && cd ", work,
                          " && git checkout -q ", before, " 2>&1"),
             &rc);
  ASSERT_EQ(rc, 0);
  { std::ofstream(work + "/release.patch", std::ios::binary) << applied.diff(); }
  std::string out =
      RunCommand(absl::StrCat("cd ", work, " && git apply --check release.patch 2>&1"), &rc);
  EXPECT_EQ(rc, 0) << out << applied.diff();
}

}  // namespace
// The mirror's packs, by file name.
std::set<std::string> Packs(const std::string& mirror) {
  std::set<std::string> packs;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(mirror) / "objects" / "pack")) {
    if (entry.path().extension() == ".pack") packs.insert(entry.path().filename().string());
  }
  return packs;
}

// The mirror's packs once at most `most` remain, or as they are after a minute: a fold runs
// beside the writes that started it, and ends after them.
std::set<std::string> PacksOnceAtMost(const std::string& mirror, size_t most) {
  const absl::Time deadline = absl::Now() + absl::Minutes(1);
  std::set<std::string> packs = Packs(mirror);
  while (packs.size() > most && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    packs = Packs(mirror);
  }
  return packs;
}

// The mirror passes `git fsck` and holds as many commits on main as the upstream.
void ExpectMirrorIntact(const std::string& mirror, const GitRepo& upstream) {
  int fsck_status = -1;
  std::string fsck =
      RunCommand(absl::StrCat("git --git-dir=", mirror, " fsck --no-dangling 2>&1"), &fsck_status);
  EXPECT_EQ(fsck_status, 0) << fsck;
  EXPECT_EQ(RunCommand(absl::StrCat("git --git-dir=", mirror, " rev-list --count refs/heads/main")),
            upstream.Git("rev-list --count main"));
}

TEST(HostileGitWriterTest, ReleasesAreFoldedByAChildProcessWithoutRewritingTheHistory) {
  // A repo of 600 files: its first pack (the clone, ~600 objects) holds more than twice the
  // objects 40 releases write (~7 per release and note), so folding what they write never
  // rewrites it.
  std::map<std::string, std::string> files = {{"apps/web.yaml", Deployment("web", "nginx:1.25")}};
  for (int i = 0; i < 600; ++i) {
    files[absl::StrCat("apps/other-", i, ".yaml")] =
        Deployment(absl::StrCat("other-", i), "nginx:1.25");
  }
  GitWriter git(files);
  ASSERT_TRUE(git.ok());
  const std::string mirror = git.repo->dir() + "/state/mirror.git";
  const std::set<std::string> cloned = Packs(mirror);
  ASSERT_EQ(cloned.size(), 1u);
  // 40 releases with a job note each: 40 writes (the note goes with its commit), each its
  // own small pack, folded every 32 writes by `ferry-git-writer --repack_mirror` (a failed
  // fold only logs, and the small packs would pile up).
  for (int i = 0; i < 40; ++i) {
    ferry::v1::ApplyUpdatesRequest request = Release(absl::StrCat("nginx:1.", 100 + i));
    request.mutable_job()->set_id(absl::StrCat("job-", i));
    grpc::Status status = git.Apply(request);
    FERRY_ASSERT_OK(status) << i;
  }
  const std::set<std::string> packs = PacksOnceAtMost(mirror, 2 + 8);
  EXPECT_TRUE(packs.count(*cloned.begin())) << "the clone's pack was rewritten";
  EXPECT_LE(packs.size(), 2u + 8u) << "the packs of 40 writes were not folded";
  EXPECT_FALSE(absl::StrContains(git.running.process->Output(), "repacking the mirror failed"))
      << git.running.process->Output();
  // Nothing was lost: every commit and note is still readable from the mirror.
  ExpectMirrorIntact(mirror, *git.repo);
  EXPECT_EQ(RunCommand(absl::StrCat("git --git-dir=", mirror,
                                    " notes --ref=refs/notes/ferry list | wc -l")),
            "40\n");
}

TEST(HostileGitWriterTest, AFoldOfEveryPackNeverDropsTheReleaseBeingPushed) {
  // A small repo and releases without notes: after the 32nd write the fold merges every
  // pack, keeping what the refs reach, on its own thread; the next releases wait for it, and
  // none is ever dropped.
  GitWriter git;
  ASSERT_TRUE(git.ok());
  for (int i = 0; i < 40; ++i) {
    ferry::v1::ApplyUpdatesResponse applied;
    grpc::Status status = git.Apply(Release(absl::StrCat("nginx:1.", 100 + i)), &applied);
    FERRY_ASSERT_OK(status) << i;
    ASSERT_EQ(applied.revision(), git.repo->Head()) << i;
  }
  const std::string mirror = git.repo->dir() + "/state/mirror.git";
  EXPECT_LE(PacksOnceAtMost(mirror, 1 + 8).size(), 1u + 8u);
  ExpectMirrorIntact(mirror, *git.repo);
}

TEST(HostileGitWriterTest, TheRepackChildRefusesAMirrorThatIsNotARepository) {
  const std::string dir = ::testing::TempDir() + "/not-a-mirror";
  std::filesystem::create_directories(dir);
  int status = -1;
  const std::string output =
      RunCommand(absl::StrCat(FERRY_GIT_WRITER_BIN, " --repack_mirror=", dir, " 2>&1"), &status);
  EXPECT_NE(status, 0);
  EXPECT_TRUE(absl::StrContains(output, "opening the mirror " + dir)) << output;
}

}  // namespace ferry
