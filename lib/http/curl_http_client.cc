#include "lib/http/curl_http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace ferry::http {
namespace {

// Where the body goes: kept in `body`, or given to `on_body` when the answer is a 2xx.
struct BodySink {
  CURL* curl;
  std::string* body;
  const std::function<bool(const char*, size_t)>* on_body;
  bool stopped = false;  // on_body asked to end the transfer
};

size_t WriteBody(char* data, size_t size, size_t count, void* out) {
  auto* sink = static_cast<BodySink*>(out);
  const size_t n = size * count;
  if (sink->on_body != nullptr && *sink->on_body) {
    long status = 0;
    curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      if ((*sink->on_body)(data, n)) return n;
      sink->stopped = true;
      return 0;  // ends the transfer with CURLE_WRITE_ERROR
    }
  }
  sink->body->append(data, n);
  return n;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* out) {
  auto* headers = static_cast<std::multimap<std::string, std::string>*>(out);
  absl::string_view line(data, size * count);
  if (absl::StartsWith(line, "HTTP/")) {
    headers->clear();  // a new response (after a redirect or 100-continue)
    return size * count;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    headers->emplace(
        absl::AsciiStrToLower(std::string(absl::StripAsciiWhitespace(line.substr(0, colon)))),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return size * count;
}

// What the open-socket callback needs: the guard, and the first refusal it gave.
struct GuardContext {
  const std::function<absl::Status(const std::string&)>* guard;
  absl::Status refused;
};

curl_socket_t OpenGuardedSocket(void* clientp, curlsocktype purpose, curl_sockaddr* address) {
  auto* context = static_cast<GuardContext*>(clientp);
  char ip[INET6_ADDRSTRLEN] = "";
  if (address->family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&address->addr)->sin_addr, ip,
              sizeof(ip));
  } else if (address->family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&address->addr)->sin6_addr, ip,
              sizeof(ip));
  }
  absl::Status allowed = purpose == CURLSOCKTYPE_IPCXN && ip[0] != '\0'
                             ? (*context->guard)(ip)
                             : absl::PermissionDeniedError("not an IP connection");
  if (!allowed.ok()) {
    if (context->refused.ok()) context->refused = allowed;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string HostOfUrl(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  // The authority ends at the path, the query or the fragment (RFC 3986 3.2).
  size_t end = url.find_first_of("/?#", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string Response::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

CurlHttpClient::CurlHttpClient(CurlOptions options) : options_(std::move(options)) { GlobalInit(); }

CurlHttpClient::~CurlHttpClient() {
  for (void* curl : pool_) curl_easy_cleanup(static_cast<CURL*>(curl));
}

void* CurlHttpClient::Acquire() {
  {
    absl::MutexLock lock(&pool_mu_);
    if (!pool_.empty()) {
      void* curl = pool_.back();
      pool_.pop_back();
      curl_easy_reset(static_cast<CURL*>(curl));  // keeps live connections and TLS sessions
      return curl;
    }
  }
  return curl_easy_init();
}

void CurlHttpClient::Release(void* curl) {
  constexpr size_t kMaxIdle = 16;
  {
    absl::MutexLock lock(&pool_mu_);
    if (pool_.size() < kMaxIdle) {
      pool_.push_back(curl);
      return;
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(curl));
}

namespace {

// The flags that end a transfer: the client's (the process stops) and the request's.
struct CancelFlags {
  const std::atomic<bool>* client;
  const std::atomic<bool>* request;
};

// libcurl calls this about once a second even while a transfer stalls; non-zero aborts it.
int AbortWhenCancelled(void* flags, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* f = static_cast<const CancelFlags*>(flags);
  return (f->client != nullptr && f->client->load()) ||
                 (f->request != nullptr && f->request->load())
             ? 1
             : 0;
}

// TCP keepalive: the silence before the first probe, and between probes (the kernel gives up
// after its tcp_keepalive_probes, 9 by default: about two minutes in all).
constexpr long kKeepAliveIdleSeconds = 30;
constexpr long kKeepAliveIntervalSeconds = 10;

// Request::idle_timeout in whole seconds (rounded up); 0 when there is none.
int64_t IdleSeconds(const Request& request) {
  if (request.idle_timeout == absl::InfiniteDuration()) return 0;
  return std::max<int64_t>(
      1, absl::ToInt64Seconds(absl::Ceil(request.idle_timeout, absl::Seconds(1))));
}

absl::Status CancelledStatus(const Request& request) {
  return absl::CancelledError(
      absl::StrCat(request.method, " ", HostOfUrl(request.url),
                   ": cancelled (the process is stopping, or the caller stopped the call)"));
}

}  // namespace

absl::StatusOr<Response> CurlHttpClient::Send(const Request& request) {
  if ((options_.cancelled != nullptr && options_.cancelled->load()) ||
      (request.cancelled != nullptr && request.cancelled->load())) {
    return CancelledStatus(request);
  }
  if (absl::StartsWithIgnoreCase(request.url, "http://")) {
    const std::string host = HostOfUrl(request.url);
    if (std::find(options_.insecure_hosts.begin(), options_.insecure_hosts.end(), host) ==
        options_.insecure_hosts.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "plain http to ", host, " is not allowed; use https or mark the host insecure"));
    }
  }
  CURL* curl = static_cast<CURL*>(Acquire());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Response response;
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, absl::StrCat(name, ": ", value).c_str());
  }
  char error_detail[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_detail);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  BodySink sink{curl, &response.body, &request.on_body};
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  // Rounded up, and at least 1 ms: 0 is "no timeout" to curl.
  curl_easy_setopt(
      curl, CURLOPT_TIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(
          1, absl::ToInt64Milliseconds(absl::Ceil(request.timeout, absl::Milliseconds(1))))));
  const int64_t idle_seconds = IdleSeconds(request);
  if (idle_seconds > 0) {
    // Below 1 byte/s for that long, as curl measures it (over its last few seconds, sampled
    // each second): nothing, or next to nothing, arrived for that long. It runs once the
    // request is sent (not while connecting), also before the answer's first line.
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(idle_seconds));
  }
  // A peer that vanished without closing the connection (a host gone, a partition) is found
  // by TCP keepalive probes after a minute or two of silence, not at the request's timeout.
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, kKeepAliveIdleSeconds);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, kKeepAliveIntervalSeconds);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  // A URL from a server (a token realm, a Link header, a redirect) must not reach file://,
  // gopher:// or any other protocol curl speaks.
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  GuardContext guard{&options_.connect_guard, absl::OkStatus()};
  if (options_.connect_guard) {
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, OpenGuardedSocket);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &guard);
  }
  if (!options_.ca_pem.empty()) {
    curl_blob blob{const_cast<char*>(options_.ca_pem.data()), options_.ca_pem.size(),
                   CURL_BLOB_NOCOPY};
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
  } else if (!options_.ca_path.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_path.c_str());
  }
  if (!options_.client_cert_pem.empty()) {
    curl_blob blob{const_cast<char*>(options_.client_cert_pem.data()),
                   options_.client_cert_pem.size(), CURL_BLOB_NOCOPY};
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &blob);
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
  } else if (!options_.client_cert_path.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, options_.client_cert_path.c_str());
  }
  if (!options_.client_key_pem.empty()) {
    curl_blob blob{const_cast<char*>(options_.client_key_pem.data()),
                   options_.client_key_pem.size(), CURL_BLOB_NOCOPY};
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &blob);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
  } else if (!options_.client_key_path.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLKEY, options_.client_key_path.c_str());
  }
  if (options_.insecure_skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }
  CancelFlags cancel{options_.cancelled.get(), request.cancelled};
  if (cancel.client != nullptr || cancel.request != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, AbortWhenCancelled);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &cancel);
  }
  const absl::Time began = absl::Now();
  CURLcode code = curl_easy_perform(curl);
  long answered = 0;  // the status received, also when the transfer failed after it; 0: none
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answered);
  if (code == CURLE_OK) response.status = answered;
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, nullptr);  // `guard` dies with this call
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, nullptr);       // as do `sink` and `cancel`
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, nullptr);
  curl_slist_free_all(headers);
  if (code == CURLE_OK) {
    Release(curl);
  } else {
    curl_easy_cleanup(curl);  // a failed transfer's connection is not worth keeping
  }
  if (code != CURLE_OK && !guard.refused.ok()) return guard.refused;
  if (code == CURLE_ABORTED_BY_CALLBACK) return CancelledStatus(request);
  if (code == CURLE_WRITE_ERROR && sink.stopped) {
    return absl::CancelledError(
        absl::StrCat(request.method, " ", HostOfUrl(request.url), ": ended by the reader"));
  }
  if (code == CURLE_OPERATION_TIMEDOUT && idle_seconds > 0 &&
      absl::Now() - began < request.timeout) {
    // A peer that never answered is unavailable; one whose answer stopped flowing, idle.
    if (answered == 0) {
      return absl::UnavailableError(absl::StrCat(request.method, " ", HostOfUrl(request.url),
                                                 ": no answer in ", idle_seconds, " s"));
    }
    return absl::DeadlineExceededError(absl::StrCat(request.method, " ", HostOfUrl(request.url),
                                                    ": nothing received for ", idle_seconds, " s"));
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return absl::DeadlineExceededError(
        absl::StrCat(request.method, " ", HostOfUrl(request.url), ": timed out"));
  }
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(request.method, " ", HostOfUrl(request.url), ": ",
                     error_detail[0] != '\0' ? error_detail : curl_easy_strerror(code)));
  }
  return response;
}

}  // namespace ferry::http
