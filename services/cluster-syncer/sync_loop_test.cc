// The sync loop with a mocked git-writer stub, the in-memory API and a fake clock: when syncs
// run (at start, on a new head, every interval, after a failure with backoff), what is
// recorded, in milliseconds and without sleeping. The binaries' tests
// (tests/service_binaries_test.cc) run the loop against real peers.
#include "services/cluster-syncer/sync_loop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "lib/runtime/fake_clock.h"
#include "services/cluster-syncer/fake_kube_api.h"
#include "tests/support/metrics.h"

namespace ferry::cluster_syncer {
namespace {

using ::testing::_;
using ::testing::NiceMock;

// A stream that reads out `messages`, then ends with `status`.
template <typename T>
class ListReader final : public grpc::ClientReaderInterface<T> {
 public:
  ListReader(std::vector<T> messages, grpc::Status status)
      : messages_(std::move(messages)), status_(std::move(status)) {}
  bool Read(T* message) override {
    if (next_ == messages_.size()) return false;
    *message = messages_[next_++];
    return true;
  }
  grpc::Status Finish() override { return status_; }
  bool NextMessageSize(uint32_t* size) override {
    *size = 1 << 20;
    return next_ < messages_.size();
  }
  void WaitForInitialMetadata() override {}

 private:
  std::vector<T> messages_;
  size_t next_ = 0;
  grpc::Status status_;
};

// WatchHead as git-writer serves it: heads as they come, until the test closes the streams.
class HeadStreams {
 public:
  void Push(const std::string& revision) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      heads_.push_back(revision);
    }
    cv_.notify_all();
  }
  // Ends the open stream and every later one.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  grpc::ClientReaderInterface<ferry::v1::HeadResponse>* NewReader() { return new Reader(*this); }

 private:
  class Reader final : public grpc::ClientReaderInterface<ferry::v1::HeadResponse> {
   public:
    explicit Reader(HeadStreams& streams) : streams_(streams) {}
    bool Read(ferry::v1::HeadResponse* head) override {
      std::unique_lock<std::mutex> lock(streams_.mu_);
      streams_.cv_.wait(lock, [&] { return streams_.closed_ || !streams_.heads_.empty(); });
      if (streams_.heads_.empty()) return false;
      head->set_revision(streams_.heads_.front());
      streams_.heads_.pop_front();
      return true;
    }
    grpc::Status Finish() override { return {grpc::StatusCode::UNAVAILABLE, "closed"}; }
    bool NextMessageSize(uint32_t* size) override {
      *size = 1 << 20;
      return true;
    }
    void WaitForInitialMetadata() override {}

   private:
    HeadStreams& streams_;
  };

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> heads_;
  bool closed_ = false;
};

SyncOptions Options() {
  SyncOptions o;
  o.sync_set = "loop";
  return o;
}

class SyncLoopTest : public ::testing::Test {
 protected:
  SyncLoopTest()
      : discovery_(api_), syncer_(api_, discovery_, Options(), clock_), metrics_(registry_) {
    revisions_["rev1"] = {
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: apps}\n"};
    revisions_["rev2"] = {
        revisions_["rev1"][0],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d, namespace: apps}\n"};
    ON_CALL(git_, Head(_, _, _))
        .WillByDefault(
            [](grpc::ClientContext*, const ferry::v1::HeadRequest&, ferry::v1::HeadResponse* head) {
              head->set_revision("rev1");
              return grpc::Status::OK;
            });
    ON_CALL(git_, Notify(_, _, _))
        .WillByDefault([](grpc::ClientContext*, const ferry::v1::NotifyRequest&,
                          ferry::v1::HeadResponse* head) {
          head->set_revision("rev1");
          return grpc::Status::OK;
        });
    ON_CALL(git_, WatchHeadRaw(_, _)).WillByDefault([this](grpc::ClientContext*, const auto&) {
      return heads_.NewReader();
    });
    ON_CALL(git_, ReadManifestsRaw(_, _))
        .WillByDefault([this](grpc::ClientContext*, const ferry::v1::ReadManifestsRequest& r) {
          return ReadManifests(r.revision());
        });
    ON_CALL(git_, SetSyncMarker(_, _, _))
        .WillByDefault([this](grpc::ClientContext*, const ferry::v1::SetSyncMarkerRequest& r,
                              ferry::v1::SyncMarker*) {
          std::lock_guard<std::mutex> lock(mu_);
          markers_.push_back(r.revision());
          return grpc::Status::OK;
        });
  }
  ~SyncLoopTest() override {
    heads_.Close();  // the watcher's stream ends, so that Stop() can join it
    loop_.reset();
  }

