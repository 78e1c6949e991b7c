#include "services/git-writer/known_hosts.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/policy/tag_pattern.h"

namespace ferry::git_writer {

absl::StatusOr<KnownHosts> KnownHosts::Load(const std::string& path) {
  if (path.empty()) {
    return absl::FailedPreconditionError(
        "no known_hosts file is configured (--git_known_hosts_path); refusing to trust an "
        "unknown ssh host");
  }
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read known_hosts file ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str());
}

KnownHosts KnownHosts::Parse(const std::string& content) {
  KnownHosts out;
  for (absl::string_view raw : absl::StrSplit(content, '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    Entry e;
    size_t i = 0;
    if (!fields.empty() && fields[0][0] == '@') {
      if (fields[0] == "@revoked") {
        e.revoked = true;
      } else {
        continue;  // @cert-authority: certificates are not supported
      }
      ++i;
    }
    if (fields.size() < i + 3) continue;
    const std::string& hosts = fields[i];
    if (absl::StartsWith(hosts, "|1|")) {
      std::vector<std::string> parts = absl::StrSplit(hosts.substr(3), '|');
      if (parts.size() != 2 || !absl::Base64Unescape(parts[0], &e.hashed_salt) ||
          !absl::Base64Unescape(parts[1], &e.hashed_hash)) {
        continue;
      }
    } else {
      e.patterns = absl::StrSplit(hosts, ',', absl::SkipEmpty());
    }
    if (!absl::Base64Unescape(fields[i + 2], &e.key)) continue;
    out.entries_.push_back(std::move(e));
  }
  return out;
}

bool KnownHosts::HostMatches(const Entry& e, const std::string& name) const {
  if (!e.hashed_salt.empty()) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha1(), e.hashed_salt.data(), static_cast<int>(e.hashed_salt.size()),
         reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest, &len);
    return std::string(reinterpret_cast<char*>(digest), len) == e.hashed_hash;
  }
  bool matched = false;
  for (const std::string& pattern : e.patterns) {
    if (!pattern.empty() && pattern[0] == '!') {
      if (policy::GlobMatch(absl::AsciiStrToLower(pattern.substr(1)), name)) return false;
    } else if (policy::GlobMatch(absl::AsciiStrToLower(pattern), name)) {
      matched = true;
    }
  }
  return matched;
}

KnownHosts::Match KnownHosts::Check(const std::string& host, int port,
                                    const std::string& key) const {
  std::string name = absl::AsciiStrToLower(host);
  if (port != 22) name = absl::StrCat("[", name, "]:", port);
  bool host_known = false;
  for (const Entry& e : entries_) {
    if (!HostMatches(e, name)) continue;
    if (e.revoked) {
      if (e.key == key) return Match::kChanged;
      continue;
    }
    host_known = true;
    if (e.key == key) return Match::kKnown;
  }
  return host_known ? Match::kChanged : Match::kUnknown;
}

int SshPort(const std::string& url) {
  if (!absl::StartsWith(url, "ssh://")) return 22;
  std::string rest = url.substr(6);
  std::string authority = rest.substr(0, rest.find('/'));
  size_t at = authority.rfind('@');
  if (at != std::string::npos) authority = authority.substr(at + 1);
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos || authority.back() == ']') return 22;
  int port = 22;
  return absl::SimpleAtoi(authority.substr(colon + 1), &port) ? port : 22;
}

}  // namespace ferry::git_writer
