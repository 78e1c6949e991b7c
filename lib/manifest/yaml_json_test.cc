#include "lib/manifest/yaml_json.h"

#include <gtest/gtest.h>

#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

nlohmann::json Convert(const std::string& yaml) {
  auto j = YamlToJson(YAML::Load(yaml));
  FERRY_EXPECT_OK(j);
  return j.ok() ? *j : nlohmann::json();
}

TEST(YamlToJson, PlainScalarsResolveLikeKubectl) {
  nlohmann::json j = Convert(R"(
null1: ~
null2: null
null3:
t1: true
t2: yes
t3: On
f1: false
f2: no
f3: OFF
int: 42
neg: -7
hex: 0x1F
octal: 0o17
octal_old: 017
binary: 0b101
float: 1.5
exp: 1e3
inf: .inf
text: hello world
version: 1.10
semver: 1.10.0
port: "8080"
quoted_bool: "true"
single: 'no'
tagged: !!str 123
colon_text: a:b
)");
  EXPECT_TRUE(j["null1"].is_null());
  EXPECT_TRUE(j["null2"].is_null());
  EXPECT_TRUE(j["null3"].is_null());
  EXPECT_EQ(j["t1"], true);
  EXPECT_EQ(j["t2"], true);
  EXPECT_EQ(j["t3"], true);
  EXPECT_EQ(j["f1"], false);
  EXPECT_EQ(j["f2"], false);
  EXPECT_EQ(j["f3"], false);
  EXPECT_EQ(j["int"], 42);
  EXPECT_EQ(j["neg"], -7);
  EXPECT_EQ(j["hex"], 31);
  EXPECT_EQ(j["octal"], 15);
  EXPECT_EQ(j["octal_old"], 15);
  EXPECT_EQ(j["binary"], 5);
  EXPECT_DOUBLE_EQ(j["float"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(j["exp"].get<double>(), 1000);
  EXPECT_TRUE(std::isinf(j["inf"].get<double>()));
  EXPECT_EQ(j["text"], "hello world");
  EXPECT_DOUBLE_EQ(j["version"].get<double>(), 1.1);  // as kubectl reads it
  EXPECT_EQ(j["semver"], "1.10.0");
  EXPECT_EQ(j["port"], "8080");
  EXPECT_EQ(j["quoted_bool"], "true");
  EXPECT_EQ(j["single"], "no");
  EXPECT_EQ(j["tagged"], "123");
  EXPECT_EQ(j["colon_text"], "a:b");
}

TEST(YamlToJson, StructureAndKeys) {
  nlohmann::json j = Convert("a:\n  - 1\n  - {b: c}\n  - []\n1: one\ntrue: yes\n");
  EXPECT_EQ(j["a"][0], 1);
  EXPECT_EQ(j["a"][1]["b"], "c");
  EXPECT_TRUE(j["a"][2].is_array());
  EXPECT_EQ(j["1"], "one");  // keys stay text
  EXPECT_EQ(j["true"], true);
}

TEST(YamlToJson, NonScalarKeyIsAnError) {
  auto j = YamlToJson(YAML::Load("? [a, b]\n: c\n"));
  EXPECT_THAT(j, StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(JsonToYaml, RoundTripsTrickyValues) {
  nlohmann::json in = {
      {"apiVersion", "v1"},
      {"kind", "ConfigMap"},
      {"metadata",
       {{"name", "c"}, {"labels", {{"app", "web"}}}, {"annotations", nlohmann::json::object()}}},
      {"data",
       {{"port", "8080"},
        {"flag", "yes"},
        {"empty", ""},
        {"nul", "null"},
        {"colon", "a: b"},
        {"hash", "x #y"},
        {"lead", " space"},
        {"script", "#!/bin/sh\necho hi\n"},
        {"nonl", "line1\nline2"},
        {"two_newlines", "a\n\n"},
        {"indented", "  a\nb"},
        {"quote", "say \"hi\""},
        {"star", "*"},
        {"dash", "- x"},
        {"unicode", "größe"},
        {"image", "registry.example.com:5000/web:1.0"},
        {"trailing_colon", "a:"},
        {"url", "http://example.com/#frag"}}},
      {"list", {1, 2.5, true, nullptr, "1.0", nlohmann::json::array(), {{"k", "v"}, {"n", 1}}}},
      {"nested", {{"x", {{"y", {{"z", "deep"}}}}}}},
  };
  const std::string yaml = JsonToYaml(in);
  auto back = YamlToJson(YAML::Load(yaml));
  FERRY_ASSERT_OK(back) << "\n" << yaml;
  EXPECT_EQ(*back, in) << yaml;
  EXPECT_NE(yaml.find("script: |\n    #!/bin/sh\n    echo hi\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("port: \"8080\""), std::string::npos) << yaml;
  // Plain where plain reads back the same.
  EXPECT_EQ(JsonToYaml({{"image", "registry.example.com:5000/web:1.0"}, {"url", "http://x/#a"}}),
            "image: registry.example.com:5000/web:1.0\nurl: http://x/#a\n");
  EXPECT_EQ(JsonToYaml({{"k", "ends:"}, {"at", "@x"}}), "at: \"@x\"\nk: \"ends:\"\n");
}

}  // namespace
}  // namespace ferry::manifest
