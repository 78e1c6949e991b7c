// MergeWorkloads, rule by rule: one row per rule of git + cluster -> ListWorkloads' answer.
#include "services/api/workload_listing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

// A workload on one side: its id and container names.
struct Side {
  std::string id;
  std::vector<std::string> containers = {"app"};
};

ferry::v1::ListManifestWorkloadsResponse Git(const std::vector<Side>& workloads,
                                             bool readonly = false) {
  ferry::v1::ListManifestWorkloadsResponse out;
  out.set_revision("c0ffee");
  out.set_readonly(readonly);
  for (const Side& s : workloads) {
    ferry::v1::ManifestWorkload* w = out.add_workloads();
    w->set_id(s.id);
    w->set_path("apps.yaml");
    w->mutable_policy()->set_automated(true);
    for (const std::string& c : s.containers) w->add_containers()->set_name(c);
  }
  return out;
}

ferry::v1::ListClusterWorkloadsResponse Cluster(const std::vector<Side>& workloads) {
  ferry::v1::ListClusterWorkloadsResponse out;
  for (const Side& s : workloads) {
    ferry::v1::ClusterWorkload* w = out.add_workloads();
    w->set_id(s.id);
    w->mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_READY);
    w->mutable_rollout()->set_ready(2);
    for (const std::string& c : s.containers) w->add_containers()->set_name(c);
  }
  return out;
}

// One workload of the answer as a line: id, rollout state and messages, read-only reason,
// where its fields came from (git: path and policy), containers, sync error.
std::string Line(const ferry::v1::Workload& w) {
  std::vector<std::string> containers;
  for (const auto& c : w.containers()) containers.push_back(c.name());
  std::string line = absl::StrCat(w.id(), " ", ferry::v1::RolloutState_Name(w.rollout().state()));
  if (!w.rollout().messages().empty()) {
    absl::StrAppend(&line, " (", absl::StrJoin(w.rollout().messages(), "; "), ")");
  }
  if (w.read_only() != ferry::v1::READ_ONLY_REASON_UNSPECIFIED) {
    absl::StrAppend(&line, " ", ferry::v1::ReadOnlyReason_Name(w.read_only()));
  }
  if (!w.path().empty() && w.policy().automated()) absl::StrAppend(&line, " git");
  absl::StrAppend(&line, " [", absl::StrJoin(containers, ","), "]");
  if (!w.sync_error().empty()) absl::StrAppend(&line, " sync_error=", w.sync_error());
  return line;
}

struct Case {
  std::string rule;
  std::string ns, container;  // the request
  ferry::v1::ListManifestWorkloadsResponse in_git;
  std::optional<ferry::v1::ListClusterWorkloadsResponse> in_cluster;  // nullopt: no answer
  std::vector<std::pair<std::string, std::string>> sync_errors;       // resource, error
  std::vector<std::string> want;                                      // lines, or
  absl::StatusCode code = absl::StatusCode::kOk;                      // an error
};

TEST(MergeWorkloadsTest, EveryRule) {
  const std::string a = "default:deployment/a", b = "default:deployment/b",
                    c = "default:deployment/c";
  const Case cases[] = {
      {"in git and in the cluster: git's fields, the cluster's rollout",
       "",
       "",
       Git({{a}}),
       Cluster({{a}}),
       {},
       {a + " ROLLOUT_STATE_READY git [app]"}},
      {"in git only",
       "",
       "",
       Git({{a}}),
       Cluster({}),
       {},
       {a + " ROLLOUT_STATE_UNKNOWN (not in the cluster) git [app]"}},
      {"the cluster did not answer: not ready",
       "",
       "",
       Git({{a}}),
       std::nullopt,
       {},
       {a + " ROLLOUT_STATE_UNKNOWN (the cluster state is not known) READ_ONLY_REASON_NOT_READY "
            "git [app]"}},
      {"git-writer read-only wins over not ready",
       "",
       "",
       Git({{a}}, /*readonly=*/true),
       std::nullopt,
       {},
       {a + " ROLLOUT_STATE_UNKNOWN (the cluster state is not known) "
            "READ_ONLY_REASON_READ_ONLY_MODE git [app]"}},
      {"in the cluster only: its containers, not in the repo",
       "",
       "",
       Git({}),
       Cluster({{a, {"web", "sidecar"}}}),
       {},
       {a + " ROLLOUT_STATE_READY READ_ONLY_REASON_NOT_IN_REPO [web,sidecar]"}},
      {"sorted by id across both sides",
       "",
       "",
       Git({{c}, {a}}),
       Cluster({{b}, {a}}),
       {},
       {a + " ROLLOUT_STATE_READY git [app]",
        b + " ROLLOUT_STATE_READY READ_ONLY_REASON_NOT_IN_REPO [app]",
        c + " ROLLOUT_STATE_UNKNOWN (not in the cluster) git [app]"}},
      {"the container filter keeps workloads with that container, on both sides",
       "",
       "web",
       Git({{a, {"app", "web"}}, {b}}),
       Cluster({{c, {"web"}}, {b}}),
       {},
       {a + " ROLLOUT_STATE_UNKNOWN (not in the cluster) git [app,web]",
        c + " ROLLOUT_STATE_READY READ_ONLY_REASON_NOT_IN_REPO [web]"}},
      {"the last sync's error of a workload, not of other resources",
       "",
       "",
       Git({{a}, {b}}),
       Cluster({{a}, {b}}),
       {{b, "admission denied"}, {"", "whole sync"}},
       {a + " ROLLOUT_STATE_READY git [app]",
        b + " ROLLOUT_STATE_READY git [app] sync_error=admission denied"}},
      {"a namespace with nothing anywhere is misspelt",
       "defualt",
       "",
       Git({}),
       Cluster({}),
       {},
       {},
       absl::StatusCode::kNotFound},
      {"... unless the cluster did not say", "defualt", "", Git({}), std::nullopt, {}, {}},
      {"a namespace with workloads, none with the container: an empty answer",
       "default",
       "web",
       Git({}),
       Cluster({{a}}),
       {},
       {}},
      {"every namespace: an empty answer is an answer", "", "", Git({}), Cluster({}), {}, {}},
  };
  for (const Case& c : cases) {
    ferry::v1::ListWorkloadsRequest request;
    request.set_namespace_(c.ns);
    request.set_container(c.container);
    ferry::v1::SyncResult last_sync;
    for (const auto& [resource, error] : c.sync_errors) {
      ferry::v1::ResourceError* e = last_sync.add_errors();
      e->set_resource(resource);
      e->set_error(error);
    }
    absl::StatusOr<ferry::v1::ListWorkloadsResponse> merged = MergeWorkloads(
        request, c.in_git, c.in_cluster.has_value() ? &*c.in_cluster : nullptr, &last_sync);
    if (c.code != absl::StatusCode::kOk) {
      EXPECT_THAT(merged, StatusIs(c.code)) << c.rule;
      continue;
    }
    FERRY_ASSERT_OK(merged) << c.rule;
    std::vector<std::string> lines;
    for (const ferry::v1::Workload& w : merged->workloads()) lines.push_back(Line(w));
    EXPECT_THAT(lines, ::testing::ElementsAreArray(c.want)) << c.rule;
    EXPECT_EQ(merged->revision(), "c0ffee") << c.rule;
  }
}

