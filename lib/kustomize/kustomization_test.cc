#include "lib/kustomize/kustomization.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::kustomize {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(KustomizationTest, FileNames) {
  EXPECT_TRUE(IsKustomizationFile("a/kustomization.yaml"));
  EXPECT_TRUE(IsKustomizationFile("kustomization.yml"));
  EXPECT_TRUE(IsKustomizationFile("x/Kustomization"));
  EXPECT_FALSE(IsKustomizationFile("x/my-kustomization.yaml"));
  EXPECT_FALSE(IsKustomizationFile("x/deploy.yaml"));
}

TEST(KustomizationTest, ResolveStaysInTheRepository) {
  EXPECT_EQ(Resolve("overlays/prod", "../../base").value(), "base");
  EXPECT_EQ(Resolve("overlays/prod", "./patch.yaml").value(), "overlays/prod/patch.yaml");
  EXPECT_EQ(Resolve("", "base/").value(), "base");
  EXPECT_THAT(Resolve("overlays/prod", "../../../etc"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("leaves the repository")));
  EXPECT_THAT(Resolve("a", "/etc/passwd"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
}

TEST(KustomizationTest, RemoteEntries) {
  EXPECT_TRUE(LooksRemote("https://github.com/org/repo//base?ref=v1"));
  EXPECT_TRUE(LooksRemote("github.com/org/repo/base"));
  EXPECT_TRUE(LooksRemote("git@github.com:org/repo.git"));
  EXPECT_FALSE(LooksRemote("../base"));
  EXPECT_FALSE(LooksRemote("deploy.yaml"));
  EXPECT_FALSE(LooksRemote("./v1.2/deploy.yaml"));
}

TEST(KustomizationTest, ParsesReferencesAndTransformations) {
  FERRY_ASSERT_OK_AND_ASSIGN(Kustomization k,
                             ParseKustomization("overlays/prod/kustomization.yaml", R"(
namespace: prod
namePrefix: p-
nameSuffix: -x
resources:
- ../../base
- extra.yaml
- https://example.com/org/repo//deploy?ref=main
components: [../../components/tls]
bases:
- ../../old
transformers:
- fn.yaml
)"));
  EXPECT_EQ(k.folder, "overlays/prod");
  EXPECT_THAT(k.references,
              ElementsAre("base", "overlays/prod/extra.yaml", "old", "components/tls"));
  EXPECT_THAT(k.remote, ElementsAre("https://example.com/org/repo//deploy?ref=main"));
  EXPECT_THAT(k.plugin_configs, ElementsAre("overlays/prod/fn.yaml"));
  EXPECT_EQ(k.name_prefix, "p-");
  EXPECT_EQ(k.name_suffix, "-x");
  EXPECT_EQ(k.namespace_, "prod");
}

TEST(KustomizationTest, FindsURLsInEveryFieldThatNamesAFile) {
  FERRY_ASSERT_OK_AND_ASSIGN(Kustomization k, ParseKustomization("a/kustomization.yaml", R"(
patchesStrategicMerge:
- https://example.invalid/psm.yaml
- local.yaml
patches:
- path: http://127.0.0.1:8080/patch.yaml
- patch: |-
    - op: add
patchesJson6902:
- path: https://example.invalid/json.yaml
configMapGenerator:
- name: c
  files:
  - key=https://example.invalid/file
  envs: [https://example.invalid/env]
crds: [https://example.invalid/crd.yaml]
openapi:
  path: https://example.invalid/schema.json
images:
- name: registry.local/team/app
  newName: registry.example.com/team/app
commonAnnotations:
  docs: https://wiki.example.com/app
)"));
  EXPECT_THAT(k.remote, ::testing::UnorderedElementsAre(
                            "https://example.invalid/psm.yaml", "http://127.0.0.1:8080/patch.yaml",
                            "https://example.invalid/json.yaml", "https://example.invalid/file",
                            "https://example.invalid/env", "https://example.invalid/crd.yaml",
                            "https://example.invalid/schema.json"));
}

TEST(KustomizationTest, RefusesWhatLeavesTheRepositoryAndWrongTypes) {
  EXPECT_THAT(ParseKustomization("a/kustomization.yaml", "resources:\n- ../../etc\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("a/kustomization.yaml: `resources` \"../../etc\" leaves")));
  EXPECT_THAT(ParseKustomization("k.yaml", "resources: base\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be a list")));
  EXPECT_THAT(ParseKustomization("k.yaml", "- a\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be a mapping")));
  EXPECT_THAT(ParseKustomization("k.yaml", "resources: [a\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k.yaml")));
  FERRY_ASSERT_OK_AND_ASSIGN(Kustomization empty, ParseKustomization("k.yaml", ""));
  EXPECT_THAT(empty.references, IsEmpty());
}

TEST(KustomizationTest, GuessesReferencesOfABrokenFile) {
  EXPECT_THAT(GuessReferences("overlays/a/kustomization.yaml",
                              "resources:\n- ../../base\n  bad: [\nnamespace: x\n"),
              ::testing::Contains("base"));
}

TEST(KustomizationTest, Functions) {
  EXPECT_TRUE(
      DeclaresFunction("metadata:\n  annotations:\n    config.kubernetes.io/function: |\n"));
  EXPECT_FALSE(DeclaresFunction("kind: Deployment\n"));
}

}  // namespace
}  // namespace ferry::kustomize