  SyncLoop& Loop(SyncLoop::Options options = {}) {
    if (!loop_) loop_ = std::make_unique<SyncLoop>(git_, api_, syncer_, metrics_, options, clock_);
    return *loop_;
  }
  grpc::ClientReaderInterface<ferry::v1::ManifestFile>* ReadManifests(const std::string& revision) {
    std::lock_guard<std::mutex> lock(mu_);
    reads_.push_back(revision);
    if (read_failures_ > 0) {
      --read_failures_;
      return new ListReader<ferry::v1::ManifestFile>({}, {grpc::StatusCode::UNAVAILABLE, "down"});
    }
    auto it = revisions_.find(revision);
    if (it == revisions_.end()) {
      return new ListReader<ferry::v1::ManifestFile>(
          {}, {grpc::StatusCode::NOT_FOUND, "no revision " + revision});
    }
    std::vector<ferry::v1::ManifestFile> files;
    for (size_t i = 0; i < it->second.size(); ++i) {
      files.emplace_back().set_path(absl::StrCat("f", i, ".yaml"));
      files.back().set_content(it->second[i]);
    }
    return new ListReader<ferry::v1::ManifestFile>(std::move(files), grpc::Status::OK);
  }
  std::vector<std::string> Reads() {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }
  std::vector<std::string> Markers() {
    std::lock_guard<std::mutex> lock(mu_);
    return markers_;
  }
  // The next recorded sync after `after`; fails the test when none comes in 10 s.
  SyncReport Next(uint64_t after) {
    auto [sequence, report] = loop_->WaitNext(after, absl::Seconds(10));
    EXPECT_EQ(sequence, after + 1);
    return report.value_or(SyncReport{});
  }
  double Syncs(const std::string& outcome) {
    return testing::MetricSum(registry_, "ferry_sync_total", {{"outcome", outcome}});
  }

  FakeKubeApi api_;
  kube::Discovery discovery_;
  runtime::FakeClock clock_;
  Syncer syncer_;
  prometheus::Registry registry_;
  SyncMetrics metrics_;
  NiceMock<ferry::v1::MockGitWriterStub> git_;
  HeadStreams heads_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> revisions_;  // revision -> file contents
  std::vector<std::string> reads_;
  std::vector<std::string> markers_;
  int read_failures_ = 0;
  std::unique_ptr<SyncLoop> loop_;
};

TEST_F(SyncLoopTest, SyncsAtStartThenEveryIntervalOfTheClock) {
  SyncLoop::Options o;
  o.interval = absl::Minutes(5);
  const absl::Time start = clock_.Now();
  Loop(o).Start();
  SyncReport first = Next(0);
  EXPECT_TRUE(first.error.empty()) << first.error;
  EXPECT_EQ(first.revision, "rev1");
  EXPECT_EQ(first.applied, 2);
  EXPECT_EQ(first.started, start);
  EXPECT_EQ(Markers(), std::vector<std::string>{"rev1"});
  // The worker's second wait is the interval's (the first returned at once).
  ASSERT_TRUE(clock_.AwaitWaits(2));
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_EQ(clock_.waiting(), 1);  // looked at the time, not due yet, waits on
  EXPECT_EQ(loop_->Last().first, 1u);
  EXPECT_EQ(Reads().size(), 1u);
  clock_.Advance(absl::Seconds(1));
  SyncReport second = Next(1);
  EXPECT_EQ(second.unchanged, 2) << second.error;
  EXPECT_EQ(second.started, start + absl::Minutes(5));
  EXPECT_EQ(Reads(), (std::vector<std::string>{"rev1", "rev1"}));
  EXPECT_EQ(Syncs("success"), 2);
}

TEST_F(SyncLoopTest, ANewHeadSyncsAtOnceAndARepeatedOneWaitsForTheInterval) {
  Loop().Start();
  ASSERT_EQ(Next(0).revision, "rev1");
  ASSERT_TRUE(clock_.AwaitWaits(2));
  heads_.Push("rev2");
  SyncReport second = Next(1);
  EXPECT_EQ(second.revision, "rev2");
  EXPECT_EQ(second.applied, 1) << second.error;
  ASSERT_TRUE(clock_.AwaitWaits(3));
  // git-writer repeats the current head when a stream reconnects: no sync.
  heads_.Push("rev2");
  ASSERT_TRUE(clock_.AwaitWaits(4));
  EXPECT_EQ(loop_->Last().first, 2u);
  EXPECT_EQ(Reads(), (std::vector<std::string>{"rev1", "rev2"}));
}

