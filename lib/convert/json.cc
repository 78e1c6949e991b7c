#include "lib/convert/json.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace ferry::convert {

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message, JsonNames names) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = names == JsonNames::kProto;
  std::string out;
  if (const auto s = google::protobuf::util::MessageToJsonString(message, &out, options); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", message.GetDescriptor()->name(),
                     " that has no JSON form: ", std::string(s.message())));
  }
  return out;
}

}  // namespace ferry::convert
