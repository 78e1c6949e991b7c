#include "services/api/paging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "ferry/v1/api.pb.h"
#include "lib/status/status_matchers.h"

namespace ferry::api {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

TEST(PagingTest, PageSizesHaveADefaultAndACeiling) {
  EXPECT_EQ(*PageSizeOf(0, kWorkloadPages), 500);
  EXPECT_EQ(*PageSizeOf(7, kWorkloadPages), 7);
  EXPECT_EQ(*PageSizeOf(1'000'000, kWorkloadPages), 5000);
  EXPECT_EQ(*PageSizeOf(0, kImagePages), 100);
  EXPECT_THAT(PageSizeOf(-1, kImagePages),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
}

TEST(PagingTest, ATokenContinuesOnlyTheListItWasMadeFor) {
  const std::string token =
      EncodePageToken({"abc123", "default:deployment/x", "prod"}, "ListWorkloads\nns");
  absl::StatusOr<PagePosition> back = DecodePageToken(token, "ListWorkloads\nns");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->revision, "abc123");
  EXPECT_EQ(back->last_id, "default:deployment/x");
  EXPECT_EQ(back->source, "prod");
  EXPECT_THAT(DecodePageToken(token, "ListWorkloads\nother"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not this api's token for this request")));
  // No token: the first page.
  EXPECT_TRUE(DecodePageToken("", "ListWorkloads\nns")->revision.empty());
}

TEST(PagingTest, AForgedPositionIsRefused) {
  const std::string token = EncodePageToken({"abc123", "a:deployment/x", "dev"}, "k");
  std::string text;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(token, &text));
  // Another revision, or another source (whose list the client may not read): refused.
  for (const auto& [from, to] :
       {std::pair<const char*, const char*>{"abc123", "def456"}, {"\"dev\"", "\"prod\""}}) {
    const std::string forged = absl::StrReplaceAll(text, {{from, to}});
    ASSERT_NE(forged, text);
    EXPECT_THAT(DecodePageToken(absl::WebSafeBase64Escape(forged), "k"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not this api's token")));
  }
}

TEST(PagingTest, ForgedOrDamagedTokensAreRefused) {
  for (const std::string& bad :
       {std::string("not base64!"), absl::WebSafeBase64Escape("{\"v\":2}"),
        absl::WebSafeBase64Escape("[1,2]"), absl::WebSafeBase64Escape("{\"v\":1,\"revision\":3}"),
        absl::WebSafeBase64Escape("{\"v\":\"1\",\"revision\":\"a\",\"after\":\"b\",\"mac\":\"c\"}"),
        absl::WebSafeBase64Escape("\xff\xfe"), std::string(kMaxPageTokenBytes + 1, 'A')}) {
    EXPECT_THAT(DecodePageToken(bad, "k"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("start the list again")))
        << bad;
  }
}

TEST(PagingTest, AnAnswerIsCutBeforeItOutgrowsAPageButKeepsOneItem) {
  google::protobuf::RepeatedPtrField<ferry::v1::Workload> items;
  const std::string big(kPageBytes / 4, 'x');
  for (const char* id : {"a", "b", "c", "d"}) {
    ferry::v1::Workload* w = items.Add();
    w->set_id(id);
    w->set_path(big);
  }
  auto id_of = [](const ferry::v1::Workload& w) { return w.id(); };
  EXPECT_EQ(CutToPageBytes(items, id_of), "c");
  EXPECT_EQ(items.size(), 3);
  EXPECT_EQ(CutToPageBytes(items, id_of), "") << "three quarters fit";

  google::protobuf::RepeatedPtrField<ferry::v1::Workload> huge;
  huge.Add()->set_id("big");
  huge[0].set_path(std::string(kPageBytes + 1, 'x'));
  huge.Add()->set_id("next");
  EXPECT_EQ(CutToPageBytes(huge, id_of), "big");
  EXPECT_EQ(huge.size(), 1) << "one item over the size still makes a page";
}

}  // namespace
}  // namespace ferry::api
