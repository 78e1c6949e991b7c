#include "services/api/sources.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "ferry/v1/cluster_syncer_mock.grpc.pb.h"
#include "ferry/v1/git_writer_mock.grpc.pb.h"
#include "ferry/v1/registry_scanner_mock.grpc.pb.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Invoke;

// One source whose git-writer defines `ids` (or does not answer).
struct FakeSource {
  FakeSource(std::string name, std::set<std::string> ids,
             ferry::v1::MockRegistryScannerStub& registry, CancelSet& cancel)
      : name(std::move(name)), ids(std::move(ids)), peers(Peers{git, registry, cluster}, cancel) {
    ON_CALL(git, ListWorkloads(_, _, _))
        .WillByDefault(Invoke([this](grpc::ClientContext*,
                                     const ferry::v1::ListManifestWorkloadsRequest& request,
                                     ferry::v1::ListManifestWorkloadsResponse* out) {
          ++calls;
          if (down) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused");
          for (const std::string& id : this->ids) {
            if (request.ids().empty() ||
                std::find(request.ids().begin(), request.ids().end(), id) != request.ids().end()) {
              out->add_workloads()->set_id(id);
            }
          }
          return grpc::Status::OK;
        }));
  }

  std::string name;
  std::set<std::string> ids;
  bool down = false;
  int calls = 0;
  ::testing::NiceMock<ferry::v1::MockGitWriterStub> git;
  ::testing::NiceMock<ferry::v1::MockClusterSyncerStub> cluster;
  PeerClients peers;
};

class SourcesTest : public ::testing::Test {
 protected:
  // Sources named `names` (in this order, to see that they are sorted); source i defines
  // `ids[i]`.
  Sources Make(const std::vector<std::string>& names,
               const std::vector<std::set<std::string>>& ids) {
    std::vector<Source> sources;
    for (size_t i = 0; i < names.size(); ++i) {
      fakes_.push_back(std::make_unique<FakeSource>(names[i], ids[i], registry_, cancel_));
      sources.push_back(Source{names[i], &fakes_.back()->peers, nullptr});
    }
    return Sources(std::move(sources));
  }
  FakeSource& Fake(const std::string& name) {
    for (auto& f : fakes_) {
      if (f->name == name) return *f;
    }
    std::abort();
  }
  CallBudget Budget() const {
    return CallBudget{absl::Now() + absl::Seconds(5), absl::Seconds(5), nullptr, true, nullptr};
  }

  ::testing::NiceMock<ferry::v1::MockRegistryScannerStub> registry_;
  CancelSet cancel_;
  std::vector<std::unique_ptr<FakeSource>> fakes_;
};

