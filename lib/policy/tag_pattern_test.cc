#include "lib/policy/tag_pattern.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "lib/status/status_matchers.h"

namespace ferry::policy {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Tags(const std::vector<TagCandidate>& ranked) {
  std::vector<std::string> out;
  for (const TagCandidate& c : ranked) out.push_back(c.tag);
  return out;
}

absl::Time Day(int d) { return absl::FromUnixSeconds(1700000000 + d * 86400); }

TEST(GlobMatchTest, StarAndQuestionMark) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("master-*", "master-a000001"));
  EXPECT_FALSE(GlobMatch("master-*", "main-a000001"));
  EXPECT_TRUE(GlobMatch("*-rc*", "1.0-rc3"));
  EXPECT_TRUE(GlobMatch("v?.?", "v1.2"));
  EXPECT_FALSE(GlobMatch("v?.?", "v1.22"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch(std::string(50, '*') + "x", std::string(5000, 'a') + "x"));
}

TEST(TagPatternTest, ParsesKindsAndDefaultsToGlob) {
  EXPECT_EQ(TagPattern::Parse("master-*")->ToString(), "glob:master-*");
  EXPECT_EQ(TagPattern::Parse("glob:*")->kind(), PatternKind::kGlob);
  EXPECT_EQ(TagPattern::Parse("semver:~1.2")->kind(), PatternKind::kSemver);
  EXPECT_EQ(TagPattern::Parse("regex:^v")->ToString(), "regexp:^v");
  EXPECT_EQ(TagPattern::Parse("numerical:^build-(\\d+)$")->kind(), PatternKind::kNumerical);
  EXPECT_EQ(TagPattern::Parse("alphabetical:")->kind(), PatternKind::kAlphabetical);
}

// Filters that could never match a tag are refused with what to write instead, so a
// misspelled kind is never committed as a glob.
TEST(TagPatternTest, RefusesUnknownKindsAndGlobsNoTagCanMatch) {
  struct Case {
    const char* text;
    const char* message;  // a part of the InvalidArgument message
  };
  const Case cases[] = {
      {"semvr:^1.0", "unknown filter kind \"semvr\" (use glob:, semver:, regexp:"},
      {"foo:bar", "unknown filter kind \"foo\" (use glob:, semver:, regexp:"},
      {"Semver:~1", "unknown filter kind \"Semver\""},
      {"regexpp:^v", "unknown filter kind \"regexpp\""},
      {"master-*:x", "has a ':' but no filter kind"},
      {":1.0", "has a ':' but no filter kind"},
      {"^1.0:", "has a ':' but no filter kind"},
      {"glob:semvr:^1.0", "glob tag filter \"semvr:^1.0\" has ':', which no tag contains"},
      {"glob:1.0 beta", "has ' ', which no tag contains"},
      {"v1/*", "has '/', which no tag contains"},
      {"master-*\n", "control character (\\n) at byte 8"},
      {"semver:^1.0\t", "control character (\\t)"},
      {"regexp:^v\x7f", "control character (\\x7f)"},
      // C1 controls (U+009B CSI starts a terminal escape) and bytes that are not UTF-8.
      {"glob:v\xc2\x9b"
       "31m",
       "control character (\\xc2\\x9b)"},
      {"glob:v\xff", "is not UTF-8 at byte 6"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TagPattern> p = TagPattern::Parse(c.text);
    ASSERT_FALSE(p.ok()) << c.text << " parsed as " << p->ToString();
    EXPECT_THAT(p, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message))) << c.text;
  }
  // A NUL byte is a control character too.
  absl::StatusOr<TagPattern> nul = TagPattern::Parse(absl::string_view("glob:a\0b", 8));
  ASSERT_THAT(nul, Not(IsOk()));
  EXPECT_NE(nul.status().message().find("control character (\\x00) at byte 6"), std::string::npos);
  // What tags can hold still parses, with or without the glob: prefix.
  for (const char* ok : {"1.0.*", "glob:v?.?-rc_*", "main-*", "A_b.c-9", "latest"}) {
    FERRY_EXPECT_OK(TagPattern::Parse(ok)) << ok;
  }
  // Other kinds keep their own syntax (a ':' or a space inside a regexp or constraint).
  FERRY_EXPECT_OK(TagPattern::Parse("regexp:^v[0-9]+ ?:?$"));
  FERRY_EXPECT_OK(TagPattern::Parse("semver:>=1.0 <2"));
}

TEST(TagPatternTest, RejectsInvalidPatternsWithReason) {
  auto semver = TagPattern::Parse("semver:>>1");
  ASSERT_THAT(semver, Not(IsOk()));
  EXPECT_NE(semver.status().message().find("invalid tag filter \"semver:>>1\""), std::string::npos);
  auto re = TagPattern::Parse("regexp:(unclosed");
  ASSERT_THAT(re, Not(IsOk()));
  EXPECT_NE(re.status().message().find("missing )"), std::string::npos) << re.status().message();
  EXPECT_THAT(TagPattern::Parse("glob:"), ::testing::Not(::ferry::testing::IsOk()));
  EXPECT_THAT(TagPattern::Parse("regexp:"), ::testing::Not(::ferry::testing::IsOk()));
  // Backreferences are not RE2 (linear time only).
  EXPECT_THAT(TagPattern::Parse("regexp:(a)\\1"), ::testing::Not(::ferry::testing::IsOk()));
}

