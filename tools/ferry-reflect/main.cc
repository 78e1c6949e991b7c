// ferry-reflect: a gRPC reflection client for Ferry's services, for when grpcurl is not at
// hand (Debian 12 does not package it). It takes grpcurl's arguments, so commands carry
// over either way:
//
//   ferry-reflect -plaintext 127.0.0.1:3030 list
//   ferry-reflect -plaintext 127.0.0.1:3030 list ferry.v1.Ferry
//   ferry-reflect -plaintext 127.0.0.1:3030 describe grpc.health.v1.Health
//   ferry-reflect -plaintext -d '{"namespace":"default"}' 127.0.0.1:3030
//   ferry.v1.Ferry/ListWorkloads ferry-reflect -plaintext -H 'authorization: Bearer TOKEN' ...
//
// Exit codes: 0 success, 1 connection or reflection failure or a response that could not be
// printed, 2 usage error, and for a call that fails, 64 + the gRPC status code (as grpcurl does).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/status/grpc_status.h"
#include "tools/ferry-reflect/reflection_database.h"

namespace ferry::reflect {
namespace {

constexpr char kUsage[] =
    "usage: ferry-reflect -plaintext [-H 'name: value']... [-d JSON] [-max-time SECONDS]\n"
    "                     HOST:PORT (list [SERVICE] | describe [SYMBOL] | SERVICE/METHOD)\n";

struct Args {
  bool plaintext = false;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string data = "{}";
  double max_time_seconds = 30;
  std::string address;
  std::vector<std::string> command;
};

int Usage(const std::string& error) {
  std::fprintf(stderr, "ferry-reflect: %s\n%s", error.c_str(), kUsage);
  return 2;
}

// Parses grpcurl-style arguments; returns an exit code on error.
std::optional<int> ParseArgs(int argc, char** argv, Args& args) {
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      (void)flag;
      return std::string(argv[++i]);
    };
    if (arg == "-plaintext" || arg == "--plaintext") {
      args.plaintext = true;
    } else if (arg == "-H" || arg == "--H" || arg == "-rpc-header") {
      std::optional<std::string> h = value("-H");
      if (!h) return Usage("-H needs a value 'name: value'");
      size_t colon = h->find(':');
      if (colon == std::string::npos) return Usage("-H '" + *h + "': expected 'name: value'");
      std::string name =
          absl::AsciiStrToLower(std::string(absl::StripAsciiWhitespace(h->substr(0, colon))));
      std::string v = std::string(absl::StripAsciiWhitespace(h->substr(colon + 1)));
      args.headers.emplace_back(name, v);
    } else if (arg == "-d" || arg == "--d") {
      std::optional<std::string> d = value("-d");
      if (!d) return Usage("-d needs a JSON value");
      args.data = *d;
    } else if (arg == "-max-time" || arg == "--max-time") {
      std::optional<std::string> t = value("-max-time");
      char* end = nullptr;
      if (!t || (args.max_time_seconds = std::strtod(t->c_str(), &end)) <= 0 || *end != '\0') {
        return Usage("-max-time needs a positive number of seconds");
      }
    } else if (arg == "-h" || arg == "-help" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage("unknown flag " + arg);
    } else {
      rest.push_back(arg);
    }
  }
  if (rest.empty()) return Usage("missing HOST:PORT");
  if (rest.size() < 2) return Usage("missing command (list, describe or SERVICE/METHOD)");
  if (!args.plaintext) {
    return Usage("only -plaintext connections are supported by this build; pass -plaintext");
  }
  args.address = rest[0];
  args.command.assign(rest.begin() + 1, rest.end());
  return std::nullopt;
}

const char* KindOf(const google::protobuf::DescriptorPool& pool, const std::string& symbol) {
  if (pool.FindServiceByName(symbol)) return "a service";
  if (pool.FindMessageTypeByName(symbol)) return "a message";
  if (pool.FindEnumTypeByName(symbol)) return "an enum";
  if (pool.FindMethodByName(symbol)) return "a method";
  if (pool.FindFieldByName(symbol)) return "a field";
  return nullptr;
}

int List(ReflectionDatabase& db, const google::protobuf::DescriptorPool& pool,
         const std::vector<std::string>& command) {
  if (command.size() == 1) {
    absl::StatusOr<std::vector<std::string>> services = db.ListServices();
    if (!services.ok()) {
      std::fprintf(stderr, "ferry-reflect: %s\n", std::string(services.status().message()).c_str());
      return 1;
    }
    for (const std::string& s : *services) std::printf("%s\n", s.c_str());
    return 0;
  }
  const google::protobuf::ServiceDescriptor* service = pool.FindServiceByName(command[1]);
  if (service == nullptr) {
    std::fprintf(stderr, "ferry-reflect: service %s not found%s%s\n", command[1].c_str(),
                 db.last_error().empty() ? "" : ": ", db.last_error().c_str());
    return 1;
  }
  for (int i = 0; i < service->method_count(); ++i) {
    std::printf("%s\n", service->method(i)->full_name().c_str());
  }
  return 0;
}

