// An HTTP server on 127.0.0.1 for tests that play a peer (a Kubernetes API server, a webhook
// receiver, a faulty registry) with cpp-httplib: the test adds its handlers, Start binds a
// port and serves on a thread of its own until the object goes.
#pragma once

#include <httplib.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace ferry::testing {

class LoopbackHttpServer {
 public:
  LoopbackHttpServer() = default;
  // Stops serving and waits for the serving thread (also when it had not begun its loop).
  ~LoopbackHttpServer();
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  // For adding handlers (server().Get(...)) before Start.
  httplib::Server& server() { return server_; }

  // Binds 127.0.0.1:`port` (0: a port the kernel picks) and serves. The socket listens when
  // Start returns: a client may connect at once (it waits in the backlog until the loop
  // accepts). Unavailable when the port cannot be bound; call it once.
  absl::Status Start(int port = 0);

  int port() const { return port_; }
  std::string host() const;  // "127.0.0.1:PORT"

 private:
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> loop_ended_{false};  // the serving loop has returned
  std::thread thread_;
};

}  // namespace ferry::testing
