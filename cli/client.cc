#include "cli/client.h"

#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/exit_codes.h"
#include "lib/convert/json.h"
#include "lib/limits/limits.h"
#include "lib/manifest/yaml_json.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/grpc_status.h"
#include "nlohmann/json.hpp"

namespace ferry::cli {

void AddClientFlags(CLI::App& app, ClientOptions& options) {
  app.add_option("--url", options.url, "The api's HOST:PORT")
      ->envname("FERRY_URL")
      ->capture_default_str();
  app.add_option("--token", options.token, "Bearer token (read or write role)")
      ->envname("FERRY_TOKEN");
  app.add_flag("--tls", options.tls, "Use TLS, trusting the system's CAs")->envname("FERRY_TLS");
  app.add_option("--tls-ca-file", options.ca_file, "Use TLS, trusting this CA bundle (PEM)")
      ->envname("FERRY_TLS_CA_FILE");
  app.add_flag("--insecure-skip-tls-verify", options.insecure_skip_tls_verify,
               "Use TLS without checking the server's certificate (testing only)");
  app.add_option("--timeout", options.timeout, "How long to wait for the api, e.g. 60s, 5m")
      ->envname("FERRY_TIMEOUT")
      ->capture_default_str();
  app.add_option("--source", options.source,
                 "With an api of several repos and clusters: which one (see list-workloads' "
                 "SOURCE column)")
      ->envname("FERRY_SOURCE");
}

void MergePage(const ferry::v1::ListWorkloadsResponse& page,
               ferry::v1::ListWorkloadsResponse* all) {
  for (const std::string& s : page.unavailable_sources()) all->add_unavailable_sources(s);
  if (!page.git_verify_error().empty() &&
      !absl::StrContains(all->git_verify_error(), page.git_verify_error())) {
    all->set_git_verify_error(
        all->git_verify_error().empty()
            ? page.git_verify_error()
            : absl::StrCat(all->git_verify_error(), "; ", page.git_verify_error()));
  }
}

void MergePage(const ferry::v1::ListImagesResponse& page, ferry::v1::ListImagesResponse* all) {
  for (const std::string& s : page.unavailable_sources()) all->add_unavailable_sources(s);
}

absl::StatusOr<absl::Duration> ParseTimeout(const ClientOptions& options) {
  absl::Duration d;
  if (!absl::ParseDuration(options.timeout, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--timeout: '", options.timeout,
                                                   "' is not a positive duration (e.g. 60s, 5m)"));
  }
  return d;
}

absl::StatusOr<std::unique_ptr<ferry::v1::Ferry::StubInterface>> Connect(
    const ClientOptions& options) {
  if (options.url.empty() || options.url.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--url: '", options.url, "' is not HOST:PORT (e.g. 127.0.0.1:3030); or set FERRY_URL"));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.insecure_skip_tls_verify) {
    grpc::experimental::TlsChannelCredentialsOptions tls;
    tls.set_verify_server_certs(false);
    tls.set_check_call_host(false);
    tls.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    credentials = grpc::experimental::TlsCredentials(tls);
  } else if (!options.ca_file.empty()) {
    std::ifstream in(options.ca_file);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-ca-file: cannot read ", options.ca_file));
    }
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(ssl);
  } else if (options.tls) {
    credentials = grpc::SslCredentials(grpc::SslCredentialsOptions());
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  // As much as the api may send (its --grpc_max_message_bytes default): a large repo's
  // ListWorkloads is not cut at gRPC's 4 MiB default.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(limits::kGrpcMessageBytes.default_value));
  return ferry::v1::Ferry::NewStub(grpc::CreateCustomChannel(options.url, credentials, args));
}

void PrepareCall(grpc::ClientContext& ctx, const ClientOptions& options, absl::Duration timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout));
  if (!options.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options.token);
}

int ReportCallError(std::ostream& err, const grpc::Status& status, const ClientOptions& options,
                    const std::string& what) {
  err << "ferryctl: " << status.error_message() << "\n";
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      err << "ferryctl: no answer within --timeout " << options.timeout << " while " << what
          << "; the operation may still complete on the server: check with `ferryctl jobs` or "
             "`ferryctl list-workloads`, or wait longer with --timeout\n";
      break;
    case grpc::StatusCode::UNAVAILABLE:
      err << "ferryctl: cannot reach the api at " << options.url
          << " (--url / FERRY_URL); is it running, and is TLS (--tls) right?\n";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      err << "ferryctl: give a token with --token or FERRY_TOKEN\n";
      break;
    default:
      break;
  }
  return ExitCodeFor(FromGrpcStatus(status));
}

namespace {

// The proto3 JSON mapping of `message`. It fails for values the mapping has no form for, such as
// a Timestamp beyond year 9999 in a server's answer.
absl::StatusOr<nlohmann::json> ToJson(const google::protobuf::Message& message) {
  absl::StatusOr<std::string> text = convert::ToJson(message);
  nlohmann::json json = text.ok()
                            ? nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false)
                            : nlohmann::json(nlohmann::json::value_t::discarded);
  if (json.is_discarded()) {
    return absl::InternalError(absl::StrCat(
        "cannot print the server's answer: ",
        text.ok() ? "its JSON form does not parse" : text.status().message(), "; use -o table"));
  }
  return json;
}

}  // namespace

absl::StatusOr<bool> PrintStructured(const std::string& output,
                                     const google::protobuf::Message& message, std::ostream& out) {
  if (output != "json" && output != "yaml") return false;
  absl::StatusOr<nlohmann::json> json = ToJson(message);
  if (!json.ok()) return json.status();
  if (output == "json") {
    out << json->dump(2) << "\n";
  } else {
    out << manifest::JsonToYaml(*json);
  }
  return true;
}

absl::Status ValidateOutput(const std::string& output) {
  if (output == "table" || output == "json" || output == "yaml") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("-o: '", output, "' is not an output format; use table, json or yaml"));
}

std::string Rfc822(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "";
  return absl::FormatTime("%d %b %y %H:%M UTC", runtime::FromProtoTimestamp(ts),
                          absl::UTCTimeZone());
}

}  // namespace ferry::cli