// A new head is synced from the last sync's record; the interval's sync, counted from the
// last one that listed, lists the cluster again.
TEST_F(SyncLoopTest, ANewHeadIsSyncedFromTheRecordAndTheIntervalsSyncLists) {
  SyncLoop::Options o;
  o.interval = absl::Minutes(5);
  Loop(o).Start();
  SyncReport first = Next(0);
  ASSERT_TRUE(first.error.empty()) << first.error;
  EXPECT_FALSE(first.from_record);
  ASSERT_TRUE(clock_.AwaitWaits(2));
  clock_.Advance(absl::Minutes(4));
  heads_.Push("rev2");
  SyncReport head = Next(1);
  EXPECT_EQ(head.revision, "rev2");
  EXPECT_TRUE(head.from_record);
  EXPECT_EQ(head.applied, 1) << head.error;
  ASSERT_TRUE(clock_.AwaitWaits(3));
  // Five minutes after the first sync, not after the head's.
  clock_.Advance(absl::Minutes(1));
  SyncReport interval = Next(2);
  EXPECT_EQ(interval.revision, "rev2");
  EXPECT_FALSE(interval.from_record);
  EXPECT_EQ(interval.unchanged, 2) << interval.error;
}

// Heads keep coming: the interval's sync still lists when it is due, and the heads after it
// are synced from the record again.
TEST_F(SyncLoopTest, HeadsKeepComingAndTheIntervalsSyncStillLists) {
  SyncLoop::Options o;
  o.interval = absl::Minutes(5);
  Loop(o).Start();
  ASSERT_TRUE(Next(0).error.empty());
  ASSERT_TRUE(clock_.AwaitWaits(2));
  heads_.Push("rev2");
  ASSERT_TRUE(Next(1).from_record);
  ASSERT_TRUE(clock_.AwaitWaits(3));
  {
    std::lock_guard<std::mutex> lock(mu_);
    revisions_["rev3"] = revisions_["rev2"];
  }
  clock_.Advance(absl::Minutes(5));
  SyncReport due = Next(2);
  EXPECT_EQ(due.revision, "rev2");
  EXPECT_FALSE(due.from_record);
  heads_.Push("rev3");
  SyncReport after = Next(3);
  EXPECT_EQ(after.revision, "rev3");
  EXPECT_TRUE(after.from_record) << "the interval counts again from the listing sync";
}

TEST_F(SyncLoopTest, SyncNowOfTheRevisionLastAppliedAnswersWithThatSync) {
  Loop().Start();
  ASSERT_EQ(Next(0).revision, "rev1");
  heads_.Push("rev2");
  const SyncReport pushed = Next(1);
  ASSERT_EQ(pushed.revision, "rev2");
  ASSERT_EQ(pushed.applied, 1) << pushed.error;

  // The revision WatchHead just applied: that sync is the answer, nothing is read again.
  SyncReport same = loop_->SyncNow("rev2", false, /*skip_if_applied=*/true);
  EXPECT_EQ(same.revision, "rev2");
  EXPECT_EQ(same.applied, 1);
  EXPECT_EQ(same.started, pushed.started);
  EXPECT_EQ(loop_->Last().first, 2u);
  EXPECT_EQ(Reads(), (std::vector<std::string>{"rev1", "rev2"}));

  // Without the flag (a person's `sync`, correcting drift), any other revision, a dry run,
  // or "the head": a real sync.
  EXPECT_EQ(loop_->SyncNow("rev2", false).revision, "rev2");
  EXPECT_EQ(loop_->SyncNow("rev1", false, true).revision, "rev1");
  EXPECT_EQ(loop_->SyncNow("rev1", true, true).revision, "rev1");
  EXPECT_EQ(loop_->SyncNow("", false, true).revision, "rev1");
  EXPECT_EQ(Reads(), (std::vector<std::string>{"rev1", "rev2", "rev2", "rev1", "rev1", "rev1"}));
  EXPECT_EQ(loop_->Last().first, 5u);
}

