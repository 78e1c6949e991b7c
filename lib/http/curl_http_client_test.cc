#include "lib/http/curl_http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "lib/status/status_matchers.h"

namespace ferry::http {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

// A loopback listener that only counts the connections it could accept.
class CountingListener {
 public:
  CountingListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 16);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~CountingListener() {
    for (int fd : held_) close(fd);
    close(fd_);
  }
  int port() const { return port_; }
  int fd() const { return fd_; }
  // Connections waiting in the backlog (completed handshakes), accepted and closed now.
  int Accepted() {
    int n = 0;
    for (int fd; n < 1000 && (fd = accept(fd_, nullptr, nullptr)) >= 0; ++n) close(fd);
    return n;
  }
  // Accepts one waiting connection and keeps it open, unanswered; false when none waits.
  bool AcceptAndHold() {
    int fd = accept(fd_, nullptr, nullptr);
    if (fd < 0) return false;
    held_.push_back(fd);
    return true;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> held_;
};

TEST(CurlHttpClientTest, ConnectGuardSeesTheResolvedAddressAndRefusesBeforeConnecting) {
  CountingListener listener;
  std::vector<std::string> seen;
  CurlOptions options;
  options.insecure_hosts = {absl::StrCat("localhost:", listener.port())};
  options.connect_guard = [&seen](const std::string& ip) {
    seen.push_back(ip);
    return absl::PermissionDeniedError(absl::StrCat("connection to ", ip, " refused"));
  };
  CurlHttpClient client(options);
  Request request;
  // A name, not an address: the guard gets what it resolved to.
  request.url = absl::StrCat("http://localhost:", listener.port(), "/v2/");
  absl::StatusOr<Response> response = client.Send(request);
  ASSERT_THAT(response, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused")));
  ASSERT_FALSE(seen.empty());
  for (const std::string& ip : seen) EXPECT_TRUE(ip == "127.0.0.1" || ip == "::1") << ip;
  EXPECT_EQ(listener.Accepted(), 0);
}

TEST(CurlHttpClientTest, CancellingAbortsAStalledTransferAndRefusesNewOnes) {
  CountingListener listener;  // holds the connection, never answers
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  CurlOptions options;
  options.insecure_hosts = {absl::StrCat("127.0.0.1:", listener.port())};
  options.cancelled = cancelled;
  CurlHttpClient client(options);
  Request request;
  request.url = absl::StrCat("http://127.0.0.1:", listener.port(), "/v2/");
  request.timeout = absl::Seconds(60);
  std::thread stopper([&] {
    // Cancel once the request is waiting on the listener.
    while (!listener.AcceptAndHold()) absl::SleepFor(absl::Milliseconds(10));
    cancelled->store(true);
  });
  absl::StatusOr<Response> response = client.Send(request);
  stopper.join();
  ASSERT_THAT(response, Not(IsOk()));
  // Cancelled, not the 60 s timeout.
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kCancelled, HasSubstr("stopping")));
  absl::StatusOr<Response> after = client.Send(request);
  EXPECT_THAT(after, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(listener.Accepted(), 0);  // no new connection once cancelled
}

// A timeout under a millisecond is a timeout, not "none" (curl's 0): a peer that never
// answers fails the request at once, not at the idle timeout.
TEST(CurlHttpClientTest, ATimeoutUnderAMillisecondStillEndsTheRequest) {
  CountingListener listener;  // never answers
  CurlOptions options;
  options.insecure_hosts = {absl::StrCat("127.0.0.1:", listener.port())};
  CurlHttpClient client(options);
  Request request;
  request.url = absl::StrCat("http://127.0.0.1:", listener.port(), "/v2/");
  request.timeout = absl::Microseconds(300);
  request.idle_timeout = absl::Seconds(30);
  const absl::Time start = absl::Now();
  EXPECT_THAT(client.Send(request),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("timed out")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20)) << "ended by the idle timeout";
}

