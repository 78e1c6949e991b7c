#include "cli/manifests.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/exit_codes.h"
#include "cli/repo_files.h"
#include "lib/kustomize/build.h"

namespace ferry::cli {
namespace {

namespace fs = std::filesystem;

// A private copy of the manifest test data, removed afterwards.
class ManifestsCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferryctl-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(FERRY_MANIFEST_TESTDATA, dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string File(const std::string& name) { return *ReadFile((dir_ / name).string()); }

  fs::path dir_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(ManifestsCommandTest, ListTable) {
  ManifestsListOptions o;
  o.path = dir_.string();
  o.path += "/";
  ASSERT_EQ(RunManifestsList(o, out_, err_), kExitOk) << err_.str();
  const std::string want =
      "WORKLOAD                        CONTAINER       IMAGE                                       "
      "       POLICY                     FILE\n"
      "data:statefulset/db             db              postgres:15.1                               "
      "                                  crlf.yaml:1\n"
      "default:cronjob/report          report          example/report:2023-01                      "
      "                                  multidoc.yaml:37\n"
      "default:deployment/helloworld   helloworld      "
      "quay.io/weaveworks/helloworld:master-9a16ff945b9e  locked                     "
      "multidoc.yaml:12\n"
      "demo:helmrelease/podinfo        app             ghcr.io/example/app:v1.2.3                  "
      "                                  helmrelease.yaml:1\n"
      "                                chart-image     stefanprodan/podinfo:3.1.0\n"
      "                                cache           docker.io/library/redis:6.0.1\n"
      "                                logger          fluent/fluent-bit:1.9\n"
      "kube-system:daemonset/agent     agent           docker.io/example/agent:1.0.0               "
      "                                  multidoc.yaml:26\n"
      "legacy:fluxhelmrelease/mongodb  chart-image     bitnami/mongodb:3.6.8                       "
      "       automated,tag=semver:~3.6  fluxhelmrelease.yaml:2\n"
      "legacy:fluxhelmrelease/shop     chart-image     weaveworksdemos/front-end:0.2.0             "
      "                                  fluxhelmrelease.yaml:18\n"
      "                                worker          weaveworksdemos/worker:0.3.0\n"
      "                                cache           docker.io/library/redis:6.0.1\n"
      "sock-shop:deployment/front-end  front-end       weaveworksdemos/front-end:0.2.0             "
      "       automated,tag=glob:0.2.*   deployment.yaml:2\n"
      "                                sidecar         quay.io/weaveworks/sidecar:master-a000001\n"
      "                                migrate (init)  weaveworksdemos/front-end:0.2.0\n"
      "weird:deployment/odd            main            registry.example.com:5000/odd/main:v1.0.0   "
      "       automated                  odd.yaml:2\n"
      "                                flow            busybox:1.36\n";
  EXPECT_EQ(out_.str(), want);
  // The broken document is a warning, not a failure.
  EXPECT_NE(err_.str().find("warning: broken.yaml:11:"), std::string::npos) << err_.str();
}

TEST_F(ManifestsCommandTest, ListJson) {
  ManifestsListOptions o;
  o.path = dir_.string();
  o.output = "json";
  ASSERT_EQ(RunManifestsList(o, out_, err_), kExitOk);
  nlohmann::json j = nlohmann::json::parse(out_.str());
  ASSERT_EQ(j["workloads"].size(), 9u);
  const nlohmann::json& fe = j["workloads"][7];
  EXPECT_EQ(fe["id"], "sock-shop:deployment/front-end");
  EXPECT_EQ(fe["path"], "deployment.yaml");
  EXPECT_EQ(fe["line"], 2);
  EXPECT_EQ(fe["policy"]["automated"], true);
  EXPECT_EQ(fe["containers"][0]["tag_filter"], "glob:0.2.*");
  EXPECT_EQ(fe["containers"][2]["init"], true);
  // The broken document is among the errors (testdata/hostile/ adds its own).
  bool broken = false;
  for (const nlohmann::json& e : j["errors"]) {
    broken |= e.dump().find("broken.yaml") != std::string::npos;
  }
  EXPECT_TRUE(broken) << j["errors"].dump();
}

// A file whose name is not UTF-8: -o json still writes JSON, the name's bad byte as U+FFFD.
TEST_F(ManifestsCommandTest, ListJsonOfAFileNamedInAnotherEncoding) {
  fs::copy_file(dir_ / "deployment.yaml", dir_ / "caf\xe9.yaml");
  fs::remove(dir_ / "deployment.yaml");
  ManifestsListOptions o;
  o.path = dir_.string();
  o.output = "json";
  ASSERT_EQ(RunManifestsList(o, out_, err_), kExitOk) << err_.str();
  const nlohmann::json j = nlohmann::json::parse(out_.str(), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out_.str();
  EXPECT_NE(j.dump().find("caf\xef\xbf\xbd.yaml"), std::string::npos) << j.dump();
}

TEST_F(ManifestsCommandTest, ListRejectsUnknownOutput) {
  ManifestsListOptions o;
  o.path = dir_.string();
  o.output = "yaml";
  EXPECT_EQ(RunManifestsList(o, out_, err_), kExitUsage);
}

TEST_F(ManifestsCommandTest, SetImageEditsOneLineInPlace) {
  const std::string before = File("deployment.yaml");
  ManifestsSetImageOptions o;
  o.path = dir_.string();
  o.workload = "sock-shop:deployment/front-end";
  o.container = "front-end";
  o.image = "weaveworksdemos/front-end:0.3.0";
  ASSERT_EQ(RunManifestsSetImage(o, out_, err_), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "deployment.yaml:23: sock-shop:deployment/front-end front-end "
            "spec.template.spec.containers[0].image: weaveworksdemos/front-end:0.2.0 -> "
            "weaveworksdemos/front-end:0.3.0\n");
  std::string want = before;
  size_t at = want.find("front-end:0.2.0 # do not");
  want.replace(at, 15, "front-end:0.3.0");
  EXPECT_EQ(File("deployment.yaml"), want);
}

TEST_F(ManifestsCommandTest, SetImageWithoutContainerWhenThereIsOne) {
  ManifestsSetImageOptions o;
  o.path = dir_.string();
  o.workload = "statefulset/db";
  o.namespace_ = "data";
  o.image = "postgres:16.0";
  ASSERT_EQ(RunManifestsSetImage(o, out_, err_), kExitOk) << err_.str();
  EXPECT_NE(File("crlf.yaml").find("image: postgres:16.0  # CRLF file\r\n"), std::string::npos);
  // Again: nothing to do.
  std::ostringstream again;
  ASSERT_EQ(RunManifestsSetImage(o, again, err_), kExitOk);
  EXPECT_EQ(again.str(),
            "no changes: data:statefulset/db container db already uses postgres:16.0\n");
}

TEST_F(ManifestsCommandTest, SetImageErrorsWriteNothing) {
  const std::string before = File("deployment.yaml");
  ManifestsSetImageOptions o;
  o.path = dir_.string();
  o.workload = "sock-shop:deployment/front-end";
  o.image = "weaveworksdemos/front-end:0.3.0";
  EXPECT_EQ(RunManifestsSetImage(o, out_, err_), kExitUsage);  // 3 containers, none named
  EXPECT_NE(err_.str().find("say which with --container"), std::string::npos);
  o.container = "nope";
  EXPECT_EQ(RunManifestsSetImage(o, out_, err_), kExitNotFound);
  o.container = "front-end";
  o.image = "weaveworksdemos/front-end";
  EXPECT_EQ(RunManifestsSetImage(o, out_, err_), kExitUsage);
  o.workload = "sock-shop:deployment/back-end";
  o.image = "x:1";
  EXPECT_EQ(RunManifestsSetImage(o, out_, err_), kExitNotFound);
  EXPECT_EQ(File("deployment.yaml"), before);
  EXPECT_TRUE(out_.str().empty());
}

TEST_F(ManifestsCommandTest, SetPolicyLocksWithUserAndMessage) {
  ManifestsSetPolicyOptions o;
  o.path = dir_.string();
  o.workload = "sock-shop:deployment/front-end";
  o.lock = true;
  o.deautomate = true;
  o.user = "alice";
  o.message = "incident 42";
  ASSERT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "deployment.yaml:10: sock-shop:deployment/front-end "
            "metadata.annotations.fluxcd.io/automated: removed (was true)\n"
            "deployment.yaml:11: sock-shop:deployment/front-end "
            "metadata.annotations.fluxcd.io/locked: set to true\n"
            "deployment.yaml:12: sock-shop:deployment/front-end "
            "metadata.annotations.fluxcd.io/locked_user: set to alice\n"
            "deployment.yaml:13: sock-shop:deployment/front-end "
            "metadata.annotations.fluxcd.io/locked_msg: set to incident 42\n");
  const std::string after = File("deployment.yaml");
  EXPECT_NE(after.find("    fluxcd.io/tag.front-end: glob:0.2.*\n"
                       "    fluxcd.io/locked: \"true\"\n"
                       "    fluxcd.io/locked_user: alice\n"
                       "    fluxcd.io/locked_msg: incident 42\n\nspec:"),
            std::string::npos)
      << after;
}

TEST_F(ManifestsCommandTest, SetPolicyRejectsContradictionsAndBadPatternsBeforeWriting) {
  const std::string before = File("deployment.yaml");
  ManifestsSetPolicyOptions o;
  o.path = dir_.string();
  o.workload = "sock-shop:deployment/front-end";
  o.automate = o.deautomate = true;
  EXPECT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitUsage);
  o.deautomate = false;
  o.tags = {"front-end=semver:>>1"};
  EXPECT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitUsage);
  EXPECT_NE(err_.str().find("container front-end: invalid tag filter"), std::string::npos);
  o.tags = {"front-end"};
  EXPECT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitUsage);
  ManifestsSetPolicyOptions nothing;
  nothing.path = dir_.string();
  nothing.workload = o.workload;
  EXPECT_EQ(RunManifestsSetPolicy(nothing, out_, err_), kExitUsage);
  EXPECT_EQ(File("deployment.yaml"), before);
}

