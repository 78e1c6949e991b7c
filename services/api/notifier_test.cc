// Notifications: the events built from jobs and sync results (table tests), their delivery
// to real HTTP receivers on 127.0.0.1 through CurlHttpClient (order, retries, a receiver
// that never answers), the JobStore hook, and the api binary's check of --notify_url.
#include "services/api/notifier.h"

#include <gmock/gmock.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ferry/v1/cluster_syncer_mock.grpc.pb.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "ferry/v1/registry_scanner_mock.grpc.pb.h"
#include "lib/http/curl_http_client.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/status_matchers.h"
#include "services/api/jobs.h"
#include "tests/support/loopback_http_server.h"
#include "tests/support/metrics.h"
#include "tests/support/subprocess.h"

namespace ferry::api {
namespace {

using ::ferry::testing::MetricSum;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRevision[] = "3f2a1b9c0d3f2a1b9c0d3f2a1b9c0d3f2a1b9c0d";
constexpr char kJobId[] = "0123abcd-0000-4000-8000-000000000000";

ferry::v1::WorkloadResult Changed(const std::string& workload, const std::string& container,
                                  const std::string& from, const std::string& to) {
  ferry::v1::WorkloadResult r;
  r.set_workload(workload);
  r.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS);
  ferry::v1::ContainerUpdate* u = r.add_updates();
  u->set_container(container);
  u->set_from_image(from);
  u->set_to_image(to);
  return r;
}

ferry::v1::Job Finished(ferry::v1::JobKind kind, const std::string& error = "") {
  ferry::v1::Job job;
  job.set_id(kJobId);
  job.set_kind(kind);
  job.set_state(error.empty() ? ferry::v1::JOB_STATE_SUCCEEDED : ferry::v1::JOB_STATE_FAILED);
  job.set_error(error);
  job.mutable_cause()->set_user("alice");
  *job.mutable_finished() = runtime::ToProtoTimestamp(absl::FromUnixSeconds(1764597600));
  return job;
}

ferry::v1::Job Release(ferry::v1::JobKind kind) {
  ferry::v1::Job job = Finished(kind);
  job.set_revision(kRevision);
  *job.add_results() = Changed("acme:deployment/web", "web", "acme/web:1.2", "acme/web:1.3");
  ferry::v1::WorkloadResult skipped;
  skipped.set_workload("acme:deployment/db");
  skipped.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_SKIPPED);
  skipped.set_reason("locked");
  *job.add_results() = skipped;
  return job;
}

void AddLock(ferry::v1::Job& job, const std::string& workload, const std::string& message) {
  ferry::v1::WorkloadPolicyChanges* w = job.add_policy_changes();
  w->set_workload(workload);
  ferry::v1::LockChange* lock = w->add_changes()->mutable_lock();
  lock->set_user("ferry");
  lock->set_message(message);
}

std::vector<std::string> Names(const std::vector<nlohmann::json>& events) {
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e["event"].get<std::string>());
  return names;
}

TEST(EventsForJobTest, AManualReleaseNamesTheWorkloadTheImagesAndTheCommit) {
  std::vector<nlohmann::json> events = EventsForJob(Release(ferry::v1::JOB_KIND_RELEASE));
  ASSERT_EQ(events.size(), 1u);
  const nlohmann::json& e = events[0];
  EXPECT_EQ(e["event"], "release");
  EXPECT_EQ(e["kind"], "release");
  EXPECT_EQ(e["job"], kJobId);
  EXPECT_EQ(e["state"], "succeeded");
  EXPECT_EQ(e["revision"], kRevision);
  EXPECT_EQ(e["user"], "alice");
  EXPECT_EQ(e["time"], "2025-12-01T14:00:00.000Z");
  EXPECT_EQ(e["skipped"], 1);
  ASSERT_EQ(e["workloads"].size(), 1u);
  EXPECT_EQ(e["workloads"][0]["workload"], "acme:deployment/web");
  EXPECT_EQ(e["workloads"][0]["updates"][0]["from"], "acme/web:1.2");
  EXPECT_EQ(e["workloads"][0]["updates"][0]["to"], "acme/web:1.3");
  EXPECT_EQ(e["text"],
            "Ferry: release of acme:deployment/web (web: acme/web:1.2 -> 1.3) pushed at 3f2a1b9 "
            "by alice");
}

