#include "lib/kustomize/layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry::kustomize {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kDeploy[] = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.0
)";

std::map<std::string, std::string> BaseAndTwoOverlays() {
  return {
      {"base/kustomization.yaml", "resources:\n- deploy.yaml\n- svc.yaml\n"},
      {"base/deploy.yaml", kDeploy},
      {"base/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"},
      {"overlays/prod/kustomization.yaml", "namespace: prod\nresources:\n- ../../base\n"},
      {"overlays/staging/kustomization.yaml",
       "namespace: staging\nnamePrefix: stg-\nbases:\n- ../../base\n"},
      {"plain/app.yaml", kDeploy},
  };
}

TEST(LayoutTest, RootsAreKustomizationsNothingRefersTo) {
  const auto files = BaseAndTwoOverlays();
  Layout layout = FindLayout(files);
  ASSERT_EQ(layout.roots.size(), 2u);
  EXPECT_EQ(layout.roots[0].file, "overlays/prod/kustomization.yaml");
  EXPECT_THAT(layout.roots[0].folders, ElementsAre("overlays/prod", "base"));
  EXPECT_EQ(layout.roots[0].error, "");
  EXPECT_EQ(layout.roots[1].folder, "overlays/staging");
  EXPECT_TRUE(layout.Uses("base/deploy.yaml"));
  EXPECT_TRUE(layout.Uses("overlays/prod/kustomization.yaml"));
  EXPECT_FALSE(layout.Uses("plain/app.yaml"));
  EXPECT_FALSE(layout.Uses("overlays-other/app.yaml"));
  EXPECT_THAT(
      layout.RootsReading("base/deploy.yaml"),
      ElementsAre("overlays/prod/kustomization.yaml", "overlays/staging/kustomization.yaml"));
  EXPECT_THAT(layout.RootsReading("overlays/prod/kustomization.yaml"),
              ElementsAre("overlays/prod/kustomization.yaml"));
}

TEST(LayoutTest, NoKustomizationMeansNothingUsed) {
  Layout layout = FindLayout({{"a.yaml", kDeploy}});
  EXPECT_THAT(layout.roots, IsEmpty());
  EXPECT_FALSE(layout.Uses("a.yaml"));
}

TEST(LayoutTest, ABrokenOverlayFailsAloneAndItsBaseIsNoRoot) {
  auto files = BaseAndTwoOverlays();
  files["overlays/prod/kustomization.yaml"] = "resources:\n- ../../base\nnamespace: [\n";
  Layout layout = FindLayout(files);
  ASSERT_EQ(layout.roots.size(), 2u);
  EXPECT_EQ(layout.roots[0].folder, "overlays/prod");
  EXPECT_THAT(layout.roots[0].error, HasSubstr("overlays/prod/kustomization.yaml"));
  EXPECT_EQ(layout.roots[1].error, "");
}

TEST(LayoutTest, PerRootErrors) {
  auto files = BaseAndTwoOverlays();
  files["overlays/prod/kustomization.yaml"] =
      "resources:\n- ../../base\n- github.com/org/repo//deploy?ref=v1\n";
  files["overlays/staging/kustomization.yaml"] = "resources:\n- ../../plain\n";
  files["fn/kustomization.yaml"] = "transformers:\n- fn.yaml\n";
  files["fn/fn.yaml"] =
      "kind: X\nmetadata:\n  annotations:\n    config.kubernetes.io/function: |\n      exec: {}\n";
  Layout layout = FindLayout(files);
  ASSERT_EQ(layout.roots.size(), 3u);
  EXPECT_THAT(layout.roots[0].error, HasSubstr("KRM function"));
  EXPECT_THAT(layout.roots[1].error, HasSubstr("--kustomize_allow_remote"));
  EXPECT_THAT(layout.roots[2].error, HasSubstr("\"plain\", which has no kustomization file"));
  LayoutOptions allow;
  allow.allow_remote = true;
  EXPECT_EQ(FindLayout(files, allow).roots[1].error, "");
}

TEST(LayoutTest, OriginsFollowPrefixesAndNamespaces) {
  const auto files = BaseAndTwoOverlays();
  Layout layout = FindLayout(files);
  auto prod = Origins(layout, layout.roots[0], files, {});
  ASSERT_EQ(prod.count("prod:deployment/web"), 1u);
  EXPECT_EQ(prod["prod:deployment/web"].file, "base/deploy.yaml");
  EXPECT_EQ(prod["prod:deployment/web"].id, "default:deployment/web");
  EXPECT_THAT(prod["prod:deployment/web"].chain, ElementsAre("overlays/prod", "base"));
  auto staging = Origins(layout, layout.roots[1], files, {});
  EXPECT_EQ(staging.count("staging:deployment/stg-web"), 1u);
  EXPECT_EQ(staging.count("staging:service/stg-web"), 1u);
}

TEST(LayoutTest, AComponentChangesEverythingItsParentGathered) {
  std::map<std::string, std::string> files = BaseAndTwoOverlays();
  files["components/pin/kustomization.yaml"] =
      "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamePrefix: cp-\n"
      "images:\n- name: nginx\n  newTag: \"7\"\n";
  files["overlays/prod/kustomization.yaml"] =
      "namespace: prod\nresources:\n- ../../base\ncomponents:\n- ../../components/pin\n";
  Layout layout = FindLayout(files);
  ASSERT_EQ(layout.roots[0].file, "overlays/prod/kustomization.yaml");
  auto prod = Origins(layout, layout.roots[0], files, {});
  ASSERT_EQ(prod.count("prod:deployment/cp-web"), 1u);
  // The component's images: entry is consulted after the overlay's, before the base's.
  EXPECT_THAT(prod["prod:deployment/cp-web"].chain,
              ElementsAre("overlays/prod", "components/pin", "base"));
  EXPECT_EQ(prod["prod:deployment/cp-web"].file, "base/deploy.yaml");
  auto target = ImageTarget(layout, layout.roots[0], prod, "prod:deployment/cp-web", "nginx:7",
                            [&](const std::string& path) { return files.at(path); });
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->file, "components/pin/kustomization.yaml");
  EXPECT_EQ(target->image_entry, 0);
}

}  // namespace
}  // namespace ferry::kustomize