TEST_F(ManifestsCommandTest, SetPolicyStarRemovesTheFilter) {
  ManifestsSetPolicyOptions o;
  o.path = dir_.string();
  o.workload = "sock-shop:deployment/front-end";
  o.tags = {"front-end=*"};
  ASSERT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitOk) << err_.str();
  EXPECT_EQ(File("deployment.yaml").find("tag.front-end"), std::string::npos);
}

// A FluxHelmRelease's images are released like a HelmRelease's: the values' own fields.
TEST_F(ManifestsCommandTest, SetImageOnAFluxHelmReleaseWritesItsValues) {
  const std::string before = File("fluxhelmrelease.yaml");
  ManifestsSetImageOptions o;
  o.path = dir_.string();
  o.workload = "legacy:fluxhelmrelease/shop";
  o.container = "worker";
  o.image = "weaveworksdemos/worker:0.4.0";
  ASSERT_EQ(RunManifestsSetImage(o, out_, err_), kExitOk) << err_.str();
  std::string want = before;
  want.replace(want.find("tag: \"0.3.0\""), 12, "tag: \"0.4.0\"");
  EXPECT_EQ(File("fluxhelmrelease.yaml"), want);
  o.workload = "legacy:fluxhelmrelease/mongodb";
  o.container = "";  // one container: chart-image
  o.image = "bitnami/mongodb:3.6.9";
  ASSERT_EQ(RunManifestsSetImage(o, out_, err_), kExitOk) << err_.str();
  want.replace(want.find("bitnami/mongodb:3.6.8"), 21, "bitnami/mongodb:3.6.9");
  EXPECT_EQ(File("fluxhelmrelease.yaml"), want);
}