TEST(EventsForJobTest, EachKindOfJobGivesItsEvents) {
  // As the reverter records one: the images back, the lock only in the cause.
  ferry::v1::Job revert = Finished(ferry::v1::JOB_KIND_REVERT);
  revert.set_revision(kRevision);
  revert.set_reverts_job("0123abcd-release");
  *revert.add_results() = Changed("acme:deployment/web", "web", "acme/web:1.3", "acme/web:1.2");
  revert.mutable_cause()->set_user("ferry");
  revert.mutable_cause()->set_message(
      "acme:deployment/web: automatic revert of job 0123abcd: web:1.3 (ProgressDeadlineExceeded)");
  ferry::v1::Job lock = Finished(ferry::v1::JOB_KIND_POLICY);
  AddLock(lock, "acme:deployment/web", "incident 42");
  ferry::v1::Job automate = Finished(ferry::v1::JOB_KIND_POLICY);
  automate.add_policy_changes()->add_changes()->set_automate(true);
  ferry::v1::Job dry_run = Release(ferry::v1::JOB_KIND_RELEASE);
  dry_run.set_dry_run(true);
  ferry::v1::Job running = Release(ferry::v1::JOB_KIND_RELEASE);
  running.set_state(ferry::v1::JOB_STATE_RUNNING);
  ferry::v1::Job sync_partial = Finished(ferry::v1::JOB_KIND_SYNC);
  sync_partial.set_revision(kRevision);
  ferry::v1::WorkloadResult bad;
  bad.set_workload("acme:deployment/web");
  bad.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
  bad.set_reason("web.yaml: field is immutable");
  *sync_partial.add_results() = bad;

  const struct {
    const char* name;
    ferry::v1::Job job;
    std::vector<std::string> events;
    std::string text;  // of the first event
  } cases[] = {
      {"automated release",
       Release(ferry::v1::JOB_KIND_AUTOMATED_RELEASE),
       {"automated_release"},
       "Ferry: automated release of acme:deployment/web (web: acme/web:1.2 -> 1.3) pushed at "
       "3f2a1b9 by alice"},
      {"revert that locked",
       revert,
       {"revert", "lock"},
       "Ferry: revert of acme:deployment/web (web: acme/web:1.3 -> 1.2) pushed at 3f2a1b9 by "
       "ferry: acme:deployment/web: automatic revert of job 0123abcd: web:1.3 "
       "(ProgressDeadlineExceeded)"},
      {"revert that found the workload changed",
       Finished(ferry::v1::JOB_KIND_REVERT, "nothing reverted: changed in git"),
       {"job_failed"},
       "Ferry: revert job 0123abcd by alice failed: nothing reverted: changed in git"},
      {"lock", lock, {"lock"}, "Ferry: acme:deployment/web locked by ferry: incident 42"},
      {"policy without lock", automate, {}, ""},
      {"failed release",
       Finished(ferry::v1::JOB_KIND_RELEASE, "git-writer: push rejected"),
       {"job_failed"},
       "Ferry: release job 0123abcd by alice failed: git-writer: push rejected"},
      {"failed policy",
       Finished(ferry::v1::JOB_KIND_POLICY, "no such workload"),
       {"job_failed"},
       "Ferry: policy job 0123abcd by alice failed: no such workload"},
      {"failed sync",
       Finished(ferry::v1::JOB_KIND_SYNC, "cluster-syncer: unreachable"),
       {"sync_failed"},
       "Ferry: sync job 0123abcd by alice failed: cluster-syncer: unreachable"},
      {"sync with failed objects",
       sync_partial,
       {"sync_failed"},
       "Ferry: sync of 3f2a1b9 by alice failed for 1 object\n• acme:deployment/web: web.yaml: "
       "field is immutable"},
      {"successful sync", Finished(ferry::v1::JOB_KIND_SYNC), {}, ""},
      {"dry run", dry_run, {}, ""},
      {"running", running, {}, ""},
  };
  for (const auto& c : cases) {
    std::vector<nlohmann::json> events = EventsForJob(c.job);
    EXPECT_EQ(Names(events), c.events) << c.name;
    if (!events.empty()) {
      EXPECT_EQ(events[0]["text"], c.text) << c.name;
    }
  }
  std::vector<nlohmann::json> reverted = EventsForJob(revert);
  ASSERT_EQ(reverted.size(), 2u);
  EXPECT_EQ(reverted[0]["kind"], "revert");
  EXPECT_EQ(reverted[0]["reverts_job"], "0123abcd-release");
  EXPECT_EQ(reverted[1]["locks"][0]["message"],
            "automatic revert of job 0123abcd: web:1.3 (ProgressDeadlineExceeded)");
  EXPECT_EQ(reverted[1]["text"],
            "Ferry: acme:deployment/web locked by ferry: automatic revert of job 0123abcd: web:1.3 "
            "(ProgressDeadlineExceeded)");
}