int Describe(ReflectionDatabase& db, const google::protobuf::DescriptorPool& pool,
             const std::vector<std::string>& command) {
  std::vector<std::string> symbols(command.begin() + 1, command.end());
  if (symbols.empty()) {
    absl::StatusOr<std::vector<std::string>> services = db.ListServices();
    if (!services.ok()) {
      std::fprintf(stderr, "ferry-reflect: %s\n", std::string(services.status().message()).c_str());
      return 1;
    }
    symbols = *services;
  }
  for (std::string symbol : symbols) {
    if (!symbol.empty() && symbol[0] == '.') symbol = symbol.substr(1);
    // Resolving any symbol pulls its file (and dependencies) into the pool.
    const char* kind = KindOf(pool, symbol);
    if (kind == nullptr) {
      std::fprintf(stderr, "ferry-reflect: symbol %s not found%s%s\n", symbol.c_str(),
                   db.last_error().empty() ? "" : ": ", db.last_error().c_str());
      return 1;
    }
    std::string text;
    if (auto* s = pool.FindServiceByName(symbol))
      text = s->DebugString();
    else if (auto* m = pool.FindMessageTypeByName(symbol))
      text = m->DebugString();
    else if (auto* e = pool.FindEnumTypeByName(symbol))
      text = e->DebugString();
    else if (auto* r = pool.FindMethodByName(symbol))
      text = r->DebugString();
    else if (auto* f = pool.FindFieldByName(symbol))
      text = f->DebugString();
    std::printf("%s is %s:\n%s", symbol.c_str(), kind, text.c_str());
  }
  return 0;
}

bool Next(grpc::CompletionQueue& cq) {
  void* tag = nullptr;
  bool ok = false;
  return cq.Next(&tag, &ok) && ok;
}

// The code's name as grpcurl prints it (Go's codes.Code names: "InvalidArgument",
// "Canceled"), so scripts written against grpcurl's errors keep working.
std::string GoCodeName(grpc::StatusCode code) {
  if (code == grpc::StatusCode::OK) return "OK";
  if (code == grpc::StatusCode::CANCELLED) return "Canceled";
  std::string out;
  bool upper = true;
  for (const char c : std::string(ferry::GrpcCodeName(code))) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? c : static_cast<char>(c - 'A' + 'a');
    upper = false;
  }
  return out;
}

int Call(const Args& args, const std::shared_ptr<grpc::Channel>& channel, ReflectionDatabase& db,
         const google::protobuf::DescriptorPool& pool) {
  std::string name = args.command[0];
  size_t slash = name.rfind('/');
  if (slash != std::string::npos) name[slash] = '.';
  const google::protobuf::MethodDescriptor* method = pool.FindMethodByName(name);
  if (method == nullptr) {
    std::fprintf(stderr, "ferry-reflect: method %s not found%s%s\n", args.command[0].c_str(),
                 db.last_error().empty() ? "" : ": ", db.last_error().c_str());
    return 1;
  }
  google::protobuf::DynamicMessageFactory factory(&pool);
  std::unique_ptr<google::protobuf::Message> request(
      factory.GetPrototype(method->input_type())->New());
  auto parsed = google::protobuf::util::JsonStringToMessage(args.data, request.get());
  if (!parsed.ok()) {
    std::fprintf(stderr, "ferry-reflect: -d is not a valid %s: %s\n",
                 method->input_type()->full_name().c_str(), parsed.ToString().c_str());
    return 2;
  }
  std::string bytes;
  request->SerializeToString(&bytes);

  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  for (const auto& [key, value] : args.headers) ctx.AddMetadata(key, value);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(args.max_time_seconds * 1000)));
  const std::string path = absl::StrCat("/", method->service()->full_name(), "/", method->name());
  auto call = stub.PrepareCall(&ctx, path, &cq);
  call->StartCall(nullptr);
  bool sent = Next(cq);
  if (sent) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, nullptr);
    sent = Next(cq);
  }
  if (sent) {
    call->WritesDone(nullptr);
    Next(cq);
  }
  google::protobuf::util::JsonPrintOptions json;
  json.add_whitespace = true;
  bool unprinted = false;  // a response that could not be printed
  for (;;) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, nullptr);
    if (!Next(cq)) break;
    std::vector<grpc::Slice> slices;
    (void)buffer.Dump(&slices);
    std::string data;
    for (const grpc::Slice& s : slices)
      data.append(reinterpret_cast<const char*>(s.begin()), s.size());
    std::unique_ptr<google::protobuf::Message> response(
        factory.GetPrototype(method->output_type())->New());
    response->ParseFromString(data);
    std::string out;
    if (const auto s = google::protobuf::util::MessageToJsonString(*response, &out, json);
        !s.ok()) {
      // A value the mapping has no form for (a Timestamp past 9999): said, not half printed.
      std::fprintf(stderr, "ERROR: a response has no JSON form: %s\n",
                   std::string(s.message()).c_str());
      unprinted = true;
      continue;
    }
    std::printf("%s", out.c_str());
    std::fflush(stdout);
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  Next(cq);
  // A successful call whose answer could not be shown is still a failure to a script.
  if (status.ok()) return unprinted ? 1 : 0;
  std::string code = GoCodeName(status.error_code());
  std::fprintf(stderr, "ERROR:\n  Code: %s\n  Message: %s\n", code.c_str(),
               status.error_message().c_str());
  return 64 + static_cast<int>(status.error_code());
}

int Run(int argc, char** argv) {
  Args args;
  if (std::optional<int> exit_code = ParseArgs(argc, argv, args)) return *exit_code;
  auto channel = grpc::CreateChannel(args.address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(
          std::chrono::system_clock::now() +
          std::chrono::milliseconds(static_cast<int64_t>(args.max_time_seconds * 1000)))) {
    std::fprintf(stderr, "ferry-reflect: cannot connect to %s\n", args.address.c_str());
    return 1;
  }
  ReflectionDatabase db(channel, args.headers);
  google::protobuf::DescriptorPool pool(&db);
  const std::string& verb = args.command[0];
  if (verb == "list") return List(db, pool, args.command);
  if (verb == "describe") return Describe(db, pool, args.command);
  return Call(args, channel, db, pool);
}

}  // namespace
}  // namespace ferry::reflect

int main(int argc, char** argv) { return ferry::reflect::Run(argc, argv); }
