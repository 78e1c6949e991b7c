// A blocking HTTP GET for tests (libcurl).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace ferry::testing {

struct HttpResponse {
  long status = 0;
  std::string body;
};

// GETs `url` with a 10 s timeout. Unavailable when the connection fails.
absl::StatusOr<HttpResponse> HttpGet(const std::string& url);

}  // namespace ferry::testing
