#include "lib/runtime/address.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ferry::runtime {
namespace {

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid address '", text, "': ", why,
                                                 " (expected HOST:PORT, e.g. 127.0.0.1:3030)"));
}

bool ValidHostName(absl::string_view host) {
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string ListenAddress::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  ListenAddress out;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return Invalid(text, "missing ']' after IPv6 host");
    out.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return Invalid(text, "missing ':PORT' after IPv6 host");
    }
    port_text = text.substr(close + 2);
    if (out.host.empty() ||
        out.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      return Invalid(text, "not an IPv6 address inside the brackets");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return Invalid(text, "no port");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return Invalid(text, "IPv6 hosts need brackets, as in [::1]:3030");
    }
    if (out.host.empty()) return Invalid(text, "no host; use 0.0.0.0 for every interface");
    if (!ValidHostName(out.host)) return Invalid(text, "host has characters not allowed");
  }
  uint32_t port = 0;
  if (port_text.empty() || port_text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return Invalid(text, "port must be a number from 0 to 65535");
  }
  out.port = static_cast<int>(port);
  return out;
}

}  // namespace ferry::runtime
