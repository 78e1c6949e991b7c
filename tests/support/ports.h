// Loopback ports for servers started by tests.
#pragma once

namespace ferry::testing {

// A port the kernel just handed out on 127.0.0.1 and that is free again now. For servers
// that cannot bind port 0 themselves; a small race remains, which tests accept.
int FreeLoopbackPort();

// True when something accepts TCP connections on 127.0.0.1:`port`.
bool AcceptsConnections(int port);

}  // namespace ferry::testing
