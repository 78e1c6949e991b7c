#include "lib/kube/kube_client.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/kube/json_fields.h"
#include "lib/limits/limits.h"

namespace ferry::kube {
namespace {

// A request's timeout unless the caller bounds it.
constexpr absl::Duration kDefaultTimeout = KubeApi::kDefaultCallTimeout;

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

KubeClient::KubeClient(ClusterAccess access, prometheus::Registry& registry)
    : access_(std::move(access)),
      http_(access_.tls),
      requests_total_(prometheus::BuildCounter()
                          .Name("ferry_kube_requests_total")
                          .Help("Kubernetes API requests by verb and HTTP status code.")
                          .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("ferry_kube_request_duration_seconds")
                    .Help("Kubernetes API request latency by verb.")
                    .Register(registry)) {}

std::string KubeClient::Token() {
  if (access_.token_path.empty()) return access_.token;
  absl::MutexLock lock(&token_mu_);
  // Projected tokens rotate: re-read the file at most once a minute.
  if (absl::Now() - token_read_ > absl::Minutes(1) || file_token_.empty()) {
    std::ifstream in(access_.token_path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(ss.str()));
    if (!token.empty()) file_token_ = token;
    token_read_ = absl::Now();
  }
  return file_token_.empty() ? access_.token : file_token_;
}

absl::StatusOr<nlohmann::json> ParseAnswer(std::string_view text, const std::string& what,
                                           const char* kind) {
  if (!NestingWithin(text, limits::kKubeJsonDepth.default_value)) {
    // The limit is fixed: a real object that deep (the API server takes up to 10,000 levels)
    // is far more likely a mistake than a design, and the watch or list holding it fails whole.
    return absl::ResourceExhaustedError(absl::StrCat(
        limits::OverLimit(what, limits::kKubeJsonDepth, limits::kKubeJsonDepth.default_value),
        " in ", kind, "; Ferry reads no object nested that deep"));
  }
  // metadata.managedFields (server-side apply's record of who set which field) is most of the
  // bytes of a listed or watched object, and Ferry reads none of it: it is dropped as it is
  // parsed (with any other metadata's, such as a pod template's, which the API never
  // fills). keys[d] is the key of the member being read at depth d ("" inside an array).
  std::vector<std::string> keys;
  auto drop_managed_fields = [&keys](int depth, nlohmann::json::parse_event_t event,
                                     nlohmann::json& parsed) {
    const size_t d = static_cast<size_t>(depth);
    if (event == nlohmann::json::parse_event_t::key) {
      if (keys.size() <= d) keys.resize(d + 1);
      const std::string* key = parsed.get_ptr<const std::string*>();
      if (key == nullptr) return true;
      if (*key == "managedFields" && d >= 1 && keys[d - 1] == "metadata") return false;
      keys[d] = *key;
    } else if (event == nlohmann::json::parse_event_t::object_start ||
               event == nlohmann::json::parse_event_t::array_start) {
      // Its members' keys go one level down; an array's elements have none.
      if (keys.size() <= d + 1) keys.resize(d + 2);
      keys[d + 1].clear();
    }
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(text, drop_managed_fields, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat(what, ": the API sent ", kind, " that is not JSON"));
  }
  return j;
}

absl::Status ApiError(long status, const std::string& body, const std::string& what) {
  std::string reason, message;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (StringField(j, "kind") == "Status") {
    reason = StringField(j, "reason");
    message = StringField(j, "message");
  }
  if (message.empty()) message = body.size() > 300 ? body.substr(0, 300) + "..." : body;
  std::string text =
      absl::StrCat(what, ": ", message.empty() ? "HTTP " + std::to_string(status) : message);
  switch (status) {
    case 400:
    case 415:
    case 422:
      return absl::InvalidArgumentError(text);
    case 401:
      return absl::UnauthenticatedError(
          absl::StrCat(what, ": the API server rejected the credentials (HTTP 401)"));
    case 403:
      return absl::PermissionDeniedError(text);
    case 404:
      return absl::NotFoundError(text);
    case 405:
      return absl::FailedPreconditionError(text);
    case 409:
      return reason == "AlreadyExists" ? absl::AlreadyExistsError(text) : absl::AbortedError(text);
    case 410:
      return absl::AbortedError(text);
    case 429:
      return absl::ResourceExhaustedError(text);
    case 500:
      // Kubernetes < 1.22 answers 500 when an applied object does not fit its schema.
      if (absl::StrContains(message, "failed to create typed patch object")) {
        return absl::InvalidArgumentError(text);
      }
      return absl::InternalError(text);
    default:
      break;
  }
  if (status >= 500) return absl::UnavailableError(text);
  return absl::UnknownError(absl::StrCat(text, " (HTTP ", status, ")"));
}

http::Request KubeClient::NewRequest(const std::string& method, const std::string& path,
                                     const std::string& accept, absl::Duration timeout) {
  http::Request request;
  request.method = method;
  request.url = access_.server + path;
  request.timeout = timeout;
  request.headers.emplace_back("Accept", accept);
  if (std::string token = Token(); !token.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + token);
  } else if (!access_.username.empty()) {
    request.headers.emplace_back(
        "Authorization",
        "Basic " + absl::Base64Escape(absl::StrCat(access_.username, ":", access_.password)));
  }
  return request;
}

absl::StatusOr<nlohmann::json> KubeClient::Call(const std::string& verb, const std::string& method,
                                                const std::string& path, const std::string& body,
                                                const std::string& content_type,
                                                const std::string& accept, absl::Duration timeout) {
  http::Request request = NewRequest(method, path, accept, timeout);
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", content_type);
  request.body = body;
  ++requests_;
  if (method != "GET") ++writes_;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<http::Response> response = http_.Send(request);
  duration_.Add({{"verb", verb}}, LatencyBuckets())
      .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!response.ok()) {
    requests_total_.Add({{"verb", verb}, {"code", "error"}}).Increment();
    return absl::Status(response.status().code(), absl::StrCat("Kubernetes API ", access_.server,
                                                               ": ", response.status().message()));
  }
  requests_total_.Add({{"verb", verb}, {"code", std::to_string(response->status)}}).Increment();
  if (response->status < 200 || response->status >= 300) {
    return ApiError(response->status, response->body, absl::StrCat(method, " ", path));
  }
  if (response->body.empty()) return nlohmann::json::object();
  return ParseAnswer(response->body, absl::StrCat(method, " ", path), "an answer");
}

