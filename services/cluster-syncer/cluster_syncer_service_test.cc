// ClusterSyncerService's ListWorkloads against FakeKubeApi: which Kubernetes API calls a
// request costs (a listing of every workload, or a read of each named one).
#include "services/cluster-syncer/cluster_syncer_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "lib/runtime/fake_clock.h"
#include "services/cluster-syncer/fake_kube_api.h"
#include "services/cluster-syncer/workload_watch.h"

namespace ferry::cluster_syncer {
namespace {

nlohmann::json Deployment(const std::string& ns, const std::string& name,
                          nlohmann::json labels = nlohmann::json::object()) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
          {"spec",
           {{"template",
             {{"spec", {{"containers", {{{"name", "app"}, {"image", "app:" + name}}}}}}}}}}};
}

class ListWorkloadsTest : public ::testing::Test {
 protected:
  ListWorkloadsTest() {
    kube_.Put(Deployment("a", "web"));
    kube_.Put(Deployment("b", "api"));
    kube_.Put(Deployment("a", "addon", {{"addonmanager.kubernetes.io/mode", "Reconcile"}}));
  }

  // The service's status for `request`, its answer in `response`.
  grpc::Status Call(const ferry::v1::ListClusterWorkloadsRequest& request,
                    ClusterSyncerService& service,
                    ferry::v1::ListClusterWorkloadsResponse& response) {
    grpc::ServerContext context;
    return service.ListWorkloads(&context, &request, &response);
  }
  // The ids of the service's answer to `request`; fails the test on an error.
  std::vector<std::string> List(const ferry::v1::ListClusterWorkloadsRequest& request,
                                ClusterSyncerService& service) {
    ferry::v1::ListClusterWorkloadsResponse response;
    grpc::Status s = Call(request, service, response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const auto& w : response.workloads()) ids.push_back(w.id());
    return ids;
  }
  // The calls of `verb` made to the API server so far.
  std::vector<std::string> Calls(const std::string& verb) {
    std::vector<std::string> out;
    for (const std::string& call : kube_.calls()) {
      if (absl::StartsWith(call, verb + " ")) out.push_back(call.substr(verb.size() + 1));
    }
    return out;
  }

  FakeKubeApi kube_;
  kube::Discovery discovery_{kube_};
  ::testing::NiceMock<ferry::v1::MockGitWriterStub> git_;
  Syncer syncer_{kube_, discovery_, SyncOptions{}};
  prometheus::Registry registry_;
  SyncMetrics metrics_{registry_};
  runtime::FakeClock clock_;
  SyncLoop loop_{git_, kube_, syncer_, metrics_, SyncLoop::Options{}, clock_};  // not started
};

TEST_F(ListWorkloadsTest, NamedWorkloadsAreReadOneByOneWithoutAListing) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  ferry::v1::ListClusterWorkloadsRequest request;
  for (const char* id : {"b:deployment/api", "a:deployment/web", "a:deployment/gone",
                         "a:deployment/addon", "a:deployment/web"}) {
    request.add_ids(id);
  }
  EXPECT_EQ(List(request, service),
            (std::vector<std::string>{"a:deployment/web", "b:deployment/api"}));
  EXPECT_THAT(Calls("list"), ::testing::IsEmpty());
  std::vector<std::string> gets = Calls("get");
  std::sort(gets.begin(), gets.end());
  EXPECT_EQ(gets, (std::vector<std::string>{"/apis/apps/v1/namespaces/a/deployments/addon",
                                            "/apis/apps/v1/namespaces/a/deployments/gone",
                                            "/apis/apps/v1/namespaces/a/deployments/web",
                                            "/apis/apps/v1/namespaces/b/deployments/api"}))
      << "each named workload once";

  // Only those of the request's namespace, and only the allowed ones.
  request.set_namespace_("a");
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  ClusterSyncerService allowing_b(kube_, discovery_, loop_, {"b"});
  request.clear_namespace_();
  EXPECT_EQ(List(request, allowing_b), (std::vector<std::string>{"b:deployment/api"}));
  EXPECT_THAT(Calls("list"), ::testing::IsEmpty());
}

TEST_F(ListWorkloadsTest, NamedWorkloadsComeFromTheWatchCacheUnlessNowIsAskedFor) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  const auto gets = [&] {
    std::vector<std::string> out;
    for (const std::string& call : kube_.calls_with_query()) {
      if (absl::StartsWith(call, "get /apis/apps/v1/namespaces/a/deployments/web")) {
        out.push_back(call.substr(4));
      }
    }
    return out;
  };
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  // The default age (10 s), and one of a second: the API server's watch cache will do.
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  request.set_max_age_ms(1000);
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  // Younger than a second (a release's planning asking again for what it did not find):
  // etcd, which has everything written before the read began.
  request.set_max_age_ms(999);
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  EXPECT_EQ(gets(), (std::vector<std::string>{
                        "/apis/apps/v1/namespaces/a/deployments/web?resourceVersion=0",
                        "/apis/apps/v1/namespaces/a/deployments/web?resourceVersion=0",
                        "/apis/apps/v1/namespaces/a/deployments/web"}));
}

