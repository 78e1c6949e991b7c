// The registry scanner against hostile input, as a real process on loopback: webhook bodies
// that are huge, endless or unauthenticated, and repository names built to make the scanner
// connect somewhere it should not (other ports, other hosts, cloud metadata endpoints).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"

namespace ferry::testing {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

using ferry::v1::RegistryScanner;

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

// A loopback listener that never answers and counts the connections made to it.
class CountingListener {
 public:
  CountingListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~CountingListener() {
    for (int fd : accepted_) close(fd);
    close(fd_);
  }
  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  // Connections made so far (the kernel completes handshakes; they wait in the backlog).
  int Connections() {
    for (int fd; accepted_.size() < 1000 && (fd = accept(fd_, nullptr, nullptr)) >= 0;) {
      accepted_.push_back(fd);
    }
    return static_cast<int>(accepted_.size());
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> accepted_;
};

// VmHWM (peak resident memory) of `pid`, in KiB.
int64_t PeakRssKiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "VmHWM:")) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib;
  }
  return -1;
}

// Sends `head` and then up to `body_bytes` bytes of `{` to 127.0.0.1:`port` (chunked when
// `chunked`), stopping as soon as the server answers; returns what the server sent, until
// it closed the connection (at most 64 KiB).
std::string HostileRequest(int port, const std::string& head, uint64_t body_bytes, bool chunked) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  std::string out = head;
  const std::string block(64 * 1024, '{');
  const std::string chunk = absl::StrCat(absl::Hex(block.size()), "\r\n", block, "\r\n");
  uint64_t sent = 0;
  bool sending = true;
  std::string answer;
  char buf[4096];
  // Bounded: every turn sends a block or reads; the server's 30 s read timeout ends it.
  for (int turn = 0; turn < 200000; ++turn) {
    if (!sending) out.clear();
    if (sending && out.empty() && sent < body_bytes) {
      out = chunked ? chunk : block;
      sent += block.size();
    }
    pollfd p{fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
    if (poll(&p, 1, 30000) <= 0) break;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<size_t>(n));
      if (answer.size() > 64 * 1024) break;
      continue;
    }
    if (p.revents & POLLOUT) {
      ssize_t n = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        // The server answered and closed while this side was still sending (the reset
        // can arrive between poll and send): its answer is already queued, so read it.
        sending = false;
        continue;
      }
      out.erase(0, static_cast<size_t>(n));
    }
  }
  close(fd);
  return answer;
}

struct Scanner {
  TempDir dir;
  Running running;
  int webhook_port = 0;
};

void StartScanner(const std::vector<std::string>& extra, Scanner& s) {
  std::vector<std::string> argv = {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0", "--state_dir=" + s.dir.path,
                                   "--registry_timeout=500ms"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  StartArgv(argv, s.running);
  if (s.running.process == nullptr) return;
  auto line = s.running.process->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "webhook_port="); },
      absl::ZeroDuration());
  if (line) s.webhook_port = IntField(*line, "webhook_port").value_or(0);
}

