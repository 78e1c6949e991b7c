#include "services/cluster-syncer/kube_list.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"
#include "services/cluster-syncer/fake_kube_api.h"

namespace ferry::cluster_syncer {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kConfigMaps[] = "/api/v1/namespaces/ns/configmaps";

// Five ConfigMaps cm-0 .. cm-4 in `ns`, the odd ones labelled team=a.
void PutConfigMaps(FakeKubeApi& api) {
  for (int i = 0; i < 5; ++i) {
    nlohmann::json cm = {{"apiVersion", "v1"},
                         {"kind", "ConfigMap"},
                         {"metadata", {{"name", absl::StrCat("cm-", i)}, {"namespace", "ns"}}}};
    if (i % 2 == 1) cm["metadata"]["labels"] = {{"team", "a"}};
    api.Put(cm);
  }
}

std::vector<std::string> Names(FakeKubeApi& api, const std::string& path, bool metadata_only,
                               int page_size, absl::Status* status) {
  std::vector<std::string> names;
  *status = ForEachListItem(
      api, path, metadata_only,
      [&](const nlohmann::json& item) { names.push_back(item["metadata"]["name"]); }, page_size);
  return names;
}

TEST(ForEachListItemTest, ReadsEveryPageInOrder) {
  FakeKubeApi api;
  PutConfigMaps(api);
  absl::Status status;
  EXPECT_THAT(Names(api, kConfigMaps, /*metadata_only=*/false, 2, &status),
              ElementsAre("cm-0", "cm-1", "cm-2", "cm-3", "cm-4"));
  FERRY_EXPECT_OK(status);
  // 2 + 2 + 1: three requests, none holding more than a page.
  EXPECT_THAT(api.calls(),
              ElementsAre(absl::StrCat("list ", kConfigMaps), absl::StrCat("list ", kConfigMaps),
                          absl::StrCat("list ", kConfigMaps)));
}

TEST(ForEachListItemTest, KeepsTheQueryOfThePath) {
  FakeKubeApi api;
  PutConfigMaps(api);
  absl::Status status;
  EXPECT_THAT(Names(api, absl::StrCat(kConfigMaps, "?labelSelector=team%3Da"),
                    /*metadata_only=*/true, 1, &status),
              ElementsAre("cm-1", "cm-3"));
  FERRY_EXPECT_OK(status);
  EXPECT_EQ(api.calls().size(), 2u);
}

TEST(ForEachListItemTest, AFailedPageIsTheError) {
  FakeKubeApi api;
  PutConfigMaps(api);
  api.Fail("list", kConfigMaps, absl::UnavailableError("connection refused"));
  absl::Status status;
  EXPECT_THAT(Names(api, kConfigMaps, /*metadata_only=*/false, 2, &status), ::testing::IsEmpty());
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("connection refused")));
}

// An API that hands out a continue token with every page, and no items.
class EndlessListApi final : public kube::KubeApi {
 public:
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override {
    paths.push_back(path);
    return nlohmann::json{{"items", nlohmann::json::array()},
                          {"metadata", {{"continue", "more&limit=1"}}}};
  }
  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    return ListMetadata(path);
  }
  absl::StatusOr<nlohmann::json> Apply(const std::string&, const nlohmann::json&,
                                       const std::string&, bool, bool) override {
    return absl::UnimplementedError("not a list");
  }
  absl::Status Delete(const std::string&, bool) override {
    return absl::UnimplementedError("not a list");
  }
  std::vector<std::string> paths;
};

// A list that never ends stops at limits::kKubeListPages; each token is one query value.
TEST(ForEachListItemTest, AListThatNeverEndsStopsAtThePageLimit) {
  EndlessListApi api;
  absl::Status status = ForEachListItem(
      api, kConfigMaps, /*metadata_only=*/true, [](const nlohmann::json&) {}, 2);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("list over the limit of 10000 pages")));
  EXPECT_EQ(api.paths.size(), limits::kKubeListPages.default_value);
  ASSERT_GE(api.paths.size(), 2u);
  EXPECT_EQ(api.paths[1], absl::StrCat(kConfigMaps, "?limit=2&continue=more%26limit%3D1"));
}

}  // namespace
}  // namespace ferry::cluster_syncer
