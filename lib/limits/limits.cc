#include "lib/limits/limits.h"

#include "absl/strings/str_cat.h"

namespace ferry::limits {

std::string OverLimit(absl::string_view item, const Limit& limit, uint64_t max, uint64_t actual) {
  std::string message = absl::StrCat(item, item.empty() ? "" : ": ", limit.what);
  if (actual > 0) absl::StrAppend(&message, " is ", actual, " ", limit.unit, ",");
  absl::StrAppend(&message, " over the limit of ", max, " ", limit.unit);
  if (!limit.flag.empty()) absl::StrAppend(&message, " (raise it with ", limit.flag, ")");
  return message;
}

}  // namespace ferry::limits
