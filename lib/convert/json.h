// Messages in the proto3 JSON mapping, with its failure as a status: the mapping has no form
// for some values a message can hold (a Timestamp before year 1 or after 9999, a Duration over
// 10,000 years), and a caller must not take the partial text it leaves for an answer.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/statusor.h"

namespace ferry::convert {

enum class JsonNames {
  kLowerCamel,  // the mapping's default ("lockedUser"), as ferryctl -o json prints
  kProto,       // the fields' names in the .proto ("locked_user"), as job notes and records keep
};

// `message` as JSON text. InvalidArgument naming protobuf's reason when the mapping cannot
// write a value of it.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message,
                                   JsonNames names = JsonNames::kLowerCamel);

}  // namespace ferry::convert
