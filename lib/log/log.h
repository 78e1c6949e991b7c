// Structured logging: one line per event, as text or JSON, on stderr.
//
//   ferry::log::Info("listening", {{"grpc_address", "127.0.0.1:3030"}, {"port", 3030}});
//
// text: 2026-11-27T10:00:00.123Z INFO  api listening grpc_address=127.0.0.1:3030 port=3030
// json: {"ts":"2026-11-27T10:00:00.123Z","level":"info","component":"api",
//        "event":"listening","grpc_address":"127.0.0.1:3030","port":3030}
//
// Events are short snake_case or lower-case phrases; details go into fields. Never pass a
// secret (key material, tokens, passwords, credentialed URLs) as a field value: log its
// path or fingerprint instead. Thread-safe after Init().
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::log {

enum class Format { kText, kJson };
enum class Level { kDebug, kInfo, kWarn, kError };

// One key/value of an event. Values keep their type in JSON output.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(std::string(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string(v)) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, int64_t v) : key(k), value(v) {}
  Field(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}

  std::string_view key;
  std::variant<std::string, int64_t, double, bool> value;
};

// Parses "text" or "json".
absl::StatusOr<Format> ParseFormat(std::string_view name);
// Parses "debug", "info", "warn" or "error".
absl::StatusOr<Level> ParseLevel(std::string_view name);

// Configures the process-wide logger. `component` names the binary ("api", "git-writer").
// Call once at start, before other threads log; later calls replace the settings.
void Init(std::string_view component, Format format, Level level);

// Logs an event at the given level. Events below the configured level are dropped.
void Event(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  Event(Level::kDebug, event, fields);
}
inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  Event(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  Event(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  Event(Level::kError, event, fields);
}

// Formats one log line (without newline). Exposed for tests.
std::string FormatLine(Format format, absl::Time time, Level level, std::string_view component,
                       std::string_view event, std::initializer_list<Field> fields);

}  // namespace ferry::log
