// Reading the fields of what the Kubernetes API answers, which Ferry treats as hostile (an
// aggregated API, a proxy, a misbehaving server): a field of another type than expected reads
// as absent, and nothing throws.
#pragma once

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

// The string at object[key]; "" when it is absent or not a string.
inline std::string StringField(const nlohmann::json& object, std::string_view key) {
  const nlohmann::json& value = Field(object, key);
  return value.is_string() ? value.get<std::string>() : std::string();
}

}  // namespace ferry::kube