TEST_F(SourcesTest, OneUnnamedSourceTakesEveryRequestWithoutAsking) {
  Sources sources = Make({""}, {{"default:deployment/web"}});
  EXPECT_FALSE(sources.named());
  FERRY_ASSERT_OK_AND_ASSIGN(const Source* s, sources.Named("", "a sync"));
  EXPECT_EQ(s->name, "");
  FERRY_ASSERT_OK_AND_ASSIGN(s, sources.Holding("", {"x:deployment/not-there"}, Budget()));
  EXPECT_EQ(s->name, "");
  EXPECT_EQ(Fake("").calls, 0);  // nothing looked up
  // A name meant for another api (a FERRY_SOURCE left set) is refused, not ignored.
  EXPECT_THAT(sources.Named("prod", "a sync"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without a name")));
  EXPECT_THAT(sources.Holding("prod", {"x:deployment/web"}, Budget()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without a name")));
}

TEST_F(SourcesTest, NamedSourcesAreSortedAndAWholeSourceRequestMustNameOne) {
  Sources sources = Make({"prod", "dev"}, {{}, {}});
  EXPECT_TRUE(sources.named());
  EXPECT_EQ(sources.Names(), "dev, prod");
  FERRY_ASSERT_OK_AND_ASSIGN(const Source* prod, sources.Named("prod", "a sync"));
  EXPECT_EQ(prod->name, "prod");
  EXPECT_THAT(sources.Named("", "a sync"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("a sync needs a source: this api serves 2 (dev, prod)")));
  EXPECT_THAT(sources.Named("staging", "a sync"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no source is named 'staging' (sources: dev, prod)")));
  // A name that cannot be one is refused without being echoed.
  for (const std::string& bad : {std::string("Prod"), std::string(200, 'a'), std::string("a\nb")}) {
    absl::StatusOr<const Source*> refused = sources.Named(bad, "a sync");
    EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DNS label")));
    EXPECT_FALSE(absl::StrContains(refused.status().message(), bad));
  }
  // Lists go source after source.
  EXPECT_EQ(sources.From("")->name, "dev");
  EXPECT_EQ(sources.From("e")->name, "prod");
  EXPECT_EQ(sources.From("q"), nullptr);
  EXPECT_EQ(sources.After(*sources.From(""))->name, "prod");
  EXPECT_EQ(sources.After(*prod), nullptr);
}

TEST_F(SourcesTest, WorkloadsWithoutASourceGoToTheOneSourceDefiningThemAll) {
  Sources sources = Make({"a", "b"}, {{"ns:deployment/web", "ns:deployment/db"},
                                      {"ns:deployment/web", "other:deployment/api"}});
  FERRY_ASSERT_OK_AND_ASSIGN(const Source* s, sources.Holding("", {"ns:deployment/db"}, Budget()));
  EXPECT_EQ(s->name, "a");
  FERRY_ASSERT_OK_AND_ASSIGN(s, sources.Holding("", {"other:deployment/api"}, Budget()));
  EXPECT_EQ(s->name, "b");
  // Defined by both: ambiguous; by neither wholly: not found.
  EXPECT_THAT(sources.Holding("", {"ns:deployment/web"}, Budget()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("workload ns:deployment/web is in several sources (a, b)")));
  EXPECT_THAT(sources.Holding("", {"ns:deployment/db", "other:deployment/api"}, Budget()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("the 2 workloads are in no source's repository")));
  // Ids named twice count once.
  FERRY_ASSERT_OK_AND_ASSIGN(
      s, sources.Holding("", {"ns:deployment/db", "ns:deployment/db"}, Budget()));
  EXPECT_EQ(s->name, "a");
  EXPECT_THAT(sources.Holding("", {}, Budget()), StatusIs(absl::StatusCode::kInvalidArgument));
  // A named source is taken as it is (the job then finds what its repo has).
  FERRY_ASSERT_OK_AND_ASSIGN(s, sources.Holding("b", {"ns:deployment/db"}, Budget()));
  EXPECT_EQ(s->name, "b");
}

TEST_F(SourcesTest, ASourceThatDoesNotAnswerMightHoldTheWorkloadsSoTheRequestMustNameOne) {
  // Both define web (dev and prod often share ids): with a down, b's answer alone would
  // send a request meant for a to b.
  Sources sources = Make({"a", "b"}, {{"ns:deployment/web"}, {"ns:deployment/web"}});
  Fake("a").down = true;
  EXPECT_THAT(sources.Holding("", {"ns:deployment/web"}, Budget()),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("cannot tell which source defines workload "
                                       "ns:deployment/web: source a: "),
                             HasSubstr("name the source"))));
  // Named, the other source goes on.
  FERRY_ASSERT_OK_AND_ASSIGN(const Source* s,
                             sources.Holding("b", {"ns:deployment/web"}, Budget()));
  EXPECT_EQ(s->name, "b");
}

TEST(SourceErrorTest, NamesANamedSourceAndKeepsTheCode) {
  EXPECT_THAT(SourceError(Source{"prod", nullptr, nullptr}, absl::UnavailableError("down")),
              StatusIs(absl::StatusCode::kUnavailable, "source prod: down"));
  EXPECT_THAT(SourceError(Source{"", nullptr, nullptr}, absl::NotFoundError("gone")),
              StatusIs(absl::StatusCode::kNotFound, "gone"));
}

}  // namespace
}  // namespace ferry::api
