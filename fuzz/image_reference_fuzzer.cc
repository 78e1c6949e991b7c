// Any bytes as an image reference or a scanner repository name: parse, normalize and retag
// without crashing. Round trips: a reference that parses prints back (ToString) to text that
// parses to the same reference, and parses again after retagging; a refused text is refused
// with InvalidArgument and a message that never carries a control character.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lib/image/reference.h"

namespace {

bool SameReference(const ferry::image::Reference& a, const ferry::image::Reference& b) {
  return a.name() == b.name() && a.domain() == b.domain() && a.path() == b.path() &&
         a.tag() == b.tag() && a.digest() == b.digest() && a.Repository() == b.Repository();
}

void CheckRefusal(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) std::abort();
  for (char c : status.message()) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ferry::image::Reference> repository =
      ferry::image::Reference::ParseRepository(text);
  if (repository.ok()) {
    // A scanner repository name is its own normalized form, with a valid host and port.
    if (repository->Repository() != text || repository->Port() < 0 || repository->Port() > 65535 ||
        repository->Host().empty()) {
      std::abort();
    }
  } else {
    CheckRefusal(repository.status());
  }
  absl::StatusOr<ferry::image::Reference> ref = ferry::image::Reference::Parse(text);
  if (!ref.ok()) {
    CheckRefusal(ref.status());
    return 0;
  }
  if (ref->ToString() != text) std::abort();
  absl::StatusOr<ferry::image::Reference> printed = ferry::image::Reference::Parse(ref->ToString());
  if (!printed.ok() || !SameReference(*printed, *ref)) std::abort();
  absl::StatusOr<ferry::image::Reference> again =
      ferry::image::Reference::Parse(ref->WithTag("v1"));
  if (!again.ok() || !again->SameRepository(*ref)) std::abort();
  return 0;
}
