// The syncer against the in-memory API (fake_kube_api.h) and a fake clock: the rules of a
// sync, in milliseconds. syncer_test.cc runs the same syncer against a real API server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/manifest/resource.h"
#include "lib/runtime/fake_clock.h"
#include "services/cluster-syncer/fake_kube_api.h"
#include "services/cluster-syncer/syncer.h"

namespace ferry::cluster_syncer {
namespace {

std::string Namespace(const std::string& name) {
  return absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ", name, "}\n");
}

std::string ConfigMap(const std::string& ns, const std::string& name,
                      const std::string& value = "a") {
  return absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ", name,
                      ", namespace: ", ns, "}\ndata: {k: \"", value, "\"}\n");
}

std::string Deployment(const std::string& ns, const std::string& name) {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ", name,
                      ", namespace: ", ns,
                      "}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n"
                      "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
                      "      - {name: web, image: example.com/web:1}\n");
}

const char kCrd[] = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true}
)";

const char kWidget[] =
    "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: apps}\n";

std::string Docs(std::initializer_list<std::string> docs) {
  std::string out;
  for (const std::string& d : docs) absl::StrAppend(&out, out.empty() ? "" : "---\n", d);
  return out;
}

// `f` as git-writer names a file unchanged since the revision the reader knows: without its
// text, with its hash.
ManifestFileContent Known(ManifestFileContent f) {
  f.hash = manifest::DocumentHash(f.content);
  f.content.clear();
  f.unchanged = true;
  return f;
}

std::string Errors(const SyncReport& r) {
  std::string out = r.error;
  for (const auto& e : r.errors)
    absl::StrAppend(&out, "\n", e.resource, " (", e.path, "): ", e.error);
  return out;
}

const char kCm[] = "/api/v1/namespaces/apps/configmaps/";

class SyncerUnitTest : public ::testing::Test {
 protected:
  SyncerUnitTest() : discovery_(api_) {}

  static SyncOptions Options(bool gc = false) {
    SyncOptions o;
    o.sync_set = "unit";
    o.garbage_collection = gc;
    return o;
  }
  std::unique_ptr<Syncer> MakeSyncer(SyncOptions o = Options()) {
    return std::make_unique<Syncer>(api_, discovery_, std::move(o), clock_);
  }
  // The calls of `verb` made since call number `from`.
  std::vector<std::string> CallsOf(const std::string& verb, size_t from = 0) {
    std::vector<std::string> out;
    const std::vector<std::string> calls = api_.calls();
    for (size_t i = from; i < calls.size(); ++i) {
      if (absl::StartsWith(calls[i], verb + " ")) out.push_back(calls[i].substr(verb.size() + 1));
    }
    return out;
  }
  bool Exists(const std::string& path) { return api_.Object(path).has_value(); }

  FakeKubeApi api_;
  kube::Discovery discovery_;
  runtime::FakeClock clock_;
};

TEST_F(SyncerUnitTest, AppliesRankByRankWhateverTheFileOrder) {
  SyncOptions o = Options();
  o.parallelism = 8;
  auto syncer = MakeSyncer(o);
  const std::vector<ManifestFileContent> files = {
      {"a-widget.yaml", kWidget},
      {"b-app.yaml",
       Docs({Deployment("apps", "web"), ConfigMap("apps", "cfg"),
             "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb, "
             "namespace: apps}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, "
             "name: r}\n",
             "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: apps}\nspec:\n"
             "  ports:\n  - {port: 80}\n",
             "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: apps}\n"})},
      {"c-crd.yaml", kCrd},
      {"d-ns.yaml", Namespace("apps")},
  };
  SyncReport r = syncer->Sync("rev1", files, false);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.failed, 0) << Errors(r);
  EXPECT_EQ(r.applied, 8);
  // The order, written out here rather than taken from ApplyRank.
  const std::map<std::string, int> expected_rank = {
      {"Namespace", 0},  {"CustomResourceDefinition", 1},
      {"Service", 1},    {"ServiceAccount", 1},
      {"ConfigMap", 2},  {"RoleBinding", 2},
      {"Deployment", 3}, {"Widget", 4}};
  const std::vector<std::string> kinds = api_.applied_kinds();
  ASSERT_EQ(kinds.size(), expected_rank.size());
  for (size_t i = 1; i < kinds.size(); ++i) {
    EXPECT_LE(expected_rank.at(kinds[i - 1]), expected_rank.at(kinds[i]))
        << kinds[i - 1] << " was applied before " << kinds[i];
  }
  std::optional<nlohmann::json> deploy =
      api_.Object("/apis/apps/v1/namespaces/apps/deployments/web");
  ASSERT_TRUE(deploy.has_value());
  const nlohmann::json& meta = (*deploy)["metadata"];
  EXPECT_EQ(meta["labels"][kSyncSetLabel], "unit");
  EXPECT_EQ(meta["annotations"][kSourceAnnotation], "b-app.yaml");
  EXPECT_EQ(meta["annotations"][kChecksumAnnotation].get<std::string>().size(), 32u);
  // A port without a protocol gets TCP written out.
  std::optional<nlohmann::json> svc = api_.Object("/api/v1/namespaces/apps/services/web");
  ASSERT_TRUE(svc.has_value());
  EXPECT_EQ((*svc)["spec"]["ports"][0]["protocol"], "TCP");
}

