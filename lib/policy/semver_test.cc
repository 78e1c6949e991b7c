#include "lib/policy/semver.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::policy {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

TEST(VersionTest, ParsesLenientTagForms) {
  EXPECT_EQ(Version::Parse("1.2.3")->ToString(), "1.2.3");
  EXPECT_EQ(Version::Parse("v1.2.3")->ToString(), "1.2.3");
  EXPECT_EQ(Version::Parse("1.2")->ToString(), "1.2.0");
  EXPECT_EQ(Version::Parse("1")->ToString(), "1.0.0");
  EXPECT_EQ(Version::Parse("1.2.3-rc.1+build.5")->ToString(), "1.2.3-rc.1+build.5");
  for (const char* bad :
       {"", "latest", "1.2.3.4", "v", "1.x", "1.2.3-", "1.2.3-01", "master-1", "1..2", " 1.2.3"}) {
    EXPECT_THAT(Version::Parse(bad), ::testing::Not(::ferry::testing::IsOk())) << bad;
  }
}

TEST(VersionTest, ComparesBySemverPrecedence) {
  // Each is lower than the next (the semver specification's own example chain).
  const char* chain[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                         "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                         "1.0.0-rc.1",  "1.0.0",         "1.0.1",
                         "1.1.0",       "2.0.0",         "10.0.0"};
  for (size_t i = 0; i + 1 < std::size(chain); ++i) {
    EXPECT_LT(Version::Parse(chain[i])->Compare(*Version::Parse(chain[i + 1])), 0)
        << chain[i] << " < " << chain[i + 1];
    EXPECT_GT(Version::Parse(chain[i + 1])->Compare(*Version::Parse(chain[i])), 0);
  }
  EXPECT_EQ(Version::Parse("1.0.0+a")->Compare(*Version::Parse("v1.0.0+b")), 0);
}

struct Case {
  const char* constraint;
  const char* version;
  bool want;
};

class ConstraintTest : public ::testing::TestWithParam<Case> {};

TEST_P(ConstraintTest, Checks) {
  const Case& c = GetParam();
  absl::StatusOr<Constraints> cs = Constraints::Parse(c.constraint);
  FERRY_ASSERT_OK(cs) << c.constraint;
  absl::StatusOr<Version> v = Version::Parse(c.version);
  FERRY_ASSERT_OK(v) << c.version;
  EXPECT_EQ(cs->Check(*v), c.want) << "\"" << c.constraint << "\" vs " << c.version;
}

INSTANTIATE_TEST_SUITE_P(
    Masterminds, ConstraintTest,
    ::testing::Values(
        // equality, with and without operator, partials and wildcards
        Case{"1.2.3", "1.2.3", true}, Case{"=1.2.3", "1.2.4", false}, Case{"1.2", "1.2.9", true},
        Case{"1.2", "1.3.0", false}, Case{"1.2.x", "1.2.0", true}, Case{"1", "1.9.9", true},
        Case{"1", "2.0.0", false}, Case{"1.x", "1.5.0", true}, Case{"*", "7.0.0", true},
        Case{"x", "0.0.1", true}, Case{"v1.2.3", "1.2.3", true},
        // not equal
        Case{"!=1.2.3", "1.2.4", true}, Case{"!=1.2.3", "1.2.3", false},
        Case{"!=1.2", "1.2.5", false}, Case{"!=1.2", "1.3.0", true}, Case{"!=1.x", "1.0.0", false},
        Case{"!=1.x", "2.0.0", true},
        // greater / less
        Case{">1.2.3", "1.2.4", true}, Case{">1.2.3", "1.2.3", false}, Case{">1.2", "1.2.9", false},
        Case{">1.2", "1.3.0", true}, Case{">1", "1.9.0", false}, Case{">1", "2.0.0", true},
        Case{">=1.2.3", "1.2.3", true}, Case{"=>1.2.3", "1.2.2", false},
        Case{"<1.2.3", "1.2.2", true}, Case{"<1.2.3", "1.2.3", false},
        Case{"<=1.2.3", "1.2.3", true}, Case{"=<1.2.3", "1.2.4", false},
        Case{"<=1.2", "1.2.9", true}, Case{"<=1.2", "1.3.0", false}, Case{"<=1.x", "1.9.0", true},
        Case{"<=1.x", "2.0.0", false},
        // tilde
        Case{"~1.2.3", "1.2.9", true}, Case{"~1.2.3", "1.3.0", false},
        Case{"~1.2.3", "1.2.2", false}, Case{"~>1.2", "1.2.0", true}, Case{"~1", "1.9.0", true},
        Case{"~1", "2.0.0", false}, Case{"~0.0.0", "5.0.0", true}, Case{"~*", "3.1.4", true},
        // caret
        Case{"^1.2.3", "1.9.9", true}, Case{"^1.2.3", "2.0.0", false},
        Case{"^1.2.3", "1.2.2", false}, Case{"^0.2.3", "0.2.9", true},
        Case{"^0.2.3", "0.3.0", false}, Case{"^0.0.3", "0.0.3", true},
        Case{"^0.0.3", "0.0.4", false}, Case{"^0.0", "0.0.9", true}, Case{"^0.0", "0.1.0", false},
        Case{"^0", "0.9.0", true}, Case{"^0", "1.0.0", false}, Case{"^1.x", "1.4.0", true},
        Case{"^*", "2.0.0", true},
        // AND with comma or space, OR, hyphen ranges
        Case{">=1.2, <2", "1.9.0", true}, Case{">=1.2 <2", "2.0.0", false},
        Case{">= 1.2 , < 1.4", "1.3.5", true}, Case{"<1.0 || >=3", "3.1.0", true},
        Case{"<1.0 || >=3", "2.0.0", false}, Case{"1.2 - 1.4.5", "1.4.5", true},
        Case{"1.2 - 1.4.5", "1.4.6", false}, Case{"1.2 - 1.4.5", "1.1.9", false},
        Case{"1.2 - 1.4.5 || 2.x", "2.3.0", true},
        // pre-releases only when the constraint asks for them
        Case{"^1.2", "1.3.0-rc.1", false}, Case{">=1.0.0", "2.0.0-beta", false},
        Case{"*", "1.0.0-alpha", false}, Case{">=1.2.3-0", "1.2.3-alpha", true},
        Case{">=1.2.3-beta", "1.2.3-alpha", false}, Case{"~1.2.3-beta", "1.2.4-beta", true},
        Case{"<1.2.3-beta", "1.2.3-alpha", true}));

TEST(ConstraintParseTest, RejectsWithReason) {
  struct Bad {
    const char* text;
    const char* reason;
  };
  for (const Bad& b : {Bad{"", "empty alternative"}, Bad{"1.2 ||", "empty alternative"},
                       Bad{"?1.2", "\"?1.2\" is not a version"}, Bad{">>1", "unknown operator"},
                       Bad{">=", "has no version"}, Bad{"1.2.3.4", "not a version"},
                       Bad{"latest", "not a version"}, Bad{"1.0-01", "leading zero"}}) {
    absl::StatusOr<Constraints> c = Constraints::Parse(b.text);
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(b.reason))) << b.text;
  }
}

}  // namespace
}  // namespace ferry::policy
