#include "lib/kube/list.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"

namespace ferry::kube {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kConfigMaps[] = "/api/v1/namespaces/ns/configmaps";

// A KubeApi that only lists: it writes nothing.
class ListOnlyApi : public KubeApi {
 public:
  absl::StatusOr<nlohmann::json> Apply(const std::string&, const nlohmann::json&,
                                       const std::string&, bool, bool) override {
    return absl::UnimplementedError("not a list");
  }
  absl::Status Delete(const std::string&, bool) override {
    return absl::UnimplementedError("not a list");
  }
};

// A collection of `count` objects cm-0, cm-1, ... served a page at a time: `limit` objects
// from the index the continue token names ("at-K"). Each call is recorded as
// "VERB PATH TIMEOUT"; `fail_at` makes the request for that page fail.
class PagedListApi final : public ListOnlyApi {
 public:
  explicit PagedListApi(int count) : count_(count) {}

  absl::StatusOr<nlohmann::json> GetWithin(const std::string& path, const std::string& verb,
                                           absl::Duration timeout) override {
    timeouts.push_back(timeout);
    return Page(absl::StrCat(verb, " ", path, " ", absl::FormatDuration(timeout)), path);
  }
  absl::StatusOr<nlohmann::json> ListMetadataWithin(const std::string& path,
                                                    absl::Duration timeout) override {
    return Page(absl::StrCat("metadata ", path, " ", absl::FormatDuration(timeout)), path);
  }
  absl::StatusOr<nlohmann::json> Get(const std::string&, const std::string&) override {
    return absl::InternalError("a page is read with its timeout");
  }
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string&) override {
    return absl::InternalError("a page is read with its timeout");
  }

  std::vector<std::string> calls;
  std::vector<absl::Duration> timeouts;  // of the GetWithin calls
  int fail_at = -1;                      // the page (0-based) whose request fails

 private:
  absl::StatusOr<nlohmann::json> Page(std::string call, const std::string& path) {
    const int page = static_cast<int>(calls.size());
    calls.push_back(std::move(call));
    if (page == fail_at) return absl::UnavailableError("connection refused");
    int limit = 0, from = 0;
    const std::string query = path.substr(path.find('?') + 1);
    for (absl::string_view param : absl::StrSplit(query, '&')) {
      if (absl::ConsumePrefix(&param, "limit=")) {
        EXPECT_TRUE(absl::SimpleAtoi(param, &limit));
      } else if (absl::ConsumePrefix(&param, "continue=at-")) {
        EXPECT_TRUE(absl::SimpleAtoi(param, &from));
      }
    }
    nlohmann::json items = nlohmann::json::array();
    for (int i = from; i < count_ && i < from + limit; ++i) {
      items.push_back({{"metadata", {{"name", absl::StrCat("cm-", i)}}}});
    }
    nlohmann::json meta = {{"resourceVersion", absl::StrCat("rv-", page)}};
    if (from + limit < count_) meta["continue"] = absl::StrCat("at-", from + limit);
    return nlohmann::json{{"items", items}, {"metadata", meta}};
  }

  const int count_;
};

std::vector<std::string> Names(KubeApi& api, const std::string& path, const ListOptions& options,
                               absl::Status* status, size_t stop_after = SIZE_MAX) {
  std::vector<std::string> names;
  *status = ForEachListItem(api, path, options, [&](const nlohmann::json& item) {
    names.push_back(item["metadata"]["name"]);
    return names.size() < stop_after;
  });
  return names;
}

TEST(ForEachListItemTest, ReadsEveryPageInOrderWithItsTimeout) {
  PagedListApi api(5);
  std::string resource_version;
  absl::Status status;
  EXPECT_THAT(
      Names(
          api, kConfigMaps,
          {.page_size = 2, .page_timeout = absl::Seconds(7), .resource_version = &resource_version},
          &status),
      ElementsAre("cm-0", "cm-1", "cm-2", "cm-3", "cm-4"));
  FERRY_EXPECT_OK(status);
  // 2 + 2 + 1: three requests, none holding more than a page.
  EXPECT_THAT(api.calls,
              ElementsAre(absl::StrCat("list ", kConfigMaps, "?limit=2 7s"),
                          absl::StrCat("list ", kConfigMaps, "?limit=2&continue=at-2 7s"),
                          absl::StrCat("list ", kConfigMaps, "?limit=2&continue=at-4 7s")));
  EXPECT_EQ(resource_version, "rv-2");
}

TEST(ForEachListItemTest, KeepsTheQueryOfThePathAndListsMetadataOnly) {
  PagedListApi api(2);
  absl::Status status;
  EXPECT_THAT(Names(api, absl::StrCat(kConfigMaps, "?labelSelector=team%3Da"),
                    {.metadata_only = true, .page_size = 1}, &status),
              ElementsAre("cm-0", "cm-1"));
  FERRY_EXPECT_OK(status);
  EXPECT_THAT(
      api.calls,
      ElementsAre(absl::StrCat("metadata ", kConfigMaps, "?labelSelector=team%3Da&limit=1 1m"),
                  absl::StrCat("metadata ", kConfigMaps,
                               "?labelSelector=team%3Da&limit=1&continue=at-1 1m")));
}