TEST(EventsForJobTest, ListsAreBoundedAndSayHowManyMore) {
  ferry::v1::Job job = Finished(ferry::v1::JOB_KIND_RELEASE);
  job.set_revision(kRevision);
  for (int i = 0; i < 30; ++i) {
    ferry::v1::WorkloadResult r =
        Changed(absl::StrCat("acme:deployment/w", i), "c", "acme/w:1", "acme/w:2");
    for (int c = 0; c < 25; ++c) *r.add_updates() = r.updates(0);
    *job.add_results() = r;
  }
  std::vector<nlohmann::json> events = EventsForJob(job);
  ASSERT_EQ(events.size(), 1u);
  const nlohmann::json& e = events[0];
  EXPECT_EQ(e["workloads"].size(), kMaxEventListed);
  EXPECT_EQ(e["workloads_more"], 30 - kMaxEventListed);
  EXPECT_EQ(e["workloads"][0]["updates"].size(), kMaxEventListed);
  EXPECT_EQ(e["workloads"][0]["updates_more"], 26 - kMaxEventListed);
  const std::string text = e["text"];
  EXPECT_TRUE(absl::StartsWith(text, "Ferry: release of 30 workloads pushed at 3f2a1b9 by alice"))
      << text;
  EXPECT_THAT(text, HasSubstr("\n• and 25 more"));
  EXPECT_THAT(text,
              HasSubstr("(c: acme/w:1 -> 2, c: acme/w:1 -> 2, c: acme/w:1 -> 2, and 23 more)"));
  EXPECT_THAT(text, Not(HasSubstr("acme:deployment/w5 ")));
}

TEST(EventsForJobTest, WhatOthersWroteIsCutAndEscapedForSlack) {
  ferry::v1::Job job = Finished(ferry::v1::JOB_KIND_RELEASE, std::string(5000, 'x') + "<!here>");
  job.mutable_cause()->set_user("<@U123> & co");
  std::vector<nlohmann::json> events = EventsForJob(job);
  ASSERT_EQ(events.size(), 1u);
  const std::string text = events[0]["text"];
  EXPECT_THAT(text, HasSubstr("by &lt;@U123&gt; &amp; co failed: xxx"));
  EXPECT_THAT(text, Not(HasSubstr("<!here>")));
  EXPECT_LT(text.size(), 500u);
  EXPECT_LE(events[0]["error"].get<std::string>().size(), kMaxEventString + 3);
  EXPECT_EQ(events[0]["user"], "<@U123> & co");  // the JSON field is as written
}

TEST(EventForSyncFailureTest, FailedSyncsOnlyWithTheirObjects) {
  ferry::v1::SyncResult ok;
  ok.set_revision(kRevision);
  ok.set_applied(3);
  EXPECT_FALSE(EventForSyncFailure(ok).has_value());

  ferry::v1::SyncResult whole = ok;
  whole.set_error("git-writer at 127.0.0.1:3031: connection refused");
  std::optional<nlohmann::json> e = EventForSyncFailure(whole);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ((*e)["event"], "sync_failed");
  EXPECT_EQ((*e)["source"], "cluster-syncer");
  EXPECT_EQ((*e)["text"],
            "Ferry: cluster-syncer's sync of 3f2a1b9 failed: git-writer at 127.0.0.1:3031: "
            "connection refused");

  ferry::v1::SyncResult objects = ok;
  objects.set_failed(7);
  for (int i = 0; i < 7; ++i) {
    ferry::v1::ResourceError* r = objects.add_errors();
    r->set_resource(absl::StrCat("acme:deployment/w", i));
    r->set_error("denied");
  }
  e = EventForSyncFailure(objects);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ((*e)["failed"], 7);
  EXPECT_EQ((*e)["errors"].size(), 7u);
  const std::string text = (*e)["text"];
  EXPECT_TRUE(absl::StartsWith(
      text,
      "Ferry: cluster-syncer's sync of 3f2a1b9 failed for 7 objects\n• acme:deployment/w0: "
      "denied"))
      << text;
  EXPECT_THAT(text, HasSubstr("\n• and 2 more"));
}

// An HttpClient that answers 200 and records nothing: for what does not need a receiver.
class NullHttp final : public http::HttpClient {
 public:
  absl::StatusOr<http::Response> Send(const http::Request&) override {
    http::Response r;
    r.status = 200;
    return r;
  }
};