TEST(MergeWorkloadsTest, AWorkloadWhoseFileFailedToLoadCarriesThatError) {
  // A kustomize root that no longer builds: git has none of its workloads, the cluster still
  // runs them (applied from the root, which their source annotation names).
  ferry::v1::ListClusterWorkloadsResponse cluster =
      Cluster({{"prod:deployment/web"}, {"prod:deployment/other"}});
  (*cluster.mutable_workloads(0)->mutable_annotations())["ferry.dev/source"] =
      "overlays/prod/kustomization.yaml";
  (*cluster.mutable_workloads(1)->mutable_annotations())["ferry.dev/source"] = "apps/ok.yaml";
  ferry::v1::SyncResult last_sync;
  ferry::v1::ResourceError* e = last_sync.add_errors();
  e->set_path("overlays/prod/kustomization.yaml");
  e->set_error("kustomize root not built: missing.yaml");
  FERRY_ASSERT_OK_AND_ASSIGN(
      ferry::v1::ListWorkloadsResponse merged,
      MergeWorkloads(ferry::v1::ListWorkloadsRequest(), Git({}), &cluster, &last_sync));
  ASSERT_EQ(merged.workloads_size(), 2);
  EXPECT_EQ(merged.workloads(0).id(), "prod:deployment/other");
  EXPECT_EQ(merged.workloads(0).sync_error(), "");
  EXPECT_EQ(merged.workloads(1).sync_error(),
            "overlays/prod/kustomization.yaml: kustomize root not built: missing.yaml");
}

// git-writer holds an unsigned head back (--git_verify_signatures): the answer says so, and
// its workloads are of the verified revision git-writer indexed.
TEST(MergeWorkloadsTest, AGitHeadThatDidNotVerifyIsReported) {
  ferry::v1::ListManifestWorkloadsResponse git = Git({});
  git.set_verify_error("commit 0123456789ab is not signed");
  const ferry::v1::ListClusterWorkloadsResponse none;
  FERRY_ASSERT_OK_AND_ASSIGN(
      ferry::v1::ListWorkloadsResponse merged,
      MergeWorkloads(ferry::v1::ListWorkloadsRequest(), git, &none, nullptr));
  EXPECT_EQ(merged.git_verify_error(), "commit 0123456789ab is not signed");
  EXPECT_EQ(merged.revision(), git.revision());
  FERRY_ASSERT_OK_AND_ASSIGN(
      merged, MergeWorkloads(ferry::v1::ListWorkloadsRequest(), Git({}), &none, nullptr));
  EXPECT_EQ(merged.git_verify_error(), "");
}

TEST(MergeWorkloadsTest, AMisspeltNamespaceIsNamedWithTheWayToListEveryOne) {
  ferry::v1::ListWorkloadsRequest request;
  request.set_namespace_("defualt");
  const ferry::v1::ListClusterWorkloadsResponse none;
  absl::StatusOr<ferry::v1::ListWorkloadsResponse> merged =
      MergeWorkloads(request, Git({}), &none, nullptr);
  EXPECT_EQ(merged.status().message(),
            "namespace defualt has no workloads, in git or in the cluster; check its spelling "
            "(ferryctl list-workloads -a lists every one)");
}

}  // namespace
}  // namespace ferry::api
