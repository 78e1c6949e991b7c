#include "lib/log/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lib/status/status_matchers.h"

namespace ferry::log {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

const absl::Time kTime = absl::FromUnixMillis(1795780800123);  // 2026-11-27T12:00:00.123Z

TEST(LogTest, TextLineHasTimeLevelComponentEventAndFields) {
  std::string line = FormatLine(Format::kText, kTime, Level::kWarn, "api", "listening",
                                {{"grpc_address", "127.0.0.1:3030"}, {"port", 3030}});
  EXPECT_EQ(line,
            "2026-11-27T12:00:00.123Z WARN  api listening grpc_address=127.0.0.1:3030 "
            "port=3030");
}

TEST(LogTest, TextQuotesValuesWithSpacesAndNewlines) {
  std::string line = FormatLine(Format::kText, kTime, Level::kInfo, "api", "e",
                                {{"msg", "two words\nline"}, {"empty", ""}});
  EXPECT_NE(line.find("msg=\"two words\\nline\""), std::string::npos) << line;
  EXPECT_NE(line.find("empty=\"\""), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LogTest, JsonLineIsOneObjectWithTypedValues) {
  std::string line = FormatLine(Format::kJson, kTime, Level::kError, "git-writer", "push failed",
                                {{"attempt", 3}, {"retry", true}, {"reason", "non-fast-forward"}});
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-11-27T12:00:00.123Z");
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["component"], "git-writer");
  EXPECT_EQ(j["event"], "push failed");
  EXPECT_EQ(j["attempt"], 3);
  EXPECT_EQ(j["retry"], true);
  EXPECT_EQ(j["reason"], "non-fast-forward");
}

TEST(LogTest, InvalidUtf8DoesNotBreakJson) {
  std::string line =
      FormatLine(Format::kJson, kTime, Level::kInfo, "api", "e", {{"v", "bad\xff byte"}});
  EXPECT_NO_THROW(nlohmann::json::parse(line));
}

TEST(LogTest, ParsesFormatsAndLevels) {
  EXPECT_EQ(*ParseFormat("JSON"), Format::kJson);
  EXPECT_EQ(*ParseFormat("text"), Format::kText);
  EXPECT_THAT(ParseFormat("xml"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseLevel("warning"), Level::kWarn);
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_NE(ParseLevel("loud").status().message().find("use debug, info"), std::string::npos);
}

}  // namespace
}  // namespace ferry::log
