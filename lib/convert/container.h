// Proto messages shared by the services' contracts, filled from domain values.
#pragma once

#include <string>

#include "ferry/v1/types.pb.h"

namespace ferry::convert {

// A Container with its image reference parsed (image_ref left unset when the reference does
// not parse).
void FillContainer(const std::string& name, const std::string& image, bool init,
                   ferry::v1::Container* out);

}  // namespace ferry::convert
