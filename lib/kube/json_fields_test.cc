// Field, MutableField, StringField and IntField: whatever type or size a peer's JSON holds, a read
// gives a value or the fallback, never a throw or undefined behaviour.
#include "lib/kube/json_fields.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace ferry::kube {
namespace {

TEST(JsonFields, FieldsOfOtherTypesReadAsAbsent) {
  const nlohmann::json object = nlohmann::json::parse(R"({"s": "x", "n": 5, "o": {"a": 1}})");
  EXPECT_TRUE(Field(object, "missing").is_null());
  EXPECT_TRUE(Field(nlohmann::json::array({1}), "s").is_null());
  EXPECT_EQ(StringField(object, "s"), "x");
  EXPECT_EQ(StringField(object, "n"), "");
  EXPECT_EQ(StringField(object, "o"), "");
  EXPECT_EQ(IntField(object, "s", 7), 7);
  EXPECT_EQ(IntField(object, "o", 7), 7);
  EXPECT_EQ(IntField(object, "missing", 7), 7);
  EXPECT_EQ(IntField(nlohmann::json("n"), "n", 7), 7);
}

TEST(JsonFields, MutableFieldChangesOnlyWhatIsThere) {
  nlohmann::json object = nlohmann::json::parse(R"({"o": {"a": 1}})");
  nlohmann::json* o = MutableField(object, "o");
  ASSERT_NE(o, nullptr);
  (*o)["b"] = 2;
  EXPECT_EQ(object.dump(), R"({"o":{"a":1,"b":2}})");
  EXPECT_EQ(MutableField(object, "missing"), nullptr);
  nlohmann::json array = nlohmann::json::array({1});
  EXPECT_EQ(MutableField(array, "o"), nullptr);
  EXPECT_EQ(object.dump(), R"({"o":{"a":1,"b":2}})") << "a miss adds no key";
}

TEST(JsonFields, IntFieldTakesEveryNumberItCanHold) {
  const nlohmann::json object = nlohmann::json::parse(R"({
      "small": -3, "float": 2.9, "negative_float": -2.9, "unsigned": 18446744073709551615,
      "int64_max": 9223372036854775807, "huge": 1e300, "minus_huge": -1e300,
      "two_to_63": 9223372036854775808.0, "int64_min": -9223372036854775808,
      "minus_two_to_63": -9223372036854775808.0})");
  EXPECT_EQ(IntField(object, "small"), -3);
  EXPECT_EQ(IntField(object, "float"), 2);
  EXPECT_EQ(IntField(object, "negative_float"), -2);
  EXPECT_EQ(IntField(object, "unsigned"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(IntField(object, "int64_max"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(IntField(object, "int64_min"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(IntField(object, "minus_two_to_63"), std::numeric_limits<int64_t>::min());
  // Floats that no int64 holds are no number at all, not a saturated one.
  EXPECT_EQ(IntField(object, "huge", -1), -1);
  EXPECT_EQ(IntField(object, "minus_huge", -1), -1);
  EXPECT_EQ(IntField(object, "two_to_63", -1), -1);
}

TEST(JsonFields, NestingWithinCountsBracketsOutsideStrings) {
  EXPECT_TRUE(NestingWithin("", 0));
  EXPECT_TRUE(NestingWithin("5", 0));
  EXPECT_FALSE(NestingWithin("{}", 0));
  EXPECT_TRUE(NestingWithin(R"({"a": [1, {"b": []}]})", 4));
  EXPECT_FALSE(NestingWithin(R"({"a": [1, {"b": []}]})", 3));
  // Siblings do not add up; brackets in strings, escaped quotes among them, do not count.
  EXPECT_TRUE(NestingWithin(R"([[1], [2], [[3]]])", 3));
  EXPECT_TRUE(NestingWithin(R"(["[[[[", "\"[[[[", {"k[[[": "\\"}])", 2));
  EXPECT_FALSE(NestingWithin(R"(["\\", [[1]]])", 2)) << "an escaped backslash ends no string";
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(NestingWithin(deep, 1000));
  EXPECT_TRUE(NestingWithin(deep, 100000));
}

}  // namespace
}  // namespace ferry::kube
