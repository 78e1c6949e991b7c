// git-writer on a kustomize repo (a base and two overlays) through a real git repository and
// the kustomize on PATH (`kustomize build`, else `kubectl kustomize`): what the index and
// ReadManifests serve, and where releases and policy changes write.
#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/libgit2_repository.h"
#include "services/git-writer/writer.h"
#include "tests/support/git_repo.h"
#include "tests/support/metrics.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::GitRepo;
using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kDeploy[] = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.0 # the base's tag
)";

std::map<std::string, std::string> Repo() {
  return {
      {"base/kustomization.yaml", "resources:\n- deploy.yaml\n"},
      {"base/deploy.yaml", kDeploy},
      {"overlays/prod/kustomization.yaml",
       "namespace: prod\nbases:\n- ../../base\nimages:\n- name: nginx # pinned\n  newTag: "
       "\"2.0\"\n"},
      {"overlays/staging/kustomization.yaml",
       "namespace: staging\nnamePrefix: stg-\nbases:\n- ../../base\n"},
      {"plain/app.yaml", absl::StrCat(kDeploy, "---\n")},
  };
}

class KustomizeWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = std::getenv("PATH");
    KustomizeOptions k;
    k.build.path_env = path != nullptr ? path : "/usr/bin:/bin";
    absl::StatusOr<std::vector<std::string>> command =
        kustomize::ResolveCommand("", k.build.path_env);
    if (!command.ok() && std::getenv("CI") != nullptr) FAIL() << "CI has kubectl on PATH";
    if (!command.ok()) GTEST_SKIP() << "no kustomize or kubectl on PATH";
    k.build.command = *command;
    FERRY_ASSERT_OK_AND_ASSIGN(upstream_, GitRepo::Create(Repo()));
    Libgit2Options o;
    o.url = upstream_->url();
    o.branch = "main";
    o.mirror_dir = upstream_->dir() + "/mirror.git";
    FERRY_ASSERT_OK_AND_ASSIGN(repo_, Libgit2Repository::Open(o));
    WriterOptions options;
    options.kustomize = k;
    writer_ = std::make_unique<Writer>(*repo_, options, metrics_);
    FERRY_ASSERT_OK(writer_->Refresh());
  }

  // The first image of workload `id` in the index of the head.
  std::string ImageOf(const std::string& id) {
    absl::StatusOr<std::shared_ptr<const Index>> index = writer_->IndexAt("");
    if (!index.ok()) return std::string(index.status().message());
    for (const manifest::Resource& r : (*index)->loaded.resources) {
      if (r.id != id) continue;
      auto c = (*index)->containers.find(ContainersKey(r));
      return c == (*index)->containers.end() || c->second->empty() ? "(none)"
                                                                   : (*c->second)[0].image;
    }
    return "(missing)";
  }

  ApplyOutcome Release(const std::string& id, const std::string& from, const std::string& to) {
    ApplyRequest request;
    EditRequest e;
    e.workload = id;
    e.image = manifest::ImageChange{"web", to, from};
    request.edits.push_back(e);
    absl::StatusOr<ApplyOutcome> out = writer_->Apply(request);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ApplyOutcome{};
  }

  // A writer of the same upstream with `max_roots`.
  std::unique_ptr<Writer> WriterWithMaxRoots(uint64_t max_roots) {
    const char* path = std::getenv("PATH");
    WriterOptions options;
    options.kustomize.build.path_env = path != nullptr ? path : "/usr/bin:/bin";
    options.kustomize.build.command =
        kustomize::ResolveCommand("", options.kustomize.build.path_env).value();
    options.kustomize.max_roots = max_roots;
    return std::make_unique<Writer>(*repo_, options, metrics_);
  }

  prometheus::Registry registry_;
  WriterMetrics metrics_{registry_};
  std::unique_ptr<GitRepo> upstream_;
  std::unique_ptr<Libgit2Repository> repo_;
  std::unique_ptr<Writer> writer_;
};

