// Any bytes as an image reference: parse, normalize and retag without crashing; a reference
// that parses must parse again after retagging.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lib/image/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ferry::image::Reference> ref = ferry::image::Reference::Parse(text);
  if (!ref.ok()) return 0;
  (void)ref->Repository();
  absl::StatusOr<ferry::image::Reference> again = ferry::image::Reference::Parse(ref->WithTag("v1"));
  if (!again.ok() || !again->SameRepository(*ref)) std::abort();
  return 0;
}
