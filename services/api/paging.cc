#include "services/api/paging.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ferry::api {
namespace {

constexpr char kStartAgain[] = "; start the list again without page_token";

// The key of this process's page tokens: a token names a revision git-writer will read and
// an id to continue after, so only tokens this api made are taken. (A restarted api refuses
// the tokens of the one before; the client starts its list again.)
const std::string& TokenKey() {
  static const std::string key = [] {
    std::string k(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), static_cast<int>(k.size())) != 1) {
      std::abort();  // no randomness: nothing safe to fall back on
    }
    return k;
  }();
  return key;
}

std::string Mac(const PagePosition& position, absl::string_view request_key) {
  const std::string text = absl::StrCat("v1\n", position.revision, "\n", position.last_id, "\n",
                                        position.source, "\n", request_key);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), TokenKey().data(), static_cast<int>(TokenKey().size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &length);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(length)));
}

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
                                {"source", position.source},
                                {"mac", Mac(position, request_key)}};
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
  auto string_field = [&parsed](const char* name) {
    return parsed.contains(name) && parsed[name].is_string();
  };
  if (!parsed.is_object() || !parsed.contains("v") || !parsed["v"].is_number_integer() ||
      parsed["v"].get<int64_t>() != 1 || !string_field("revision") || !string_field("after") ||
      !string_field("mac")) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: not a token from a previous answer", kStartAgain));
  }
  PagePosition position{parsed["revision"].get<std::string>(), parsed["after"].get<std::string>(),
                        string_field("source") ? parsed["source"].get<std::string>() : ""};
  const std::string want = Mac(position, request_key);
  const std::string mac = parsed["mac"].get<std::string>();
  if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token: not this api's token for this request (a continuation repeats the first "
        "request's namespace, container, workload and limit; an api restart ends its tokens)",
        kStartAgain));
  }
  return position;
}

}  // namespace ferry::api