TEST(HostileScannerTest, WebhookNeverHoldsAHugeBody) {
  Scanner s;
  { std::ofstream(s.dir.path + "/secret") << "s3cret\n"; }
  StartScanner({"--webhook_address=127.0.0.1:0", "--webhook_secret_path=" + s.dir.path + "/secret"},
               s);
  ASSERT_GT(s.webhook_port, 0) << s.running.process->Output();
  const pid_t pid = s.running.process->pid();
  const int64_t before = PeakRssKiB(pid);
  ASSERT_GT(before, 0);
  constexpr uint64_t k100MiB = 100ull << 20;

  // 100 MB without credentials: 401 from the headers, the body is never read.
  std::string anonymous = HostileRequest(
      s.webhook_port,
      absl::StrCat("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: ",
                   k100MiB, "\r\n\r\n"),
      k100MiB, false);
  EXPECT_TRUE(absl::StartsWith(anonymous, "HTTP/1.1 401")) << anonymous.substr(0, 200);

  // A declared 4 GiB body with the right secret: 413 at once, naming the limit and flag.
  std::string declared =
      HostileRequest(s.webhook_port,
                     "POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                     "Content-Length: 4294967296\r\n\r\n",
                     k100MiB, false);
  EXPECT_TRUE(absl::StartsWith(declared, "HTTP/1.1 413")) << declared.substr(0, 200);
  EXPECT_TRUE(absl::StrContains(declared,
                                "webhook body size is 4294967296 bytes, over the limit "
                                "of 1048576 bytes (raise it with "
                                "--webhook_max_body_bytes)"))
      << declared;

  // 100 MB chunked, announced as HMAC-signed: read up to the limit only, then 413.
  std::string chunked =
      HostileRequest(s.webhook_port,
                     "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n",
                     k100MiB, true);
  EXPECT_TRUE(absl::StartsWith(chunked, "HTTP/1.1 413")) << chunked.substr(0, 200);
  EXPECT_TRUE(absl::StrContains(chunked, "--webhook_max_body_bytes")) << chunked;

  // 100 MB to another path: 404, unread.
  std::string elsewhere = HostileRequest(
      s.webhook_port,
      absl::StrCat("POST /v2/x HTTP/1.1\r\nHost: x\r\nContent-Length: ", k100MiB, "\r\n\r\n"),
      k100MiB, false);
  EXPECT_TRUE(absl::StartsWith(elsewhere, "HTTP/1.1 404")) << elsewhere.substr(0, 200);

  const int64_t after = PeakRssKiB(pid);
  // Reading any one of those bodies whole would have raised the peak by 100 MB.
  EXPECT_LT(after - before, 16 * 1024) << "VmHWM " << before << " KiB -> " << after << " KiB";
  std::cout << "webhook peak RSS: " << before << " KiB -> " << after << " KiB\n";

  // Still serving: a small authentic webhook is accepted.
  const std::string small = R"({"repository":"127.0.0.1:1/team/app","tag":"1"})";
  std::string ok = HostileRequest(
      s.webhook_port,
      absl::StrCat("POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                   "Content-Length: ",
                   small.size(), "\r\n\r\n", small),
      0, false);
  EXPECT_TRUE(absl::StartsWith(ok, "HTTP/1.1 200")) << ok;
}

// Calls one unary RPC of the scanner with a 30 s deadline; the answer is dropped.
template <typename Response, typename Request>
grpc::Status Call(RegistryScanner::Stub& stub,
                  grpc::Status (RegistryScanner::Stub::*method)(grpc::ClientContext*,
                                                                const Request&, Response*),
                  const Request& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  Response response;
  return (stub.*method)(&ctx, request, &response);
}

// Watch answers OK and names each refused repository in its response.
grpc::Status WatchOnly(RegistryScanner::Stub& stub, const std::vector<std::string>& repositories,
                       ferry::v1::WatchResponse* response) {
  ferry::v1::WatchRequest request;
  for (const std::string& r : repositories) request.add_repositories(r);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  return stub.Watch(&ctx, request, response);
}

grpc::Status ListTagsOf(RegistryScanner::Stub& stub, const std::string& repository) {
  ferry::v1::ListTagsRequest request;
  request.set_repository(repository);
  return Call(stub, &RegistryScanner::Stub::ListTags, request);
}

grpc::Status GetImageOf(RegistryScanner::Stub& stub, const std::string& reference) {
  ferry::v1::GetImageRequest request;
  request.set_reference(reference);
  return Call(stub, &RegistryScanner::Stub::GetImage, request);
}

struct Sample {
  std::string repository;
  grpc::StatusCode code;
  std::string reason;
};

std::vector<Sample> HostileSamples(const std::string& loopback) {
  return {
      {loopback + "/../../etc", grpc::StatusCode::INVALID_ARGUMENT, "path component \"..\""},
      {"user:pass@" + loopback + "/team/app", grpc::StatusCode::INVALID_ARGUMENT, "user info"},
      {loopback + "/team/app\r\nX-Injected: 1", grpc::StatusCode::INVALID_ARGUMENT, "byte 0x0d"},
      {"127.0.0.1:99999/team/app", grpc::StatusCode::INVALID_ARGUMENT, "is not 1-65535"},
      {"http://" + loopback + "/team/app", grpc::StatusCode::INVALID_ARGUMENT, "no scheme"},
      {"team/app", grpc::StatusCode::INVALID_ARGUMENT, "registry host is missing"},
      {"169.254.169.254/latest/meta-data", grpc::StatusCode::PERMISSION_DENIED,
       "--registry_allow_link_local"},
      {"metadata.google.internal/computemetadata/v1", grpc::StatusCode::PERMISSION_DENIED,
       "--registry_allow_link_local"},
  };
}

