// Any bytes as a manifest file: loading must never crash, hang or grow without bound.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string content(reinterpret_cast<const char*>(data), size);
  ferry::manifest::LoadResult result = ferry::manifest::LoadFile("fuzz.yaml", content);
  for (const ferry::manifest::Resource& r : result.resources) {
    (void)ferry::manifest::FindContainers(r);
  }
  ferry::manifest::FinishLoad(result);
  return 0;
}
