// The cluster-syncer's garbage collection through the real binaries (git-writer, syncer,
// kube-apiserver): an object that left git is pruned, but never the objects of a file that
// no longer parses, nor an object whose kind and name match an object that failed to apply
// (an object moved to another namespace that is not there yet keeps its old copy).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/sync_steps.h"

namespace ferry {
namespace {

using testing::Running;

std::string ConfigMap(const std::string& ns, const std::string& name) {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\ndata: {a: b}\n";
}

TEST(SyncerGcBinaryTest, NeverPrunesObjectsOfABrokenFileOrNamedLikeAFailedObject) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  const std::string ns = "gc-kept";
  const std::map<std::string, std::string> files = {
      {"ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n"},
      {"pair.yaml", ConfigMap(ns, "one") + "---\n" + ConfigMap(ns, "two")},
      {"settings.yaml", ConfigMap(ns, "settings")},
      {"leaving.yaml", ConfigMap(ns, "leaving")}};
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, testing::GitRepo::Create(files));
  Running git, syncer;
  testing::StartGitWriterAndSyncer(
      *repo, **cluster, {"--sync_set=gc-kept", "--sync_garbage_collection"}, git, syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = testing::FirstSync(syncer);
  ASSERT_TRUE(first.has_value()) << syncer.process->Output();
  ASSERT_EQ(first->failed(), 0) << first->DebugString();
  ASSERT_EQ(first->applied(), 5) << first->DebugString();

  // pair.yaml no longer parses; "settings" moves to a namespace that does not exist (its
  // apply fails); leaving.yaml goes.
  ferry::v1::SyncResult result;
  testing::PushAndSync(*repo, git, syncer,
                       {{"pair.yaml", ConfigMap(ns, "one") + "---\nkind: [ConfigMap\n"},
                        {"settings.yaml", ConfigMap("gc-not-there", "settings")},
                        {"leaving.yaml", ""}},
                       &result);
  if (HasFatalFailure()) return;
  // (The notified head may have been synced once already: what was pruned is read from the
  // cluster below, not from this result.)
  EXPECT_EQ(result.failed(), 2) << result.DebugString();
  std::map<std::string, std::string> failed;
  for (const auto& e : result.errors()) failed[e.path()] = e.error();
  EXPECT_TRUE(failed.count("pair.yaml")) << result.DebugString();
  EXPECT_TRUE(failed.count("settings.yaml")) << result.DebugString();
  for (const char* kept : {"one", "two", "settings"}) {
    int status = 0;
    (*cluster)->Kubectl("-n " + ns + " get configmap " + std::string(kept), &status);
    EXPECT_EQ(status, 0) << kept << " was pruned";
  }
  int status = 0;
  (*cluster)->Kubectl("-n " + ns + " get configmap leaving", &status);
  EXPECT_NE(status, 0) << "what left git was not pruned: garbage collection did not run";
}

}  // namespace
}  // namespace ferry