// --tag-all as Flux v1 wrote it: one filter per container, in the workload's Flux prefix.
TEST_F(ManifestsCommandTest, SetPolicyTagAllWritesOneFilterPerContainer) {
  ManifestsSetPolicyOptions o;
  o.path = dir_.string();
  o.workload = "sock-shop:deployment/front-end";
  o.tag_all = "semver:~0.2";
  ASSERT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitOk) << err_.str();
  const std::string after = File("deployment.yaml");
  for (const char* line :
       {"    fluxcd.io/tag.front-end: semver:~0.2\n", "    fluxcd.io/tag.sidecar: semver:~0.2\n",
        "    fluxcd.io/tag.migrate: semver:~0.2\n"}) {
    EXPECT_NE(after.find(line), std::string::npos) << line << after;
  }
  EXPECT_EQ(after.find("tag_all"), std::string::npos) << after;
  // The FluxHelmRelease with flux.weave.works/ policies gets them under that prefix.
  o.workload = "legacy:fluxhelmrelease/mongodb";
  o.tag_all = "glob:3.6.*";
  ASSERT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitOk) << err_.str();
  EXPECT_NE(File("fluxhelmrelease.yaml").find("flux.weave.works/tag.chart-image: glob:3.6.*"),
            std::string::npos);
  // '*' removes every container's filter.
  o.workload = "sock-shop:deployment/front-end";
  o.tag_all = "*";
  ASSERT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitOk) << err_.str();
  EXPECT_EQ(File("deployment.yaml").find("fluxcd.io/tag."), std::string::npos);
}

