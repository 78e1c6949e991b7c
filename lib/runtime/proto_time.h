// absl::Time <-> google.protobuf.Timestamp at the RPC edge.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace ferry::runtime {

// The timestamp of `t`; an unset (empty) timestamp for the infinite past or future, which
// Ferry's contracts read as "unknown".
inline google::protobuf::Timestamp ToProtoTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return ts;
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return ts;
}

// The time of `ts`.
inline absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

}  // namespace ferry::runtime
