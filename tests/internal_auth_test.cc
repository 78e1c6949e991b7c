// The internal services authenticate their callers (mutual TLS or the shared peer token), the
// api reaches them with its client certificate, certificates are reloaded when their files
// change, and every service stops within its drain timeout when a peer is stuck. Real
// binaries on 127.0.0.1, certificates made here with the openssl CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_split.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/support/http.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

using testing::Running;
using testing::StartArgv;
using testing::TempDir;

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Certificates made with the openssl CLI in a temporary folder.
class Pki {
 public:
  // A self-signed CA: <dir>/<name>.crt and .key.
  void Ca(const std::string& name) {
    Run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name + " -keyout " +
        Path(name) + ".key -out " + Path(name) + ".crt");
  }
  // A certificate for 127.0.0.1 (server and client use) signed by `ca`.
  void Issue(const std::string& ca, const std::string& name) {
    std::ofstream(Path(name) + ".ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                          "extendedKeyUsage=serverAuth,clientAuth\n";
    Run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + Path(name) +
        ".key -out " + Path(name) + ".csr");
    Run("openssl x509 -req -days 1 -in " + Path(name) + ".csr -CA " + Path(ca) + ".crt -CAkey " +
        Path(ca) + ".key -CAcreateserial -extfile " + Path(name) + ".ext -out " + Path(name) +
        ".crt");
  }
  std::string Path(const std::string& name) const { return dir_.path + "/" + name; }
  std::string Crt(const std::string& name) const { return Path(name) + ".crt"; }
  std::string Key(const std::string& name) const { return Path(name) + ".key"; }

  // Credentials of a test client trusting `ca`, presenting `cert` when not empty.
  std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& ca,
                                                   const std::string& cert = "") const {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ReadFile(Crt(ca));
    if (!cert.empty()) {
      tls.pem_cert_chain = ReadFile(Crt(cert));
      tls.pem_private_key = ReadFile(Key(cert));
    }
    return grpc::SslCredentials(tls);
  }

 private:
  static void Run(const std::string& command) {
    int status = 0;
    std::string output = testing::RunCommand(command + " 2>&1", &status);
    ASSERT_EQ(status, 0) << command << "\n" << output;
  }
  TempDir dir_;
};

// A channel of its own (no subchannel shared with earlier channels), so each attempt makes a
// new connection and a new TLS handshake.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target,
                                          std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, credentials, args);
}

grpc::Status GitHead(std::shared_ptr<grpc::Channel> channel, const std::string& token = "") {
  auto stub = ferry::v1::GitWriter::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ferry::v1::HeadResponse head;
  return stub->Head(&ctx, {}, &head);
}

// The health-only port a binary logged (--health_address).
int HealthPort(const Running& r) {
  for (absl::string_view line : absl::StrSplit(r.process->Output(), '\n')) {
    if (absl::StrContains(line, " listening ")) {
      return testing::IntField(std::string(line), "health_port").value_or(0);
    }
  }
  return 0;
}

grpc::health::v1::HealthCheckResponse::ServingStatus PlainHealth(int port) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(10));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&ctx, {}, &response);
  FERRY_EXPECT_OK(status);
  return response.status();
}

