// Reading the fields of what the Kubernetes API answers, which Ferry treats as hostile (an
// aggregated API, a proxy, a misbehaving server): a field of another type than expected reads
// as absent, and nothing throws.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ferry::kube {

// object[key]; null when `object` is not an object or has no such key.
inline const nlohmann::json& Field(const nlohmann::json& object, std::string_view key) {
  static const nlohmann::json* const kNull = new nlohmann::json();
  if (!object.is_object()) return *kNull;
  auto it = object.find(key);
  return it == object.end() ? *kNull : *it;
}

// &object[key] for changing it in place; nullptr when `object` is not an object or has no
// such key.
inline nlohmann::json* MutableField(nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The string at object[key]; "" when it is absent or not a string.
inline std::string StringField(const nlohmann::json& object, std::string_view key) {
  const nlohmann::json& value = Field(object, key);
  return value.is_string() ? value.get<std::string>() : std::string();
}

// Whether the JSON text `json` nests arrays and objects at most `max_depth` levels deep
// (brackets inside strings do not count). A cheap scan, meant for text about to be parsed;
// malformed text is left for the parser to refuse.
inline bool NestingWithin(std::string_view json, uint64_t max_depth) {
  uint64_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote among them
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// The number at object[key] as an int64: an integer as it is (an unsigned one above the int64
// range reads as the largest int64), a float truncated when it is finite and in range;
// `fallback` when absent, of another type, or a float out of range.
inline int64_t IntField(const nlohmann::json& object, std::string_view key, int64_t fallback = 0) {
  const nlohmann::json& value = Field(object, key);
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    const double d = value.get<double>();
    // -2^63 and 2^63 are exact doubles: every double in [-2^63, 2^63) converts without
    // overflow (NaN fails both comparisons).
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
      return static_cast<int64_t>(d);
    }
  }
  return fallback;
}

}  // namespace ferry::kube