TEST(NotifierTest, AnObjectThatKeepsFailingIsAnnouncedOnceUntilASyncSucceeds) {
  prometheus::Registry registry;
  NotifierMetrics metrics(registry);
  NullHttp http;
  Notifier notifier({}, http, metrics, runtime::SystemClock());
  auto announced = [&] {
    return MetricSum(registry, "ferry_notification_events_total", {{"event", "sync_failed"}});
  };
  auto failed = [](const std::string& revision, const std::vector<std::string>& objects) {
    ferry::v1::SyncResult r;
    r.set_revision(revision);
    r.set_failed(static_cast<int32_t>(objects.size()));
    for (const std::string& o : objects) {
      ferry::v1::ResourceError* e = r.add_errors();
      e->set_resource(o);
      e->set_error(absl::StrCat("refused at ", revision));
    }
    return r;
  };
  notifier.OnSyncResult(failed(kRevision, {"a:configmap/x"}));
  EXPECT_EQ(announced(), 1);
  notifier.OnSyncResult(failed(kRevision, {"a:configmap/x"}));           // the periodic re-sync
  notifier.OnSyncResult(failed("another-revision", {"a:configmap/x"}));  // a new commit
  EXPECT_EQ(announced(), 1);
  // The sync job that met the same failure.
  ferry::v1::Job job = Finished(ferry::v1::JOB_KIND_SYNC);
  job.set_revision("a-third-revision");
  ferry::v1::WorkloadResult bad;
  bad.set_workload("a:configmap/x");
  bad.set_status(ferry::v1::WORKLOAD_RESULT_STATUS_FAILED);
  bad.set_reason("apps/x.yaml: refused");
  *job.add_results() = bad;
  notifier.OnJobFinished(job);
  EXPECT_EQ(announced(), 1);
  // Another object failing is news; so is the first one again after a sync applied all.
  notifier.OnSyncResult(failed(kRevision, {"a:configmap/x", "a:configmap/y"}));
  EXPECT_EQ(announced(), 2);
  ferry::v1::SyncResult ok;
  ok.set_revision(kRevision);
  notifier.OnSyncResult(ok);
  notifier.OnSyncResult(failed(kRevision, {"a:configmap/x"}));
  EXPECT_EQ(announced(), 3);
  // A sync that failed as a whole, once; a sync job that met the syncer's same error (as
  // Executor::Apply words it) adds nothing.
  ferry::v1::SyncResult whole;
  whole.set_error("git-writer unreachable");
  notifier.OnSyncResult(whole);
  notifier.OnSyncResult(whole);
  EXPECT_EQ(announced(), 4);
  notifier.OnJobFinished(
      Finished(ferry::v1::JOB_KIND_SYNC, "cluster-syncer: git-writer unreachable"));
  EXPECT_EQ(announced(), 4);
  // A sync job that never reached the syncer is always announced.
  const std::string unreachable =
      "cluster-syncer at 127.0.0.1:3033 is not reachable: it refuses connections";
  notifier.OnJobFinished(Finished(ferry::v1::JOB_KIND_SYNC, unreachable));
  notifier.OnJobFinished(Finished(ferry::v1::JOB_KIND_SYNC, unreachable));
  EXPECT_EQ(announced(), 6);
}

// A sync job whose whole sync failed at the syncer, then the syncer's own result with the
// same error (the order the api sees them in when the job's SyncNow ran the sync): one
// "sync_failed"; another error is news.
TEST(NotifierTest, AWholeSyncFailureOfASyncJobIsNotAnnouncedAgainByTheStream) {
  prometheus::Registry registry;
  NotifierMetrics metrics(registry);
  NullHttp http;
  Notifier notifier({}, http, metrics, runtime::SystemClock());
  auto announced = [&] {
    return MetricSum(registry, "ferry_notification_events_total", {{"event", "sync_failed"}});
  };
  notifier.OnJobFinished(
      Finished(ferry::v1::JOB_KIND_SYNC, "cluster-syncer: apps/web.yaml: YAML syntax error"));
  EXPECT_EQ(announced(), 1);
  ferry::v1::SyncResult same;
  same.set_revision(kRevision);
  same.set_error("apps/web.yaml: YAML syntax error");
  notifier.OnSyncResult(same);
  EXPECT_EQ(announced(), 1);
  ferry::v1::SyncResult other = same;
  other.set_error("apps/db.yaml: YAML syntax error");
  notifier.OnSyncResult(other);
  EXPECT_EQ(announced(), 2);
}