// A git-writer on a fresh repo with `extra` flags.
void StartGitWriter(const std::vector<std::string>& extra, Running& git) {
  auto repo = testing::GitRepo::Create({{"apps/a.yaml",
                                         "apiVersion: v1\nkind: ConfigMap\n"
                                         "metadata: {name: a, namespace: x}\n"}});
  FERRY_ASSERT_OK(repo);
  std::vector<std::string> argv = {FERRY_GIT_WRITER_BIN,
                                   "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0",
                                   "--git_url=" + (*repo)->url(),
                                   "--state_dir=" + (*repo)->dir() + "/state",
                                   "--git_poll_interval=1h"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  git.repo = *std::move(repo);
  StartArgv(argv, git);
}

std::vector<std::string> MutualTlsFlags(const Pki& pki, const std::string& cert,
                                        const std::string& ca) {
  return {"--tls_cert_path=" + pki.Crt(cert), "--tls_key_path=" + pki.Key(cert),
          "--tls_client_ca_path=" + pki.Crt(ca)};
}

TEST(InternalAuthTest, MutualTlsAdmitsOnlyClientsWithACertificateFromTheClientCa) {
  Pki pki;
  pki.Ca("ca");
  pki.Ca("other-ca");
  pki.Issue("ca", "git-writer");
  pki.Issue("ca", "api");
  pki.Issue("other-ca", "stranger");
  std::vector<std::string> flags = MutualTlsFlags(pki, "git-writer", "ca");
  flags.push_back("--health_address=127.0.0.1:0");
  Running git;
  StartGitWriter(flags, git);
  ASSERT_GT(git.grpc_port, 0);

  grpc::Status plaintext =
      GitHead(NewChannel(git.GrpcTarget(), grpc::InsecureChannelCredentials()));
  EXPECT_THAT(plaintext, StatusIs(absl::StatusCode::kUnavailable));
  grpc::Status no_cert = GitHead(NewChannel(git.GrpcTarget(), pki.Client("ca")));
  EXPECT_THAT(no_cert, StatusIs(absl::StatusCode::kUnavailable));
  grpc::Status other_ca = GitHead(NewChannel(git.GrpcTarget(), pki.Client("ca", "stranger")));
  EXPECT_THAT(other_ca, StatusIs(absl::StatusCode::kUnavailable));
  grpc::Status right = GitHead(NewChannel(git.GrpcTarget(), pki.Client("ca", "api")));
  FERRY_EXPECT_OK(right) << git.process->Output();

  // Kubernetes probes: plaintext, no certificate, on the health-only port.
  int health_port = HealthPort(git);
  ASSERT_GT(health_port, 0) << git.process->Output();
  EXPECT_EQ(PlainHealth(health_port), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(InternalAuthTest, TheScannerTooRefusesCallersWithoutTheRightCertificate) {
  Pki pki;
  pki.Ca("ca");
  pki.Ca("other-ca");
  pki.Issue("ca", "scanner");
  pki.Issue("ca", "api");
  pki.Issue("other-ca", "stranger");
  TempDir dir;
  std::vector<std::string> argv = {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0",
                                   "--state_dir=" + dir.path + "/scanner"};
  for (const std::string& flag : MutualTlsFlags(pki, "scanner", "ca")) argv.push_back(flag);
  Running scanner;
  StartArgv(argv, scanner);
  ASSERT_GT(scanner.grpc_port, 0);
  auto status = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = ferry::v1::RegistryScanner::NewStub(NewChannel(scanner.GrpcTarget(), credentials));
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    ferry::v1::StatusResponse response;
    return stub->Status(&ctx, {}, &response);
  };
  EXPECT_THAT(status(pki.Client("ca")), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(status(pki.Client("ca", "stranger")), StatusIs(absl::StatusCode::kUnavailable));
  grpc::Status right = status(pki.Client("ca", "api"));
  FERRY_EXPECT_OK(right);
}

TEST(InternalAuthTest, NewConnectionsUseARotatedServerCertificate) {
  Pki pki;
  pki.Ca("ca");
  pki.Ca("new-ca");
  pki.Issue("ca", "old");
  pki.Issue("new-ca", "new");
  pki.Issue("ca", "api");
  TempDir live;  // the mounted Secret
  std::filesystem::copy_file(pki.Crt("old"), live.path + "/tls.crt");
  std::filesystem::copy_file(pki.Key("old"), live.path + "/tls.key");
  Running git;
  StartGitWriter(
      {"--tls_cert_path=" + live.path + "/tls.crt", "--tls_key_path=" + live.path + "/tls.key",
       "--tls_client_ca_path=" + pki.Crt("ca")},
      git);
  ASSERT_GT(git.grpc_port, 0);
  FERRY_ASSERT_OK(GitHead(NewChannel(git.GrpcTarget(), pki.Client("ca", "api"))));
  EXPECT_THAT(GitHead(NewChannel(git.GrpcTarget(), pki.Client("new-ca", "api"))),
              StatusIs(absl::StatusCode::kUnavailable));

  // Renewal, as the kubelet does it: new files moved into place.
  std::filesystem::copy_file(pki.Crt("new"), live.path + "/tls.crt.new");
  std::filesystem::copy_file(pki.Key("new"), live.path + "/tls.key.new");
  std::filesystem::rename(live.path + "/tls.key.new", live.path + "/tls.key");
  std::filesystem::rename(live.path + "/tls.crt.new", live.path + "/tls.crt");
  const absl::Time renewed = absl::Now();
  bool rotated = false;
  while (!rotated && absl::Now() - renewed < absl::Seconds(30)) {
    rotated = GitHead(NewChannel(git.GrpcTarget(), pki.Client("new-ca", "api"))).ok();
    if (!rotated) absl::SleepFor(absl::Milliseconds(200));  // between connection attempts
  }
  ASSERT_TRUE(rotated) << "the new certificate is not used 30 s after the files changed";
  std::printf("rotation picked up after %ld ms\n",
              static_cast<long>(absl::ToInt64Milliseconds(absl::Now() - renewed)));
  EXPECT_THAT(GitHead(NewChannel(git.GrpcTarget(), pki.Client("ca", "api"))),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST(InternalAuthTest, ThePeerTokenIsRequiredAndHealthStaysOpen) {
  TempDir dir;
  std::ofstream(dir.path + "/token") << "peer-token-0123456789abcdef\n";
  Running git;
  StartGitWriter({"--peer_token_path=" + dir.path + "/token"}, git);
  ASSERT_GT(git.grpc_port, 0);
  grpc::Status none = GitHead(git.Channel());
  EXPECT_THAT(none, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("--peer_token_path")));
  grpc::Status wrong = GitHead(git.Channel(), "peer-token-wrong-0000000000");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kUnauthenticated));
  grpc::Status right = GitHead(git.Channel(), "peer-token-0123456789abcdef");
  FERRY_EXPECT_OK(right);
  EXPECT_EQ(testing::CheckHealth(git, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_FALSE(absl::StrContains(git.process->Output(), "peer-token-0123456789abcdef"));

  // The api sends the token: its listing reads git-writer (the cluster, unreachable here,
  // only marks the answer).
  Running api;
  StartArgv({FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_writer_address=" + git.GrpcTarget(), "--cluster_syncer_address=127.0.0.1:1",
             "--peer_token_path=" + dir.path + "/token", "--no_automation"},
            api);
  ASSERT_GT(api.grpc_port, 0);
  auto stub = ferry::v1::Ferry::NewStub(api.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(In(30));
  ferry::v1::ListWorkloadsResponse response;
  grpc::Status listed = stub->ListWorkloads(&ctx, {}, &response);
  FERRY_ASSERT_OK(listed) << "\n" << api.process->Output();
  EXPECT_EQ(response.revision(), git.repo->Head());
}

TEST(InternalAuthTest, UnauthenticatedCallersBeyondLoopbackAreRefusedAtStart) {
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto process,
      testing::Subprocess::Start({FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=0.0.0.0:0",
                                  "--metrics_address=127.0.0.1:0",
                                  "--state_dir=/tmp/ferry-internal-auth-never-used"}));
  std::optional<int> code = process->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(absl::StrContains(process->Output(), "--insecure_allow_unauthenticated"))
      << process->Output();
  EXPECT_TRUE(absl::StrContains(process->Output(), "--peer_token_path")) << process->Output();
}

// The api with its client certificate in front of git-writer and cluster-syncer that require
// one, the syncer reaching git-writer with its own: ListWorkloads end to end.
TEST(InternalAuthTest, TheApiReachesItsPeersWithItsClientCertificate) {
  auto cluster = testing::SharedKubeCluster();
  FERRY_ASSERT_OK(cluster);
  Pki pki;
  pki.Ca("ca");
  pki.Issue("ca", "git-writer");
  pki.Issue("ca", "cluster-syncer");
  pki.Issue("ca", "api");
  FERRY_ASSERT_OK_AND_ASSIGN(
      auto repo,
      testing::GitRepo::Create(
          {{"apps/web.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: auth-e2e}\n"}}));
  Running git;
  std::vector<std::string> argv = {FERRY_GIT_WRITER_BIN,
                                   "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0",
                                   "--git_url=" + repo->url(),
                                   "--state_dir=" + repo->dir() + "/state",
                                   "--git_poll_interval=1h"};
  for (const std::string& flag : MutualTlsFlags(pki, "git-writer", "ca")) argv.push_back(flag);
  StartArgv(argv, git);
  ASSERT_GT(git.grpc_port, 0);
  auto peer_flags = [&](const std::string& self) {
    return std::vector<std::string>{"--peer_tls_ca_path=" + pki.Crt("ca"),
                                    "--peer_tls_cert_path=" + pki.Crt(self),
                                    "--peer_tls_key_path=" + pki.Key(self)};
  };
  Running syncer;
  argv = {FERRY_CLUSTER_SYNCER_BIN,
          "--grpc_address=127.0.0.1:0",
          "--metrics_address=127.0.0.1:0",
          "--kubeconfig=" + (*cluster)->kubeconfig(),
          "--git_writer_address=" + git.GrpcTarget(),
          "--sync_interval=1h",
          "--sync_set=internal-auth"};
  for (const std::string& flag : MutualTlsFlags(pki, "cluster-syncer", "ca")) argv.push_back(flag);
  for (const std::string& flag : peer_flags("cluster-syncer")) argv.push_back(flag);
  StartArgv(argv, syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  Running api;
  argv = {FERRY_API_BIN,
          "--grpc_address=127.0.0.1:0",
          "--metrics_address=127.0.0.1:0",
          "--git_writer_address=" + git.GrpcTarget(),
          "--cluster_syncer_address=" + syncer.GrpcTarget(),
          "--no_automation"};
  for (const std::string& flag : peer_flags("api")) argv.push_back(flag);
  StartArgv(argv, api);
  ASSERT_GT(api.grpc_port, 0);

  auto stub = ferry::v1::Ferry::NewStub(api.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(In(30));
  ferry::v1::ListWorkloadsRequest request;
  ferry::v1::ListWorkloadsResponse response;
  grpc::Status status = stub->ListWorkloads(&ctx, request, &response);
  FERRY_ASSERT_OK(status) << "\n" << api.process->Output();
  EXPECT_EQ(response.revision(), repo->Head());

  // The syncer, with its certificate, read git-writer: its first sync has the head.
  auto sync = ferry::v1::ClusterSyncer::NewStub(
      grpc::CreateChannel(syncer.GrpcTarget(), pki.Client("ca", "api")));
  grpc::ClientContext sync_ctx;
  sync_ctx.set_deadline(In(60));
  auto watch = sync->WatchSync(&sync_ctx, {});
  ferry::v1::SyncResult first;
  ASSERT_TRUE(watch->Read(&first)) << syncer.process->Output();
  EXPECT_EQ(first.revision(), repo->Head()) << first.DebugString();
  sync_ctx.TryCancel();
}

// A listener on 127.0.0.1 that accepts connections (the kernel does) and never answers.
class StuckListener {
 public:
  StuckListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~StuckListener() { close(fd_); }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A git-writer that answers Head and then never finishes ReadManifests (until cancelled).
class StuckGitWriter final : public ferry::v1::GitWriter::Service {
 public:
  grpc::Status Head(grpc::ServerContext*, const ferry::v1::HeadRequest*,
                    ferry::v1::HeadResponse* response) override {
    response->set_revision("0123456789abcdef0123456789abcdef01234567");
    return grpc::Status::OK;
  }
  grpc::Status WatchHead(grpc::ServerContext* context, const ferry::v1::WatchHeadRequest*,
                         grpc::ServerWriter<ferry::v1::HeadResponse>*) override {
    while (!context->IsCancelled() && !stopping_) absl::SleepFor(absl::Milliseconds(20));
    return grpc::Status::CANCELLED;
  }
  grpc::Status ReadManifests(grpc::ServerContext* context, const ferry::v1::ReadManifestsRequest*,
                             grpc::ServerWriter<ferry::v1::ManifestFile>*) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++reading_;
    }
    cv_.notify_all();
    while (!context->IsCancelled() && !stopping_) absl::SleepFor(absl::Milliseconds(20));
    return grpc::Status::CANCELLED;
  }
  bool WaitReading(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return reading_ > 0; });
  }
  std::atomic<bool> stopping_ = false;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int reading_ = 0;
};

// Waits up to 20 s until the binary's /metrics shows `method` started (an RPC in flight).
bool WaitStarted(const Running& r, const std::string& method) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    absl::StatusOr<testing::HttpResponse> metrics =
        testing::HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics");
    if (metrics.ok()) {
      for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
        if (absl::StartsWith(line, "ferry_grpc_server_started_total{") &&
            absl::StrContains(line, "grpc_method=\"" + method + "\"")) {
          return true;
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// SIGTERM, then the time until the process exits (and its exit code).
std::pair<absl::Duration, std::optional<int>> StopTime(Running& r) {
  const absl::Time start = absl::Now();
  r.process->Signal(SIGTERM);
  std::optional<int> code = r.process->Wait(absl::Seconds(60));
  return {absl::Now() - start, code};
}

constexpr int kDrainSeconds = 2;
// Cancelling what is left, tearing down and exiting after the drain, on a machine the test
// suite and a cluster keep busy. A service that waits out its peers' timeouts takes 30 s
// and more, far beyond it.
const absl::Duration kExitMargin = absl::Seconds(4);

TEST(InternalAuthTest, TheSyncerStopsWithinTheDrainTimeoutWhileASyncWaitsOnGitWriter) {
  StuckGitWriter stuck;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&stuck);
  std::unique_ptr<grpc::Server> fake = builder.BuildAndStart();
  ASSERT_GT(port, 0);
  StuckListener kube;
  TempDir dir;
  std::ofstream(dir.path + "/kubeconfig")
      << "apiVersion: v1\nkind: Config\ncurrent-context: stuck\n"
         "clusters: [{name: stuck, cluster: {server: 'http://" +
             kube.target() +
             "'}}]\n"
             "users: [{name: stuck, user: {token: t}}]\n"
             "contexts: [{name: stuck, context: {cluster: stuck, user: stuck, namespace: "
             "default}}]\n";
  Running syncer;
  StartArgv({FERRY_CLUSTER_SYNCER_BIN, "--grpc_address=127.0.0.1:0",
             "--metrics_address=127.0.0.1:0", "--kubeconfig=" + dir.path + "/kubeconfig",
             "--git_writer_address=127.0.0.1:" + std::to_string(port), "--sync_interval=1h",
             "--drain_timeout=" + std::to_string(kDrainSeconds) + "s"},
            syncer);
  ASSERT_GT(syncer.grpc_port, 0);
  ASSERT_TRUE(stuck.WaitReading(absl::Seconds(30))) << syncer.process->Output();
  // A SyncNow in flight too: it waits behind the stuck sync.
  std::thread sync_now([&] {
    auto stub = ferry::v1::ClusterSyncer::NewStub(syncer.Channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(60));
    ferry::v1::SyncResult result;
    (void)stub->SyncNow(&ctx, {}, &result);
  });
  EXPECT_TRUE(WaitStarted(syncer, "SyncNow"));
  auto [took, code] = StopTime(syncer);
  sync_now.join();
  stuck.stopping_ = true;
  fake->Shutdown(std::chrono::system_clock::now());
  std::printf("cluster-syncer stopped in %ld ms (drain timeout %d s)\n",
              static_cast<long>(absl::ToInt64Milliseconds(took)), kDrainSeconds);
  ASSERT_TRUE(code.has_value()) << syncer.process->Output();
  EXPECT_EQ(*code, 0) << "the stop was cut short by the watchdog\n" << syncer.process->Output();
  EXPECT_LT(took, absl::Seconds(kDrainSeconds) + kExitMargin) << syncer.process->Output();
}

TEST(InternalAuthTest, TheApiStopsWithinTheDrainTimeoutWhilePeersNeverAnswer) {
  StuckListener peer;
  Running api;
  StartArgv({FERRY_API_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--git_writer_address=" + peer.target(), "--registry_scanner_address=" + peer.target(),
             "--cluster_syncer_address=" + peer.target(),
             "--drain_timeout=" + std::to_string(kDrainSeconds) + "s"},
            api);
  ASSERT_GT(api.grpc_port, 0);
  std::thread list([&] {
    auto stub = ferry::v1::Ferry::NewStub(api.Channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(60));
    ferry::v1::ListWorkloadsResponse response;
    (void)stub->ListWorkloads(&ctx, {}, &response);
  });
  EXPECT_TRUE(WaitStarted(api, "ListWorkloads"));
  auto [took, code] = StopTime(api);
  list.join();
  std::printf("api stopped in %ld ms (drain timeout %d s)\n",
              static_cast<long>(absl::ToInt64Milliseconds(took)), kDrainSeconds);
  ASSERT_TRUE(code.has_value()) << api.process->Output();
  EXPECT_EQ(*code, 0) << "the stop was cut short by the watchdog\n" << api.process->Output();
  EXPECT_LT(took, absl::Seconds(kDrainSeconds) + kExitMargin) << api.process->Output();
}

// A registry that never answers would hold a ListTags up to --registry_timeout (30 s): at the
// drain timeout the scanner cancels its registry requests (libcurl notices within a second).
TEST(InternalAuthTest, TheScannerStopsWithinTheDrainTimeoutWhileARegistryNeverAnswers) {
  StuckListener registry;
  TempDir dir;
  Running scanner;
  StartArgv(
      {FERRY_REGISTRY_SCANNER_BIN, "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
       "--state_dir=" + dir.path + "/scanner", "--registry_insecure_hosts=" + registry.target(),
       "--drain_timeout=" + std::to_string(kDrainSeconds) + "s"},
      scanner);
  ASSERT_GT(scanner.grpc_port, 0);
  std::thread list([&] {
    auto stub = ferry::v1::RegistryScanner::NewStub(scanner.Channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(60));
    ferry::v1::ListTagsRequest request;
    request.set_repository(registry.target() + "/team/app");
    ferry::v1::ListTagsResponse response;
    (void)stub->ListTags(&ctx, request, &response);
  });
  EXPECT_TRUE(WaitStarted(scanner, "ListTags"));
  auto [took, code] = StopTime(scanner);
  list.join();
  std::printf("registry-scanner stopped in %ld ms (drain timeout %d s)\n",
              static_cast<long>(absl::ToInt64Milliseconds(took)), kDrainSeconds);
  ASSERT_TRUE(code.has_value()) << scanner.process->Output();
  EXPECT_EQ(*code, 0) << "the stop was cut short by the watchdog\n" << scanner.process->Output();
  EXPECT_LT(took, absl::Seconds(kDrainSeconds + 1) + kExitMargin) << scanner.process->Output();
}

}  // namespace
}  // namespace ferry