TEST_F(SyncerUnitTest, ApplyRankOfBuiltinAndCustomKinds) {
  EXPECT_EQ(ApplyRank("", "Namespace"), 0);
  EXPECT_EQ(ApplyRank("apiextensions.k8s.io", "CustomResourceDefinition"), 1);
  EXPECT_EQ(ApplyRank("", "Secret"), 2);
  EXPECT_EQ(ApplyRank("apps", "Deployment"), 3);
  EXPECT_EQ(ApplyRank("helm.fluxcd.io", "HelmRelease"), 3);
  // A custom kind named like a built-in one is "everything else".
  EXPECT_EQ(ApplyRank("example.com", "Service"), 4);
  EXPECT_EQ(ApplyRank("example.com", "Widget"), 4);
}

TEST_F(SyncerUnitTest, UnchangedObjectsAreNotWrittenAgain) {
  auto syncer = MakeSyncer();
  std::vector<ManifestFileContent> files = {
      {"ns.yaml", Namespace("apps")},
      {"cms.yaml", Docs({ConfigMap("apps", "one"), ConfigMap("apps", "two")})}};
  SyncReport first = syncer->Sync("rev1", files, false);
  ASSERT_EQ(first.applied, 3) << Errors(first);
  const int64_t writes = api_.writes();

  SyncReport again = syncer->Sync("rev1", files, false);
  EXPECT_EQ(again.applied, 0) << Errors(again);
  EXPECT_EQ(again.unchanged, 3);
  EXPECT_EQ(api_.writes(), writes);
  // A syncer without a parse cache compares with the live checksums just the same.
  SyncReport cold = MakeSyncer()->Sync("rev1", files, false);
  EXPECT_EQ(cold.unchanged, 3) << Errors(cold);
  EXPECT_EQ(api_.writes(), writes);

  // One value changed: that object alone is written.
  const size_t from = api_.calls().size();
  files[1].content = Docs({ConfigMap("apps", "one", "changed"), ConfigMap("apps", "two")});
  SyncReport changed = syncer->Sync("rev2", files, false);
  EXPECT_EQ(changed.applied, 1) << Errors(changed);
  EXPECT_EQ(changed.unchanged, 2);
  EXPECT_EQ(CallsOf("apply", from), std::vector<std::string>{std::string(kCm) + "one"});

  // The live checksum differs (changed in the cluster): written again, whole, although its
  // file is unchanged (the syncer keeps no object between syncs: it reads the file again).
  nlohmann::json two = *api_.Object(std::string(kCm) + "two");
  const nlohmann::json applied_two = two;
  two["metadata"]["annotations"][kChecksumAnnotation] = "edited";
  two["data"]["k"] = "edited";
  two["metadata"].erase("labels");
  api_.Put(two);
  SyncReport drift = syncer->Sync("rev2", files, false);
  EXPECT_EQ(drift.applied, 1) << Errors(drift);
  EXPECT_EQ(drift.unchanged, 2);
  EXPECT_EQ(*api_.Object(std::string(kCm) + "two"), applied_two);

  // Moved to another file: applied again, with its new source.
  files[1].path = "moved.yaml";
  SyncReport moved = syncer->Sync("rev3", files, false);
  EXPECT_EQ(moved.applied, 2) << Errors(moved);
  EXPECT_EQ((*api_.Object(std::string(kCm) + "one"))["metadata"]["annotations"][kSourceAnnotation],
            "moved.yaml");
}

