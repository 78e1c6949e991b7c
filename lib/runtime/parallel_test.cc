#include "lib/runtime/parallel.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ferry::runtime {
namespace {

TEST(ParallelForTest, CallsEveryItemOnce) {
  for (size_t threads : {size_t{0}, size_t{1}, size_t{3}, size_t{64}}) {
    std::vector<std::atomic<int>> calls(100);
    ParallelFor(calls.size(), threads, [&](size_t i) { ++calls[i]; });
    for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i], 1) << i << " at " << threads;
  }
}

TEST(ParallelForTest, NothingToDoCallsNothing) {
  bool called = false;
  ParallelFor(0, 4, [&](size_t) { called = true; });
  EXPECT_FALSE(called);
}

TEST(ParallelForTest, UsesSeveralThreadsButNoMoreThanAsked) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  ParallelFor(40, 3, [&](size_t i) {
    const int now = ++running;
    for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    }
    // The first item holds its thread until another one has run an item (or 5 s passed):
    // the helpers get their turn however busy the machine is.
    for (auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
         i == 0 && std::chrono::steady_clock::now() < give_up;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (ids.size() >= 2) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    --running;
  });
  EXPECT_LE(ids.size(), 3u);
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(ids.size(), 2u);  // the helpers took some
}

TEST(ParallelForTest, NeverMoreThreadsThanItems) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  ParallelFor(2, 16, [&](size_t) {
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_LE(ids.size(), 2u);
}

TEST(ParallelForTest, RethrowsTheFirstExceptionAfterEveryThreadEnded) {
  std::atomic<int> done{0};
  std::atomic<int> in_flight{0};
  EXPECT_THROW(ParallelFor(1000, 4,
                           [&](size_t i) {
                             ++in_flight;
                             if (i == 5) {
                               --in_flight;
                               throw std::runtime_error("item 5");
                             }
                             std::this_thread::sleep_for(std::chrono::microseconds(100));
                             ++done;
                             --in_flight;
                           }),
               std::runtime_error);
  EXPECT_EQ(in_flight.load(), 0);  // no thread still at work when it returned
  EXPECT_LT(done.load(), 999);     // the others stopped early
}

}  // namespace
}  // namespace ferry::runtime
