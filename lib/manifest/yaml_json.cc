#include "lib/manifest/yaml_json.h"

#include <cmath>
#include <limits>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/limits/limits.h"
#include "lib/names/names.h"
#include "re2/re2.h"

namespace ferry::manifest {
namespace {

// YAML 1.1 resolution of a plain scalar.
nlohmann::json ResolvePlain(const std::string& s) {
  // Most scalars are names and references: text that starts with a letter no null or
  // boolean word starts with is a string without trying the patterns below.
  if (!s.empty() && absl::ascii_isalpha(static_cast<unsigned char>(s[0])) &&
      std::string_view("yYnNtTfFoO").find(s[0]) == std::string_view::npos) {
    return s;
  }
  static const RE2 kNull("~|null|Null|NULL|");
  static const RE2 kTrue("y|Y|yes|Yes|YES|true|True|TRUE|on|On|ON");
  static const RE2 kFalse("n|N|no|No|NO|false|False|FALSE|off|Off|OFF");
  static const RE2 kDecimal("[-+]?(0|[1-9][0-9_]*)");
  static const RE2 kOctal("[-+]?0o?[0-7_]+");
  static const RE2 kHex("[-+]?0x[0-9a-fA-F_]+");
  static const RE2 kBinary("[-+]?0b[01_]+");
  static const RE2 kFloat(
      "[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+");
  static const RE2 kInf("[-+]?\\.(inf|Inf|INF)");
  static const RE2 kNan("\\.(nan|NaN|NAN)");
  if (RE2::FullMatch(s, kNull)) return nullptr;
  if (RE2::FullMatch(s, kTrue)) return true;
  if (RE2::FullMatch(s, kFalse)) return false;
  auto integer = [&](int base, size_t prefix) -> std::optional<nlohmann::json> {
    std::string digits = absl::StrReplaceAll(s, {{"_", ""}});
    bool negative = false;
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
      negative = digits[0] == '-';
      digits = digits.substr(1);
    }
    digits = digits.substr(std::min(prefix, digits.size()));
    if (digits.empty()) digits = "0";
    int64_t v = 0;
    if (base == 10) {
      if (!absl::SimpleAtoi(digits, &v)) return std::nullopt;
    } else {
      errno = 0;
      char* end = nullptr;
      unsigned long long u = std::strtoull(digits.c_str(), &end, base);
      if (errno != 0 || *end != '\0' || u > static_cast<unsigned long long>(INT64_MAX)) {
        return std::nullopt;
      }
      v = static_cast<int64_t>(u);
    }
    return nlohmann::json(negative ? -v : v);
  };
  if (RE2::FullMatch(s, kDecimal)) {
    if (auto v = integer(10, 0)) return *v;
    return s;  // out of range: kept as text
  }
  if (RE2::FullMatch(s, kHex)) {
    if (auto v = integer(16, 2)) return *v;
  }
  if (RE2::FullMatch(s, kBinary)) {
    if (auto v = integer(2, 2)) return *v;
  }
  if (RE2::FullMatch(s, kOctal)) {
    const bool o_prefix = s.find("0o") != std::string::npos;
    if (auto v = integer(8, o_prefix ? 2 : 1)) return *v;
  }
  if (RE2::FullMatch(s, kFloat)) {
    double d = 0;
    if (absl::SimpleAtod(absl::StrReplaceAll(s, {{"_", ""}}), &d)) return d;
  }
  if (RE2::FullMatch(s, kInf)) {
    return s[0] == '-' ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
  }
  if (RE2::FullMatch(s, kNan)) return std::numeric_limits<double>::quiet_NaN();
  return s;
}

nlohmann::json ResolveTagged(const std::string& tag, const std::string& s) {
  if (tag == "tag:yaml.org,2002:str" || tag == "!") return s;
  if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
      tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
    return ResolvePlain(s);
  }
  return ResolvePlain(s);  // unknown tags: as if untagged
}

std::string KeyText(const YAML::Node& key) {
  // Keys are strings in JSON; a plain `1` or `true` key keeps its text.
  return key.Scalar();
}

// Nodes and scalar bytes visited so far by one YamlToJson.
struct Budget {
  const DocumentLimits& limits;
  uint64_t nodes = 0;
  uint64_t bytes = 0;
};

absl::Status Spend(Budget& budget, uint64_t bytes) {
  ++budget.nodes;
  budget.bytes += bytes;
  if (budget.nodes > budget.limits.max_nodes) {
    return absl::InvalidArgumentError(
        limits::OverLimit("", limits::kManifestNodes, budget.limits.max_nodes));
  }
  if (budget.bytes > budget.limits.max_expanded_bytes) {
    return absl::InvalidArgumentError(
        limits::OverLimit("", limits::kManifestExpandedBytes, budget.limits.max_expanded_bytes));
  }
  return absl::OkStatus();
}

// JSON holds only UTF-8 text (dump() throws on anything else).
absl::Status NotUtf8(const YAML::Node& scalar) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", scalar.Mark().line + 1, ": the value \"",
                   names::Escape(scalar.Scalar().substr(0, 120)),
                   "\" is not valid UTF-8; re-save the file as UTF-8 or remove the byte"));
}