TEST_F(SyncerUnitTest, GarbageCollectionPrunesOnlyWhatFerryAppliedAndGitDropped) {
  auto syncer = MakeSyncer(Options(/*gc=*/true));
  std::vector<ManifestFileContent> files = {
      {"ns.yaml", Namespace("apps")},
      {"app.yaml", Docs({ConfigMap("apps", "kept"), ConfigMap("apps", "leaving"),
                         ConfigMap("apps", "ignored"), Deployment("apps", "gone")})}};
  SyncReport first = syncer->Sync("rev1", files, false);
  ASSERT_EQ(first.applied, 5) << Errors(first);
  ASSERT_EQ(first.pruned, 0);
  // In the cluster: "ignored" gets an ignore annotation; a controller's copy of the labels
  // without Ferry's checksum; an object with an owner; one of another sync set.
  nlohmann::json ignored = *api_.Object(std::string(kCm) + "ignored");
  ignored["metadata"]["annotations"]["ferry.dev/ignore"] = "true";
  api_.Put(ignored);
  api_.Put({{"apiVersion", "v1"},
            {"kind", "Endpoints"},
            {"metadata",
             {{"name", "web"}, {"namespace", "apps"}, {"labels", {{kSyncSetLabel, "unit"}}}}}});
  nlohmann::json owned = *api_.Object(std::string(kCm) + "leaving");
  owned["metadata"]["name"] = "owned";
  owned["metadata"]["ownerReferences"] = {{{"kind", "Deployment"}, {"name", "x"}}};
  api_.Put(owned);
  nlohmann::json foreign = *api_.Object(std::string(kCm) + "leaving");
  foreign["metadata"]["name"] = "foreign";
  foreign["metadata"]["labels"][kSyncSetLabel] = "other";
  api_.Put(foreign);
  files[1].content = ConfigMap("apps", "kept");

  // Dry run: reported, nothing deleted.
  SyncOptions dry = Options(true);
  dry.gc_dry_run = true;
  const int64_t writes = api_.writes();
  SyncReport preview = MakeSyncer(dry)->Sync("rev2", files, false);
  EXPECT_EQ(preview.pruned, 2) << Errors(preview);
  EXPECT_EQ(api_.writes(), writes);
  EXPECT_TRUE(Exists(std::string(kCm) + "leaving"));
  // Garbage collection off: nothing pruned either.
  SyncReport off = MakeSyncer(Options(false))->Sync("rev2", files, false);
  EXPECT_EQ(off.pruned, 0);
  EXPECT_TRUE(CallsOf("delete").empty());

  SyncReport second = syncer->Sync("rev2", files, false);
  EXPECT_EQ(second.failed, 0) << Errors(second);
  std::vector<std::string> pruned = second.pruned_ids;
  std::sort(pruned.begin(), pruned.end());
  EXPECT_EQ(pruned, (std::vector<std::string>{"apps:configmap/leaving", "apps:deployment/gone"}));
  // In reverse apply order: the workload before its configuration.
  EXPECT_EQ(CallsOf("delete"),
            (std::vector<std::string>{"/apis/apps/v1/namespaces/apps/deployments/gone",
                                      std::string(kCm) + "leaving"}));
  EXPECT_FALSE(Exists(std::string(kCm) + "leaving"));
  for (const char* kept : {"kept", "ignored", "owned", "foreign"}) {
    EXPECT_TRUE(Exists(std::string(kCm) + kept)) << kept;
  }
  EXPECT_TRUE(Exists("/api/v1/namespaces/apps/endpoints/web"));
}

// Labelled objects whose annotations or owners are of other types than the API's schema
// says (an aggregated API, a misbehaving webhook): read as absent, never thrown, and kept,
// since nothing shows Ferry applied them; the sync and its garbage collection go on.
TEST_F(SyncerUnitTest, GarbageCollectionKeepsObjectsWithOddMetadata) {
  auto syncer = MakeSyncer(Options(/*gc=*/true));
  std::vector<ManifestFileContent> files = {
      {"ns.yaml", Namespace("apps")},
      {"app.yaml", Docs({ConfigMap("apps", "kept"), ConfigMap("apps", "leaving")})}};
  SyncReport first = syncer->Sync("rev1", files, false);
  ASSERT_EQ(first.failed, 0) << Errors(first);
  const nlohmann::json leaving = *api_.Object(std::string(kCm) + "leaving");
  auto odd = [&](const char* name, const char* field, const nlohmann::json& value) {
    nlohmann::json object = leaving;
    object["metadata"]["name"] = name;
    object["metadata"][field] = value;
    api_.Put(object);
  };
  odd("numbers", "annotations",
      {{kChecksumAnnotation, 5}, {kSourceAnnotation, {"x"}}, {"ferry.dev/ignore", {{"a", 1}}}});
  odd("text", "annotations", "checksum");
  odd("owner-text", "ownerReferences", "x");
  odd("owner-object", "ownerReferences", {{"kind", "Deployment"}});
  files[1].content = ConfigMap("apps", "kept");
  SyncReport second;
  ASSERT_NO_THROW(second = syncer->Sync("rev2", files, false));
  EXPECT_EQ(second.failed, 0) << Errors(second);
  EXPECT_EQ(second.pruned_ids, std::vector<std::string>{"apps:configmap/leaving"});
  for (const char* kept : {"kept", "numbers", "text", "owner-text", "owner-object"}) {
    EXPECT_TRUE(Exists(std::string(kCm) + kept)) << kept;
  }
}