// Several api replicas see the same syncs: a replica that does not lead announces none
// (SyncFailureWatch's gate), the leader announces each failure.
TEST(SyncFailureWatchTest, OnlyAReplicaThatLeadsAnnouncesFailedSyncs) {
  for (const bool leading : {false, true}) {
    SCOPED_TRACE(leading ? "leading" : "standing by");
    prometheus::Registry registry;
    NotifierMetrics metrics(registry);
    NullHttp http;
    Notifier notifier({}, http, metrics, runtime::SystemClock());
    ::testing::NiceMock<ferry::v1::MockGitWriterStub> git;
    ::testing::NiceMock<ferry::v1::MockRegistryScannerStub> scanner;
    ::testing::NiceMock<ferry::v1::MockClusterSyncerStub> cluster;
    CancelSet cancel;
    PeerClients peers(Peers{git, scanner, cluster}, cancel);
    // Each stream answers one failed sync (finished after the watch started), then ends.
    std::atomic<int> opened{0};
    ON_CALL(cluster, WatchSyncRaw(_, _))
        .WillByDefault(::testing::Invoke([&](grpc::ClientContext*, const auto&) {
          auto* reader =
              new ::testing::NiceMock<grpc::testing::MockClientReader<ferry::v1::SyncResult>>();
          auto sent = std::make_shared<bool>(false);
          ON_CALL(*reader, Read(_))
              .WillByDefault(::testing::Invoke([sent](ferry::v1::SyncResult* out) {
                if (*sent) return false;
                *sent = true;
                out->set_revision("abc");
                out->set_error("git-writer unreachable");
                *out->mutable_finished() = runtime::ToProtoTimestamp(absl::Now() + absl::Hours(1));
                return true;
              }));
          ON_CALL(*reader, Finish()).WillByDefault(::testing::Return(grpc::Status::CANCELLED));
          ++opened;
          return reader;
        }));
    SyncFailureWatch watch(peers, notifier);
    watch.SetGate([leading] { return leading; });
    watch.Start();
    // The second stream opens after the first one's result was handled.
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (opened < 2 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
    watch.Stop();
    ASSERT_GE(opened, 2);
    EXPECT_EQ(MetricSum(registry, "ferry_notification_events_total", {{"event", "sync_failed"}}),
              leading ? 1 : 0);
  }
}

TEST(NotifierTest, AFullQueueDropsTheOldestAndCountsIt) {
  prometheus::Registry registry;
  NotifierMetrics metrics(registry);
  NullHttp http;
  NotifierOptions options;
  options.queue_capacity = 2;
  NotifyTarget target{"http://127.0.0.1:9/x", "127.0.0.1:9", "", 1};
  Notifier notifier({target}, http, metrics, runtime::SystemClock(), options);
  for (int i = 0; i < 3; ++i) notifier.Notify({{"event", "release"}, {"seq", i}});
  EXPECT_EQ(notifier.QueueLength(0), 2u);
  EXPECT_EQ(MetricSum(registry, "ferry_notifications_total", {{"outcome", "dropped"}}), 1);
  EXPECT_EQ(MetricSum(registry, "ferry_notification_queue_length", {{"target", "1"}}), 2);
  notifier.Stop(absl::ZeroDuration());  // never started: what is queued is dropped
  EXPECT_EQ(MetricSum(registry, "ferry_notifications_total", {{"outcome", "dropped"}}), 3);
}

TEST(JobStoreObserverTest, CalledOnceWithTheFinishedJob) {
  prometheus::Registry registry;
  JobMetrics metrics(registry);
  JobStore store(10, metrics);
  std::vector<ferry::v1::Job> seen;
  store.SetFinishObserver([&](const ferry::v1::Job& job) {
    // Outside the store's lock: reading the store from here does not deadlock.
    EXPECT_TRUE(store.Get(job.id()).has_value());
    seen.push_back(job);
  });
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_RELEASE);
  const std::string id = store.Submit(job).id();
  store.Start(id);
  store.Finish(id, "boom");
  store.Finish(id, "");  // already finished: no second call
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].id(), id);
  EXPECT_EQ(seen[0].state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_EQ(seen[0].error(), "boom");
}

