#include "lib/manifest/resource.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/manifest/workload.h"
#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

const std::string kTestdata = FERRY_MANIFEST_TESTDATA;

const Resource* Find(const LoadResult& r, const std::string& id) {
  for (const Resource& res : r.resources) {
    if (res.id == id) return &res;
  }
  return nullptr;
}

std::vector<std::string> Ids(const LoadResult& r) {
  std::vector<std::string> ids;
  for (const Resource& res : r.resources) ids.push_back(res.id);
  return ids;
}

struct Image {
  std::string container;
  std::string image;
  bool init;
  bool operator==(const Image& o) const {
    return container == o.container && image == o.image && init == o.init;
  }
};

std::ostream& operator<<(std::ostream& os, const Image& i) {
  return os << i.container << "=" << i.image << (i.init ? " (init)" : "");
}

std::vector<Image> Images(const Resource& r) {
  std::vector<Image> out;
  for (const Container& c : FindContainers(r)) out.push_back({c.name, c.image, c.init});
  return out;
}

TEST(LoadTreeTest, LoadsEveryResourceWithIdsAndSkipsCharts) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {}));
  EXPECT_EQ(Ids(result), (std::vector<std::string>{
                             "data:statefulset/db",
                             "default:configmap/good-after",
                             "default:configmap/good-before",
                             "default:cronjob/report",
                             "default:deployment/helloworld",
                             "default:service/helloworld",
                             "demo:helmrelease/podinfo",
                             "kube-system:daemonset/agent",
                             "legacy:fluxhelmrelease/mongodb",
                             "legacy:fluxhelmrelease/shop",
                             "sock-shop:deployment/front-end",
                             "weird:deployment/odd",
                         }));
}

TEST(LoadTreeTest, MalformedDocumentIsReportedWithPositionAndOthersStillLoad) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {"broken.yaml"}));
  EXPECT_EQ(Ids(result), (std::vector<std::string>{"default:configmap/good-after",
                                                   "default:configmap/good-before"}));
  ASSERT_EQ(result.errors.size(), 1u);
  const LoadError& e = result.errors[0];
  EXPECT_EQ(e.path, "broken.yaml");
  EXPECT_EQ(e.line, 11) << e.ToString();  // the document ends inside the flow sequence
  EXPECT_GT(e.column, 0);
  EXPECT_EQ(e.ToString().rfind("broken.yaml:11:", 0), 0u) << e.ToString();
}

TEST(LoadTreeTest, SourcesPointAtFileDocumentAndLine) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {"multidoc.yaml"}));
  const Resource* deploy = Find(result, "default:deployment/helloworld");
  ASSERT_NE(deploy, nullptr);
  EXPECT_EQ(deploy->source.path, "multidoc.yaml");
  EXPECT_EQ(deploy->source.document, 1);
  EXPECT_EQ(deploy->source.list_item, -1);
  EXPECT_EQ(deploy->source.line, 12);
  const Resource* cron = Find(result, "default:cronjob/report");
  ASSERT_NE(cron, nullptr);
  EXPECT_EQ(cron->source.document, 2);
  EXPECT_EQ(cron->source.list_item, 1);
  EXPECT_EQ(cron->source.line, 37);
  EXPECT_EQ(deploy->annotations.at("flux.weave.works/locked"), "true");
}

