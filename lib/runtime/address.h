// Listen addresses: "HOST:PORT" as given by --grpc_address / --metrics_address.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::runtime {

// A validated listen address.
struct ListenAddress {
  // IPv4 address, host name, or IPv6 address without brackets.
  std::string host;
  // 0..65535; 0 lets the kernel pick a free port.
  int port = 0;

  // "host:port", with brackets around IPv6 hosts.
  std::string ToString() const;
};

// Parses "HOST:PORT" ("127.0.0.1:3030", "0.0.0.0:0", "[::1]:3030", "localhost:9791").
// InvalidArgument, with a message saying what is wrong and what is expected, for anything
// else.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

}  // namespace ferry::runtime
