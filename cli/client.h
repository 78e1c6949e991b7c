// ferryctl's connection to the api (ferry.v1.Ferry): address, token, TLS and timeout, from
// flags or FERRY_* environment variables, and what every command shares: the call context,
// error reporting with exit codes, and json/yaml output of answers.
#pragma once

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/v1/api.grpc.pb.h"

namespace ferry::cli {

// How to reach the api.
struct ClientOptions {
  std::string url = "127.0.0.1:3030";  // HOST:PORT (--url, FERRY_URL)
  std::string token;                   // bearer token (--token, FERRY_TOKEN)
  bool tls = false;                    // TLS with the system's roots (--tls)
  std::string ca_file;                 // TLS with this CA bundle (--tls-ca-file)
  bool insecure_skip_tls_verify = false;
  std::string timeout = "60s";  // --timeout, FERRY_TIMEOUT
  // With an api of several sources: the one a command reads or changes (--source,
  // FERRY_SOURCE); empty for every source's lists, and for a command the api routes by the
  // workloads it names.
  std::string source;
};

// Registers --url, --token, --tls, --tls-ca-file, --insecure-skip-tls-verify, --timeout,
// --source on `app` (inherited by its subcommands).
void AddClientFlags(CLI::App& app, ClientOptions& options);

// The timeout as a duration; InvalidArgument naming the flag.
absl::StatusOr<absl::Duration> ParseTimeout(const ClientOptions& options);

// A stub for the api. The connection is made lazily on the first call.
absl::StatusOr<std::unique_ptr<ferry::v1::Ferry::StubInterface>> Connect(
    const ClientOptions& options);

// Sets the deadline (`timeout`) and the authorization header on a call.
void PrepareCall(grpc::ClientContext& ctx, const ClientOptions& options, absl::Duration timeout);

// Calls a paged list method (ListWorkloads, ListImages) until its last page and answers with
// every page's workloads in `all` (the first page's other fields, no next_page_token). All
// pages share one `timeout`. Bounded: at most kMaxPages calls.
inline constexpr int kMaxPages = 100'000;

// What a later `page` of a list adds to `all` besides its items: the sources it passed
// over, and (workloads) a git head of its source that did not verify.
void MergePage(const ferry::v1::ListWorkloadsResponse& page, ferry::v1::ListWorkloadsResponse* all);
void MergePage(const ferry::v1::ListImagesResponse& page, ferry::v1::ListImagesResponse* all);

template <typename Request, typename Response>
grpc::Status CallAllPages(ferry::v1::Ferry::StubInterface& stub,
                          grpc::Status (ferry::v1::Ferry::StubInterface::*method)(
                              grpc::ClientContext*, const Request&, Response*),
                          const ClientOptions& options, absl::Duration timeout, Request request,
                          Response* all) {
  const absl::Time deadline = absl::Now() + timeout;
  for (int page = 0; page < kMaxPages; ++page) {
    grpc::ClientContext ctx;
    PrepareCall(ctx, options, deadline - absl::Now());
    Response answer;
    grpc::Status s = (stub.*method)(&ctx, request, page == 0 ? all : &answer);
    if (!s.ok()) return s;
    const Response& got = page == 0 ? *all : answer;
    if (page > 0) {
      for (const auto& w : answer.workloads()) *all->add_workloads() = w;
      MergePage(answer, all);
    }
    if (got.next_page_token().empty()) break;
    request.set_page_token(got.next_page_token());
  }
  all->clear_next_page_token();
  return grpc::Status::OK;
}

// Prints the failure of a call ("ferryctl: <server's message>"), with a hint for timeouts
// and unreachable servers, and returns the exit code (cli/exit_codes.h).
int ReportCallError(std::ostream& err, const grpc::Status& status, const ClientOptions& options,
                    const std::string& what);

// When -o asks for "json" (proto3 JSON mapping, lowerCamel field names, two-space indent) or
// "yaml" (the same data), writes `message` that way and returns true; false for "table",
// which the command prints itself. Internal, with nothing written, when the message has no JSON
// form (a Timestamp out of the mapping's range).
absl::StatusOr<bool> PrintStructured(const std::string& output,
                                     const google::protobuf::Message& message, std::ostream& out);

// Checks -o: "table", "json" or "yaml". InvalidArgument otherwise.
absl::Status ValidateOutput(const std::string& output);

// "2 minutes ago"-free absolute time in fluxctl's format: "20 Jul 16 13:19 UTC" (RFC 822).
std::string Rfc822(const google::protobuf::Timestamp& ts);

}  // namespace ferry::cli