TEST_F(SyncerUnitTest, GarbageCollectionNeverPrunesWhatABrokenFileHeld) {
  auto syncer = MakeSyncer(Options(/*gc=*/true));
  std::vector<ManifestFileContent> files = {
      {"ns.yaml", Namespace("apps")},
      {"a.yaml", Docs({ConfigMap("apps", "x"), ConfigMap("apps", "why")})}};
  ASSERT_EQ(syncer->Sync("rev1", files, false).applied, 3);

  files[1].content = "apiVersion: v1\nkind: [unclosed\n";
  SyncReport broken = syncer->Sync("rev2", files, false);
  EXPECT_EQ(broken.pruned, 0) << Errors(broken);
  ASSERT_EQ(broken.failed, 1) << Errors(broken);
  EXPECT_EQ(broken.errors[0].path, "a.yaml");
  EXPECT_EQ(broken.errors[0].resource, "");
  EXPECT_FALSE(broken.errors[0].error.empty());
  // Not served by git-writer (over a limit): the same.
  files[1] = {"a.yaml", "", "manifest file size is over the limit"};
  SyncReport unserved = syncer->Sync("rev3", files, false);
  EXPECT_EQ(unserved.pruned, 0) << Errors(unserved);
  EXPECT_TRUE(absl::StrContains(Errors(unserved), "a.yaml: manifest file size is over the limit"));
  EXPECT_TRUE(CallsOf("delete").empty());
  EXPECT_TRUE(Exists(std::string(kCm) + "x"));
  EXPECT_TRUE(Exists(std::string(kCm) + "why"));

  // Fixed without "why": now it goes.
  files[1] = {"a.yaml", ConfigMap("apps", "x")};
  SyncReport fixed = syncer->Sync("rev4", files, false);
  EXPECT_EQ(fixed.pruned_ids, std::vector<std::string>{"apps:configmap/why"}) << Errors(fixed);
  EXPECT_TRUE(Exists(std::string(kCm) + "x"));
}

TEST_F(SyncerUnitTest, GarbageCollectionKeepsALiveObjectNamedLikeAFailedOne) {
  auto syncer = MakeSyncer(Options(/*gc=*/true));
  std::vector<ManifestFileContent> files = {
      {"ns.yaml", Docs({Namespace("apps"), Namespace("next")})},
      {"x.yaml", ConfigMap("apps", "x")}};
  ASSERT_EQ(syncer->Sync("rev1", files, false).applied, 3);
  // x moves to another namespace, where the API refuses it: the old x stays.
  files[1].content = ConfigMap("next", "x");
  api_.Fail("apply", "/api/v1/namespaces/next/configmaps/x", absl::InvalidArgumentError("refused"));
  SyncReport failed = syncer->Sync("rev2", files, false);
  EXPECT_EQ(failed.failed, 1) << Errors(failed);
  EXPECT_EQ(failed.pruned, 0) << Errors(failed);
  EXPECT_TRUE(Exists(std::string(kCm) + "x"));
  // Accepted: the old one is pruned.
  api_.Fail("apply", "/api/v1/namespaces/next/configmaps/x", absl::OkStatus());
  SyncReport moved = syncer->Sync("rev3", files, false);
  EXPECT_EQ(moved.pruned_ids, std::vector<std::string>{"apps:configmap/x"}) << Errors(moved);
  EXPECT_TRUE(Exists("/api/v1/namespaces/next/configmaps/x"));
}

TEST_F(SyncerUnitTest, ErrorsArePerResource) {
  auto syncer = MakeSyncer();
  api_.Fail("apply", std::string(kCm) + "rejected",
            absl::InvalidArgumentError("ConfigMap \"rejected\" is invalid: data: must be strings"));
  const std::vector<ManifestFileContent> files = {
      {"ns.yaml", Namespace("apps")},
      {"good.yaml", Docs({ConfigMap("apps", "good"), ConfigMap("apps", "rejected")})},
      {"gadget.yaml",
       "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g, namespace: apps}\n"},
      {"twice.yaml", ConfigMap("apps", "good")},
      {"broken.yaml", "apiVersion: v1\nkind: [unclosed\n"}};
  SyncReport r = syncer->Sync("rev1", files, false);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.error_code, absl::StatusCode::kOk);
  EXPECT_EQ(r.applied, 2) << Errors(r);
  EXPECT_EQ(r.failed, 4) << Errors(r);
  std::map<std::string, ResourceFailure> by_path;
  for (const ResourceFailure& f : r.errors) by_path[f.path] = f;
  EXPECT_EQ(by_path["good.yaml"].resource, "apps:configmap/rejected");
  EXPECT_TRUE(absl::StrContains(by_path["good.yaml"].error, "must be strings")) << Errors(r);
  EXPECT_EQ(by_path["gadget.yaml"].resource, "apps:gadget/g");
  EXPECT_TRUE(absl::StrContains(by_path["gadget.yaml"].error, "Gadget")) << Errors(r);
  EXPECT_TRUE(absl::StrContains(by_path["twice.yaml"].error, "defined twice: also in good.yaml"))
      << Errors(r);
  EXPECT_EQ(by_path["broken.yaml"].resource, "");
  EXPECT_TRUE(Exists(std::string(kCm) + "good"));
}