// A file git-writer does not serve (over the size limit) is served with its error as a file of
// its own, unless kustomize uses its folder: then, like the folder's other files, it is not.
TEST_F(KustomizeWriterTest, AnUnreadableFileOfAFolderKustomizeUsesIsNotServedOnItsOwn) {
  const std::string huge(limits::kManifestFileBytes.default_value + 1, '#');
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"base/huge.yaml", huge}, {"plain/huge.yaml", huge}}, "big files")
          .status());
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<RepoFile> served, writer_->ReadManifests("", {}));
  std::vector<std::string> paths;
  for (const RepoFile& f : served) {
    paths.push_back(f.path);
    if (f.path == "plain/huge.yaml") {
      EXPECT_THAT(f.error, HasSubstr("manifest file size"));
    } else {
      EXPECT_EQ(f.error, "") << f.path;
    }
  }
  EXPECT_THAT(paths,
              ElementsAre("overlays/prod/kustomization.yaml", "overlays/staging/kustomization.yaml",
                          "plain/app.yaml", "plain/huge.yaml"));
}

TEST_F(KustomizeWriterTest, TheIndexHoldsWhatKustomizeBuildsAndNotTheBase) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> index, writer_->IndexAt(""));
  std::vector<std::string> ids;
  for (const manifest::Resource& r : index->loaded.resources) ids.push_back(r.id);
  EXPECT_THAT(ids, ElementsAre("default:deployment/web", "prod:deployment/web",
                               "staging:deployment/stg-web"));
  EXPECT_EQ(ImageOf("prod:deployment/web"), "nginx:2.0");
  EXPECT_EQ(ImageOf("staging:deployment/stg-web"), "nginx:1.0");
  EXPECT_THAT(index->loaded.errors, IsEmpty());
  // The plain file's workload is the plain one (default namespace), not the base's.
  EXPECT_EQ(index->loaded.resources[0].source.path, "plain/app.yaml");

  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<RepoFile> served, writer_->ReadManifests("", {}));
  std::vector<std::string> paths;
  for (const RepoFile& f : served) paths.push_back(f.path);
  EXPECT_THAT(paths, ElementsAre("overlays/prod/kustomization.yaml",
                                 "overlays/staging/kustomization.yaml", "plain/app.yaml"));
  EXPECT_THAT(served[0].content, HasSubstr("namespace: prod"));
  EXPECT_THAT(served[0].content, HasSubstr("image: nginx:2.0"));
}

TEST_F(KustomizeWriterTest, AReleaseEditsThePinningImagesEntry) {
  ApplyOutcome out = Release("prod:deployment/web", "nginx:2.0", "nginx:2.1");
  ASSERT_EQ(out.edits.size(), 1u);
  FERRY_EXPECT_OK(out.edits[0].status);
  EXPECT_EQ(out.edits[0].path, "overlays/prod/kustomization.yaml");
  EXPECT_THAT(out.edits[0].roots, ElementsAre("overlays/prod/kustomization.yaml"));
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "overlays/prod/kustomization.yaml"),
            "namespace: prod\nbases:\n- ../../base\nimages:\n- name: nginx # pinned\n  newTag: "
            "\"2.1\"\n");
  EXPECT_EQ(upstream_->Show(upstream_->Head(), "base/deploy.yaml"), kDeploy);
  EXPECT_EQ(ImageOf("prod:deployment/web"), "nginx:2.1");
  EXPECT_EQ(ImageOf("staging:deployment/stg-web"), "nginx:1.0");
  // Two roots indexed, prod built again to verify the edit, and that build kept for the
  // commit's index: nothing more.
  EXPECT_EQ(
      testing::MetricSum(registry_, "ferry_git_kustomize_roots_total", {{"outcome", "built"}}), 3);
}