TEST_F(ListWorkloadsTest, NamedWorkloadsLeaveOutWhatAListingHides) {
  kube_.Serve({"batch", "v1", "Job", "jobs", true, {"get", "list"}});
  nlohmann::json run = {{"apiVersion", "batch/v1"},
                        {"kind", "Job"},
                        {"metadata",
                         {{"name", "nightly-1"},
                          {"namespace", "a"},
                          {"ownerReferences", {{{"kind", "CronJob"}, {"name", "nightly"}}}}}}};
  kube_.Put(run);
  run["metadata"]["name"] = "once";
  run["metadata"].erase("ownerReferences");
  kube_.Put(run);
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  ferry::v1::ListClusterWorkloadsRequest request;
  for (const char* id : {"a:job/nightly-1", "a:job/once", "a:deployment/addon"}) {
    request.add_ids(id);
  }
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:job/once"}));
  EXPECT_EQ(List({}, service),
            (std::vector<std::string>{"a:deployment/web", "a:job/once", "b:deployment/api"}))
      << "the listing hides the same ones";
}

TEST_F(ListWorkloadsTest, APageOfNamedWorkloadsReadsOnlyTheIdsAfterItsStart) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  request.add_ids("b:deployment/api");
  request.set_start_after("a:deployment/web");
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"b:deployment/api"}));
  EXPECT_EQ(Calls("get"), (std::vector<std::string>{"/apis/apps/v1/namespaces/b/deployments/api"}));
}

TEST_F(ListWorkloadsTest, ADiscoveryFailureFailsTheCallRatherThanHideAWorkload) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  kube_.Fail("discovery", "", absl::UnavailableError("the API server is away"));
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  ferry::v1::ListClusterWorkloadsResponse response;
  grpc::Status s = Call(request, service, response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(ListWorkloadsTest, ARecentListingAnswersNamedWorkloads) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  EXPECT_EQ(List({}, service), (std::vector<std::string>{"a:deployment/web", "b:deployment/api"}));
  const size_t listings = Calls("list").size();
  ASSERT_GT(listings, 0u);
  const size_t gets = Calls("get").size();
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  EXPECT_EQ(Calls("list").size(), listings);
  EXPECT_EQ(Calls("get").size(), gets);
}

TEST_F(ListWorkloadsTest, MoreNamesThanReadOneByOneMakeAListing) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  for (size_t i = 1; i < kWorkloadsReadOneByOne; ++i) {
    request.add_ids(absl::StrCat("c:deployment/w-", i));
  }
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  EXPECT_THAT(Calls("list"), ::testing::IsEmpty()) << "exactly the limit: read one by one";
  EXPECT_EQ(Calls("get").size(), kWorkloadsReadOneByOne);

  request.add_ids(absl::StrCat("c:deployment/w-", kWorkloadsReadOneByOne));
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  EXPECT_THAT(Calls("list"), ::testing::Not(::testing::IsEmpty()));
  EXPECT_EQ(Calls("get").size(), kWorkloadsReadOneByOne) << "none read by itself";
}

// With the workload watch up, ListWorkloads answers from it, named workloads or not, without
// a call to the API server; a caller asking for a read younger than a second is answered by
// the API server, as without the watch.
TEST_F(ListWorkloadsTest, TheWatchAnswersUnlessNowIsAskedFor) {
  WatchTiming timing;
  // FakeKubeApi lists but cannot watch: the watch fails once after its listing, and is not
  // retried nor given up on during the test.
  timing.retry_delay = timing.max_retry_delay = timing.failure_grace = absl::Hours(1);
  WorkloadWatch watch(
      kube_, discovery_, [](ClusterWorkloadInfo w) { return ToListed(std::move(w)); }, timing);
  ClusterSyncerService service(kube_, discovery_, loop_, {}, &watch);
  watch.Start();
  for (const absl::Time end = absl::Now() + absl::Seconds(30);
       watch.Workloads("") == nullptr && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(watch.Workloads(""), nullptr);
  const size_t calls = kube_.calls().size();
  kube_.Put(Deployment("a", "new"));  // after the listing: only a read of the API sees it

  EXPECT_EQ(List({}, service), (std::vector<std::string>{"a:deployment/web", "b:deployment/api"}));
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  request.add_ids("a:deployment/new");
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  request.set_max_age_ms(1000);
  EXPECT_EQ(List(request, service), (std::vector<std::string>{"a:deployment/web"}));
  ferry::v1::ListClusterWorkloadsRequest page;  // named, after a start
  page.add_ids("b:deployment/api");
  page.add_ids("a:deployment/web");
  page.set_start_after("a:deployment/web");
  EXPECT_EQ(List(page, service), (std::vector<std::string>{"b:deployment/api"}));
  page.set_namespace_("a");
  EXPECT_THAT(List(page, service), ::testing::IsEmpty());
  EXPECT_EQ(kube_.calls().size(), calls) << "answered by the watch alone";

  request.set_max_age_ms(999);
  EXPECT_EQ(List(request, service),
            (std::vector<std::string>{"a:deployment/new", "a:deployment/web"}));
  EXPECT_EQ(Calls("get").size(), 2u);
  ferry::v1::ListClusterWorkloadsRequest all;
  all.set_max_age_ms(1);
  EXPECT_EQ(List(all, service),
            (std::vector<std::string>{"a:deployment/new", "a:deployment/web", "b:deployment/api"}));
  watch.Stop();
}

TEST_F(ListWorkloadsTest, AFailedReadFailsTheCall) {
  ClusterSyncerService service(kube_, discovery_, loop_, {});
  kube_.Fail("get", "/apis/apps/v1/namespaces/b/", absl::PermissionDeniedError("forbidden"));
  ferry::v1::ListClusterWorkloadsRequest request;
  request.add_ids("a:deployment/web");
  request.add_ids("b:deployment/api");
  ferry::v1::ListClusterWorkloadsResponse response;
  grpc::Status s = Call(request, service, response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(response.workloads_size(), 0);
}

}  // namespace
}  // namespace ferry::cluster_syncer