TEST_F(SyncerUnitTest, AnUnreachableApiStopsTheSyncWithUnavailable) {
  const std::vector<ManifestFileContent> files = {
      {"a.yaml", Docs({Namespace("apps"), ConfigMap("apps", "c")})}};
  api_.Fail("apply", "", absl::UnavailableError("connection refused"));
  SyncReport apply = MakeSyncer()->Sync("rev1", files, false);
  EXPECT_EQ(apply.error, "connection refused");
  EXPECT_EQ(apply.error_code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(apply.applied, 0);
  EXPECT_TRUE(CallsOf("apply", 0).size() == 1) << "the sync went on past the first rank";
  api_.Fail("apply", "", absl::OkStatus());

  api_.Fail("list", "", absl::UnauthenticatedError("bad token"));
  SyncReport list = MakeSyncer()->Sync("rev1", files, false);
  EXPECT_EQ(list.error, "listing Namespace: bad token");
  EXPECT_EQ(list.error_code, absl::StatusCode::kUnavailable);
  // Not allowed to list: every object of the kind is applied, each time.
  api_.Fail("list", "", absl::PermissionDeniedError("forbidden"));
  auto syncer = MakeSyncer();
  EXPECT_EQ(syncer->Sync("rev1", files, false).applied, 2);
  SyncReport blind = syncer->Sync("rev1", files, false);
  EXPECT_EQ(blind.applied, 2) << Errors(blind);
  EXPECT_TRUE(blind.error.empty());
  api_.Fail("list", "", absl::OkStatus());

  FakeKubeApi down;
  down.Fail("discovery", "", absl::UnavailableError("no route"));
  kube::Discovery discovery(down);
  SyncReport discover = Syncer(down, discovery, Options(), clock_).Sync("rev1", files, false);
  EXPECT_EQ(discover.error, "API discovery failed: no route");
  EXPECT_EQ(discover.error_code, absl::StatusCode::kUnavailable);
}

TEST_F(SyncerUnitTest, CustomResourcesWaitForTheirCrdToBeEstablished) {
  api_.set_crd_established_after(3);
  const std::vector<ManifestFileContent> files = {
      {"all.yaml", Docs({Namespace("apps"), kCrd, kWidget})}};
  const absl::Time start = clock_.Now();
  SyncReport r = MakeSyncer()->Sync("rev1", files, false);
  EXPECT_EQ(r.failed, 0) << Errors(r);
  EXPECT_EQ(r.applied, 3);
  EXPECT_TRUE(Exists("/apis/example.com/v1/namespaces/apps/widgets/w"));
  const std::string crd =
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
  EXPECT_EQ(CallsOf("get"), std::vector<std::string>(3, crd));
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(200));  // polled every 100 ms
  EXPECT_EQ(r.finished - r.started, absl::Milliseconds(200));
}

TEST_F(SyncerUnitTest, ACrdNeverEstablishedIsWaitedForUpToCrdWaitThenItsResourcesFail) {
  api_.set_crd_established_after(-1);
  SyncOptions o = Options();
  o.crd_wait = absl::Seconds(30);
  const absl::Time start = clock_.Now();
  SyncReport r =
      MakeSyncer(o)->Sync("rev1", {{"all.yaml", Docs({Namespace("apps"), kCrd, kWidget})}}, false);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.applied, 2) << Errors(r);
  ASSERT_EQ(r.failed, 1) << Errors(r);
  EXPECT_EQ(r.errors[0].resource, "apps:widget/w");
  EXPECT_TRUE(absl::StrContains(r.errors[0].error, "does not serve kind Widget")) << Errors(r);
  EXPECT_EQ(clock_.Now() - start, absl::Seconds(30));
  EXPECT_EQ(CallsOf("get").size(), 300u);
}

TEST_F(SyncerUnitTest, ADryRunWritesNothingAndDoesNotWaitForCrds) {
  api_.set_crd_established_after(-1);
  const absl::Time start = clock_.Now();
  SyncReport r = MakeSyncer()->Sync("rev1", {{"all.yaml", Docs({Namespace("apps"), kCrd})}}, true);
  EXPECT_EQ(r.applied, 2) << Errors(r);
  EXPECT_EQ(api_.writes(), 0);
  EXPECT_TRUE(CallsOf("get").empty());
  EXPECT_EQ(clock_.Now(), start);
}

