#include "lib/runtime/snapshot_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "lib/runtime/fake_clock.h"

namespace ferry::runtime {
namespace {

using Values = std::vector<std::string>;
constexpr size_t kMaxKeys = 64;

class SnapshotCacheTest : public ::testing::Test {
 protected:
  SnapshotCache<Values> cache_{
      [this](const std::string& ns) -> absl::StatusOr<Values> {
        listed_.push_back(ns);
        if (fail_) return absl::UnavailableError("the API server is away");
        return Values{absl::StrCat(ns, ":deployment/listing-", listed_.size())};
      },
      clock_, absl::Seconds(2), absl::Seconds(10), kMaxKeys};
  FakeClock clock_;
  std::vector<std::string> listed_;
  bool fail_ = false;

  std::string IdOf(const std::string& ns) {
    auto got = cache_.Get(ns);
    if (!got.ok()) return std::string(got.status().message());
    return (**got)[0];
  }
};

TEST_F(SnapshotCacheTest, ReadersOfTheSameMomentShareOneListing) {
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1") << "two seconds old: still answered";
  EXPECT_EQ(IdOf("b"), "b:deployment/listing-2") << "each namespace has its own listing";
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-3") << "older than two seconds: listed again";
  EXPECT_EQ(listed_, (std::vector<std::string>{"a", "b", "a"}));
}

TEST_F(SnapshotCacheTest, PeekAnswersFromASnapshotOnlyAndNeverLoads) {
  EXPECT_EQ(cache_.Peek("a", absl::Seconds(10)), nullptr) << "nothing listed yet";
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(5));
  auto peeked = cache_.Peek("a", absl::Seconds(5));
  ASSERT_NE(peeked, nullptr);
  EXPECT_EQ((*peeked)[0], "a:deployment/listing-1");
  EXPECT_EQ(cache_.Peek("a", absl::Seconds(4)), nullptr) << "older than asked";
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(cache_.Peek("a", absl::Minutes(1)), nullptr) << "older than max_stale (10 s)";
  EXPECT_EQ(cache_.Peek("b", absl::Minutes(1)), nullptr);
  EXPECT_EQ(listed_, (std::vector<std::string>{"a"}));
}

// A lister that blocks until released, for the callers that meet a listing in progress.
template <Refresh kRefresh>
class BlockingCacheTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  absl::Mutex mu_;
  int listings_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification entered_[4], release_[4];
  std::atomic<bool> fail_{false};
  // Last: destroyed first, joining its loads while the rest is still there.
  SnapshotCache<Values> cache_{[this](const std::string& ns) -> absl::StatusOr<Values> {
                                 int n;
                                 {
                                   absl::MutexLock lock(&mu_);
                                   n = ++listings_;
                                 }
                                 entered_[n - 1].Notify();
                                 release_[n - 1].WaitForNotification();
                                 if (fail_) return absl::UnavailableError("the API server is away");
                                 return Values{absl::StrCat(ns, ":deployment/listing-", n)};
                               },
                               clock_,
                               absl::Seconds(2),
                               absl::Seconds(10),
                               kMaxKeys,
                               kRefresh};

  int Listings() {
    absl::MutexLock lock(&mu_);
    return listings_;
  }
  std::string IdOf(const std::string& ns) {
    auto got = cache_.Get(ns);
    if (!got.ok()) return std::string(got.status().message());
    return (**got)[0];
  }
};

using BlockingSnapshotCacheTest = BlockingCacheTest<Refresh::kByCaller>;
using BackgroundSnapshotCacheTest = BlockingCacheTest<Refresh::kInBackground>;

TEST_F(BlockingSnapshotCacheTest, ARecentListingIsAnsweredWhileANewOneIsMade) {
  release_[0].Notify();
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(3));  // too old to answer as it is, recent enough meanwhile
  std::string lister_got;
  std::thread lister([&] { lister_got = IdOf("a"); });
  entered_[1].WaitForNotification();
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1") << "answered at once from the last listing";
  release_[1].Notify();
  lister.join();
  EXPECT_EQ(lister_got, "a:deployment/listing-2");
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-2");
  EXPECT_EQ(Listings(), 2);
}

// A caller who asks for a snapshot newer than the cache's own max age gets one made after
// it asked: not the last one while another load runs, nor that load if it began earlier.
TEST_F(BlockingSnapshotCacheTest, ACallerWhoAsksForANewerSnapshotGetsOneMadeSinceItAsked) {
  release_[0].Notify();
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(3));
  std::string slow;
  std::thread lister([&] { slow = IdOf("a"); });
  entered_[1].WaitForNotification();  // listing 2 began 1 s before the next caller asks
  clock_.Advance(absl::Seconds(1));
  release_[2].Notify();
  auto fresh = cache_.Get("a", absl::Milliseconds(1));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ((**fresh)[0], "a:deployment/listing-3");
  release_[1].Notify();
  lister.join();
  EXPECT_EQ(slow, "a:deployment/listing-2");
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-3")
      << "the newer listing stays, though it ended first";
  EXPECT_EQ(Listings(), 3);
}