TEST(CurlHttpClientTest, AllowedAddressesConnect) {
  CountingListener listener;
  CurlOptions options;
  options.insecure_hosts = {absl::StrCat("127.0.0.1:", listener.port())};
  options.connect_guard = [](const std::string&) { return absl::OkStatus(); };
  CurlHttpClient client(options);
  Request request;
  request.url = absl::StrCat("http://127.0.0.1:", listener.port(), "/v2/");
  // Time enough for curl to connect on a loaded machine.
  request.timeout = absl::Seconds(2);
  // Nobody answers: a timeout, but the connection was made.
  EXPECT_THAT(client.Send(request), ::testing::Not(::ferry::testing::IsOk()));
  EXPECT_EQ(listener.Accepted(), 1);
}

// A loopback HTTP/1.1 server that keeps connections alive: every request (no body) is answered
// 200 "ok" on the connection it came on. Counts the connections it accepted.
class KeepAliveServer {
 public:
  KeepAliveServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accepter_ = std::thread([this] {
      for (int fd; (fd = accept(fd_, nullptr, nullptr)) >= 0;) {
        ++connections_;
        connection_threads_.emplace_back([fd] { Serve(fd); });
      }
    });
  }
  ~KeepAliveServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    accepter_.join();
    for (std::thread& t : connection_threads_) t.join();
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  static void Serve(int fd) {
    std::string buffer;
    char chunk[4096];
    while (true) {
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      for (size_t end; (end = buffer.find("\r\n\r\n")) != std::string::npos;) {
        buffer.erase(0, end + 4);
        const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (write(fd, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size())) break;
      }
    }
    close(fd);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread accepter_;
  std::vector<std::thread> connection_threads_;  // only the accepter thread adds to it
};

// Requests sent from several threads reuse kept-alive connections: no more connections than
// requests in flight at once, whatever the number of requests.
TEST(CurlHttpClientTest, ConnectionsAreKeptAliveAndReused) {
  std::vector<std::thread> clients;
  int connections = 0;
  {
    KeepAliveServer server;
    const std::string host = absl::StrCat("127.0.0.1:", server.port());
    CurlOptions options;
    options.insecure_hosts = {host};
    CurlHttpClient client(options);
    std::atomic<int> ok{0};
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&] {
        for (int i = 0; i < 25; ++i) {
          Request request;
          request.url = absl::StrCat("http://", host, "/v2/", i);
          absl::StatusOr<Response> response = client.Send(request);
          if (response.ok() && response->status == 200 && response->body == "ok") ++ok;
        }
      });
    }
    for (std::thread& t : clients) t.join();
    EXPECT_EQ(ok.load(), 100);
    connections = server.connections();
  }  // the client's connections close before the server's threads are joined
  EXPECT_GE(connections, 1);
  EXPECT_LE(connections, 4) << "a connection per request in flight at most, reused after";
}

// Accepts one connection of `listener` (waiting up to 30 s for it) on a thread of its own and
// plays `script` on its socket (blocking), then closes it.
std::thread ServeOne(CountingListener& listener, std::function<void(int fd)> script) {
  return std::thread([&listener, script = std::move(script)] {
    int fd = -1;
    for (const absl::Time end = absl::Now() + absl::Seconds(30); fd < 0 && absl::Now() < end;) {
      fd = accept(listener.fd(), nullptr, nullptr);
      if (fd < 0) absl::SleepFor(absl::Milliseconds(10));
    }
    if (fd < 0) return;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    script(fd);
    close(fd);
  });
}

// A client of `listener` sending one request with a 120 s timeout and a 2 s idle timeout.
class IdleTimeoutTest : public ::testing::Test {
 protected:
  IdleTimeoutTest() {
    CurlOptions options;
    options.insecure_hosts = {absl::StrCat("127.0.0.1:", listener_.port())};
    client_ = std::make_unique<CurlHttpClient>(options);
    request_.url = absl::StrCat("http://127.0.0.1:", listener_.port(), "/watch");
    request_.timeout = absl::Seconds(120);
    request_.idle_timeout = absl::Milliseconds(1500);  // rounded up: 2 s
  }
  // Sends the request; `peer` plays the server's side until the answer is in.
  absl::StatusOr<Response> Send(std::function<void(int fd, absl::Notification& done)> peer) {
    absl::Notification done;
    std::thread server = ServeOne(listener_, [&](int fd) { peer(fd, done); });
    const absl::Time began = absl::Now();
    absl::StatusOr<Response> response = client_->Send(request_);
    took_ = absl::Now() - began;
    done.Notify();
    server.join();
    return response;
  }
  static bool Write(int fd, const std::string& data) {
    return write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  }

