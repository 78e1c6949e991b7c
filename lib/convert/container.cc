#include "lib/convert/container.h"

#include "lib/image/reference.h"

namespace ferry::convert {

void FillContainer(const std::string& name, const std::string& image, bool init,
                   ferry::v1::Container* out) {
  out->set_name(name);
  out->set_image(image);
  out->set_init(init);
  absl::StatusOr<image::Reference> ref = image::Reference::Parse(image);
  if (!ref.ok()) return;
  ferry::v1::ImageRef* r = out->mutable_image_ref();
  r->set_original(image);
  r->set_registry(ref->Registry());
  r->set_repository(ref->Path());
  r->set_tag(ref->tag());
  r->set_digest(ref->digest());
}

}  // namespace ferry::convert