// A real HTTP receiver on 127.0.0.1: records each POST's body and Authorization header;
// `answer` decides the status of each request (by its 0-based number).
class Receiver {
 public:
  explicit Receiver(
      std::function<int(int)> answer = [](int) { return 200; }, int port = 0)
      : answer_(std::move(answer)) {
    // Also at "/": a URL whose query follows the host ("http://h:1?key=...").
    http_.server().Post("/(hooks/secret-path)?",
                        [this](const httplib::Request& req, httplib::Response& res) {
                          int n;
                          {
                            absl::MutexLock lock(&mu_);
                            n = requests_++;
                          }
                          const int status = answer_(n);
                          res.status = status;
                          if (status >= 200 && status < 300) {
                            absl::MutexLock lock(&mu_);
                            bodies_.push_back(req.body);
                            auth_.push_back(req.get_header_value("Authorization"));
                          }
                        });
    FERRY_EXPECT_OK(http_.Start(port));
  }

  std::string Url() const { return absl::StrCat("http://", http_.host(), "/hooks/secret-path"); }
  NotifyTarget Target(size_t index, const std::string& token = "") const {
    return {Url(), http_.host(), token, index};
  }
  // Waits until `n` bodies were received (20 s at most); returns them all.
  std::vector<std::string> Await(size_t n) {
    absl::MutexLock lock(&mu_);
    want_ = n;
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Receiver* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
                               return r->bodies_.size() >= r->want_;
                             },
                             this),
                         absl::Seconds(20));
    return bodies_;
  }
  std::vector<std::string> Auth() {
    absl::MutexLock lock(&mu_);
    return auth_;
  }
  int port() const { return http_.port(); }
  int requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  std::function<int(int)> answer_;
  absl::Mutex mu_;
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  size_t want_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> auth_ ABSL_GUARDED_BY(mu_);
  // Last: stopped before the members its handler uses go.
  testing::LoopbackHttpServer http_;
};

// The notifier as main() builds it: CurlHttpClient, plain http allowed for the targets'
// hosts, transfers cancelled when Stop's grace is over; short retries.
struct Delivery {
  explicit Delivery(std::vector<NotifyTarget> targets, absl::Duration timeout = absl::Seconds(5),
                    size_t queue_capacity = 1000) {
    http::CurlOptions curl;
    curl.cancelled = cancel;
    for (const NotifyTarget& t : targets) curl.insecure_hosts.push_back(t.host);
    client = std::make_unique<http::CurlHttpClient>(curl);
    NotifierOptions options;
    options.first_retry = absl::Milliseconds(20);
    options.max_retry = absl::Milliseconds(200);
    options.request_timeout = timeout;
    options.queue_capacity = queue_capacity;
    options.cancel_transfers = cancel;
    notifier = std::make_unique<Notifier>(std::move(targets), *client, metrics,
                                          runtime::SystemClock(), options);
    notifier->Start();
  }
  double Count(const std::string& outcome, const std::string& target = "1") {
    return MetricSum(registry, "ferry_notifications_total",
                     {{"target", target}, {"outcome", outcome}});
  }

  prometheus::Registry registry;
  NotifierMetrics metrics{registry};
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<http::CurlHttpClient> client;
  std::unique_ptr<Notifier> notifier;
};

// Waits (polling, 20 s at most) until `done()`; returns it.
bool Eventually(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

TEST(NotifierDeliveryTest, EachEventArrivesOnceInOrderWithTheTokenInTheHeaderOnly) {
  Receiver receiver;
  Delivery d({receiver.Target(1, "s3cret-token")});
  for (int i = 0; i < 20; ++i) {
    d.notifier->Notify({{"event", "release"}, {"seq", i}, {"text", "Ferry: release"}});
  }
  std::vector<std::string> bodies = receiver.Await(20);
  d.notifier->Stop(absl::Seconds(5));
  ASSERT_EQ(bodies.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    nlohmann::json e = nlohmann::json::parse(bodies[i]);
    EXPECT_EQ(e["seq"], i);
    EXPECT_THAT(bodies[i], Not(HasSubstr("s3cret-token")));
  }
  for (const std::string& auth : receiver.Auth()) EXPECT_EQ(auth, "Bearer s3cret-token");
  EXPECT_EQ(receiver.requests(), 20);
  EXPECT_EQ(d.Count("delivered"), 20);
  EXPECT_EQ(d.Count("retried"), 0);
  EXPECT_EQ(MetricSum(d.registry, "ferry_notification_queue_length"), 0);
}

TEST(NotifierDeliveryTest, AReceiverAnswering503AtFirstGetsTheEventOnce) {
  Receiver receiver([](int n) { return n < 3 ? 503 : 200; });
  Delivery d({receiver.Target(1)});
  d.notifier->Notify({{"event", "release"}, {"seq", 0}});
  d.notifier->Notify({{"event", "release"}, {"seq", 1}});
  std::vector<std::string> bodies = receiver.Await(2);
  d.notifier->Stop(absl::Seconds(5));
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(bodies[0])["seq"], 0);  // the retried one stays first
  EXPECT_EQ(nlohmann::json::parse(bodies[1])["seq"], 1);
  EXPECT_EQ(receiver.requests(), 5);
  EXPECT_EQ(d.Count("retried"), 3);
  EXPECT_EQ(d.Count("delivered"), 2);
}

