#include "lib/policy/soak.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::policy {
namespace {

using ::testing::HasSubstr;

TEST(ParsePolicyDuration, ReadsGoUnitsAndDays) {
  struct Case {
    const char* text;
    absl::Duration want;
  } cases[] = {
      {"90s", absl::Seconds(90)},   {"15m", absl::Minutes(15)},      {"2h", absl::Hours(2)},
      {"1h30m", absl::Minutes(90)}, {"3d", absl::Hours(72)},         {"1d12h", absl::Hours(36)},
      {" 2h ", absl::Hours(2)},     {"365d", absl::Hours(24 * 365)},
  };
  for (const Case& c : cases) {
    absl::StatusOr<absl::Duration> d = ParsePolicyDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.want) << c.text;
    EXPECT_EQ(*ParsePolicyDuration(FormatPolicyDuration(*d)), *d) << c.text;
  }
}

TEST(ParsePolicyDuration, RefusesWhatIsNotAPositiveDuration) {
  for (const char* text : {"", "2", "0", "0s", "-1h", "+1h", "2x", "h", "d", "1.5d", "366d", "inf",
                           "1d-1h", "99999d", "1h 30m"}) {
    absl::StatusOr<absl::Duration> d = ParsePolicyDuration(text);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(d.status().message(), HasSubstr("90s, 15m, 2h")) << text;
  }
}

TEST(FormatPolicyDuration, ShortForms) {
  EXPECT_EQ(FormatPolicyDuration(absl::Hours(2)), "2h");
  EXPECT_EQ(FormatPolicyDuration(absl::Hours(36)), "1d12h");
  EXPECT_EQ(FormatPolicyDuration(absl::Minutes(90)), "1h30m");
  EXPECT_EQ(FormatPolicyDuration(absl::Hours(48)), "2d");
}

TEST(ParseRollback, AutoOrOff) {
  EXPECT_EQ(*ParseRollback("auto"), true);
  EXPECT_EQ(*ParseRollback("Off"), false);
  EXPECT_EQ(ParseRollback("yes").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseRollback("").status().message(), HasSubstr("use auto or off"));
}

TEST(Rejected, ParsesAndFormatsNewestLast) {
  absl::StatusOr<std::vector<RejectedTag>> r = ParseRejected(" 1.2.3=job-1, 1.2.4 ,1.2.5=j.2");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, (std::vector<RejectedTag>{{"1.2.3", "job-1"}, {"1.2.4", ""}, {"1.2.5", "j.2"}}));
  std::vector<RejectedTag> more = *r;
  more.push_back({"1.2.3", "job-9"});
  EXPECT_EQ(FormatRejected(more), "1.2.4,1.2.5=j.2,1.2.3=job-9");
  EXPECT_TRUE(ParseRejected("")->empty());
}

TEST(Rejected, KeepsTheNewestOnly) {
  std::vector<RejectedTag> tags;
  for (size_t i = 0; i < kMaxRejectedTags + 5; ++i) tags.push_back({absl::StrCat("t", i), "j"});
  std::vector<RejectedTag> kept = *ParseRejected(FormatRejected(tags));
  ASSERT_EQ(kept.size(), kMaxRejectedTags);
  EXPECT_EQ(kept.front().tag, "t5");
  EXPECT_EQ(kept.back().tag, absl::StrCat("t", kMaxRejectedTags + 4));
}

TEST(Rejected, RefusesBadEntries) {
  EXPECT_THAT(ParseRejected("a b=1").status().message(), HasSubstr("\"a b=1\""));
  EXPECT_EQ(ParseRejected("1.0=job id").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRejected("=job").status().code(), absl::StatusCode::kInvalidArgument);
  std::string many;
  for (size_t i = 0; i <= kMaxRejectedTags * 2; ++i) absl::StrAppend(&many, "t", i, ",");
  EXPECT_THAT(ParseRejected(many).status().message(), HasSubstr("more than"));
}

// One entry as given (a policy change, a flag): a ',' or '=' in its tag or job must not
// pass as several entries (job "j,1.2.3" would also reject 1.2.3 once written).
TEST(ValidateRejectedTag, RefusesWhatWouldReadBackAsOtherEntries) {
  FERRY_EXPECT_OK(ValidateRejectedTag({"1.2.3", "job-1.a_b"}));
  FERRY_EXPECT_OK(ValidateRejectedTag({"1.2.3", ""}));
  for (const RejectedTag& bad : std::vector<RejectedTag>{{"1.2.3", "j,1.2.4"},
                                                         {"1.2.3", "j=k"},
                                                         {"1.2.3,1.2.4", "j"},
                                                         {"1.2.3=j", ""},
                                                         {"", "j"},
                                                         {"1.2.3", "job id"},
                                                         {"1.2.3", std::string(129, 'j')}}) {
    EXPECT_EQ(ValidateRejectedTag(bad).code(), absl::StatusCode::kInvalidArgument)
        << bad.tag << " / " << bad.job;
  }
  FERRY_EXPECT_OK(ValidateRejectedTag({"1.2.3", std::string(128, 'j')}));
}

TEST(HoldOf, RejectedThenTooYoung) {
  const absl::Time now = absl::FromUnixSeconds(1'000'000);
  const std::vector<RejectedTag> rejected = {{"bad", "job-7"}};
  Hold h = HoldOf("bad", now - absl::Hours(10), std::nullopt, absl::Hours(1), rejected, now);
  EXPECT_EQ(h.kind, Hold::Kind::kRejected);
  EXPECT_EQ(h.job, "job-7");

  h = HoldOf("new", now - absl::Minutes(30), std::nullopt, absl::Hours(1), rejected, now);
  EXPECT_EQ(h.kind, Hold::Kind::kTooYoung);
  EXPECT_EQ(h.eligible_at, now + absl::Minutes(30));

  // The creation time wins over the first sighting; the first sighting stands in for it.
  h = HoldOf("old", now - absl::Hours(2), now, absl::Hours(1), rejected, now);
  EXPECT_EQ(h.kind, Hold::Kind::kNone);
  h = HoldOf("seen", std::nullopt, now - absl::Minutes(10), absl::Hours(1), rejected, now);
  EXPECT_EQ(h.eligible_at, now + absl::Minutes(50));
  h = HoldOf("unknown", std::nullopt, std::nullopt, absl::Hours(1), rejected, now);
  EXPECT_EQ(h.kind, Hold::Kind::kTooYoung);
  EXPECT_EQ(h.eligible_at, absl::InfiniteFuture());
  // Exactly min-age old is eligible; no min-age holds nothing.
  EXPECT_EQ(HoldOf("edge", now - absl::Hours(1), std::nullopt, absl::Hours(1), {}, now).kind,
            Hold::Kind::kNone);
  EXPECT_EQ(HoldOf("any", std::nullopt, std::nullopt, absl::ZeroDuration(), {}, now).kind,
            Hold::Kind::kNone);
}

}  // namespace
}  // namespace ferry::policy
