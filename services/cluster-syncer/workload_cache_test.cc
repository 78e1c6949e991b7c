#include "services/cluster-syncer/workload_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/runtime/fake_clock.h"

namespace ferry::cluster_syncer {
namespace {

class WorkloadListCacheTest : public ::testing::Test {
 protected:
  WorkloadListCache cache_{
      [this](const std::string& ns) -> absl::StatusOr<WorkloadListCache::Workloads> {
        listed_.push_back(ns);
        if (fail_) return absl::UnavailableError("the API server is away");
        ClusterWorkloadInfo w;
        w.id = absl::StrCat(ns, ":deployment/listing-", listed_.size());
        return WorkloadListCache::Workloads{w};
      },
      clock_, absl::Seconds(2)};
  runtime::FakeClock clock_;
  std::vector<std::string> listed_;
  bool fail_ = false;

  std::string IdOf(const std::string& ns) {
    auto got = cache_.Get(ns);
    if (!got.ok()) return std::string(got.status().message());
    return (**got)[0].id;
  }
};

TEST_F(WorkloadListCacheTest, ReadersOfTheSameMomentShareOneListing) {
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1");
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-1") << "two seconds old: still answered";
  EXPECT_EQ(IdOf("b"), "b:deployment/listing-2") << "each namespace has its own listing";
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(IdOf("a"), "a:deployment/listing-3") << "older than two seconds: listed again";
  EXPECT_EQ(listed_, (std::vector<std::string>{"a", "b", "a"}));
}

TEST_F(WorkloadListCacheTest, AFailedListingIsNotKept) {
  fail_ = true;
  EXPECT_EQ(IdOf(""), "the API server is away");
  fail_ = false;
  EXPECT_EQ(IdOf(""), ":deployment/listing-2") << "the next reader lists again";
  EXPECT_EQ(IdOf(""), ":deployment/listing-2");
  EXPECT_EQ(listed_.size(), 2u);
}

TEST_F(WorkloadListCacheTest, OnlySoManyNamespacesAreRemembered) {
  for (size_t i = 0; i <= WorkloadListCache::kMaxNamespaces; ++i) {
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

}  // namespace
}  // namespace ferry::cluster_syncer
