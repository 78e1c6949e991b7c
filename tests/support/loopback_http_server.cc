#include "tests/support/loopback_http_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace ferry::testing {

absl::Status LoopbackHttpServer::Start(int port) {
  // No delayed-ACK wait per answer: a test may ask thousands of them.
  server_.set_tcp_nodelay(true);
  port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1")
                    : (server_.bind_to_port("127.0.0.1", port) ? port : -1);
  if (port_ <= 0) {
    port_ = 0;
    return absl::UnavailableError(absl::StrCat("cannot bind 127.0.0.1:", port));
  }
  thread_ = std::thread([this] {
    server_.listen_after_bind();
    loop_ended_ = true;
  });
  return absl::OkStatus();
}

LoopbackHttpServer::~LoopbackHttpServer() {
  if (!thread_.joinable()) return;
  // stop() before the loop runs would not end it: wait until it runs, or has ended (it
  // failed). One of the two comes: the thread only runs the loop.
  while (!server_.is_running() && !loop_ended_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_.stop();
  thread_.join();
}

std::string LoopbackHttpServer::host() const { return absl::StrCat("127.0.0.1:", port_); }

}  // namespace ferry::testing