TEST(NotifierDeliveryTest, AReceiverThatIsDownAtFirstGetsTheEventOnceItIsUp) {
  // The port is bound but not listening: connections are refused until the receiver starts.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  NotifyTarget target{absl::StrCat("http://127.0.0.1:", port, "/hooks/secret-path"),
                      absl::StrCat("127.0.0.1:", port), "", 1};
  // Declared before the notifier, so that its kept-alive connection closes first.
  std::optional<Receiver> receiver;
  Delivery d({target});
  d.notifier->Notify({{"event", "sync_failed"}, {"seq", 0}});
  ASSERT_TRUE(Eventually([&] { return d.Count("retried") >= 2; }));
  EXPECT_EQ(d.Count("delivered"), 0);
  EXPECT_EQ(d.notifier->QueueLength(0), 1u);
  close(fd);
  receiver.emplace([](int) { return 200; }, port);
  std::vector<std::string> bodies = receiver->Await(1);
  d.notifier->Stop(absl::Seconds(5));
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(bodies[0])["event"], "sync_failed");
  EXPECT_EQ(receiver->requests(), 1);
  EXPECT_EQ(d.Count("delivered"), 1);
}

// The secret in the query right after the host (no path): the host that --notify_url's
// check allows plain http to is the one the HTTP client checks, so the event is delivered.
TEST(NotifierDeliveryTest, AUrlWithAQueryAndNoPathIsDelivered) {
  Receiver receiver;
  const std::string url = absl::StrCat("http://127.0.0.1:", receiver.port(), "?key=S3cret");
  FERRY_ASSERT_OK_AND_ASSIGN(NotifyTarget target, ParseNotifyTarget(url, 1));
  EXPECT_EQ(target.host, http::HostOfUrl(url));
  Delivery d({target});
  d.notifier->Notify({{"event", "release"}});
  EXPECT_EQ(receiver.Await(1).size(), 1u);
  EXPECT_TRUE(Eventually([&] { return d.Count("delivered") == 1; }));
  EXPECT_EQ(d.Count("failed"), 0);
}

TEST(NotifierDeliveryTest, A4xxIsGivenUpAndTheNextEventStillGoes) {
  Receiver receiver([](int n) { return n == 0 ? 400 : 200; });
  Delivery d({receiver.Target(1)});
  d.notifier->Notify({{"event", "release"}, {"seq", 0}});
  d.notifier->Notify({{"event", "release"}, {"seq", 1}});
  std::vector<std::string> bodies = receiver.Await(1);
  d.notifier->Stop(absl::Seconds(5));
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(bodies[0])["seq"], 1);
  EXPECT_EQ(receiver.requests(), 2);
  EXPECT_EQ(d.Count("failed"), 1);
  EXPECT_EQ(d.Count("delivered"), 1);
}

TEST(NotifierDeliveryTest, AReceiverThatNeverAnswersHoldsUpNeitherNotifyNorTheOtherUrls) {
  absl::Mutex mu;
  bool release = false;
  int hanging = 0;
  Receiver stuck([&](int) {
    absl::MutexLock lock(&mu);
    ++hanging;
    mu.Await(absl::Condition(&release));
    return 200;
  });
  Receiver healthy;
  // A long request timeout: only Stop's cancellation ends the stuck transfer.
  Delivery d({stuck.Target(1), healthy.Target(2)}, absl::Seconds(60));
  for (int i = 0; i < 50; ++i) d.notifier->Notify({{"event", "release"}, {"seq", i}});
  std::vector<std::string> bodies = healthy.Await(50);
  EXPECT_EQ(bodies.size(), 50u);
  // Counted once the answer is back, just after the receiver recorded the body.
  EXPECT_TRUE(Eventually([&] { return d.Count("delivered", "2") == 50; }));
  // The first POST reached the stuck receiver, which still holds it.
  EXPECT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return hanging == 1;
  }));
  EXPECT_EQ(d.notifier->QueueLength(0), 50u);  // its queue waits behind it, in order
  EXPECT_EQ(d.Count("delivered", "1"), 0);
  // Stopping gives up after its grace: the transfer in flight is cancelled.
  d.notifier->Stop(absl::Milliseconds(100));
  EXPECT_EQ(d.Count("dropped", "1"), 50);
  {
    absl::MutexLock lock(&mu);
    release = true;
  }
}