TEST_F(SyncLoopTest, SyncNowSyncsAgainWhenTheLastSyncOfThatRevisionHadFailures) {
  revisions_["rev3"] = {revisions_["rev1"][0], "kind: ConfigMap\nmetadata: {name: x}\n"};
  Loop().Start();
  ASSERT_EQ(Next(0).revision, "rev1");
  const SyncReport first = loop_->SyncNow("rev3", false, true);
  ASSERT_GT(first.failed, 0) << "a document without apiVersion fails";
  loop_->SyncNow("rev3", false, true);
  EXPECT_EQ(Reads(), (std::vector<std::string>{"rev1", "rev3", "rev3"}));
}

TEST_F(SyncLoopTest, AFailedSyncIsRetriedWithDoublingBackoffAndReadinessFollows) {
  read_failures_ = 3;
  std::vector<bool> readiness;
  Loop().SetReadinessSink([&](bool ready) { readiness.push_back(ready); });
  loop_->Start();
  SyncReport failed = Next(0);
  EXPECT_EQ(failed.error_code, absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(failed.error, "git-writer: reading manifests at rev1: down"))
      << failed.error;
  int waits = 2;
  uint64_t sequence = 1;
  for (absl::Duration backoff : {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4)}) {
    ASSERT_TRUE(clock_.AwaitWaits(waits++));
    clock_.Advance(backoff - absl::Milliseconds(1));
    EXPECT_EQ(clock_.waiting(), 1) << "retried before " << backoff;
    EXPECT_EQ(loop_->Last().first, sequence) << "retried before " << backoff;
    clock_.Advance(absl::Milliseconds(1));
    SyncReport retry = Next(sequence++);
    EXPECT_EQ(retry.error.empty(), backoff == absl::Seconds(4)) << retry.error;
  }
  EXPECT_EQ(Syncs("error"), 3);
  EXPECT_EQ(Syncs("success"), 1);
  EXPECT_EQ(readiness, (std::vector<bool>{false, true}));
  EXPECT_EQ(Markers(), std::vector<std::string>{"rev1"});
}

TEST_F(SyncLoopTest, RecordsTheSyncStateInTheClusterWhenAsked) {
  api_.Put({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "ferry"}}}});
  SyncLoop::Options o;
  o.state = SyncState::kCluster;
  o.state_namespace = "ferry";
  EXPECT_CALL(git_, SetSyncMarker(_, _, _)).Times(0);
  EXPECT_CALL(git_, Notify(_, _, _)).Times(1);  // SyncNow without a revision fetches first
  SyncReport r = Loop(o).SyncNow("", false);
  EXPECT_TRUE(r.error.empty()) << r.error;
  std::optional<nlohmann::json> state =
      api_.Object("/api/v1/namespaces/ferry/configmaps/ferry-sync-state");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ((*state)["data"]["revision"], "rev1");
  EXPECT_EQ((*state)["data"]["time"],
            absl::FormatTime(absl::RFC3339_sec, clock_.Now(), absl::UTCTimeZone()));
}

TEST_F(SyncLoopTest, DryRunsAndUnknownRevisionsAreNotRecorded) {
  // A dry run stores nothing: the ConfigMap's namespace must exist already.
  api_.Put({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "apps"}}}});
  SyncReport dry = Loop().SyncNow("rev1", true);
  EXPECT_EQ(dry.applied, 2) << dry.error;
  EXPECT_EQ(api_.writes(), 0);
  SyncReport unknown = loop_->SyncNow("nope", false);
  EXPECT_EQ(unknown.error_code, absl::StatusCode::kNotFound);
  EXPECT_EQ(loop_->Last().first, 0u);
  EXPECT_TRUE(Markers().empty());
  EXPECT_EQ(Syncs("error") + Syncs("success"), 0);
  SyncReport real = loop_->SyncNow("rev1", false);
  EXPECT_TRUE(real.error.empty()) << real.error;
  EXPECT_EQ(loop_->Last().first, 1u);
  EXPECT_EQ(Markers(), std::vector<std::string>{"rev1"});
}

