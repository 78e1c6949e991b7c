// KubeClient::Watch against a hostile API server on loopback (cpp-httplib): each bad event
// ends the watch with an error of its own, after the good events before it reached the
// caller, and nothing recurses, throws or grows past the limits.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/kube/kube_client.h"
#include "lib/limits/limits.h"
#include "lib/status/status_matchers.h"
#include "tests/support/loopback_http_server.h"

namespace ferry::kube {
namespace {

constexpr char kGood[] = R"({"type":"ADDED","object":{"metadata":{"name":"web"}}})";

// Serves `body` to every GET of /api/v1/pods, in pieces of at most 64 KiB.
class WatchServer {
 public:
  explicit WatchServer(std::string body) : body_(std::move(body)) {
    http_.server().Get("/api/v1/pods", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider(
          "application/json", [this](size_t offset, httplib::DataSink& sink) {
            if (offset >= body_.size()) {
              sink.done();
              return true;
            }
            const size_t n = std::min<size_t>(64 << 10, body_.size() - offset);
            return sink.write(body_.data() + offset, n);
          });
    });
    FERRY_EXPECT_OK(http_.Start());
  }
  std::string host() const { return http_.host(); }

 private:
  const std::string body_;
  ferry::testing::LoopbackHttpServer http_;
};

struct Watched {
  absl::Status status;
  std::vector<std::string> names;  // of the events' objects, as the caller read them
};

// Watches /api/v1/pods on a server sending `body`; the caller reads each event's
// object.metadata.name as a string (so an event without one throws in the caller).
Watched Watch(const std::string& body) {
  WatchServer server(body);
  ClusterAccess access;
  access.server = "http://" + server.host();
  access.tls.insecure_hosts = {server.host()};
  prometheus::Registry registry;
  KubeClient client(access, registry);
  std::atomic<bool> stop{false};
  Watched out;
  out.status =
      client.Watch("/api/v1/pods", absl::Seconds(30), stop, [&](const nlohmann::json& event) {
        out.names.push_back(event.at("object").at("metadata").at("name").get<std::string>());
        return true;
      });
  return out;
}

TEST(KubeClientWatch, AnEventNestedTooDeepEndsTheWatchAfterTheGoodOnes) {
  const int depth = static_cast<int>(limits::kKubeJsonDepth.default_value) + 1;
  const std::string deep = absl::StrCat(R"({"type":"ADDED","object":)", std::string(depth, '['),
                                        std::string(depth, ']'), "}");
  Watched w = Watch(absl::StrCat(kGood, "\n", deep, "\n", kGood, "\n"));
  EXPECT_EQ(w.status.code(), absl::StatusCode::kResourceExhausted) << w.status;
  EXPECT_TRUE(absl::StrContains(w.status.message(), "nesting depth")) << w.status;
  EXPECT_EQ(w.names, std::vector<std::string>{"web"});
}

TEST(KubeClientWatch, AnEventOverTheSizeLimitEndsTheWatchWithoutGrowingPastIt) {
  // One line longer than the limit, never ended: the client stops reading at the limit.
  const std::string big(KubeApi::kMaxWatchEventBytes + (1 << 20), 'x');
  Watched w = Watch(absl::StrCat(kGood, "\n", big));
  EXPECT_EQ(w.status.code(), absl::StatusCode::kResourceExhausted) << w.status;
  EXPECT_TRUE(absl::StrContains(w.status.message(), "a watch event over")) << w.status;
  EXPECT_EQ(w.names, std::vector<std::string>{"web"});
}

TEST(KubeClientWatch, AnEventThatIsNotAnObjectOrNotJsonIsInternal) {
  for (const std::string& bad : {std::string("[1,2]"), std::string("\"text\"")}) {
    Watched w = Watch(absl::StrCat(kGood, "\n", bad, "\n"));
    EXPECT_EQ(w.status.code(), absl::StatusCode::kInternal) << bad << ": " << w.status;
    EXPECT_TRUE(absl::StrContains(w.status.message(), "not a JSON object")) << w.status;
    EXPECT_EQ(w.names, std::vector<std::string>{"web"}) << bad;
  }
  for (const std::string& bad : {std::string("{\"type\":"), std::string("{\"a\":1}}")}) {
    Watched w = Watch(absl::StrCat(kGood, "\n", bad, "\n"));
    EXPECT_EQ(w.status.code(), absl::StatusCode::kInternal) << bad << ": " << w.status;
    EXPECT_FALSE(absl::StrContains(w.status.message(), "could not be read")) << w.status;
    EXPECT_EQ(w.names, std::vector<std::string>{"web"}) << bad;
  }
}

// An event the caller cannot read (a name that is a number) fails the watch with a message,
// not an exception through libcurl.
TEST(KubeClientWatch, AnEventTheCallerCannotReadIsInternal) {
  Watched w = Watch(absl::StrCat(
      kGood, "\n", R"({"type":"ADDED","object":{"metadata":{"name":7}}})", "\n", kGood, "\n"));
  EXPECT_EQ(w.status.code(), absl::StatusCode::kInternal) << w.status;
  EXPECT_TRUE(absl::StrContains(w.status.message(), "could not be read")) << w.status;
  EXPECT_EQ(w.names, std::vector<std::string>{"web"});
}

// The good events of a stream that ends are all read; the watch ends without an error.
TEST(KubeClientWatch, EveryGoodEventIsReadUntilTheStreamEnds) {
  std::string body;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&body, R"({"type":"MODIFIED","object":{"metadata":{"name":"w)", i, "\"}}}\n");
  }
  Watched w = Watch(body);
  EXPECT_TRUE(w.status.ok()) << w.status;
  ASSERT_EQ(w.names.size(), 1000u);
  EXPECT_EQ(w.names.back(), "w999");
}

}  // namespace
}  // namespace ferry::kube