// Live::kFromRecord: what changed in git since the last sync is written, nothing is listed,
// and what was deleted out of band waits for a sync that lists.
TEST_F(SyncerUnitTest, FromTheRecordWritesWhatChangedInGitWithoutListing) {
  auto syncer = MakeSyncer();
  const std::string ns = Namespace("apps");
  SyncReport first = syncer->Sync(
      "rev1", {{"a.yaml", Docs({ns, ConfigMap("apps", "one"), ConfigMap("apps", "two")})}}, false,
      Syncer::Live::kFromRecord);
  ASSERT_TRUE(first.error.empty()) << Errors(first);
  EXPECT_FALSE(first.from_record) << "no record yet: the first sync lists";
  EXPECT_EQ(first.applied, 3);
  ASSERT_TRUE(api_.Delete(absl::StrCat(kCm, "two"), false).ok());  // out of band

  const std::vector<ManifestFileContent> next = {
      {"a.yaml", Docs({ns, ConfigMap("apps", "one", "b"), ConfigMap("apps", "two")})}};
  const size_t calls = api_.calls().size();
  SyncReport from_record = syncer->Sync("rev2", next, false, Syncer::Live::kFromRecord);
  ASSERT_TRUE(from_record.error.empty()) << Errors(from_record);
  EXPECT_TRUE(from_record.from_record);
  EXPECT_EQ(from_record.applied, 1);
  EXPECT_EQ(from_record.unchanged, 2);
  EXPECT_EQ(CallsOf("list", calls), std::vector<std::string>{});
  EXPECT_EQ(CallsOf("apply", calls), std::vector<std::string>{absl::StrCat(kCm, "one")});
  EXPECT_EQ(api_.Object(absl::StrCat(kCm, "one"))->at("data").at("k"), "b");
  EXPECT_FALSE(Exists(absl::StrCat(kCm, "two")));

  // A sync that lists finds it gone and writes it again.
  SyncReport listed = syncer->Sync("rev2", next, false, Syncer::Live::kList);
  ASSERT_TRUE(listed.error.empty()) << Errors(listed);
  EXPECT_FALSE(listed.from_record);
  EXPECT_EQ(listed.applied, 1);
  EXPECT_TRUE(Exists(absl::StrCat(kCm, "two")));
}