namespace {

// `value` as JSON text; InvalidArgument (never an exception) when it holds a string that is
// not UTF-8, on which nlohmann::json::dump() throws.
absl::StatusOr<std::string> DumpJson(const nlohmann::json& value) {
  try {
    return value.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the object cannot be serialised as JSON (",
                                                   e.what(), "); the manifest must be UTF-8 text"));
  }
}

}  // namespace

absl::StatusOr<nlohmann::json> KubeClient::Get(const std::string& path, const std::string& verb) {
  return Call(verb, "GET", path, "", "");
}

absl::StatusOr<nlohmann::json> KubeClient::ListMetadata(const std::string& path) {
  return ListMetadataWithin(path, kDefaultTimeout);
}

absl::StatusOr<nlohmann::json> KubeClient::ListMetadataWithin(const std::string& path,
                                                              absl::Duration timeout) {
  // Servers that cannot answer with metadata only fall back to the plain list.
  return Call("list", "GET", path, "", "",
              "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json",
              timeout);
}

absl::StatusOr<nlohmann::json> KubeClient::Apply(const std::string& path,
                                                 const nlohmann::json& object,
                                                 const std::string& manager, bool force,
                                                 bool dry_run) {
  return ApplyWithin(path, object, manager, force, dry_run, kDefaultTimeout);
}

absl::StatusOr<nlohmann::json> KubeClient::ApplyWithin(const std::string& path,
                                                       const nlohmann::json& object,
                                                       const std::string& manager, bool force,
                                                       bool dry_run, absl::Duration timeout) {
  std::string query = absl::StrCat("?fieldManager=", manager, force ? "&force=true" : "",
                                   dry_run ? "&dryRun=All" : "");
  // JSON is YAML: the apply content type takes it as is.
  absl::StatusOr<std::string> body = DumpJson(object);
  if (!body.ok()) return body.status();
  return Call("apply", "PATCH", path + query, *body, "application/apply-patch+yaml",
              "application/json", timeout);
}

