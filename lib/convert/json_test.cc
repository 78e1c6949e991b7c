// ToJson: the mapping's text, or InvalidArgument where the mapping has no form for a value.
#include "lib/convert/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ferry/v1/types.pb.h"
#include "lib/status/status_matchers.h"

namespace ferry::convert {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ToJson, WritesTheMappingWithTheNamesAsked) {
  ferry::v1::Job job;
  job.set_id("j1");
  job.mutable_submitted()->set_seconds(1700000000);
  job.set_pushed_branch("ferry/releases");
  FERRY_ASSERT_OK_AND_ASSIGN(std::string camel, ToJson(job));
  EXPECT_THAT(camel, HasSubstr(R"("pushedBranch":"ferry/releases")"));
  EXPECT_THAT(camel, HasSubstr(R"("submitted":"2023-11-14T22:13:20Z")"));
  FERRY_ASSERT_OK_AND_ASSIGN(std::string proto, ToJson(job, JsonNames::kProto));
  EXPECT_THAT(proto, HasSubstr(R"("pushed_branch":"ferry/releases")"));
}

TEST(ToJson, ATimestampPastYear9999HasNoJsonForm) {
  ferry::v1::Job job;
  job.set_id("j1");
  job.mutable_finished()->set_seconds(int64_t{1} << 40);
  EXPECT_THAT(ToJson(job), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Job")));
  job.mutable_finished()->set_seconds(-62135596801);  // a second before 0001-01-01
  EXPECT_THAT(ToJson(job, JsonNames::kProto), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ferry::convert
