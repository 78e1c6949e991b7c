// YAML <-> JSON the way Kubernetes tools read manifests: plain scalars are resolved to null,
// booleans, integers and floats with YAML 1.1 rules (as kubectl's YAML decoder does:
// `yes`/`no`/`on`/`off` are booleans, 0x1F and 0o17 are integers), quoted scalars stay
// strings, mapping keys become strings. And back: JSON as block YAML that resolves to the
// same JSON (strings that would read as something else are quoted).
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "lib/manifest/document.h"

namespace ferry::manifest {

// InvalidArgument for what JSON cannot hold (e.g. a mapping used as a key, a scalar that is
// not UTF-8: nlohmann::json::dump() would throw on it). The walk visits an alias once per
// use: InvalidArgument (naming the limit's flag) when that goes past
// `limits` (a tree from ParseDocument with the same limits never does; a cyclic tree from
// elsewhere fails on depth instead of recursing forever).
absl::StatusOr<nlohmann::json> YamlToJson(const YAML::Node& node,
                                          const DocumentLimits& limits = {});

// Block-style YAML of `value` (a document without the leading "---").
std::string JsonToYaml(const nlohmann::json& value);

}  // namespace ferry::manifest