TEST(ForEachListItemTest, AFailedPageIsTheErrorAfterTheItemsBeforeIt) {
  PagedListApi api(5);
  api.fail_at = 1;
  absl::Status status;
  EXPECT_THAT(Names(api, kConfigMaps, {.page_size = 2}, &status), ElementsAre("cm-0", "cm-1"));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("connection refused")));
  EXPECT_EQ(api.calls.size(), 2u);
}

TEST(ForEachListItemTest, StopsWhenTheCallerHasEnough) {
  PagedListApi api(5);
  absl::Status status;
  EXPECT_THAT(Names(api, kConfigMaps, {.page_size = 2}, &status, /*stop_after=*/3),
              ElementsAre("cm-0", "cm-1", "cm-2"));
  FERRY_EXPECT_OK(status);
  EXPECT_EQ(api.calls.size(), 2u);  // no page after the one holding the third item
}

// A deadline bounds the whole list: each page's timeout ends by it, and once it has
// passed no page is asked for.
TEST(ForEachListItemTest, TheListsDeadlineBoundsEachPageAndEndsTheList) {
  PagedListApi api(5);
  absl::Status status;
  EXPECT_THAT(Names(api, kConfigMaps,
                    {.page_size = 2,
                     .page_timeout = absl::Seconds(60),
                     .deadline = absl::Now() + absl::Seconds(20)},
                    &status),
              ElementsAre("cm-0", "cm-1", "cm-2", "cm-3", "cm-4"));
  FERRY_EXPECT_OK(status);
  ASSERT_EQ(api.timeouts.size(), 3u);
  for (absl::Duration t : api.timeouts) {
    EXPECT_LE(t, absl::Seconds(20));
    EXPECT_GT(t, absl::Seconds(10));
  }

  // Passed, or under a millisecond away (no time for a request): no page is asked for.
  for (absl::Duration from_now : {-absl::Seconds(1), absl::Microseconds(500)}) {
    PagedListApi late(5);
    EXPECT_THAT(Names(late, kConfigMaps, {.deadline = absl::Now() + from_now}, &status), IsEmpty());
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded,
                                 HasSubstr("did not end by its deadline (0 pages read)")));
    EXPECT_THAT(late.calls, IsEmpty());
  }
}

// An API that answers lists with `page` every time.
class FixedPageApi final : public ListOnlyApi {
 public:
  explicit FixedPageApi(nlohmann::json page) : page_(std::move(page)) {}
  absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) override {
    paths.push_back(path);
    return page_;
  }
  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    return ListMetadata(path);
  }
  std::vector<std::string> paths;

 private:
  const nlohmann::json page_;
};

// A list that never ends stops at limits::kKubeListPages; each token is one query value.
TEST(ForEachListItemTest, AListThatNeverEndsStopsAtThePageLimit) {
  FixedPageApi api(nlohmann::json{{"items", nlohmann::json::array()},
                                  {"metadata", {{"continue", "more&limit=1"}}}});
  absl::Status status;
  EXPECT_THAT(Names(api, kConfigMaps, {.metadata_only = true, .page_size = 2}, &status), IsEmpty());
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("list over the limit of 10000 pages")));
  EXPECT_EQ(api.paths.size(), limits::kKubeListPages.default_value);
  ASSERT_GE(api.paths.size(), 2u);
  EXPECT_EQ(api.paths[1], absl::StrCat(kConfigMaps, "?limit=2&continue=more%26limit%3D1"));
}

// Answers of the wrong shape end the list where they stop making sense, without an error
// and without throwing.
TEST(ForEachListItemTest, AnswersOfTheWrongShapeEndTheList) {
  for (const nlohmann::json& page : {
           nlohmann::json::array(),
           nlohmann::json{{"items", "cm-0"}},
           nlohmann::json{{"items", nlohmann::json::array()}, {"metadata", "continue"}},
           nlohmann::json{{"items", nlohmann::json::array()}, {"metadata", {{"continue", 7}}}},
           nlohmann::json{{"metadata", {{"continue", ""}, {"resourceVersion", 12}}}},
       }) {
    FixedPageApi api(page);
    std::string resource_version = "unchanged";
    absl::Status status;
    EXPECT_THAT(Names(api, kConfigMaps, {.resource_version = &resource_version}, &status),
                IsEmpty());
    FERRY_EXPECT_OK(status) << page;
    EXPECT_EQ(api.paths.size(), 1u) << page;
    EXPECT_EQ(resource_version, "unchanged") << page;
  }
}

}  // namespace
}  // namespace ferry::kube
