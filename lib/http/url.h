// Pieces of URLs built from values that may be hostile (continue tokens, resource versions,
// label selectors, registry scopes).
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace ferry::http {

// `value` percent-encoded for a query value or a path segment: every byte but RFC 3986's
// unreserved characters (letters, digits, '-', '.', '_', '~') becomes "%XX" (upper-case
// hex), so no value can end its parameter, add another, or leave the URL.
std::string UrlEncode(absl::string_view value);

}  // namespace ferry::http