// Files that come without their text (unchanged since the revision the syncer parsed) take
// the parse it kept; their text is read again only when an object of theirs is written, or
// their parse is missing, and a failed read fails the sync rather than guess.
TEST_F(SyncerUnitTest, FilesThatCameUnchangedAreReadAgainOnlyWhenNeeded) {
  auto syncer = MakeSyncer();
  EXPECT_EQ(syncer->ParsedRevision(), "");
  const std::vector<ManifestFileContent> rev1 = {{"ns.yaml", Namespace("apps")},
                                                 {"a.yaml", ConfigMap("apps", "one")},
                                                 {"b.yaml", ConfigMap("apps", "two")}};
  SyncReport first = syncer->Sync("rev1", rev1, false);
  ASSERT_EQ(first.applied, 3) << Errors(first);
  EXPECT_EQ(first.files.sent, 3);
  EXPECT_EQ(syncer->ParsedRevision(), "rev1");

  std::vector<ManifestFileContent> rev2 = rev1;
  rev2[1].content = ConfigMap("apps", "one", "b");
  int rereads = 0;
  absl::Status reread_fails = absl::OkStatus();
  const Syncer::Reread reread = [&]() -> absl::StatusOr<std::vector<ManifestFileContent>> {
    ++rereads;
    if (!reread_fails.ok()) return reread_fails;
    return rev2;
  };
  SyncReport changed = syncer->Sync("rev2", {Known(rev2[0]), rev2[1], Known(rev2[2])}, false,
                                    Syncer::Live::kFromRecord, reread);
  ASSERT_TRUE(changed.error.empty()) << Errors(changed);
  EXPECT_EQ(changed.applied, 1);
  EXPECT_EQ(changed.unchanged, 2);
  EXPECT_EQ(rereads, 0);
  EXPECT_EQ(changed.files.sent, 1);
  EXPECT_EQ(changed.files.known, 2);
  EXPECT_EQ(changed.files.read_again, 0);
  EXPECT_EQ(api_.Object(absl::StrCat(kCm, "one"))->at("data").at("k"), "b");

  // Changed in the cluster: a listing sync writes it again, from b.yaml's text read again.
  const std::vector<ManifestFileContent> all_known = {Known(rev2[0]), Known(rev2[1]),
                                                      Known(rev2[2])};
  nlohmann::json two = *api_.Object(absl::StrCat(kCm, "two"));
  const nlohmann::json applied_two = two;
  two["metadata"]["annotations"][kChecksumAnnotation] = "edited";
  two["data"]["k"] = "edited";
  api_.Put(two);
  reread_fails = absl::UnavailableError("git-writer: connection refused");
  SyncReport failed = syncer->Sync("rev2", all_known, false, Syncer::Live::kList, reread);
  EXPECT_EQ(failed.error_code, absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.error, ::testing::HasSubstr("reading the manifests again: git-writer"));
  EXPECT_EQ(api_.Object(absl::StrCat(kCm, "two"))->at("data").at("k"), "edited");
  reread_fails = absl::OkStatus();
  rereads = 0;
  SyncReport drift = syncer->Sync("rev2", all_known, false, Syncer::Live::kList, reread);
  ASSERT_TRUE(drift.error.empty()) << Errors(drift);
  EXPECT_EQ(drift.applied, 1);
  EXPECT_EQ(drift.unchanged, 2);
  EXPECT_EQ(rereads, 1);
  EXPECT_EQ(drift.files.read_again, 3);
  EXPECT_EQ(*api_.Object(absl::StrCat(kCm, "two")), applied_two);

  // A name whose hash is not the one of the text parsed (git-writer's index of the known
  // revision made anew, e.g. after a restart with other flags) is read again, not trusted.
  rereads = 0;
  std::vector<ManifestFileContent> stale = all_known;
  stale[2].hash ^= 1;
  SyncReport rehashed = syncer->Sync("rev2", stale, false, Syncer::Live::kFromRecord, reread);
  ASSERT_TRUE(rehashed.error.empty()) << Errors(rehashed);
  EXPECT_EQ(rereads, 1);
  EXPECT_EQ(rehashed.unchanged, 3);

  // Nor is the parse of a file that failed to load: git-writer may serve it now.
  auto healing = MakeSyncer();
  SyncReport broken = healing->Sync(
      "rev2", {rev2[0], rev2[1], {"b.yaml", "", "bigger than --max_manifest_file_bytes"}}, false);
  EXPECT_EQ(broken.failed, 1) << Errors(broken);
  rereads = 0;
  SyncReport healed = healing->Sync("rev2", all_known, false, Syncer::Live::kList, reread);
  ASSERT_TRUE(healed.error.empty()) << Errors(healed);
  EXPECT_EQ(rereads, 1);
  EXPECT_EQ(healed.failed, 0);
  EXPECT_EQ(healed.unchanged, 3);

  // A syncer that never parsed them reads them whole to parse them; without a way to, the
  // sync fails and writes nothing.
  rereads = 0;
  SyncReport cold = MakeSyncer()->Sync("rev2", all_known, false, Syncer::Live::kList, reread);
  ASSERT_TRUE(cold.error.empty()) << Errors(cold);
  EXPECT_EQ(cold.unchanged, 3);
  EXPECT_EQ(rereads, 1);
  const int64_t writes = api_.writes();
  SyncReport unreadable = MakeSyncer()->Sync("rev2", all_known, false);
  EXPECT_EQ(unreadable.error_code, absl::StatusCode::kUnavailable);
  EXPECT_THAT(unreadable.error, ::testing::HasSubstr("cannot be read again"));
  EXPECT_EQ(api_.writes(), writes);
}

