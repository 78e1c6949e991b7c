// Any bytes as a manifest file, then every edit Ferry makes: an edit either fails with an
// error or yields a file that loads and holds the change; it never crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lib/manifest/editor.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry::manifest;
  std::string content(reinterpret_cast<const char*>(data), size);
  LoadResult loaded = LoadFile("fuzz.yaml", content);
  for (const Resource& r : loaded.resources) {
    for (const Container& c : FindContainers(r)) {
      absl::StatusOr<EditResult> edit =
          SetImage(content, r.source, r.id, {c.name, "registry.example:5000/fuzz/image:1.2.3", {}});
      if (edit.ok() && !edit->changes.empty()) {
        // The edited file must still hold the resource.
        if (!FindResource("fuzz.yaml", edit->content, r.id).ok()) std::abort();
      }
    }
    absl::StatusOr<EditResult> add =
        SetAnnotations(content, r.source, r.id, {{"ferry.dev/automated", "true"}});
    if (add.ok() && !FindResource("fuzz.yaml", add->content, r.id).ok()) std::abort();
    (void)SetAnnotations(content, r.source, r.id, {{"fluxcd.io/locked", std::nullopt}});
  }
  return 0;
}