TEST(TagPatternTest, LatestOnlyWhenNamed) {
  EXPECT_FALSE(TagPattern::Parse("*")->Matches("latest"));
  EXPECT_FALSE(TagPattern::Any().Matches("latest"));
  EXPECT_TRUE(TagPattern::Any().Matches("1.0"));
  EXPECT_TRUE(TagPattern::Parse("latest")->Matches("latest"));
  EXPECT_TRUE(TagPattern::Parse("regexp:^(latest|stable)$")->Matches("latest"));
  EXPECT_FALSE(TagPattern::Parse("regexp:.*")->Matches("latest"));
}

TEST(TagPatternTest, RegexpIsUnanchoredUnlessAnchored) {
  EXPECT_TRUE(TagPattern::Parse("regexp:rc")->Matches("1.0-rc1"));
  EXPECT_FALSE(TagPattern::Parse("regexp:^rc")->Matches("1.0-rc1"));
}

TEST(TagPatternTest, GlobRanksByCreatedNewestFirstUnknownLast) {
  std::vector<TagCandidate> in = {
      {"master-a", Day(1)}, {"master-c", Day(3)}, {"master-x", std::nullopt}, {"master-b", Day(2)},
      {"other", Day(9)},    {"latest", Day(10)},  {"master-d", Day(3)}};
  EXPECT_EQ(Tags(TagPattern::Parse("master-*")->Rank(in)),
            (std::vector<std::string>{"master-d", "master-c", "master-b", "master-a", "master-x"}));
}

TEST(TagPatternTest, SemverRanksByVersionIgnoringTimes) {
  std::vector<TagCandidate> in = {{"1.2.0", Day(5)}, {"v1.10.0", Day(1)},     {"1.9.3", Day(9)},
                                  {"2.0.0", Day(9)}, {"1.11.0-rc.1", Day(9)}, {"master", Day(9)},
                                  {"1.10", Day(2)}};
  EXPECT_EQ(Tags(TagPattern::Parse("semver:^1.2")->Rank(in)),
            (std::vector<std::string>{"v1.10.0", "1.10", "1.9.3", "1.2.0"}));
}

TEST(TagPatternTest, NumericalAndAlphabeticalUseTheCapture) {
  std::vector<TagCandidate> in = {
      {"build-9", Day(1)}, {"build-10", Day(0)}, {"build-x", Day(5)}, {"main-100", Day(5)}};
  EXPECT_EQ(Tags(TagPattern::Parse("numerical:^build-(.+)$")->Rank(in)),
            (std::vector<std::string>{"build-10", "build-9"}));
  EXPECT_EQ(Tags(TagPattern::Parse("alphabetical:^build-(.+)$")->Rank(in)),
            (std::vector<std::string>{"build-x", "build-9", "build-10"}));
  std::vector<TagCandidate> plain = {
      {"3", Day(0)}, {"20", Day(0)}, {"1.5", Day(0)}, {"abc", Day(0)}};
  EXPECT_EQ(Tags(TagPattern::Parse("numerical:")->Rank(plain)),
            (std::vector<std::string>{"20", "3", "1.5"}));
}

// The case: numbers in a capture group, neither the newest tag nor the last by name.
TEST(TagPatternTest, NumericalCaptureOutranksTimeAndName) {
  std::vector<TagCandidate> in = {
      {"build-12", Day(1)}, {"build-2", Day(2)}, {"build-1", Day(3)}, {"latest", Day(4)}};
  EXPECT_EQ(Tags(TagPattern::Parse("numerical:^build-(\\d+)$")->Rank(in)),
            (std::vector<std::string>{"build-12", "build-2", "build-1"}));
}

TEST(TagPatternTest, RankDoesNotDependOnInputOrder) {
  std::vector<TagCandidate> in = {{"1.0.0", Day(1)},
                                  {"1.0.0+b", Day(1)},
                                  {"1.0.0+a", Day(1)},
                                  {"v1.0.0", Day(1)},
                                  {"0.9.0", Day(2)}};
  for (const char* filter : {"semver:*", "glob:*", "alphabetical:", "numerical:^(\\d)"}) {
    std::vector<TagCandidate> shuffled = in;
    std::vector<std::string> first = Tags(TagPattern::Parse(filter)->Rank(shuffled));
    std::sort(shuffled.begin(), shuffled.end(),
              [](const TagCandidate& a, const TagCandidate& b) { return a.tag < b.tag; });
    do {
      EXPECT_EQ(Tags(TagPattern::Parse(filter)->Rank(shuffled)), first) << filter;
    } while (std::next_permutation(
        shuffled.begin(), shuffled.end(),
        [](const TagCandidate& a, const TagCandidate& b) { return a.tag < b.tag; }));
  }
}