// The parse cache holds the files of the last sync, in whatever order they came: the
// others are kept, a file gone from git is forgotten (named as known later, it is read
// again, even when the cluster holds what it held), whether it sorts between the files
// served or after all of them.
TEST_F(SyncerUnitTest, TheParseCacheKeepsTheFilesOfTheLastSyncInAnyOrder) {
  auto syncer = MakeSyncer();
  const std::vector<ManifestFileContent> all = {{"ns.yaml", Namespace("apps")},
                                                {"c.yaml", ConfigMap("apps", "three")},
                                                {"a.yaml", ConfigMap("apps", "one")},
                                                {"b.yaml", ConfigMap("apps", "two")},
                                                {"z.yaml", ConfigMap("apps", "last")}};
  SyncReport first = syncer->Sync("rev1", all, false);
  ASSERT_EQ(first.applied, 5) << Errors(first);
  int rereads = 0;
  const Syncer::Reread reread = [&]() -> absl::StatusOr<std::vector<ManifestFileContent>> {
    ++rereads;
    return all;
  };
  // b.yaml and z.yaml gone, the others in another order; dry runs keep the record of rev1,
  // the objects of both included.
  SyncReport without = syncer->Sync("rev2", {Known(all[2]), Known(all[0]), Known(all[1])},
                                    /*dry_run=*/true, Syncer::Live::kFromRecord, reread);
  ASSERT_TRUE(without.error.empty()) << Errors(without);
  EXPECT_EQ(without.unchanged, 3);
  EXPECT_EQ(rereads, 0) << "a parse kept from rev1 was lost";
  SyncReport again = syncer->Sync("rev2", {Known(all[0]), Known(all[1]), Known(all[2])},
                                  /*dry_run=*/true, Syncer::Live::kFromRecord, reread);
  ASSERT_TRUE(again.error.empty()) << Errors(again);
  EXPECT_EQ(rereads, 0) << "a parse kept from the sync before was lost";
  // Each back on its own: the cluster and the record hold its object as it is, so only a
  // parse that was forgotten makes the syncer read the file again.
  SyncReport middle_back =
      syncer->Sync("rev3", {Known(all[1]), Known(all[3]), Known(all[2]), Known(all[0])},
                   /*dry_run=*/true, Syncer::Live::kFromRecord, reread);
  ASSERT_TRUE(middle_back.error.empty()) << Errors(middle_back);
  EXPECT_EQ(middle_back.unchanged, 4);
  EXPECT_EQ(rereads, 1) << "b.yaml's parse outlived its file";
  SyncReport last_back = syncer->Sync("rev4", {Known(all[0]), Known(all[4])},
                                      /*dry_run=*/true, Syncer::Live::kFromRecord, reread);
  ASSERT_TRUE(last_back.error.empty()) << Errors(last_back);
  EXPECT_EQ(last_back.unchanged, 2);
  EXPECT_EQ(rereads, 2) << "z.yaml's parse outlived its file";
  EXPECT_EQ(syncer->ParsedRevision(), "rev4");
}

// A sync that lists lists every served kind it needs before it applies anything (side by
// side, not rank after rank).
TEST_F(SyncerUnitTest, ListsEveryKindItNeedsBeforeTheFirstApply) {
  auto syncer = MakeSyncer();
  const size_t calls = api_.calls().size();
  SyncReport r = syncer->Sync(
      "rev1",
      {{"a.yaml", Docs({Namespace("apps"), ConfigMap("apps", "one"), Deployment("apps", "web")})}},
      false);
  ASSERT_TRUE(r.error.empty()) << Errors(r);
  const std::vector<std::string> all = api_.calls();
  size_t first_apply = all.size();
  size_t last_list = 0;
  for (size_t i = calls; i < all.size(); ++i) {
    if (absl::StartsWith(all[i], "apply ") && first_apply == all.size()) first_apply = i;
    if (absl::StartsWith(all[i], "list ")) last_list = i;
  }
  EXPECT_EQ(CallsOf("list", calls).size(), 3u);  // namespaces, configmaps, deployments
  EXPECT_LT(last_list, first_apply);
}

// The record is only what a sync without an error left: after a failed one the next lists.
// Dry runs and garbage collection never take it.
TEST_F(SyncerUnitTest, NoRecordAfterAFailedSyncNorForDryRunsOrGarbageCollection) {
  auto syncer = MakeSyncer();
  const std::vector<ManifestFileContent> files = {
      {"a.yaml", Docs({Namespace("apps"), ConfigMap("apps", "one")})}};
  ASSERT_TRUE(syncer->Sync("rev1", files, false).error.empty());
  EXPECT_FALSE(syncer->Sync("rev1", files, true, Syncer::Live::kFromRecord).from_record);

  api_.Fail("list", "", absl::UnavailableError("connection refused"));
  SyncReport failed = syncer->Sync("rev1", files, false);
  EXPECT_FALSE(failed.error.empty());
  api_.Fail("list", "", absl::OkStatus());
  const size_t calls = api_.calls().size();
  SyncReport after = syncer->Sync("rev1", files, false, Syncer::Live::kFromRecord);
  ASSERT_TRUE(after.error.empty()) << Errors(after);
  EXPECT_FALSE(after.from_record);
  EXPECT_FALSE(CallsOf("list", calls).empty());
  EXPECT_TRUE(syncer->Sync("rev1", files, false, Syncer::Live::kFromRecord).from_record);
  syncer->ForgetRecord();  // e.g. leadership changed hands
  EXPECT_FALSE(syncer->Sync("rev1", files, false, Syncer::Live::kFromRecord).from_record);

  auto collecting = MakeSyncer(Options(/*gc=*/true));
  ASSERT_TRUE(collecting->Sync("rev1", files, false).error.empty());
  EXPECT_FALSE(collecting->Sync("rev1", files, false, Syncer::Live::kFromRecord).from_record);
}

}  // namespace
}  // namespace ferry::cluster_syncer
