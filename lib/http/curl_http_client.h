// HttpClient over libcurl (OpenSSL): TLS verification on, optional CA bundle and client
// certificate, HTTP/2 when the server offers it. Only http and https URLs are fetched, and
// redirects are followed only to http and https. Connections are kept alive and reused:
// finished easy handles (with their connection cache and TLS sessions) go back to a pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/http/http_client.h"

namespace ferry::http {

struct CurlOptions {
  // PEM bundle to trust instead of the system's; empty for the system's.
  std::string ca_path;
  // The same as PEM text (e.g. a kubeconfig's certificate-authority-data); wins over ca_path.
  std::string ca_pem;
  // Client certificate and key for mutual TLS, as PEM text or as files (text wins).
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string client_cert_path;
  std::string client_key_path;
  // Skips server certificate verification. Only for an explicit user setting.
  bool insecure_skip_tls_verify = false;
  // Hosts ("host:port") allowed over plain http; others must use https.
  std::vector<std::string> insecure_hosts;
  std::string user_agent = "ferry";
  // Called with the numeric address ("127.0.0.1", "fe80::1") of every connection about to be
  // opened, after name resolution and for redirects too, so a harmless-looking name that
  // resolves to a refused address is caught. A non-OK status refuses the connection (no
  // packet is sent) and becomes Send()'s answer. Unset: every address is allowed.
  std::function<absl::Status(const std::string& ip)> connect_guard;
  // When the flag turns true (a stopping process whose drain timeout has passed), transfers
  // in progress abort within about a second and new ones are not started: Send() answers
  // Cancelled. Unset: transfers end only by finishing or by their timeout.
  std::shared_ptr<const std::atomic<bool>> cancelled;
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlOptions options = {});
  ~CurlHttpClient() override;
  absl::StatusOr<Response> Send(const Request& request) override;

 private:
  void* Acquire();           // a CURL* from the pool, or a new one
  void Release(void* curl);  // back to the pool (or cleaned up when the pool is full)

  CurlOptions options_;
  absl::Mutex pool_mu_;
  std::vector<void*> pool_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace ferry::http
