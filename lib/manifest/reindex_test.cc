#include "lib/manifest/reindex.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lib/manifest/editor.h"
#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

// Three documents; the middle one is edited, the last one (a List) comes after it.
constexpr char kFile[] = R"(# apps
apiVersion: v1
kind: Service
metadata:
  name: web
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        image: example/web:1
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: DaemonSet
  metadata:
    name: agent
  spec:
    template:
      spec:
        containers:
        - name: agent
          image: example/agent:1
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: settings
)";

constexpr char kWeb[] = "default:deployment/web";

// What the index must hold: each resource's id and source, as a fresh load reports them.
struct Entry {
  std::string id;
  int document;
  int list_item;
  size_t begin;
  size_t end;
  int line;
  int document_line;
  uint64_t document_hash;
  bool operator==(const Entry&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Entry& e) {
  return os << e.id << " doc " << e.document << " item " << e.list_item << " [" << e.begin << ","
            << e.end << ") line " << e.line << " doc line " << e.document_line << " hash "
            << e.document_hash;
}

std::vector<Entry> Entries(const std::vector<Resource>& resources) {
  std::vector<Entry> out;
  for (const Resource& r : resources) {
    const Source& s = r.source;
    out.push_back(
        {r.id, s.document, s.list_item, s.begin, s.end, s.line, s.document_line, s.document_hash});
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });
  return out;
}

const Resource& Find(const std::vector<Resource>& resources, const std::string& id) {
  auto it = std::find_if(resources.begin(), resources.end(),
                         [&](const Resource& r) { return r.id == id; });
  EXPECT_NE(it, resources.end()) << id;
  return *it;
}

// Adds annotations to the Deployment, which makes its document longer by whole lines, so
// every resource after it moves.
EditResult AnnotateWeb(const std::vector<Resource>& resources) {
  absl::StatusOr<EditResult> edited =
      SetAnnotations(kFile, Find(resources, kWeb),
                     {{"ferry.dev/automated", "true"}, {"ferry.dev/locked", "true"}});
  FERRY_EXPECT_OK(edited);
  EXPECT_FALSE(edited->changes.empty());
  return *std::move(edited);
}

TEST(ReindexEditedDocumentTest, MatchesAFreshLoadOfTheEditedFile) {
  LoadResult loaded = LoadFile("apps.yaml", kFile);
  ASSERT_TRUE(loaded.errors.empty());
  ASSERT_EQ(loaded.resources.size(), 4u);
  EditResult edited = AnnotateWeb(loaded.resources);
  ASSERT_TRUE(edited.document.get().IsMap());

  std::vector<Resource> resources = loaded.resources;
  const Source web = Find(resources, kWeb).source;
  FERRY_ASSERT_OK(
      ReindexEditedDocument(resources, web, kFile, edited.content, edited.document, {}));

  LoadResult fresh = LoadFile("apps.yaml", edited.content);
  ASSERT_TRUE(fresh.errors.empty());
  EXPECT_EQ(Entries(resources), Entries(fresh.resources));
  EXPECT_EQ(Find(resources, kWeb).annotations.at("ferry.dev/locked"), "true");
  // The documents after the edit moved; the one before it did not.
  EXPECT_GT(Find(resources, "default:daemonset/agent").source.begin,
            Find(loaded.resources, "default:daemonset/agent").source.begin);
  EXPECT_EQ(Find(resources, "default:service/web").source.end,
            Find(loaded.resources, "default:service/web").source.end);
}

TEST(ReindexEditedDocumentTest, ParsesTheDocumentWhenNoParseIsGiven) {
  LoadResult loaded = LoadFile("apps.yaml", kFile);
  EditResult edited = AnnotateWeb(loaded.resources);
  std::vector<Resource> resources = loaded.resources;
  const Source web = Find(resources, kWeb).source;
  FERRY_ASSERT_OK(ReindexEditedDocument(resources, web, kFile, edited.content, NodeHandle(), {}));
  EXPECT_EQ(Entries(resources), Entries(LoadFile("apps.yaml", edited.content).resources));
  EXPECT_EQ(Find(resources, kWeb).annotations.at("ferry.dev/automated"), "true");
}

TEST(ReindexEditedDocumentTest, InternalWhenTheEditedDocumentDoesNotParse) {
  LoadResult loaded = LoadFile("apps.yaml", kFile);
  std::vector<Resource> resources = loaded.resources;
  const Source web = Find(resources, kWeb).source;
  std::string broken = kFile;
  broken.replace(web.begin, web.end - web.begin, "kind: [Deployment\n");
  EXPECT_THAT(ReindexEditedDocument(resources, web, kFile, broken, NodeHandle(), {}),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("apps.yaml: edited document does not parse")));
  EXPECT_EQ(Entries(resources), Entries(loaded.resources));
}

}  // namespace
}  // namespace ferry::manifest