TEST_F(SyncLoopTest, GitWriterOutOfReachIsUnavailableAndItsOwnRefusalsKeepTheirCode) {
  EXPECT_CALL(git_, Head(_, _, _))
      .WillOnce([](grpc::ClientContext*, const ferry::v1::HeadRequest&, ferry::v1::HeadResponse*) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow");
      })
      .WillRepeatedly(
          [](grpc::ClientContext*, const ferry::v1::HeadRequest&, ferry::v1::HeadResponse* head) {
            head->set_revision("rev1");
            return grpc::Status::OK;
          });
  EXPECT_CALL(git_, Notify(_, _, _))
      .WillOnce(
          [](grpc::ClientContext*, const ferry::v1::NotifyRequest&, ferry::v1::HeadResponse*) {
            return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no such branch");
          });
  // No head: nothing is read, and the failed sync is recorded (no revision was asked for).
  SyncReport unreachable = Loop().SyncNow("", false);
  EXPECT_EQ(unreachable.error_code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(unreachable.error, "git-writer: slow");
  EXPECT_EQ(unreachable.revision, "");
  EXPECT_EQ(unreachable.finished, clock_.Now());
  EXPECT_TRUE(Reads().empty());
  EXPECT_EQ(loop_->Last().first, 1u);
  // The fetch git-writer refuses keeps its code.
  SyncReport refused = loop_->SyncNow("", false);
  EXPECT_EQ(refused.error_code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.error, "git-writer: no such branch");
  EXPECT_TRUE(Reads().empty());
  EXPECT_EQ(loop_->Last().first, 2u);
  EXPECT_EQ(Syncs("error"), 2);
  EXPECT_TRUE(Markers().empty());
}

// With a way to connect (the binary's channel): up to 5 s for git-writer's connection, then,
// until git-writer has served a revision, a minute for Head's answer (a fresh git-writer
// answers after its first fetch, seconds on a big repository) rather than failing the first
// sync; 5 s once it has.
TEST_F(SyncLoopTest, AGitWriterInItsFirstFetchHasAMinuteToAnswerAndAnUnreachableOneFailsIn5s) {
  std::atomic<bool> reachable{true};
  std::atomic<int> connects{0};
  SyncLoop::Options o;
  o.git_connected = [&](absl::Time deadline) {
    ++connects;
    if (reachable) return true;
    absl::SleepFor(deadline - absl::Now());  // as WaitForConnected on a channel that fails
    return false;
  };
  std::vector<absl::Duration> head_deadlines;
  EXPECT_CALL(git_, Head(_, _, _))
      .Times(2)
      .WillRepeatedly([&](grpc::ClientContext* ctx, const ferry::v1::HeadRequest&,
                          ferry::v1::HeadResponse* head) {
        head_deadlines.push_back(absl::FromChrono(ctx->deadline()) - absl::Now());
        head->set_revision("rev1");
        return grpc::Status::OK;
      });
  Loop(o);
  SyncReport first = loop_->SyncNow("", false);
  EXPECT_TRUE(first.error.empty()) << first.error;
  EXPECT_EQ(first.revision, "rev1");
  SyncReport second = loop_->SyncNow("", false);
  EXPECT_TRUE(second.error.empty()) << second.error;
  ASSERT_EQ(head_deadlines.size(), 2u);
  EXPECT_GT(head_deadlines[0], absl::Seconds(55));
  EXPECT_LE(head_deadlines[1], absl::Seconds(5));
  EXPECT_EQ(connects, 2);

  reachable = false;
  const absl::Time start = absl::Now();
  SyncReport unreachable = loop_->SyncNow("", false);
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Seconds(5));
  EXPECT_LT(waited, absl::Seconds(7));
  EXPECT_EQ(unreachable.error_code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(unreachable.error,
            "git-writer: no connection within 5s (is it running, is --git_writer_address its "
            "address, do the peer TLS settings match, and does one of its replicas lead?)");
  EXPECT_GT(connects, 4);  // in slices, so that Stop() need not wait for the whole 5 s
  EXPECT_EQ(Syncs("error"), 1);
}

TEST_F(SyncLoopTest, AManifestReadThatTimesOutIsUnavailableAndRecorded) {
  EXPECT_CALL(git_, ReadManifestsRaw(_, _))
      .WillOnce([](grpc::ClientContext*, const ferry::v1::ReadManifestsRequest&) {
        return new ListReader<ferry::v1::ManifestFile>(
            {}, {grpc::StatusCode::DEADLINE_EXCEEDED, "too slow"});
      });
  SyncReport r = Loop().SyncNow("rev1", false);
  EXPECT_EQ(r.error_code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.error, "git-writer: reading manifests at rev1: too slow");
  EXPECT_EQ(r.revision, "rev1");
  EXPECT_EQ(loop_->Last().first, 1u);  // not the caller's mistake: a failed sync
  EXPECT_EQ(Syncs("error"), 1);
  EXPECT_TRUE(Markers().empty());
}