TEST(TagPatternTest, OrderKeepsWhatTheKindRanksFilterOrNot) {
  std::vector<TagCandidate> in = {{"1.2.0", Day(5)},
                                  {"2.0.0", Day(1)},
                                  {"1.3.0-rc.1", Day(9)},
                                  {"master", Day(9)},
                                  {"latest", Day(10)}};
  const TagPattern semver = *TagPattern::Parse("semver:~1.2");
  EXPECT_EQ(Tags(semver.Order(in)), (std::vector<std::string>{"2.0.0", "1.3.0-rc.1", "1.2.0"}));
  EXPECT_EQ(Tags(semver.Rank(in)), (std::vector<std::string>{"1.2.0"}));
  EXPECT_EQ(Tags(TagPattern::Parse("glob:1.*")->Order(in)),
            (std::vector<std::string>{"latest", "master", "1.3.0-rc.1", "1.2.0", "2.0.0"}));
  EXPECT_EQ(Tags(TagPattern::Parse("numerical:^(\\d+)\\.")->Order(in)),
            (std::vector<std::string>{"2.0.0", "1.3.0-rc.1", "1.2.0"}));
  EXPECT_EQ(Tags(TagPattern::Parse("alphabetical:")->Order(in)),
            (std::vector<std::string>{"master", "latest", "2.0.0", "1.3.0-rc.1", "1.2.0"}));
}

TagCandidate Incomplete(const std::string& tag, std::optional<absl::Time> created = std::nullopt) {
  return {tag, created, "the image config has no creation time"};
}

TEST(TagPatternTest, ChooseByTimePassesOverIncompleteMetadata) {
  std::vector<TagCandidate> in = {{"main-a", Day(1)},
                                  {"main-b", Day(2)},
                                  Incomplete("main-c"),
                                  Incomplete("main-d", Day(9)),
                                  {"other", Day(5)}};
  TagChoice choice = TagPattern::Parse("glob:main-*")->Choose(in, "main-a");
  EXPECT_EQ(Tags(choice.ranked), (std::vector<std::string>{"main-b", "main-a"}));
  EXPECT_EQ(choice.incomplete, 2);
  // A version ranking needs no time: the same metadata is no obstacle.
  in.push_back(Incomplete("1.5.0"));
  in.push_back({"1.4.0", Day(9)});
  choice = TagPattern::Parse("semver:~1")->Choose(in, "1.4.0");
  EXPECT_EQ(Tags(choice.ranked), (std::vector<std::string>{"1.5.0", "1.4.0"}));
  EXPECT_EQ(choice.incomplete, 0);
  choice = TagPattern::Parse("glob:nothing-*")->Choose(in, "main-a");
  EXPECT_TRUE(choice.ranked.empty());
  EXPECT_EQ(choice.incomplete, 0);
}

TEST(TagPatternTest, ChooseNeverRanksBelowTheRunningTag) {
  std::vector<TagCandidate> in = {{"1.2.0", Day(9)}, {"1.1.0", Day(8)}};
  const TagPattern semver = *TagPattern::Parse("semver:~1");
  EXPECT_EQ(semver.Choose(in, "1.1.0").ranked.front().tag, "1.2.0");
  in.push_back({"1.3.0", Day(1)});
  EXPECT_EQ(semver.Choose(in, "1.3.0").ranked.front().tag, "1.3.0");
  // Deleted from the registry, the running version still outranks the older ones.
  in.pop_back();
  EXPECT_EQ(semver.Choose(in, "1.3.0").ranked.front().tag, "1.3.0");
  EXPECT_EQ(semver.Choose(in, "").ranked.front().tag, "1.2.0");
  // A running tag that does not pass the filter takes no part.
  EXPECT_EQ(semver.Choose(in, "2.0.0").ranked.front().tag, "1.2.0");
  // By creation time, a running tag the registry does not list has no time to rank by.
  EXPECT_EQ(TagPattern::Parse("glob:1.*")->Choose(in, "1.9.0").ranked.front().tag, "1.2.0");
  EXPECT_EQ(TagPattern::Parse("glob:1.*")->Choose(in, "1.9.0").ranked.size(), 2u);
}

TEST(FilterForTest, OwnThenTagAllThenAny) {
  const std::map<std::string, std::string> own = {{"web", "semver:~2"}, {"empty", ""}};
  EXPECT_EQ(FilterFor(own, "regexp:^v", "web")->ToString(), "semver:~2");
  EXPECT_EQ(FilterFor(own, "regexp:^v", "other")->ToString(), "regexp:^v");
  EXPECT_EQ(FilterFor(own, "", "other")->ToString(), "glob:*");
  EXPECT_EQ(FilterFor(own, "regexp:^v", "empty")->ToString(), "glob:*")
      << "an empty filter of its own is no filter, not tag_all";
  absl::StatusOr<TagPattern> bad = FilterFor(own, "semvr:~1", "other");
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("invalid tag filter 'semvr:~1': unknown filter kind")));
}

}  // namespace
}  // namespace ferry::policy
