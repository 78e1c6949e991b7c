// ApiError: the status and message of an error answer of the Kubernetes API, whatever its
// body holds (a Status, another JSON, text), never thrown through.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "lib/kube/kube_client.h"

namespace ferry::kube {
namespace {

TEST(ApiError, AStatusGivesItsMessage) {
  absl::Status s = ApiError(
      403, R"({"kind":"Status","reason":"Forbidden","message":"deployments is forbidden"})",
      "GET /apis/apps/v1/deployments");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "GET /apis/apps/v1/deployments: deployments is forbidden");
}

// A proxy or an aggregated API may answer anything: fields of other types read as absent,
// and the body is shown (shortened) instead.
TEST(ApiError, AnyOtherBodyIsShownAndNothingThrows) {
  for (const std::string& body : std::vector<std::string>{
           R"({"kind":"Status","message":5})", R"({"kind":7,"message":"x"})",
           R"({"kind":"Status","reason":[],"message":{"a":1}})", R"(["Status"])", R"("Status")",
           "<html>bad gateway</html>", "", std::string(1000, 'x')}) {
    absl::Status s;
    ASSERT_NO_THROW(s = ApiError(502, body, "GET /api")) << body;
    EXPECT_FALSE(s.ok()) << body;
    EXPECT_TRUE(absl::StartsWith(s.message(), "GET /api: ")) << s.message();
    EXPECT_LE(s.message().size(), 400u) << body;
  }
}

// An answer nested deeper than Ferry's limit fails before it is parsed (copying or
// exporting it would recurse once per level); one that is not JSON is Internal.
TEST(ParseAnswer, TooDeepOrNotJsonFailsWithWhatWasAsked) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  absl::StatusOr<nlohmann::json> parsed = ParseAnswer(deep, "GET /apis/x", "an answer");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(parsed.status().message(),
                                "GET /apis/x: Kubernetes API answer nesting depth over the "
                                "limit of 1000 levels in an answer"))
      << parsed.status();
  EXPECT_EQ(ParseAnswer("{\"a\":", "GET /api", "a watch event").status().code(),
            absl::StatusCode::kInternal);
  const std::string fine = std::string(1000, '[') + std::string(1000, ']');
  EXPECT_TRUE(ParseAnswer(fine, "GET /api", "an answer").ok());
}

// An object's metadata.managedFields is dropped as the answer is parsed, in an object, in
// each item of a list and in a watch event's object; a member of that name anywhere else
// (a custom resource's own field, an array under a "metadata" key) stays.
TEST(ParseAnswer, DropsTheManagedFieldsOfMetadataAndNothingElse) {
  const std::string managed = R"([{"manager":"ferry","fieldsV1":{"f:spec":{}}}])";
  const std::string answer = R"({"metadata":{"name":"a","managedFields":)" + managed +
                             R"(},"items":[{"metadata":{"managedFields":)" + managed +
                             R"(,"name":"b"}}],"object":{"metadata":{"managedFields":)" + managed +
                             R"(}},"spec":{"managedFields":1,"metadata":[{"managedFields":2}],)" +
                             R"("template":{"x":{"metadata":0},"managedFields":3}}})";
  absl::StatusOr<nlohmann::json> parsed = ParseAnswer(answer, "GET /x", "an answer");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed,
            nlohmann::json::parse(R"({"metadata":{"name":"a"},)"
                                  R"("items":[{"metadata":{"name":"b"}}],)"
                                  R"("object":{"metadata":{}},)"
                                  R"("spec":{"managedFields":1,)"
                                  R"("metadata":[{"managedFields":2}],)"
                                  R"("template":{"x":{"metadata":0},"managedFields":3}}})"))
      << parsed->dump();
}

}  // namespace
}  // namespace ferry::kube