int RunBinary(const std::string& args) {
  int status = std::system((std::string(FERRYCTL_BIN) + " " + args + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(ManifestsCommandTest, BinaryExitCodes) {
  const std::string path = " --path " + dir_.string();
  EXPECT_EQ(RunBinary("manifests list" + path), kExitOk);
  EXPECT_EQ(RunBinary("manifests set-image" + path + " -w default:deployment/nope -i a:1"),
            kExitNotFound);
  EXPECT_EQ(RunBinary("manifests set-image" + path + " -i a:1"), kExitUsage);  // no -w
  EXPECT_EQ(RunBinary("manifests frobnicate"), kExitUsage);
  EXPECT_EQ(RunBinary("--version"), kExitOk);
  EXPECT_EQ(
      RunBinary("manifests set-image" + path +
                " -w sock-shop:deployment/front-end -c sidecar -i quay.io/weaveworks/sidecar:x1"),
      kExitOk);
  EXPECT_NE(File("deployment.yaml").find("\"quay.io/weaveworks/sidecar:x1\""), std::string::npos);
}

// ferryctl manifests on a kustomize checkout: a base and two overlays, built with the
// kustomize on PATH (kubectl kustomize here).
class KustomizeCheckoutTest : public ManifestsCommandTest {
 protected:
  void SetUp() override {
    ManifestsCommandTest::SetUp();
    fs::remove_all(dir_);
    const char* path = getenv("PATH");
    if (!kustomize::ResolveCommand("", path != nullptr ? path : "").ok()) {
      if (getenv("CI") != nullptr) FAIL() << "CI has kubectl on PATH";
      GTEST_SKIP() << "no kustomize or kubectl on PATH";
    }
    Write("base/kustomization.yaml", "resources:\n- deploy.yaml\n");
    Write("base/deploy.yaml",
          "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n"
          "    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n");
    Write("overlays/prod/kustomization.yaml",
          "namespace: prod\nbases:\n- ../../base\nimages:\n- name: nginx\n  newTag: \"2.0\"\n");
    Write("overlays/staging/kustomization.yaml", "namespace: staging\nbases:\n- ../../base\n");
  }
  void Write(const std::string& path, const std::string& content) {
    fs::create_directories((dir_ / path).parent_path());
    ASSERT_TRUE(WriteFileAtomically((dir_ / path).string(), content).ok());
  }
};

TEST_F(KustomizeCheckoutTest, ListShowsTheRenderedWorkloadsAndTheirRoots) {
  ManifestsListOptions o;
  o.path = dir_.string();
  ASSERT_EQ(RunManifestsList(o, out_, err_), kExitOk) << err_.str();
  EXPECT_NE(out_.str().find("ROOT"), std::string::npos) << out_.str();
  std::string prod_line;
  std::istringstream lines(out_.str());
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("prod:deployment/web ", 0) == 0) prod_line = line;
  }
  // The root, and the file that defines the workload.
  EXPECT_NE(prod_line.find(" nginx:2.0 "), std::string::npos) << out_.str();
  EXPECT_NE(prod_line.find(" overlays/prod "), std::string::npos) << out_.str();
  EXPECT_NE(prod_line.find(" base/deploy.yaml"), std::string::npos) << out_.str();
  EXPECT_EQ(out_.str().find("default:deployment/web"), std::string::npos) << out_.str();
}

TEST_F(KustomizeCheckoutTest, SetImageEditsWhereAReleaseWould) {
  ManifestsSetImageOptions o;
  o.path = dir_.string();
  o.workload = "prod:deployment/web";
  o.image = "nginx:2.1";
  ASSERT_EQ(RunManifestsSetImage(o, out_, err_), kExitOk) << err_.str();
  EXPECT_EQ(File("overlays/prod/kustomization.yaml"),
            "namespace: prod\nbases:\n- ../../base\nimages:\n- name: nginx\n  newTag: \"2.1\"\n");
  o.workload = "staging:deployment/web";
  o.image = "nginx:1.5";
  ASSERT_EQ(RunManifestsSetImage(o, out_, err_), kExitOk) << err_.str();
  EXPECT_NE(File("base/deploy.yaml").find("image: nginx:1.5"), std::string::npos);
  EXPECT_NE(File("overlays/prod/kustomization.yaml").find("\"2.1\""), std::string::npos);
}

TEST_F(KustomizeCheckoutTest, APolicyInASharedBaseIsRefused) {
  ManifestsSetPolicyOptions o;
  o.path = dir_.string();
  o.workload = "prod:deployment/web";
  o.automate = true;
  const std::string before = File("base/deploy.yaml");
  EXPECT_EQ(RunManifestsSetPolicy(o, out_, err_), kExitConflict);
  EXPECT_NE(err_.str().find("overlays/staging/kustomization.yaml"), std::string::npos)
      << err_.str();
  EXPECT_EQ(File("base/deploy.yaml"), before);
}

}  // namespace
}  // namespace ferry::cli