TEST(LoadTreeTest, RejectsPathsOutsideTheTree) {
  absl::StatusOr<LoadResult> result = LoadTree(kTestdata, {"../"});
  ASSERT_THAT(result,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside the repository")));
  EXPECT_THAT(LoadTree(kTestdata, {"nope.yaml"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(LoadFileTest, DefaultNamespaceAndClusterScopedKinds) {
  const std::string content =
      "kind: ConfigMap\nmetadata:\n  name: a\n---\nkind: Namespace\nmetadata:\n  name: team\n"
      "---\nkind: ClusterRole\nmetadata:\n  name: reader\n---\nkind: Widget\nmetadata:\n"
      "  name: w\n  namespace: x\n";
  LoadOptions options;
  options.default_namespace = "apps";
  LoadResult r = LoadFile("f.yaml", content, options);
  FinishLoad(r);
  EXPECT_EQ(Ids(r),
            (std::vector<std::string>{"<cluster>:clusterrole/reader", "<cluster>:namespace/team",
                                      "apps:configmap/a", "x:widget/w"}));
}

TEST(LoadFileTest, DuplicateIdsNameBothPlaces) {
  LoadResult r = LoadFile("a.yaml", "kind: ConfigMap\nmetadata:\n  name: c\n");
  LoadResult b = LoadFile("b.yaml", "# dup\nkind: ConfigMap\nmetadata:\n  name: c\n");
  r.resources.push_back(b.resources[0]);
  FinishLoad(r);
  ASSERT_EQ(r.resources.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "b.yaml:2: document 0: duplicate resource default:configmap/c, also defined at "
            "a.yaml:1; remove or rename one of them");
}

TEST(FinishLoadTest, SortsByIdAndKeepsTheFirstOfEachIdAsAStableSortWould) {
  // Many permutation cycles and duplicates: 300 resources over 70 ids in a scrambled order,
  // with ties on (id, path, line) that only the input order breaks (`document` = position).
  LoadResult r;
  struct Entry {
    std::string id, path;
    int line, position;
  };
  std::vector<Entry> expected;
  for (int i = 0; i < 300; ++i) {
    Resource res;
    res.id = absl::StrCat("default:configmap/c", (i * 37) % 70);
    res.source.path = absl::StrCat("f", (i * 11) % 3, ".yaml");
    res.source.line = 1 + i % 4;
    res.source.document = i;
    expected.push_back({res.id, res.source.path, res.source.line, i});
    r.resources.push_back(std::move(res));
  }
  std::stable_sort(expected.begin(), expected.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.id, a.path, a.line) < std::tie(b.id, b.path, b.line);
  });
  std::vector<Entry> kept;
  std::vector<std::string> errors;
  for (const Entry& e : expected) {
    if (!kept.empty() && kept.back().id == e.id) {
      errors.push_back(absl::StrCat(e.path, ":", e.line, ": document ", e.position,
                                    ": duplicate resource ", e.id, ", also defined at ",
                                    kept.back().path, ":", kept.back().line,
                                    "; remove or rename one of them"));
      continue;
    }
    kept.push_back(e);
  }
  FinishLoad(r);
  ASSERT_EQ(r.resources.size(), kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    const Resource& got = r.resources[i];
    EXPECT_EQ(std::tie(got.id, got.source.path, got.source.line, got.source.document),
              std::tie(kept[i].id, kept[i].path, kept[i].line, kept[i].position));
  }
  std::vector<std::string> got_errors;
  for (const LoadError& e : r.errors) got_errors.push_back(e.ToString());
  EXPECT_EQ(got_errors, errors);
  EXPECT_EQ(errors.size(), 230u);
}

TEST(LoadFileTest, ObjectsWithoutKindAreNotResourcesAndMissingNamesAreErrors) {
  LoadResult r =
      LoadFile("f.yaml", "replicas: 3\n---\nkind: Deployment\nmetadata:\n  labels: {}\n");
  EXPECT_TRUE(r.resources.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "f.yaml:3: document 1: Deployment has no metadata.name; add one");
}

TEST(FindContainersTest, PodSpecContainersThenInitContainers) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {"deployment.yaml"}));
  const Resource* r = Find(result, "sock-shop:deployment/front-end");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(Images(*r),
            (std::vector<Image>{{"front-end", "weaveworksdemos/front-end:0.2.0", false},
                                {"sidecar", "quay.io/weaveworks/sidecar:master-a000001", false},
                                {"migrate", "weaveworksdemos/front-end:0.2.0", true}}));
}

TEST(FindContainersTest, CronJobInListAndDaemonSet) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {"multidoc.yaml"}));
  EXPECT_EQ(Images(*Find(result, "default:cronjob/report")),
            (std::vector<Image>{{"report", "example/report:2023-01", false}}));
  EXPECT_EQ(Images(*Find(result, "kube-system:daemonset/agent")),
            (std::vector<Image>{{"agent", "docker.io/example/agent:1.0.0", false}}));
  EXPECT_TRUE(Images(*Find(result, "default:service/helloworld")).empty());
}

TEST(FindContainersTest, HelmReleaseValuesInEveryShape) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {"helmrelease.yaml"}));
  std::vector<Image> images = Images(*Find(result, "demo:helmrelease/podinfo"));
  EXPECT_EQ(images, (std::vector<Image>{{"app", "ghcr.io/example/app:v1.2.3", false},
                                        {"chart-image", "stefanprodan/podinfo:3.1.0", false},
                                        {"cache", "docker.io/library/redis:6.0.1", false},
                                        {"logger", "fluent/fluent-bit:1.9", false}}));
}

// FluxHelmRelease (flux.weave.works/v1beta1): the HelmRelease value shapes and names.
TEST(FindContainersTest, FluxHelmReleaseValuesLikeHelmRelease) {
  FERRY_ASSERT_OK_AND_ASSIGN(LoadResult result, LoadTree(kTestdata, {"fluxhelmrelease.yaml"}));
  ASSERT_TRUE(result.errors.empty()) << result.errors[0].ToString();
  const Resource* simple = Find(result, "legacy:fluxhelmrelease/mongodb");
  ASSERT_NE(simple, nullptr);
  EXPECT_TRUE(IsWorkloadKind(simple->kind));
  EXPECT_EQ(Images(*simple), (std::vector<Image>{{"chart-image", "bitnami/mongodb:3.6.8", false}}));
  const Resource* multi = Find(result, "legacy:fluxhelmrelease/shop");
  ASSERT_NE(multi, nullptr);
  EXPECT_EQ(Images(*multi),
            (std::vector<Image>{{"chart-image", "weaveworksdemos/front-end:0.2.0", false},
                                {"worker", "weaveworksdemos/worker:0.3.0", false},
                                {"cache", "docker.io/library/redis:6.0.1", false}}));
  // Each image field is where a release writes it.
  std::vector<Container> containers = FindContainers(*multi);
  ASSERT_EQ(containers.size(), 3u);
  ASSERT_EQ(containers[0].fields.size(), 2u);
  EXPECT_EQ(PathToString(containers[0].fields[0].path), "spec.values.image.repository");
  EXPECT_EQ(PathToString(containers[0].fields[1].path), "spec.values.image.tag");
  EXPECT_EQ(PathToString(containers[1].fields[1].path), "spec.values.worker.tag");
}

}  // namespace
}  // namespace ferry::manifest
