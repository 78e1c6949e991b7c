// git-writer under leader election (issue 21): a standby refuses writes naming the leader and
// serves reads; a leader stops committing and pushing once its renew deadline passed; a push
// that outlives the leadership it started with is aborted. A real LeaderElector on a
// FakeLeaseApi and a FakeClock (rounds of the election run by hand), a real Writer and
// Libgit2Repository on a bare repo over file://.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/kube/fake_lease_api.h"
#include "lib/kube/leader.h"
#include "lib/runtime/fake_clock.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/libgit2_repository.h"
#include "services/git-writer/writer.h"
#include "tests/support/git_repo.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

std::string Deployment(const std::string& image) {
  return absl::StrCat(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\n"
      "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: ",
      image, "\n");
}

class LeaderFencingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto upstream = testing::GitRepo::Create({{"apps/web.yaml", Deployment("nginx:1.25")}});
    FERRY_ASSERT_OK(upstream);
    upstream_ = *std::move(upstream);
    kube::LeaderElector::Options options;
    options.component = "git-writer";
    options.lease = "ns/ferry-git-writer-test";
    options.identity = kube::MakeIdentity("git-writer", "pod-a");
    elector_ = std::make_unique<kube::LeaderElector>(lease_api_, options, registry_, clock_);
  }

  // A writer whose writes (and, unless `push_permit` is given, pushes) ask the elector.
  void OpenWriter(WritePermit push_permit = nullptr) {
    kube::LeaderElector* elector = elector_.get();
    WritePermit permit = [elector] { return elector->WriteValidity(); };
    Libgit2Options o;
    o.url = upstream_->url();
    o.mirror_dir = upstream_->dir() + "/mirror.git";
    o.tags = {"ferry-sync"};
    o.push_permit = push_permit ? push_permit : permit;
    auto repo = Libgit2Repository::Open(o);
    FERRY_ASSERT_OK(repo);
    repo_ = *std::move(repo);
    WriterOptions options;
    options.committer = {"Ferry", "ferry@example.com"};
    if (!push_permit) options.write_permit = permit;
    writer_ = std::make_unique<Writer>(*repo_, options, metrics_);
  }

  // One round of the election thread.
  bool Round() {
    const absl::Time attempt = clock_.SteadyNow();
    const bool held = elector_->TryAcquireOrRenew();
    elector_->UpdateLeadership(held, attempt);
    return held;
  }

  ApplyRequest Release(const std::string& to, bool dry_run = false) {
    ApplyRequest request;
    EditRequest edit;
    edit.workload = "apps:deployment/web";
    edit.image = manifest::ImageChange{"web", to, std::nullopt};
    request.edits.push_back(edit);
    request.dry_run = dry_run;
    return request;
  }

  int UpstreamCommits() { return std::stoi(upstream_->Git("rev-list --count main")); }

  std::unique_ptr<testing::GitRepo> upstream_;
  kube::FakeLeaseApi lease_api_;
  runtime::FakeClock clock_;
  prometheus::Registry registry_;
  WriterMetrics metrics_{registry_};
  std::unique_ptr<kube::LeaderElector> elector_;  // after the Lease it releases
  std::unique_ptr<Libgit2Repository> repo_;
  std::unique_ptr<Writer> writer_;
};

TEST_F(LeaderFencingTest, AStandbyRefusesWritesNamingTheLeaderAndServesReads) {
  OpenWriter();
  const std::string other = kube::MakeIdentity("git-writer", "pod-b");
  kube::LeaseRecord held;
  held.holder_identity = other;
  held.lease_duration = absl::Seconds(15);
  held.acquire_time = held.renew_time = clock_.Now();
  lease_api_.Set(held);
  ASSERT_FALSE(Round());

  // Reads come from its own mirror, fetched as usual.
  absl::StatusOr<HeadInfo> head = writer_->Refresh();
  FERRY_ASSERT_OK(head);
  EXPECT_EQ(head->revision, upstream_->Head());
  FERRY_EXPECT_OK(writer_->IndexAt(""));
  // A dry run commits nothing: a standby answers it.
  absl::StatusOr<ApplyOutcome> dry = writer_->Apply(Release("nginx:1.26", /*dry_run=*/true));
  FERRY_ASSERT_OK(dry);
  EXPECT_FALSE(dry->diff.empty());

  absl::StatusOr<ApplyOutcome> out = writer_->Apply(Release("nginx:1.26"));
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(other)));
  EXPECT_THAT(out.status().message(), HasSubstr(elector_->options().identity));
  EXPECT_THAT(writer_->SetSyncMarker("ferry-sync", head->revision),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(other)));
  EXPECT_EQ(UpstreamCommits(), 1);
  EXPECT_EQ(metrics_.commits.Value(), 0);
}

TEST_F(LeaderFencingTest, TheLeaderWritesUntilItsRenewDeadlineAndNotAfter) {
  OpenWriter();
  ASSERT_TRUE(Round());
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(Release("nginx:1.26"));
  FERRY_ASSERT_OK(out);
  EXPECT_EQ(upstream_->Head(), out->revision);
  FERRY_EXPECT_OK(writer_->SetSyncMarker("ferry-sync", out->revision));

  // No renewal for a renew deadline (10 s): this instance may no longer write, though the
  // Lease still names it (no other instance may take it for 5 s more).
  clock_.Advance(absl::Seconds(10));
  EXPECT_THAT(writer_->Apply(Release("nginx:1.27")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(elector_->options().identity)));
  EXPECT_THAT(writer_->SetSyncMarker("ferry-sync", out->revision),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(UpstreamCommits(), 2);
  EXPECT_EQ(metrics_.commits.Value(), 1);

  // Renewed: it writes again.
  ASSERT_TRUE(Round());
  FERRY_EXPECT_OK(writer_->Apply(Release("nginx:1.27")));
  EXPECT_EQ(UpstreamCommits(), 3);
}

TEST_F(LeaderFencingTest, APushThatOutlivesItsLeadershipIsAbortedAndLeavesUpstreamAlone) {
  // The permit holds when the push starts, and runs out before libgit2 sends anything.
  int asked = 0;
  OpenWriter([&asked]() -> absl::StatusOr<absl::Duration> {
    ++asked;
    return absl::Nanoseconds(1);
  });
  const std::string before = upstream_->Head();
  absl::StatusOr<ApplyOutcome> out = writer_->Apply(Release("nginx:1.26"));
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("leadership ran out")));
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(upstream_->Head(), before);
  EXPECT_EQ(metrics_.commits.Value(), 0);

  // A permit refused outright: no push starts at all.
  OpenWriter([]() -> absl::StatusOr<absl::Duration> {
    return absl::UnavailableError("git-writer pod-a is a standby: the leader is pod-b");
  });
  EXPECT_THAT(writer_->Apply(Release("nginx:1.26")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("the leader is pod-b")));
  EXPECT_EQ(upstream_->Head(), before);
}

}  // namespace
}  // namespace ferry::git_writer
