// Any bytes as a manifest file: loading must never crash, hang or grow without bound, with
// the default limits and with tight ones (so that every limit is hit often). A document that
// loads is within its limits: walking it (YAML->JSON, finding containers) never goes past
// them, however its aliases expand, and its JSON dumps (it is UTF-8).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/yaml_json.h"

namespace {

void LoadAndWalk(const std::string& content, const ferry::manifest::LoadOptions& options) {
  using namespace ferry::manifest;
  LoadResult result = LoadFile("fuzz.yaml", content, options);
  for (const Resource& r : result.resources) {
    (void)FindContainers(r);
    absl::StatusOr<nlohmann::json> json = YamlToJson(r.node, options.limits);
    // Within its limits (their messages name the flag) and UTF-8: what loaded converts.
    if (!json.ok()) {
      if (absl::StrContains(json.status().message(), "--max_manifest_") ||
          absl::StrContains(json.status().message(), "UTF-8")) {
        std::abort();
      }
      continue;
    }
    // What the cluster-syncer sends: dump() throws (type_error.316) on text that is not
    // UTF-8, and an uncaught exception ends the fuzzer.
    (void)json->dump();
  }
  FinishLoad(result);
  for (const LoadError& e : result.errors) {
    if (!absl::StartsWith(e.ToString(), "fuzz.yaml")) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string content(reinterpret_cast<const char*>(data), size);
  LoadAndWalk(content, {});
  ferry::manifest::LoadOptions tight;
  tight.limits.max_depth = 1 + size % 7;
  tight.limits.max_nodes = 1 + size % 97;
  tight.limits.max_expanded_bytes = 1 + size % 509;
  LoadAndWalk(content, tight);
  return 0;
}