TEST_F(SyncLoopTest, AStandbyNeitherSyncsNorRecordsAndSyncsAtOnceWhenItLeads) {
  std::atomic<bool> leading{false};
  SyncLoop::Options o;
  o.interval = absl::Hours(1);
  o.write_permit = [&]() -> absl::StatusOr<absl::Duration> {
    if (!leading) return absl::UnavailableError("a standby; the leader is X");
    return absl::Seconds(10);
  };
  std::vector<bool> readiness;
  Loop(o).SetReadinessSink([&](bool ready) { readiness.push_back(ready); });
  loop_->SetLeading(false);
  loop_->Start();
  ASSERT_TRUE(clock_.AwaitWaits(2));  // the first round found no permit and waits
  heads_.Push("rev2");
  ASSERT_TRUE(clock_.AwaitWaits(3));  // nor does a new head sync
  EXPECT_TRUE(Reads().empty());
  EXPECT_EQ(api_.writes(), 0);
  EXPECT_EQ(loop_->Last().first, 0u);
  // SyncNow answers with the permit's status; a dry run is served.
  SyncReport refused = loop_->SyncNow("rev1", false);
  EXPECT_EQ(refused.error_code, absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(refused.error, "the leader is X")) << refused.error;
  EXPECT_TRUE(loop_->SyncNow("rev1", true).error.empty());
  EXPECT_EQ(api_.writes(), 0);
  EXPECT_TRUE(Markers().empty());

  leading = true;
  loop_->SetLeading(true);
  SyncReport first = Next(0);
  EXPECT_EQ(first.revision, "rev2") << first.error;
  EXPECT_EQ(first.applied, 2);
  EXPECT_EQ(Markers(), std::vector<std::string>{"rev2"});
  EXPECT_EQ(readiness, (std::vector<bool>{false, true}));
  leading = false;
  loop_->SetLeading(false);
  EXPECT_EQ(readiness, (std::vector<bool>{false, true, false}));
}

// The sync marker is moved only with a permit asked for right before the call to git-writer,
// and that call's deadline is no later than the permit's end: a leader that lost its lease
// between the sync's own check and the marker never moves the marker (git-writer
// force-moves it, over the new leader's), and a slow git-writer is given up by then.
TEST_F(SyncLoopTest, TheSyncMarkerIsMovedOnlyWithAPermitAndWithinIt) {
  std::atomic<int> permits{0};
  std::atomic<int> refuse_from{1000};  // the permit call from which on leadership is lost
  SyncLoop::Options o;
  o.interval = absl::Hours(1);
  o.write_permit = [&]() -> absl::StatusOr<absl::Duration> {
    if (++permits > refuse_from) return absl::UnavailableError("a standby; the leader is Y");
    return absl::Seconds(3);
  };
  std::vector<std::chrono::system_clock::time_point> deadlines;
  ON_CALL(git_, SetSyncMarker(_, _, _))
      .WillByDefault([&](grpc::ClientContext* ctx, const ferry::v1::SetSyncMarkerRequest& r,
                         ferry::v1::SyncMarker*) {
        std::lock_guard<std::mutex> lock(mu_);
        markers_.push_back(r.revision());
        deadlines.push_back(ctx->deadline());
        return grpc::Status::OK;
      });
  // Leading through the sync and RunSync's check, then no longer: the marker stays.
  refuse_from = 2;  // SyncNow's own check and RunSync's are permits 1 and 2
  const auto before = std::chrono::system_clock::now();
  SyncReport report = Loop(o).SyncNow("rev1", false);
  EXPECT_TRUE(report.error.empty()) << report.error;
  EXPECT_EQ(report.applied, 2);
  EXPECT_TRUE(Markers().empty());
  // Still leading at the marker: moved, with a deadline within the permit's 3 s.
  permits = 0;
  refuse_from = 1000;
  report = loop_->SyncNow("rev2", false);
  EXPECT_TRUE(report.error.empty()) << report.error;
  ASSERT_EQ(Markers(), std::vector<std::string>{"rev2"});
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(deadlines.size(), 1u);
  EXPECT_LE(deadlines[0], std::chrono::system_clock::now() + std::chrono::seconds(3));
  EXPECT_GT(deadlines[0], before);
}

}  // namespace
}  // namespace ferry::cluster_syncer
