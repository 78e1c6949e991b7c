// WorkloadWatch against a scripted Kubernetes API: listings, watch events, bookmarks and the
// ways a watch ends (the server's timeout, 410 Gone, a failure, silence), with its waits
// shortened. The watch against the real API server is in workloads_test.cc.
#include "services/cluster-syncer/workload_watch.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/kube/fake_discovery_api.h"
#include "services/cluster-syncer/workload_watch_testing.h"

namespace ferry::cluster_syncer {
namespace {

using OnEvent = std::function<bool(const nlohmann::json&)>;

// A Deployment as a list or a watch event has it.
nlohmann::json WatchedDeployment(const std::string& name, const std::string& image,
                                 const std::string& resource_version,
                                 const std::string& ns = "ns") {
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", resource_version}}},
          {"spec",
           {{"template", {{"spec", {{"containers", {{{"name", "app"}, {"image", image}}}}}}}}}}};
}

nlohmann::json Event(const std::string& type, nlohmann::json object) {
  return {{"type", type}, {"object", std::move(object)}};
}

nlohmann::json Listing(const std::string& resource_version, nlohmann::json items) {
  return {{"metadata", {{"resourceVersion", resource_version}}}, {"items", std::move(items)}};
}

// Discovery serves apps/v1 Deployments alone (the other workload kinds are not served).
// Listings of Deployments are answered in turn from `listings` (the last again once they run
// out); watch n (from 0) is played by `watches[n]`, and a watch beyond them waits until
// stopped. A script may wait for the test to Open() a gate.
class ScriptedWatchApi : public kube::DeploymentsOnlyApi {
 public:
  using Script = std::function<absl::Status(ScriptedWatchApi& api, const std::atomic<bool>& stop,
                                            const OnEvent& on_event)>;

  ScriptedWatchApi(std::vector<nlohmann::json> listings, std::vector<Script> watches)
      : listings_(std::move(listings)), scripts_(std::move(watches)) {}

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb) override {
    if (!absl::StartsWith(path, "/apis/apps/v1/deployments?")) {
      return DeploymentsOnlyApi::Get(path, verb);
    }
    absl::MutexLock lock(&mu_);
    const size_t n = std::min(lists_++, listings_.size() - 1);
    return listings_[n];
  }

  absl::Status Watch(const std::string& path, absl::Duration, const std::atomic<bool>& stop,
                     const OnEvent& on_event) override {
    size_t n;
    {
      absl::MutexLock lock(&mu_);
      watches_.push_back(path);
      n = watches_.size() - 1;
    }
    if (n < scripts_.size()) return scripts_[n](*this, stop, on_event);
    while (!stop) absl::SleepFor(absl::Milliseconds(5));
    return absl::CancelledError("stopped");
  }

  // Opens the next gate (1, then 2, ...): a script waiting in WaitForGate for it goes on.
  void Open() {
    absl::MutexLock lock(&mu_);
    ++opened_;
  }
  // Waits until gate `gate` is open or `stop`; false when stopped.
  bool WaitForGate(int gate, const std::atomic<bool>& stop) {
    absl::MutexLock lock(&mu_);
    auto open = [this, gate]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return opened_ >= gate; };
    while (!mu_.AwaitWithTimeout(absl::Condition(&open), absl::Milliseconds(10))) {
      if (stop) return false;
    }
    return true;
  }

  // The paths watched so far.
  std::vector<std::string> watches() {
    absl::MutexLock lock(&mu_);
    return watches_;
  }
  // Waits up to 30 s for at least `n` watches; the paths watched then.
  std::vector<std::string> WaitForWatches(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return watches_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
    return watches_;
  }

 private:
  const std::vector<nlohmann::json> listings_;
  const std::vector<Script> scripts_;
  absl::Mutex mu_;
  size_t lists_ ABSL_GUARDED_BY(mu_) = 0;
  int opened_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> watches_ ABSL_GUARDED_BY(mu_);
};

// A script: sends `events` (stopping early when told to), then waits for gate `gate` (0: none),
// then ends with `end`.
ScriptedWatchApi::Script Play(std::vector<nlohmann::json> events, absl::Status end, int gate = 0) {
  return [events = std::move(events), end = std::move(end), gate](
             ScriptedWatchApi& api, const std::atomic<bool>& stop, const OnEvent& on_event) {
    for (const nlohmann::json& event : events) {
      if (!on_event(event)) return absl::CancelledError("stopped");
    }
    if (gate > 0 && !api.WaitForGate(gate, stop)) return absl::CancelledError("stopped");
    return end;
  };
}

// Fast waits, for tests: `retry_delay` after a failure, and a kind failing for longer than
// `failure_grace` is not answered from.
WatchTiming FastTiming(absl::Duration retry_delay, absl::Duration failure_grace = absl::Hours(1)) {
  WatchTiming t;
  t.retry_delay = t.max_retry_delay = retry_delay;
  t.failure_grace = failure_grace;
  t.up_after = absl::Seconds(10);
  t.absent_kind_recheck = absl::Hours(1);
  return t;
}

