#include "cli/workload_id.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ferry::cli {

absl::StatusOr<std::string> ParseWorkloadId(absl::string_view text,
                                            absl::string_view default_namespace) {
  auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "workload \"", text, "\" is not an id; use namespace:kind/name, e.g. "
        "default:deployment/helloworld"));
  };
  absl::string_view ns = default_namespace;
  absl::string_view rest = text;
  size_t colon = text.find(':');
  if (colon != absl::string_view::npos) {
    ns = text.substr(0, colon);
    rest = text.substr(colon + 1);
  }
  size_t slash = rest.find('/');
  if (ns.empty() || slash == absl::string_view::npos || slash == 0 || slash + 1 == rest.size() ||
      rest.find('/', slash + 1) != absl::string_view::npos) {
    return invalid();
  }
  for (char c : text) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) return invalid();
  }
  return absl::StrCat(ns, ":", absl::AsciiStrToLower(std::string(rest.substr(0, slash))), "/",
                      rest.substr(slash + 1));
}

}  // namespace ferry::cli
