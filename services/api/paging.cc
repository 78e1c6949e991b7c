#include "services/api/paging.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ferry::api {
namespace {

constexpr char kStartAgain[] = "; start the list again without page_token";

}  // namespace

absl::StatusOr<int32_t> PageSizeOf(int32_t page_size, const PageSizes& sizes) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size: 0 (the default, ", sizes.default_size, ") or more, at most ", sizes.max_size));
  }
  if (page_size == 0) return sizes.default_size;
  return std::min(page_size, sizes.max_size);
}

std::string EncodePageToken(const PagePosition& position, absl::string_view request_key) {
  const nlohmann::json token = {{"v", 1},
                                {"revision", position.revision},
                                {"after", position.last_id},
                                {"request", std::string(request_key)}};
  return absl::WebSafeBase64Escape(token.dump());
}

absl::StatusOr<PagePosition> DecodePageToken(absl::string_view token,
                                             absl::string_view request_key) {
  if (token.empty()) return PagePosition();
  std::string text;
  if (token.size() > kMaxPageTokenBytes || !absl::WebSafeBase64Unescape(token, &text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: not a token from a previous answer", kStartAgain));
  }
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || parsed.value("v", 0) != 1 || !parsed.contains("revision") ||
      !parsed["revision"].is_string() || !parsed.contains("after") ||
      !parsed["after"].is_string() || !parsed.contains("request") ||
      !parsed["request"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: not a token from a previous answer", kStartAgain));
  }
  if (parsed["request"].get<std::string>() != request_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token: it continues a list with other filters (namespace, container, workload "
        "or limit differ); repeat the first request's filters with it",
        kStartAgain));
  }
  return PagePosition{parsed["revision"].get<std::string>(), parsed["after"].get<std::string>()};
}

}  // namespace ferry::api