// `depth`: collections around `node`.
absl::StatusOr<nlohmann::json> ToJson(const YAML::Node& node, uint64_t depth, Budget& budget) {
  const bool collection = node.IsSequence() || node.IsMap();
  if (collection && depth + 1 > budget.limits.max_depth) {
    return absl::InvalidArgumentError(
        limits::OverLimit("", limits::kManifestDepth, budget.limits.max_depth));
  }
  if (absl::Status spent = Spend(budget, node.IsScalar() ? node.Scalar().size() : 0); !spent.ok()) {
    return spent;
  }
  if (node.IsScalar() && !names::IsUtf8(node.Scalar())) return NotUtf8(node);
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return node.Scalar();  // quoted
      if (node.Tag() == "?" || node.Tag().empty()) return ResolvePlain(node.Scalar());
      return ResolveTagged(node.Tag(), node.Scalar());
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<nlohmann::json> v = ToJson(item, depth + 1, budget);
        if (!v.ok()) return v.status();
        out.push_back(*std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError(absl::StrCat("line ", kv.first.Mark().line + 1,
                                                         ": a mapping key must be a plain value"));
        }
        if (!names::IsUtf8(kv.first.Scalar())) return NotUtf8(kv.first);
        if (absl::Status spent = Spend(budget, kv.first.Scalar().size()); !spent.ok()) {
          return spent;
        }
        absl::StatusOr<nlohmann::json> v = ToJson(kv.second, depth + 1, budget);
        if (!v.ok()) return v.status();
        out[KeyText(kv.first)] = *std::move(v);
      }
      return out;
    }
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<nlohmann::json> YamlToJson(const YAML::Node& node, const DocumentLimits& limits) {
  Budget budget{limits};
  return ToJson(node, 0, budget);
}

namespace {

// True when `s` must be quoted to read back as this string.
bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  if (!ResolvePlain(s).is_string()) return true;
  if (absl::ascii_isspace(static_cast<unsigned char>(s.front())) ||
      absl::ascii_isspace(static_cast<unsigned char>(s.back()))) {
    return true;
  }
  // Starts like a plain scalar, one line, no ": " or " #" inside, no ':' at the end.
  static const RE2 kSafe("[A-Za-z0-9_./($][^\\n\\t]*");
  if (!RE2::FullMatch(s, kSafe)) return true;
  return s.find(": ") != std::string::npos || s.find(" #") != std::string::npos || s.back() == ':';
}

std::string Quote(const std::string& s) {
  nlohmann::json j = s;  // a JSON string is a valid double-quoted YAML scalar
  return j.dump();
}

std::string Scalar(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isnan(d)) return ".nan";
    if (std::isinf(d)) return d < 0 ? "-.inf" : ".inf";
    std::string text = v.dump();
    if (text.find_first_of(".eE") == std::string::npos) text += ".0";
    return text;
  }
  const std::string s = v.get<std::string>();
  return NeedsQuotes(s) ? Quote(s) : s;
}

// A multi-line string as a literal block ("|" or "|-") indented by `indent`, when that
// reads back exactly; nullopt otherwise.
std::optional<std::string> LiteralBlock(const nlohmann::json& v, int indent) {
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  if (s.find('\n') == std::string::npos || s.find_first_of("\r\t") != std::string::npos) {
    return std::nullopt;
  }
  if (s.front() == ' ' || s.front() == '\n') return std::nullopt;
  const bool ends_with_newline = s.back() == '\n';
  std::string body = ends_with_newline ? s.substr(0, s.size() - 1) : s;
  if (!body.empty() && body.back() == '\n') return std::nullopt;  // would need "|+"
  for (char c : body) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n') return std::nullopt;
  }
  std::string out = ends_with_newline ? "|\n" : "|-\n";
  const std::string pad(indent, ' ');
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(start, end - start);
    if (!line.empty() && line.back() == ' ') return std::nullopt;  // trailing spaces: quote
    out += line.empty() ? "\n" : pad + line + "\n";
    start = end + 1;
  }
  return out;
}

bool IsEmptyContainer(const nlohmann::json& v) {
  return (v.is_object() || v.is_array()) && v.empty();
}

void Emit(const nlohmann::json& v, int indent, std::string& out);

void EmitValueAfterKey(const nlohmann::json& v, int indent, std::string& out) {
  if (v.is_object() && !v.empty()) {
    out += "\n";
    Emit(v, indent + 2, out);
  } else if (v.is_array() && !v.empty()) {
    out += "\n";
    Emit(v, indent, out);  // sequences under a key are not indented further
  } else if (IsEmptyContainer(v)) {
    out += v.is_object() ? " {}\n" : " []\n";
  } else if (auto block = LiteralBlock(v, indent + 2)) {
    out += " " + *block;
  } else {
    out += " " + Scalar(v) + "\n";
  }
}

void Emit(const nlohmann::json& v, int indent, std::string& out) {
  const std::string pad(indent, ' ');
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      out += pad + (NeedsQuotes(key) ? Quote(key) : key) + ":";
      EmitValueAfterKey(value, indent, out);
    }
  } else if (v.is_array()) {
    for (const auto& item : v) {
      if (item.is_object() && !item.empty()) {
        std::string nested;
        Emit(item, indent + 2, nested);
        out += pad + "- " + nested.substr(indent + 2);
      } else if (item.is_array() && !item.empty()) {
        out += pad + "-\n";
        Emit(item, indent + 2, out);
      } else if (IsEmptyContainer(item)) {
        out += pad + (item.is_object() ? "- {}\n" : "- []\n");
      } else if (auto block = LiteralBlock(item, indent + 2)) {
        out += pad + "- " + *block;
      } else {
        out += pad + "- " + Scalar(item) + "\n";
      }
    }
  } else {
    out += pad + Scalar(v) + "\n";
  }
}

}  // namespace

std::string JsonToYaml(const nlohmann::json& value) {
  std::string out;
  if (IsEmptyContainer(value)) return value.is_object() ? "{}\n" : "[]\n";
  Emit(value, 0, out);
  return out;
}

}  // namespace ferry::manifest
