#include "lib/runtime/start_service.h"

namespace ferry::runtime {

absl::StatusOr<std::optional<PeerOptions>> SecureAndInitLogging(const ComponentDefaults& component,
                                                                const ServerFlags& flags,
                                                                ServerOptions& options,
                                                                bool internal, bool calls_peers) {
  if (internal) {
    if (absl::Status s = AuthenticateInternalCallers(flags, options); !s.ok()) return s;
  }
  std::optional<PeerOptions> peer;
  if (calls_peers) {
    absl::StatusOr<PeerOptions> read = ToPeerOptions(flags);
    if (!read.ok()) return read.status();
    peer = *std::move(read);
  }
  InitLogging(component, flags);
  return peer;
}

}  // namespace ferry::runtime