absl::StatusOr<nlohmann::json> KubeClient::MergePatch(const std::string& path,
                                                      const nlohmann::json& patch) {
  absl::StatusOr<std::string> body = DumpJson(patch);
  if (!body.ok()) return body.status();
  return Call("patch", "PATCH", path, *body, "application/merge-patch+json");
}

absl::Status KubeClient::Delete(const std::string& path, bool dry_run) {
  return DeleteWithin(path, dry_run, kDefaultTimeout);
}

absl::Status KubeClient::DeleteWithin(const std::string& path, bool dry_run,
                                      absl::Duration timeout) {
  nlohmann::json options = {
      {"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"propagationPolicy", "Background"}};
  if (dry_run) options["dryRun"] = {"All"};
  return Call("delete", "DELETE", path, options.dump(), "application/json", "application/json",
              timeout)
      .status();
}

absl::StatusOr<nlohmann::json> KubeClient::GetWithin(const std::string& path,
                                                     const std::string& verb,
                                                     absl::Duration timeout) {
  return Call(verb, "GET", path, "", "", "application/json", timeout);
}

absl::StatusOr<nlohmann::json> KubeClient::Create(const std::string& path,
                                                  const nlohmann::json& object,
                                                  const std::string& verb, absl::Duration timeout) {
  absl::StatusOr<std::string> body = DumpJson(object);
  if (!body.ok()) return body.status();
  return Call(verb, "POST", path, *body, "application/json", "application/json", timeout);
}

absl::StatusOr<nlohmann::json> KubeClient::Replace(const std::string& path,
                                                   const nlohmann::json& object,
                                                   const std::string& verb,
                                                   absl::Duration timeout) {
  absl::StatusOr<std::string> body = DumpJson(object);
  if (!body.ok()) return body.status();
  return Call(verb, "PUT", path, *body, "application/json", "application/json", timeout);
}

absl::Status KubeClient::Watch(const std::string& path, absl::Duration timeout,
                               const std::atomic<bool>& stop,
                               const std::function<bool(const nlohmann::json&)>& on_event) {
  http::Request request = NewRequest("GET", path, "application/json", timeout);
  request.cancelled = &stop;
  request.idle_timeout = kWatchIdleTimeout;
  const std::string what = "GET " + path;
  std::string line;  // the event being received: one JSON document per line
  absl::Status failed;
  request.on_body = [&](const char* data, size_t size) {
    for (const char* end = data + size; data < end;) {
      const char* newline = static_cast<const char*>(memchr(data, '\n', end - data));
      line.append(data, (newline == nullptr ? end : newline) - data);
      if (line.size() > kMaxWatchEventBytes) {
        failed = absl::ResourceExhaustedError(
            absl::StrCat(what, ": a watch event over ", kMaxWatchEventBytes, " bytes"));
        return false;
      }
      if (newline == nullptr) break;
      data = newline + 1;
      if (line.empty()) continue;
      absl::StatusOr<nlohmann::json> event = ParseAnswer(line, what, "a watch event");
      line.clear();
      if (event.ok() && !event->is_object()) {
        event = absl::InternalError(
            absl::StrCat(what, ": the API sent a watch event that is not a JSON object"));
      }
      if (!event.ok()) {
        failed = event.status();
        return false;
      }
      try {
        if (!on_event(*event)) return false;
      } catch (const nlohmann::json::exception& e) {  // never through libcurl's frames
        failed = absl::InternalError(
            absl::StrCat(what, ": a watch event could not be read: ", e.what()));
        return false;
      }
    }
    return true;
  };
  ++requests_;
  absl::StatusOr<http::Response> response = http_.Send(request);
  if (!failed.ok()) {
    requests_total_.Add({{"verb", "watch"}, {"code", "error"}}).Increment();
    return failed;
  }
  if (!response.ok()) {
    requests_total_.Add({{"verb", "watch"}, {"code", "error"}}).Increment();
    if (response.status().code() == absl::StatusCode::kCancelled) return response.status();
    return absl::Status(response.status().code(), absl::StrCat("Kubernetes API ", access_.server,
                                                               ": ", response.status().message()));
  }
  requests_total_.Add({{"verb", "watch"}, {"code", std::to_string(response->status)}}).Increment();
  if (response->status < 200 || response->status >= 300) {
    return ApiError(response->status, response->body, absl::StrCat("GET ", path));
  }
  return absl::OkStatus();
}

}  // namespace ferry::kube