const nlohmann::json kFirstListing = Listing("10", {WatchedDeployment("web", "web:1", "9")});

TEST(WorkloadWatch, FollowsEventsAndListsAgainWhenTheWatchIsGone) {
  nlohmann::json gone = Event("ERROR", {{"kind", "Status"}, {"code", 410}, {"message", "too old"}});
  ScriptedWatchApi api(
      {kFirstListing, Listing("20", {WatchedDeployment("web", "web:3", "18"),
                                     WatchedDeployment("api", "api:1", "19")})},
      {Play({Event("MODIFIED", WatchedDeployment("web", "web:2", "11"))}, absl::OkStatus(),
            /*gate=*/1),
       Play({gone}, absl::OkStatus())});
  kube::Discovery discovery(api);
  // A failure's wait of an hour: what the test sees comes without one.
  WorkloadWatch watch(api, discovery, ImageOnly, FastTiming(absl::Hours(1)));
  watch.Start();
  // The other workload kinds are not served: they count as none, and do not hold the answer.
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/web web:2"), "ns:deployment/web web:2");
  EXPECT_EQ(watch.listings(), 1);
  api.Open();  // the server ends the first watch; the second is answered 410 Gone
  // Listed again at once, and watched from the new listing's resourceVersion.
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/api api:1, ns:deployment/web web:3"),
            "ns:deployment/api api:1, ns:deployment/web web:3");
  EXPECT_EQ(Watched(watch, "other"), "");
  EXPECT_EQ(watch.listings(), 2);
  const std::vector<std::string> watches = api.WaitForWatches(3);
  watch.Stop();
  ASSERT_EQ(watches.size(), 3u);
  EXPECT_TRUE(absl::StrContains(watches[0], "watch=1")) << watches[0];
  EXPECT_TRUE(absl::StrContains(watches[0], "allowWatchBookmarks=true")) << watches[0];
  EXPECT_TRUE(absl::StrContains(watches[0], "resourceVersion=10&")) << watches[0];
  EXPECT_TRUE(absl::StrContains(watches[1], "resourceVersion=11&")) << watches[1];
  EXPECT_TRUE(absl::StrContains(watches[2], "resourceVersion=20&")) << watches[2];
}

// Named workloads are looked up one by one: only those named and held, in id order, once
// each, of the namespace asked for.
TEST(WorkloadWatch, NamedAnswersTheNamedOnesItHolds) {
  ScriptedWatchApi api({Listing("10", {WatchedDeployment("web", "web:1", "7"),
                                       WatchedDeployment("api", "api:1", "8"),
                                       WatchedDeployment("web", "web:9", "9", "other")})},
                       {});
  kube::Discovery discovery(api);
  WorkloadWatch watch(api, discovery, ImageOnly, FastTiming(absl::Hours(1)));
  const std::vector<std::string> ids = {"ns:deployment/web", "ns:deployment/gone",
                                        "other:deployment/web", "ns:deployment/api",
                                        "ns:deployment/web"};
  EXPECT_EQ(watch.Named("", ids), nullptr) << "nothing listed yet";
  watch.Start();
  EXPECT_EQ(WaitForWatched(watch, "",
                           "ns:deployment/api api:1, ns:deployment/web web:1, "
                           "other:deployment/web web:9"),
            "ns:deployment/api api:1, ns:deployment/web web:1, other:deployment/web web:9");
  EXPECT_EQ(Line(watch.Named("", ids)),
            "ns:deployment/api api:1, ns:deployment/web web:1, other:deployment/web web:9");
  EXPECT_EQ(Line(watch.Named("ns", ids)), "ns:deployment/api api:1, ns:deployment/web web:1");
  EXPECT_EQ(Line(watch.Named("ns", {"ns:deployment/gone"})), "");
  watch.Stop();
}

// A watch that fails after it was up is resumed where it stopped, after the failure's wait,
// with no new listing.
TEST(WorkloadWatch, AFailedWatchIsResumedFromItsLastResourceVersion) {
  ScriptedWatchApi api({kFirstListing},
                       {Play({Event("MODIFIED", WatchedDeployment("web", "web:2", "11"))},
                             absl::UnavailableError("connection reset by peer"))});
  kube::Discovery discovery(api);
  WorkloadWatch watch(api, discovery, ImageOnly, FastTiming(absl::Milliseconds(10)));
  watch.Start();
  const std::vector<std::string> watches = api.WaitForWatches(2);
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/web web:2"), "ns:deployment/web web:2");
  EXPECT_EQ(watch.listings(), 1);
  watch.Stop();
  ASSERT_EQ(watches.size(), 2u);
  EXPECT_TRUE(absl::StrContains(watches[1], "resourceVersion=11&")) << watches[1];
}

