#include "lib/log/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ferry::log {
namespace {

// Settings read on every event; written by Init() before other threads log.
struct Settings {
  std::string component = "ferry";
  Format format = Format::kText;
  std::atomic<int> level{static_cast<int>(Level::kInfo)};
};

Settings& GetSettings() {
  static Settings* settings = new Settings();
  return *settings;
}

std::shared_ptr<spdlog::logger>& Logger() {
  static auto* logger = new std::shared_ptr<spdlog::logger>(
      std::make_shared<spdlog::logger>("ferry", std::make_shared<spdlog::sinks::stderr_sink_mt>()));
  return *logger;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// Text values are quoted when they would otherwise be ambiguous to a reader or a parser.
std::string TextValue(const std::string& v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      plain = false;
      break;
    }
  }
  if (plain) return v;
  return nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<Format> ParseFormat(std::string_view name) {
  std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "text") return Format::kText;
  if (n == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log format '", std::string(name), "' (use text or json)"));
}

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "debug") return Level::kDebug;
  if (n == "info") return Level::kInfo;
  if (n == "warn" || n == "warning") return Level::kWarn;
  if (n == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", std::string(name), "' (use debug, info, warn or error)"));
}

void Init(std::string_view component, Format format, Level level) {
  Settings& s = GetSettings();
  s.component = std::string(component);
  s.format = format;
  s.level.store(static_cast<int>(level));
  auto& logger = Logger();
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
}

std::string FormatLine(Format format, absl::Time time, Level level, std::string_view component,
                       std::string_view event, std::initializer_list<Field> fields) {
  std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  if (format == Format::kJson) {
    nlohmann::ordered_json j;
    j["ts"] = ts;
    j["level"] = LevelName(level);
    j["component"] = component;
    j["event"] = event;
    for (const Field& f : fields) {
      std::string key(f.key);
      std::visit([&](const auto& v) { j[key] = v; }, f.value);
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string line = absl::StrFormat("%s %-5s %s %s", ts, absl::AsciiStrToUpper(LevelName(level)),
                                     std::string(component), std::string(event));
  for (const Field& f : fields) {
    absl::StrAppend(&line, " ", std::string(f.key), "=");
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            absl::StrAppend(&line, TextValue(v));
          } else if constexpr (std::is_same_v<T, bool>) {
            absl::StrAppend(&line, v ? "true" : "false");
          } else {
            absl::StrAppend(&line, v);
          }
        },
        f.value);
  }
  return line;
}

void Event(Level level, std::string_view event, std::initializer_list<Field> fields) {
  Settings& s = GetSettings();
  if (static_cast<int>(level) < s.level.load()) return;
  Logger()->info(FormatLine(s.format, absl::Now(), level, s.component, event, fields));
}

}  // namespace ferry::log