TEST(HostileScannerTest, HostileRepositoryNamesAreRefusedWithoutConnecting) {
  CountingListener listener;
  Scanner s;
  StartScanner({"--registry_insecure_hosts=" + listener.host()}, s);
  ASSERT_GT(s.running.grpc_port, 0);
  auto stub = RegistryScanner::NewStub(s.running.Channel());
  for (const Sample& sample : HostileSamples(listener.host())) {
    SCOPED_TRACE(sample.repository);
    ferry::v1::WatchResponse watched;
    grpc::Status status = WatchOnly(*stub, {sample.repository}, &watched);
    FERRY_ASSERT_OK(status);
    EXPECT_EQ(watched.added_size(), 0);
    ASSERT_EQ(watched.refused_size(), 1);
    const ferry::v1::RefusedRepository& refused = watched.refused(0);
    EXPECT_EQ(refused.repository(), sample.repository);
    EXPECT_EQ(refused.code(), static_cast<int>(sample.code)) << refused.reason();
    EXPECT_TRUE(absl::StrContains(refused.reason(), sample.reason)) << refused.reason();
    EXPECT_FALSE(absl::StrContains(refused.reason(), "pass@")) << "credentials echoed";
    EXPECT_FALSE(absl::StrContains(refused.reason(), "\n")) << refused.reason();
    status = ListTagsOf(*stub, sample.repository);
    EXPECT_THAT(status,
                StatusIs(static_cast<absl::StatusCode>(sample.code), HasSubstr(sample.reason)));
  }
  grpc::Status status = GetImageOf(*stub, "169.254.169.254/latest/meta-data:1");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(listener.Connections(), 0);

  // One bad item in a batch fails alone: the call is OK, the good one is watched (and
  // reported added), the answer names the bad one.
  ferry::v1::WatchResponse batch;
  status = WatchOnly(*stub, {listener.host() + "/team/app", listener.host() + "/../etc"}, &batch);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(batch.added_size(), 1);
  EXPECT_EQ(batch.added(0), listener.host() + "/team/app");
  ASSERT_EQ(batch.refused_size(), 1);
  EXPECT_EQ(batch.refused(0).repository(), listener.host() + "/../etc");
  EXPECT_EQ(batch.refused(0).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_TRUE(absl::StrContains(batch.refused(0).reason(), "path component"))
      << batch.refused(0).reason();
  grpc::ClientContext status_ctx;
  status_ctx.set_deadline(Deadline());
  ferry::v1::StatusResponse state;
  FERRY_ASSERT_OK(stub->Status(&status_ctx, {}, &state));
  ASSERT_EQ(state.repositories_size(), 1);
  EXPECT_EQ(state.repositories(0).repository(), listener.host() + "/team/app");
}

TEST(HostileScannerTest, AHostOffTheAllowListIsNeverContacted) {
  CountingListener listener;
  {
    // Without an allow list, listing tags of a loopback registry connects to it (the
    // listener counts connections: the check below would see one).
    Scanner open;
    StartScanner({"--registry_insecure_hosts=" + listener.host()}, open);
    ASSERT_GT(open.running.grpc_port, 0);
    auto stub = RegistryScanner::NewStub(open.running.Channel());
    EXPECT_THAT(ListTagsOf(*stub, listener.host() + "/team/app"), Not(IsOk()));
    ASSERT_GE(listener.Connections(), 1);
  }
  const int connections = listener.Connections();

  Scanner s;
  StartScanner({"--registry_insecure_hosts=" + listener.host(),
                "--registry_allow_hosts=registry.example.com,*.corp.example"},
               s);
  ASSERT_GT(s.running.grpc_port, 0);
  auto stub = RegistryScanner::NewStub(s.running.Channel());
  const std::string repository = listener.host() + "/team/app";

  ferry::v1::WatchResponse watched;
  grpc::Status status = WatchOnly(*stub, {repository}, &watched);
  FERRY_ASSERT_OK(status);
  ASSERT_EQ(watched.refused_size(), 1);
  EXPECT_EQ(watched.refused(0).code(), static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_TRUE(absl::StrContains(watched.refused(0).reason(), "--registry_allow_hosts"))
      << watched.refused(0).reason();
  status = ListTagsOf(*stub, repository);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr(listener.host())));
  status = GetImageOf(*stub, repository + ":1");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied));

  EXPECT_EQ(listener.Connections(), connections) << "the scanner connected to a host not allowed";
}

TEST(HostileScannerTest, BadAllowListIsAConfigurationError) {
  Scanner s;
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto process, Subprocess::Start({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                                       "--metrics_address=127.0.0.1:0", "--state_dir=" + s.dir.path,
                                       "--registry_allow_hosts=http://registry.example.com"}));
  std::optional<int> code = process->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_TRUE(absl::StrContains(process->Output(), "--registry_allow_hosts")) << process->Output();
}

}  // namespace
}  // namespace ferry::testing