TEST_F(BlockingSnapshotCacheTest, AWaiterGivesUpAtItsDeadline) {
  std::string first;
  std::thread lister([&] { first = IdOf("a"); });
  entered_[0].WaitForNotification();
  auto waited = cache_.Get("a", std::nullopt, absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(waited.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cache_.Waiting(), 0);
  release_[0].Notify();
  lister.join();
  EXPECT_EQ(first, "a:deployment/listing-1") << "the load itself goes on";
  EXPECT_EQ(Listings(), 1);
}

TEST_F(BlockingSnapshotCacheTest, CallersWithoutARecentListingShareTheOneInProgressAndItsFailure) {
  fail_ = true;
  std::string first, second;
  std::thread lister([&] { first = IdOf("a"); });
  entered_[0].WaitForNotification();
  std::thread waiter([&] { second = IdOf("a"); });
  // Released once the second caller waits for the listing in progress (bounded: a cache that
  // made it list on its own would block it in listing 2, and the test fails below).
  for (int i = 0; i < 10000 && cache_.Waiting() == 0; ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(cache_.Waiting(), 1);
  release_[0].Notify();
  release_[1].Notify();  // in case the cache (wrongly) made the second caller list
  lister.join();
  waiter.join();
  EXPECT_EQ(first, "the API server is away");
  EXPECT_EQ(second, "the API server is away");
  EXPECT_EQ(Listings(), 1) << "one listing for both";
}

TEST_F(SnapshotCacheTest, ACallerMayAcceptAnOlderSnapshotUpToMaxStale) {
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(5));
  auto older = cache_.Get("a", absl::Seconds(8));
  ASSERT_TRUE(older.ok());
  EXPECT_EQ((**older)[0], "a:deployment/listing-1") << "five seconds old is fine for this caller";
  clock_.Advance(absl::Seconds(6));
  auto capped = cache_.Get("a", absl::Minutes(1));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ((**capped)[0], "a:deployment/listing-2") << "never older than max_stale (10 s)";
  EXPECT_EQ(listed_.size(), 2u);
}

TEST_F(SnapshotCacheTest, AFailedListingIsNotKept) {
  fail_ = true;
  EXPECT_EQ(IdOf(""), "the API server is away");
  fail_ = false;
  EXPECT_EQ(IdOf(""), ":deployment/listing-2") << "the next reader lists again";
  EXPECT_EQ(IdOf(""), ":deployment/listing-2");
  EXPECT_EQ(listed_.size(), 2u);
}

TEST_F(SnapshotCacheTest, OnlySoManyKeysAreRemembered) {
  for (size_t i = 0; i <= kMaxKeys; ++i) {
    IdOf(absl::StrCat("ns-", i));
    clock_.Advance(absl::Milliseconds(1));
  }
  // ns-0, the oldest, was let go; ns-1 is still remembered.
  const size_t before = listed_.size();
  IdOf("ns-1");
  EXPECT_EQ(listed_.size(), before);
  IdOf("ns-0");
  EXPECT_EQ(listed_.size(), before + 1);
}

// Refresh::kInBackground: a caller who finds the listing too old, but not older than
// max_stale, is answered with it at once while a new one is made behind it; a caller who
// needs a new one, or finds none recent enough, still waits.
TEST_F(BackgroundSnapshotCacheTest, AnOlderListingIsAnsweredAtOnceAndANewOneMadeBehind) {
  release_[0].Notify();
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1") << "answered at once";
  entered_[1].WaitForNotification();  // the new listing, behind the caller
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1") << "and meanwhile";
  EXPECT_EQ(Listings(), 2) << "one listing behind the callers, not one each";
  release_[1].Notify();
  // Bounded wait for the listing behind to be stored (the test fails below otherwise).
  for (int i = 0; i < 10000 && IdOf("a") != "a:deployment/listing-2"; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-2");

  // A caller's own max age is kept: one that needs a listing of now waits for it.
  clock_.Advance(absl::Seconds(1));
  release_[2].Notify();
  auto now = cache_.Get("a", absl::Milliseconds(1));
  ASSERT_TRUE(now.ok());
  EXPECT_EQ((**now)[0], "a:deployment/listing-3");

  // Older than max_stale (10 s): nothing is answered from it.
  clock_.Advance(absl::Seconds(11));
  release_[3].Notify();
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-4");
  EXPECT_EQ(Listings(), 4);
}

}  // namespace
}  // namespace ferry::runtime
