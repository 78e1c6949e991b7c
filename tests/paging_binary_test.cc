// Lists over gRPC's default 4 MiB message size, through the real binaries: a repo whose
// workload index is bigger than 4 MiB, applied to a real Kubernetes API, listed page by
// page by a client with gRPC's default receive limit, by ferryctl, and planned by a release.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ferry/v1/api.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/stack.h"

namespace ferry {
namespace {

using testing::Stack;
using testing::StartStack;

constexpr int kWorkloads = 300;
constexpr int kContainers = 30;
constexpr char kNamespace[] = "paged";

// A Deployment of kContainers containers with long image references: ~16 KiB of index.
std::string FatDeployment(const Stack& stack, int n) {
  const std::string name = absl::StrFormat("w%04d", n);
  std::string out = absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
                                 "\n  namespace: ", kNamespace,
                                 "\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: ", name,
                                 "}}\n  template:\n    metadata: {labels: {app: ", name,
                                 "}}\n    spec:\n      containers:\n");
  for (int c = 0; c < kContainers; ++c) {
    absl::StrAppend(&out, "      - name: container-number-", c,
                    "\n        image: ", stack.registry->host(), "/team/", std::string(150, 'r'),
                    "-", c, ":1.0.0-a-rather-long-tag-to-fill-the-index\n");
  }
  return out;
}

class PagingBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = testing::RegistryServer::Start(stack_.dir.path + "/registry");
    FERRY_ASSERT_OK(registry);
    stack_.registry = *std::move(registry);
    std::map<std::string, std::string> files = {
        {"ns.yaml",
         absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ", kNamespace, "}\n")}};
    for (int n = 0; n < kWorkloads; ++n) {
      files[absl::StrFormat("apps/w%04d.yaml", n)] = FatDeployment(stack_, n);
    }
    StartStack(stack_, files, kNamespace);
    if (HasFatalFailure()) return;
    stack_.StartApi({"--no_automation"});
    ASSERT_GT(stack_.api.grpc_port, 0);
    // gRPC's defaults: a receive limit of 4 MiB.
    plain_ = ferry::v1::Ferry::NewStub(
        grpc::CreateChannel(stack_.api.GrpcTarget(), grpc::InsecureChannelCredentials()));
  }

  Stack stack_;
  std::unique_ptr<ferry::v1::Ferry::Stub> plain_;
};

TEST_F(PagingBinaryTest, AListOverFourMebibytesComesInPagesAClientWithDefaultsReads) {
  // The whole list in one answer would not fit a default client.
  ferry::v1::ListWorkloadsRequest request;
  request.set_namespace_(kNamespace);
  request.set_page_size(5000);
  std::vector<std::string> ids;
  std::set<std::string> revisions;
  size_t biggest = 0;
  int pages = 0;
  for (; pages < 100; ++pages) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::ListWorkloadsResponse page;
    FERRY_ASSERT_OK(plain_->ListWorkloads(&ctx, request, &page));
    biggest = std::max(biggest, page.ByteSizeLong());
    revisions.insert(page.revision());
    for (const ferry::v1::Workload& w : page.workloads()) {
      ids.push_back(w.id());
      EXPECT_EQ(w.containers_size(), kContainers) << w.id();
      EXPECT_NE(w.rollout().state(), ferry::v1::ROLLOUT_STATE_UNKNOWN)
          << w.id() << ": in the cluster, so its rollout is known";
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_GT(pages, 0) << "over 4 MiB cannot be one page";
  EXPECT_LT(biggest, 4u << 20);
  EXPECT_EQ(revisions.size(), 1u) << "every page describes one revision";
  ASSERT_EQ(ids.size(), static_cast<size_t>(kWorkloads)) << "each workload once";
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());

  // Small pages: the same list.
  request.set_page_size(7);
  request.clear_page_token();
  std::vector<std::string> small;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    ferry::v1::ListWorkloadsResponse page;
    FERRY_ASSERT_OK(plain_->ListWorkloads(&ctx, request, &page));
    ASSERT_LE(page.workloads_size(), 7);
    for (const ferry::v1::Workload& w : page.workloads()) small.push_back(w.id());
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(small, ids);

  // A token continues only its own list.
  ferry::v1::ListWorkloadsRequest other;
  other.set_namespace_("default");
  other.set_page_token(request.page_token());
  grpc::ClientContext ctx;
  ferry::v1::ListWorkloadsResponse ignored;
  EXPECT_THAT(plain_->ListWorkloads(&ctx, other, &ignored),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                ::testing::HasSubstr("for this request")));
  grpc::ClientContext ctx2;
  other.set_page_token("forged");
  EXPECT_THAT(
      plain_->ListWorkloads(&ctx2, other, &ignored),
      testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("page_token")));

  // ferryctl follows the pages and prints one list.
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto p, testing::Subprocess::Start({FERRYCTL_BIN, "list-workloads", "-n", kNamespace, "-o",
                                          "json", "--url=" + stack_.api.GrpcTarget()}));
  EXPECT_EQ(p->Wait(absl::Seconds(60)), 0) << p->Output();
  for (const std::string& id : {ids.front(), ids.back()}) {
    EXPECT_NE(p->Output().find("\"" + id + "\""), std::string::npos) << id;
  }
  size_t listed = 0;
  for (size_t at = p->Output().find("\"id\""); at != std::string::npos;
       at = p->Output().find("\"id\"", at + 1)) {
    ++listed;
  }
  EXPECT_EQ(listed, static_cast<size_t>(kWorkloads));
}

TEST_F(PagingBinaryTest, ImagesComeInPagesAndAReleasePlansOverTheWholeIndex) {
  ferry::v1::ListImagesRequest request;
  request.set_namespace_(kNamespace);
  request.set_page_size(40);
  request.set_limit(1);
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ferry::v1::ListImagesResponse page;
    FERRY_ASSERT_OK(plain_->ListImages(&ctx, request, &page));
    ASSERT_LE(page.workloads_size(), 40);
    for (const ferry::v1::WorkloadImages& w : page.workloads()) {
      ids.push_back(w.workload());
      EXPECT_EQ(w.containers_size(), kContainers);
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kWorkloads));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));

  // One workload's images: just that one.
  ferry::v1::ListImagesRequest one;
  one.set_workload(ids[3]);
  grpc::ClientContext ctx;
  ferry::v1::ListImagesResponse answer;
  FERRY_ASSERT_OK(plain_->ListImages(&ctx, one, &answer));
  ASSERT_EQ(answer.workloads_size(), 1);
  EXPECT_EQ(answer.workloads(0).workload(), ids[3]);
  EXPECT_TRUE(answer.next_page_token().empty());

  // A dry-run release of every workload plans over the whole index (read in pages between
  // the services): each one would change.
  ferry::v1::ReleaseSpec spec;
  spec.set_all_workloads(true);
  spec.set_image(stack_.registry->host() + "/team/" + std::string(150, 'r') + "-0:2.0.0");
  spec.set_force(true);
  spec.set_dry_run(true);
  ferry::v1::Job submitted;
  FERRY_ASSERT_OK(stack_.Release(spec, &submitted));
  ferry::v1::Job done = stack_.Follow(submitted.id());
  EXPECT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.error();
  int success = 0;
  for (const auto& r : done.results()) {
    if (r.status() == ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS) ++success;
  }
  EXPECT_EQ(success, kWorkloads) << done.DebugString().substr(0, 2000);
}

}  // namespace
}  // namespace ferry