// As the api wires it: the JobStore's finish observer hands each finished job to the
// notifier. With the only receiver holding its first POST for good and a small queue, many
// jobs finish at once (their workers are not held up), the queue stays bounded and what did
// not fit is counted dropped.
TEST(NotifierDeliveryTest, AReceiverThatNeverAnswersDoesNotSlowJobsFinishing) {
  absl::Mutex mu;
  bool release = false;
  int hanging = 0;
  Receiver stuck([&](int) {
    absl::MutexLock lock(&mu);
    ++hanging;
    mu.Await(absl::Condition(&release));
    return 200;
  });
  constexpr size_t kCapacity = 5;
  constexpr int kJobs = 200;
  Delivery d({stuck.Target(1)}, absl::Seconds(60), kCapacity);
  prometheus::Registry job_registry;
  JobMetrics job_metrics(job_registry);
  JobStore store(kJobs, job_metrics);
  store.SetFinishObserver([&](const ferry::v1::Job& job) { d.notifier->OnJobFinished(job); });
  // The first job's event reaches the receiver, which holds it.
  auto finish = [&](int i) {
    ferry::v1::Job job;
    job.set_kind(ferry::v1::JOB_KIND_RELEASE);
    const std::string id = store.Submit(job).id();
    store.Start(id);
    store.Finish(id, absl::StrCat("boom ", i));
    return id;
  };
  finish(0);
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return hanging == 1;
  }));
  const absl::Time start = absl::Now();
  std::vector<std::string> ids;
  for (int i = 1; i < kJobs; ++i) ids.push_back(finish(i));
  const absl::Duration took = absl::Now() - start;
  // Far below one request's timeout (60 s), which a blocking delivery would wait per job.
  EXPECT_LT(took, absl::Seconds(5)) << took;
  for (const std::string& id : ids) {
    std::optional<ferry::v1::Job> job = store.Get(id);
    ASSERT_TRUE(job.has_value());
    EXPECT_EQ(job->state(), ferry::v1::JOB_STATE_FAILED);
  }
  EXPECT_EQ(MetricSum(d.registry, "ferry_notification_events_total", {{"event", "job_failed"}}),
            kJobs);
  // One in flight, the queue full, the rest dropped (oldest first).
  EXPECT_EQ(d.notifier->QueueLength(0), kCapacity + 1);
  EXPECT_EQ(d.Count("dropped"), kJobs - 1 - kCapacity);
  EXPECT_EQ(d.Count("delivered"), 0);
  d.notifier->Stop(absl::Milliseconds(100));
  EXPECT_EQ(d.Count("dropped"), kJobs);  // the one in flight too, cancelled
  {
    absl::MutexLock lock(&mu);
    release = true;
  }
}

TEST(NotifierBinaryTest, ABadNotifyUrlExitsTwoNamingTheFlagButNotThePath) {
  for (const std::string& bad :
       {std::string("ftp://hooks.example/T000/secret-path"),
        std::string("hooks.example/secret-path"),
        std::string("https://user:pw@hooks.example/secret-path"),
        std::string("https://hooks.example:99999/secret-path"),
        std::string("https://hooks.example/secret-path,token_file=/nonexistent/file")}) {
    FERRY_ASSERT_OK_AND_ASSIGN(
        auto process,
        testing::Subprocess::Start({FERRY_API_BIN, "--grpc_address=127.0.0.1:0",
                                    "--metrics_address=127.0.0.1:0",
                                    "--notify_url=https://ok.example/a", "--notify_url=" + bad}));
    std::optional<int> code = process->Wait(absl::Seconds(15));
    ASSERT_TRUE(code.has_value()) << bad;
    EXPECT_EQ(*code, 2) << bad;
    EXPECT_THAT(process->Output(), HasSubstr("--notify_url #2")) << bad;
    EXPECT_THAT(process->Output(), Not(HasSubstr("secret-path"))) << process->Output();
  }
}

}  // namespace
}  // namespace ferry::api