  CountingListener listener_;
  std::unique_ptr<CurlHttpClient> client_;
  Request request_;
  absl::Duration took_;
};

// A peer that takes the request and never answers: Unavailable at the idle timeout, long
// before the timeout.
TEST_F(IdleTimeoutTest, APeerThatNeverAnswersIsUnavailable) {
  absl::StatusOr<Response> response =
      Send([](int, absl::Notification& done) { done.WaitForNotification(); });
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no answer in 2 s")));
  EXPECT_LT(took_, absl::Seconds(60)) << "ended by the timeout, not the idle one";
}

// An answer that begins, then stops flowing: DeadlineExceeded at the idle timeout.
TEST_F(IdleTimeoutTest, AnAnswerThatStopsFlowingIsIdle) {
  absl::StatusOr<Response> response = Send([](int fd, absl::Notification& done) {
    if (Write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nx")) {
      done.WaitForNotification();
    }
  });
  EXPECT_THAT(response,
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("nothing received for 2 s")));
  EXPECT_LT(took_, absl::Seconds(60)) << "ended by the timeout, not the idle one";
}

// A stream that sends a little now and then is not idle, however long it lasts.
TEST_F(IdleTimeoutTest, AStreamThatKeepsSendingIsNotIdle) {
  constexpr int kBytes = 12;  // one every 400 ms: 4.8 s, more than twice the idle timeout
  absl::StatusOr<Response> response = Send([](int fd, absl::Notification&) {
    bool ok = Write(fd, absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", kBytes,
                                     "\r\nConnection: close\r\n\r\n"));
    for (int i = 0; ok && i < kBytes; ++i) {
      absl::SleepFor(absl::Milliseconds(400));  // the peer's pace, not a wait for a condition
      ok = Write(fd, "x");
    }
  });
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, std::string(kBytes, 'x'));
}

TEST(CurlHttpClientTest, OnlyHttpAndHttps) {
  CurlHttpClient client;
  for (const char* url :
       {"file:///etc/hostname", "gopher://127.0.0.1:1/x", "dict://127.0.0.1:1/"}) {
    Request request;
    request.url = url;
    absl::StatusOr<Response> response = client.Send(request);
    EXPECT_THAT(response, ::testing::Not(::ferry::testing::IsOk())) << url;
  }
}

TEST(HostOfUrlTest, TheAuthorityEndsAtThePathTheQueryOrTheFragment) {
  EXPECT_EQ(HostOfUrl("http://h:1/a/b?c"), "h:1");
  EXPECT_EQ(HostOfUrl("http://h:1?key=secret/x"), "h:1");
  EXPECT_EQ(HostOfUrl("https://h#frag/x"), "h");
  EXPECT_EQ(HostOfUrl("https://[::1]:8443"), "[::1]:8443");
  EXPECT_EQ(HostOfUrl("h:1/v2/"), "h:1");
}

// A URL whose query follows the authority at once is sent to a host marked insecure by its
// "host:port", and errors name that host without the query.
TEST(CurlHttpClientTest, AQueryRightAfterTheHostIsOfThatHost) {
  CurlOptions options;
  options.insecure_hosts = {"127.0.0.1:1"};
  CurlHttpClient client(options);
  Request request;
  request.url = "http://127.0.0.1:1?key=secret";
  request.timeout = absl::Seconds(5);
  absl::StatusOr<Response> response = client.Send(request);
  // Port 1 refuses: a connection error, not "plain http is not allowed".
  ASSERT_FALSE(response.ok());
  EXPECT_NE(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_FALSE(absl::StrContains(response.status().message(), "secret")) << response.status();
}

}  // namespace
}  // namespace ferry::http