TEST_F(KustomizeWriterTest, WithoutAnEntryTheBaseLiteralIsEditedAndTheRootsItChangesNamed) {
  ApplyOutcome out = Release("staging:deployment/stg-web", "nginx:1.0", "nginx:1.5");
  FERRY_ASSERT_OK(out.edits.at(0).status);
  EXPECT_EQ(out.edits[0].path, "base/deploy.yaml");
  // prod pins its own tag: only staging renders differently.
  EXPECT_THAT(out.edits[0].roots, ElementsAre("overlays/staging/kustomization.yaml"));
  EXPECT_THAT(upstream_->Show(upstream_->Head(), "base/deploy.yaml"),
              HasSubstr("image: nginx:1.5 # the base's tag"));
  EXPECT_EQ(ImageOf("staging:deployment/stg-web"), "nginx:1.5");
  EXPECT_EQ(ImageOf("prod:deployment/web"), "nginx:2.0");
}

TEST_F(KustomizeWriterTest, CompareAndSetIsAgainstTheRenderedImage) {
  ApplyRequest request;
  EditRequest e;
  e.workload = "prod:deployment/web";
  e.image = manifest::ImageChange{"web", "nginx:2.1", std::string("nginx:1.0")};
  request.edits.push_back(e);
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer_->Apply(request));
  EXPECT_THAT(out.edits[0].status, StatusIs(absl::StatusCode::kAborted, HasSubstr("nginx:2.0")));
  EXPECT_TRUE(out.no_changes);
}

TEST_F(KustomizeWriterTest, APolicyInASharedBaseIsRefusedNamingTheRoots) {
  ApplyRequest request;
  EditRequest e;
  e.workload = "prod:deployment/web";
  manifest::PolicyUpdate update;
  update.automated = true;
  e.policy = update;
  request.edits.push_back(e);
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer_->Apply(request));
  EXPECT_THAT(out.edits[0].status, StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("overlays/prod/kustomization.yaml, "
                                                      "overlays/staging/kustomization.yaml")));
}

