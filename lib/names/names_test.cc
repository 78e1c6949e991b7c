#include "lib/names/names.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"

namespace ferry::names {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::Eq;
using ::testing::HasSubstr;

TEST(ParseAuthorTest, NameAndEmail) {
  absl::StatusOr<Author> a = ParseAuthor("  Alice Liddell <alice@example.com> ");
  FERRY_ASSERT_OK(a);
  EXPECT_EQ(a->name, "Alice Liddell");
  EXPECT_EQ(a->email, "alice@example.com");
}

TEST(ParseAuthorTest, BareNameHasNoEmail) {
  absl::StatusOr<Author> a = ParseAuthor("Jürgen");
  FERRY_ASSERT_OK(a);
  EXPECT_EQ(a->name, "Jürgen");
  EXPECT_EQ(a->email, "");
}

// The limit holds for the author as written: "Name<email>" of exactly the limit would be a
// byte over it as "Name <email>", and could not be parsed again from that.
TEST(ParseAuthorTest, TheLimitHoldsForTheAuthorAsWritten) {
  const std::string email = "<a@example.com>";
  const std::string name(limits::kAuthorBytes.default_value - email.size(), 'n');
  absl::StatusOr<Author> tight = ParseAuthor(name + email);
  EXPECT_THAT(tight, StatusIs(absl::StatusCode::kInvalidArgument,
                              HasSubstr("written as \"Name <email>\": author is 257 bytes")));
  absl::StatusOr<Author> fits = ParseAuthor(name.substr(1) + " " + email);
  ASSERT_TRUE(fits.ok()) << fits.status();
  absl::StatusOr<Author> again = ParseAuthor(absl::StrCat(fits->name, " <", fits->email, ">"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->name, fits->name);
}

TEST(ParseAuthorTest, RefusesWhatWouldCorruptACommit) {
  struct Case {
    std::string text;
    std::string message;  // part of the error
  };
  const Case cases[] = {
      {"x\ny", "control character (\\n) at byte 1"},
      {"Eve\nx <e@x>", "control character (\\n)"},
      {std::string("a\0b", 3), "control character (\\x00)"},
      {"tab\there", "control character (\\t)"},
      {"bad\xff", "not UTF-8 at byte 3 (\\xff)"},
      {"", "author is empty"},
      {"   ", "author is empty"},
      {"<>", "email in <> is empty"},
      {"<a@x>", "no name before the email"},
      {"Al<ice> <a@x>", "'<' and '>' may only enclose the email"},
      {"Alice>", "'>' without '<'"},
      {"Al<ice", "'<' and '>' may only enclose the email"},
      {"Bob <bob>", "is not local@domain"},
      {"Bob <@x>", "is not local@domain"},
      {"Bob <a@b@c>", "is not local@domain"},
      {"Bob <a b@c>", "holds a space"},
      {"Jane <jane@example.com>m>",
       "holds a space, ',', ';', '\"', '<' or '>'"},  // found by fuzzing
      {"Jane <<j@x>", "'<' and '>' may only enclose the email"},
      {"... <a@b>", "only punctuation"},
      {std::string(300, 'a'), "author is 300 bytes, over the limit of 256 bytes"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Author> a = ParseAuthor(c.text);
    EXPECT_THAT(a, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message))) << c.text;
  }
}

TEST(ValidateCommitMessageTest, AllowsNewlineAndTab) {
  FERRY_EXPECT_OK(ValidateCommitMessage("Release\n\n\t- one\n"));
  FERRY_EXPECT_OK(ValidateCommitMessage(""));
  FERRY_EXPECT_OK(ValidateCommitMessage("Größe ✓"));
}

TEST(ValidateCommitMessageTest, RefusesNulControlAndOversize) {
  absl::Status nul = ValidateCommitMessage(std::string("cut\0here", 8));
  EXPECT_THAT(nul, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("control character (\\x00) at byte 3")));
  EXPECT_THAT(ValidateCommitMessage("a\rb"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateCommitMessage("a\x1b[31m"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateCommitMessage("a\xc0\x80"), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::Status big = ValidateCommitMessage(std::string(11, 'x'), 10);
  EXPECT_THAT(big,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq("commit message is 11 bytes, over the limit of 10 bytes (raise it with "
                          "--max_commit_message_bytes)")));
}

TEST(ValidateNameTest, OneLineOnly) {
  FERRY_EXPECT_OK(ValidateName("tag filter", "glob:1.*"));
  absl::Status s = ValidateName("tag filter", "glob:*\nInjected subject");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("tag filter \"glob:*\\nInjected subject\"")));
  EXPECT_THAT(ValidateName("container", std::string(1025, 'c')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValidatePathTest, Utf8WithoutControlCharacters) {
  FERRY_EXPECT_OK(ValidatePath("default/app.yaml"));
  FERRY_EXPECT_OK(ValidatePath("ünïcode/😀.yaml"));
  absl::Status s = ValidatePath("default/bad\xff\xfe.yaml");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("\"default/bad\\xff\\xfe.yaml\" is not UTF-8")));
  EXPECT_THAT(ValidatePath("a\nb.yaml"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidatePath(std::string(5000, 'p')), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IsUtf8Test, RefusesMalformedSequences) {
  EXPECT_TRUE(IsUtf8("plain ✓ 😀"));
  EXPECT_FALSE(IsUtf8("\xff"));
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsUtf8("\xe2\x9c"));          // cut short
}

TEST(EscapeTest, OneLineValidUtf8) {
  EXPECT_EQ(Escape("default/bad\xff\xfe.yaml"), "default/bad\\xff\\xfe.yaml");
  EXPECT_EQ(Escape("a\nb\tc\\d"), "a\\nb\\tc\\\\d");
  EXPECT_EQ(Escape(std::string("\0\x1b", 2)), "\\x00\\x1b");
  EXPECT_EQ(Escape("ü✓"), "ü✓");
  EXPECT_TRUE(IsUtf8(Escape("\xc3\x28\xa0\xa1")));
}

}  // namespace
}  // namespace ferry::names