// A bookmark moves where the watch resumes, and changes no workload.
TEST(WorkloadWatch, ABookmarkMovesTheResumePointOnly) {
  ScriptedWatchApi api(
      {kFirstListing},
      {Play(
          {Event("BOOKMARK", {{"kind", "Deployment"}, {"metadata", {{"resourceVersion", "15"}}}})},
          absl::OkStatus())});  // then the server ends the watch (its timeoutSeconds)
  kube::Discovery discovery(api);
  WorkloadWatch watch(api, discovery, ImageOnly, FastTiming(absl::Hours(1)));
  watch.Start();
  const std::vector<std::string> watches = api.WaitForWatches(2);
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/web web:1"), "ns:deployment/web web:1");
  watch.Stop();
  ASSERT_EQ(watches.size(), 2u);
  EXPECT_TRUE(absl::StrContains(watches[1], "resourceVersion=15&")) << watches[1];
}

// A watch that went silent (KubeApi::kWatchIdleTimeout: DeadlineExceeded) is resumed at once,
// not after a failure's wait, and the kind is not counted as failing (with no grace at all,
// it stays answered while the resumed watch is quiet).
TEST(WorkloadWatch, ASilentWatchIsResumedAtOnce) {
  ScriptedWatchApi api({kFirstListing},
                       {Play({Event("MODIFIED", WatchedDeployment("web", "web:2", "11"))},
                             absl::DeadlineExceededError("nothing received for 150 s"))});
  kube::Discovery discovery(api);
  WorkloadWatch watch(api, discovery, ImageOnly,
                      FastTiming(absl::Hours(1), /*failure_grace=*/absl::Nanoseconds(1)));
  watch.Start();
  const std::vector<std::string> watches = api.WaitForWatches(2);
  ASSERT_EQ(watches.size(), 2u) << "not resumed at once";
  EXPECT_TRUE(absl::StrContains(watches[1], "resourceVersion=11&")) << watches[1];
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/web web:2"), "ns:deployment/web web:2");
  EXPECT_EQ(watch.listings(), 1);
  watch.Stop();
}

// A kind whose watch keeps failing is not answered from once the failure grace has passed
// (ListWorkloads then reads the API itself); its next event makes it answered again.
TEST(WorkloadWatch, AKindFailingPastTheGraceIsNotAnsweredFromUntilItsNextEvent) {
  const absl::Status refused = absl::UnavailableError("connection refused");
  const std::vector<ScriptedWatchApi::Script> scripts = {
      // An event; then, once gate 1 opens, a failure.
      Play({Event("MODIFIED", WatchedDeployment("web", "web:2", "11"))}, refused, /*gate=*/1),
      Play({}, refused),  // refused at once, twice
      Play({}, refused),
      // Then, once gate 2 opens, an event (and the watch stays up).
      [](ScriptedWatchApi& api, const std::atomic<bool>& stop,
         const OnEvent& on_event) -> absl::Status {
        if (api.WaitForGate(2, stop)) {
          on_event(Event("MODIFIED", WatchedDeployment("web", "web:3", "12")));
        }
        while (!stop) absl::SleepFor(absl::Milliseconds(5));
        return absl::CancelledError("stopped");
      }};
  ScriptedWatchApi api({kFirstListing}, scripts);
  kube::Discovery discovery(api);
  WorkloadWatch watch(
      api, discovery, ImageOnly,
      FastTiming(absl::Milliseconds(50), /*failure_grace=*/absl::Milliseconds(100)));
  watch.Start();
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/web web:2"), "ns:deployment/web web:2");
  api.Open();
  // Failing since the first watch ended, for more than the grace (100 ms): no answer.
  EXPECT_EQ(WaitForWatched(watch, "", "(none)"), "(none)");
  EXPECT_EQ(watch.listings(), 1);
  api.Open();
  EXPECT_EQ(WaitForWatched(watch, "", "ns:deployment/web web:3"), "ns:deployment/web web:3");
  EXPECT_EQ(watch.listings(), 1) << "resumed, not listed again";
  watch.Stop();
}

// Discovery for Deployments, and every listing refused.
class RefusedListingApi : public kube::DeploymentsOnlyApi {
 public:
  std::atomic<int> listings{0};

  absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string&) override {
    if (std::optional<nlohmann::json> document = DiscoveryDocument(path)) return *document;
    ++listings;
    return absl::UnavailableError("no listing today");
  }
};

TEST(WorkloadWatch, AnswersNothingUntilEveryKindIsListed) {
  RefusedListingApi api;
  kube::Discovery discovery(api);
  WorkloadWatch watch(api, discovery, ImageOnly, FastTiming(absl::Milliseconds(10)));
  watch.Start();
  // The other kinds are not served (answered as empty); Deployments' listing fails, twice.
  for (const absl::Time end = absl::Now() + absl::Seconds(10);
       api.listings.load() < 2 && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(api.listings.load(), 2);
  EXPECT_EQ(Watched(watch, ""), "(none)");
  watch.Stop();
}

}  // namespace
}  // namespace ferry::cluster_syncer
