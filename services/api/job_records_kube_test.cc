// ConfigMapJobRecords against a hostile API server on loopback (cpp-httplib): records whose
// metadata is of the wrong shape, continue tokens that would add query parameters, and a
// list that never ends.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/kube/kube_client.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"
#include "services/api/job_records.h"
#include "tests/support/loopback_http_server.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// Answers each list of ConfigMaps with `page(request number, query)`; records the queries.
class ListServer {
 public:
  using Page = std::function<std::string(int, const std::string&)>;
  explicit ListServer(Page page) : page_(std::move(page)) {
    http_.server().Get("/api/v1/namespaces/ferry/configmaps",
                       [this](const httplib::Request& req, httplib::Response& res) {
                         // Each parameter as the server decoded it: "key=value", one line each.
                         std::string query;
                         for (const auto& [key, value] : req.params) {
                           absl::StrAppend(&query, key, "=", value, "\n");
                         }
                         int n;
                         {
                           std::lock_guard<std::mutex> lock(mu_);
                           queries_.push_back(query);
                           n = static_cast<int>(queries_.size());
                         }
                         res.set_content(page_(n, query), "application/json");
                       });
    FERRY_EXPECT_OK(http_.Start());
  }
  std::string host() const { return http_.host(); }
  std::vector<std::string> queries() {
    std::lock_guard<std::mutex> lock(mu_);
    return queries_;
  }

 private:
  const Page page_;
  std::mutex mu_;
  std::vector<std::string> queries_;
  // Last: stopped before the members its handler uses go.
  ferry::testing::LoopbackHttpServer http_;
};

struct Listed {
  absl::StatusOr<std::vector<JobRecordSummary>> summaries;
  std::vector<std::string> queries;
  double list_errors = 0;
};

Listed List(const ListServer::Page& page, absl::Duration list_timeout = absl::Hours(1)) {
  ListServer server(page);
  kube::ClusterAccess access;
  access.server = "http://" + server.host();
  access.tls.insecure_hosts = {server.host()};
  prometheus::Registry registry;
  kube::KubeClient client(access, registry);
  JobRecordMetrics metrics(registry);
  ConfigMapJobRecords records(client, "ferry", "api-0", metrics, list_timeout);
  Listed out;
  out.summaries = records.ListSummaries();
  out.queries = server.queries();
  for (const auto& family : registry.Collect()) {
    if (family.name != "ferry_job_records_errors_total") continue;
    for (const auto& metric : family.metric) out.list_errors += metric.counter.value;
  }
  return out;
}

// Records of every wrong shape are skipped or read without their times; a token that holds
// '&' and '=' stays one query value; the list ends with the page that hands out none.
TEST(ConfigMapJobRecordsTest, HostileMetadataIsSkippedOrReadAsFarAsItGoes) {
  Listed listed = List([](int n, const std::string&) -> std::string {
    if (n > 1) return R"({"items":[{"metadata":{"name":"ferry-job-last"}}],"metadata":{}})";
    return R"({"items":[
      {"metadata":"not an object"},
      {"metadata":{"name":7}},
      {"metadata":["ferry-job-array"]},
      7,
      {"metadata":{"name":"someone-else"}},
      {"metadata":{"name":"ferry-job-../../x","annotations":{"ferry.dev/submitted":5}}},
      {"metadata":{"name":"ferry-job-bad-time","annotations":{"ferry.dev/submitted":"yesterday"}}},
      {"metadata":{"name":"ferry-job-good","annotations":{
        "ferry.dev/submitted":"2026-12-05T10:00:00Z","ferry.dev/finished":"2026-12-05T10:00:01Z"}}}
    ],"metadata":{"continue":"tok&limit=1=="}})";
  });
  FERRY_ASSERT_OK(listed.summaries);
  std::vector<std::string> ids;
  for (const JobRecordSummary& s : *listed.summaries) ids.push_back(s.id);
  EXPECT_THAT(ids, UnorderedElementsAre("../../x", "bad-time", "good", "last"));
  for (const JobRecordSummary& s : *listed.summaries) {
    if (s.id == "good") {
      EXPECT_EQ(s.submitted,
                absl::FromCivil(absl::CivilSecond(2026, 12, 5, 10, 0, 0), absl::UTCTimeZone()));
      EXPECT_EQ(s.finished,
                absl::FromCivil(absl::CivilSecond(2026, 12, 5, 10, 0, 1), absl::UTCTimeZone()));
    } else {
      EXPECT_EQ(s.submitted, absl::InfinitePast()) << s.id;
      EXPECT_EQ(s.finished, std::nullopt) << s.id;
    }
  }
  ASSERT_EQ(listed.queries.size(), 2u);
  // The server decodes the query: the token comes back whole, as one value, and adds no
  // parameter of its own.
  EXPECT_EQ(listed.queries[1],
            "continue=tok&limit=1==\nlabelSelector=app.kubernetes.io/managed-by=ferry-api\n"
            "limit=500\n");
}

// A list whose every page hands out another token stops at limits::kKubeListPages.
TEST(ConfigMapJobRecordsTest, AListThatNeverEndsStopsAtThePageLimit) {
  Listed listed = List([](int, const std::string&) -> std::string {
    return R"({"items":[],"metadata":{"continue":"again"}})";
  });
  EXPECT_THAT(listed.summaries, StatusIs(absl::StatusCode::kResourceExhausted,
                                         HasSubstr("list over the limit of 10000 pages")));
  EXPECT_EQ(listed.queries.size(), limits::kKubeListPages.default_value);
  EXPECT_EQ(listed.list_errors, 1);
}

// The listing as a whole ends at its timeout, long before the page limit: pages of 2 ms or
// more, for 1 s, are at most 500 of them.
TEST(ConfigMapJobRecordsTest, AListThatNeverEndsStopsAtTheListingTimeout) {
  Listed listed = List(
      [](int, const std::string&) -> std::string {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return R"({"items":[],"metadata":{"continue":"again"}})";
      },
      absl::Seconds(1));
  EXPECT_THAT(listed.summaries, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GT(listed.queries.size(), 0u);
  EXPECT_LT(listed.queries.size(), limits::kKubeListPages.default_value);
  EXPECT_EQ(listed.list_errors, 1);
}

}  // namespace
}  // namespace ferry::api