TEST_F(KustomizeWriterTest, ABrokenOrRemoteRootFailsAloneAndNothingOfItIsApplied) {
  FERRY_ASSERT_OK(upstream_->CommitWithCli(
      {{"overlays/broken/kustomization.yaml", "resources:\n- ../../base\n- missing.yaml\n"},
       {"overlays/remote/kustomization.yaml",
        "resources:\n- https://example.invalid/org/repo//deploy?ref=v1\n"},
       {"overlays/escape/kustomization.yaml", "resources:\n- ../../../etc\n"}},
      "three bad roots"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> index, writer_->IndexAt(""));
  std::map<std::string, std::string> errors;
  for (const manifest::LoadError& e : index->loaded.errors) errors[e.path] = e.message;
  EXPECT_THAT(errors["overlays/broken/kustomization.yaml"], HasSubstr("missing.yaml"));
  EXPECT_THAT(errors["overlays/remote/kustomization.yaml"], HasSubstr("--kustomize_allow_remote"));
  EXPECT_THAT(errors["overlays/escape/kustomization.yaml"], HasSubstr("leaves the repository"));
  EXPECT_EQ(ImageOf("prod:deployment/web"), "nginx:2.0");
  FERRY_ASSERT_OK_AND_ASSIGN(std::vector<RepoFile> served, writer_->ReadManifests("", {}));
  std::map<std::string, std::string> load_errors;
  for (const RepoFile& f : served) load_errors[f.path] = f.error;
  EXPECT_THAT(load_errors["overlays/broken/kustomization.yaml"], HasSubstr("not built"));
  EXPECT_EQ(load_errors.count("base/deploy.yaml"), 0u);
  EXPECT_EQ(load_errors["overlays/prod/kustomization.yaml"], "");
}

TEST_F(KustomizeWriterTest, RootsPastTheLimitFailAloneNamingTheFlag) {
  std::unique_ptr<Writer> writer = WriterWithMaxRoots(1);
  FERRY_ASSERT_OK(writer->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> index, writer->IndexAt(""));
  std::map<std::string, std::string> errors;
  for (const manifest::LoadError& e : index->loaded.errors) errors[e.path] = e.message;
  EXPECT_EQ(errors.count("overlays/prod/kustomization.yaml"), 0u);
  EXPECT_THAT(errors["overlays/staging/kustomization.yaml"],
              HasSubstr("over the limit of 1 roots (raise it with --max_kustomize_roots)"));
}

TEST_F(KustomizeWriterTest, FilesABaseNoLongerHasAreParsedAgainAsPlainFiles) {
  FERRY_ASSERT_OK(writer_->IndexAt(""));
  // The overlays and the base's kustomization go: base/deploy.yaml (same blob) is plain now.
  const std::string scratch = upstream_->dir() + "/drop";
  testing::RunCommand(absl::StrCat(
      "git clone -q ", upstream_->url(), " ", scratch, " && cd ", scratch,
      " && git rm -q overlays/prod/kustomization.yaml overlays/staging/kustomization.yaml "
      "base/kustomization.yaml && git -c user.name=t -c user.email=t@t commit -q -m drop && "
      "git push -q origin HEAD:main"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Index> index, writer_->IndexAt(""));
  EXPECT_EQ(index->layout, nullptr);
  std::vector<std::string> ids;
  for (const manifest::Resource& r : index->loaded.resources) ids.push_back(r.id);
  // The base's Deployment and the plain one have the same id: both files are read again.
  EXPECT_EQ(ids, std::vector<std::string>{"default:deployment/web"});
  std::vector<std::string> errors;
  for (const manifest::LoadError& e : index->loaded.errors) errors.push_back(e.ToString());
  EXPECT_THAT(errors, ::testing::Contains(HasSubstr("base/deploy.yaml")));
}

TEST_F(KustomizeWriterTest, APolicyAnOverlayDecidesIsRefusedNotCommittedInVain) {
  // A root of its own over a base only it reads, whose overlay sets the annotation.
  FERRY_ASSERT_OK(
      upstream_->CommitWithCli({{"solo/base/kustomization.yaml", "resources:\n- deploy.yaml\n"},
                                {"solo/base/deploy.yaml", absl::StrCat(kDeploy)},
                                {"solo/overlay/kustomization.yaml",
                                 "namespace: solo\nbases:\n- ../base\ncommonAnnotations:\n"
                                 "  ferry.dev/automated: \"true\"\n"}},
                               "solo"));
  FERRY_ASSERT_OK(writer_->Refresh());
  const std::string head = upstream_->Head();
  ApplyRequest request;
  EditRequest e;
  e.workload = "solo:deployment/web";
  manifest::PolicyUpdate update;
  update.automated = false;
  e.policy = update;
  request.edits.push_back(e);
  EXPECT_THAT(writer_->Apply(request),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("renders the annotation ferry.dev/automated of "
                                 "solo:deployment/web as true")));
  EXPECT_EQ(upstream_->Head(), head);
}

TEST_F(KustomizeWriterTest, AnUnchangedRootIsNotBuiltAgain) {
  FERRY_ASSERT_OK(writer_->IndexAt(""));
  auto count = [&](const char* outcome) {
    return testing::MetricSum(registry_, "ferry_git_kustomize_roots_total", {{"outcome", outcome}});
  };
  EXPECT_EQ(count("built"), 2);
  FERRY_ASSERT_OK(upstream_->CommitWithCli({{"plain/other.yaml",
                                             "kind: ConfigMap\n"
                                             "apiVersion: v1\n"
                                             "metadata: {name: x}\n"}},
                                           "a plain file"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK(writer_->IndexAt(""));
  EXPECT_EQ(count("built"), 2);
  EXPECT_EQ(count("cached"), 2);
  // A change in the base builds both overlays again.
  FERRY_ASSERT_OK(upstream_->CommitWithCli(
      {{"base/deploy.yaml", absl::StrCat(kDeploy, "# a comment\n")}}, "base comment"));
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK(writer_->IndexAt(""));
  EXPECT_EQ(count("built"), 4);
}

}  // namespace
}  // namespace ferry::git_writer
