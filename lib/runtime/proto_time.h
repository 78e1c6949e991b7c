// absl::Time <-> google.protobuf.Timestamp at the RPC edge, and the one way Ferry writes a
// time for people (notes, explanations, ferryctl tables).
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <string>

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

// "2026-12-01T16:00:00Z": `t` in RFC 3339, UTC, whole seconds (truncated). "infinite-past" /
// "infinite-future" for those (absl's words); callers say "unknown" themselves where that
// is meant.
inline std::string FormatRfc3339Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// FormatRfc3339Utc of a timestamp.
inline std::string FormatRfc3339Utc(const google::protobuf::Timestamp& ts) {
  return FormatRfc3339Utc(FromProtoTimestamp(ts));
}

}  // namespace ferry::runtime
