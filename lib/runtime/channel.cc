#include "lib/runtime/channel.h"

#include <grpc/grpc.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/client_interceptor.h>

#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/limits/limits.h"
#include "lib/runtime/server.h"

namespace ferry::runtime {
namespace {

using grpc::experimental::InterceptionHookPoints;

// How often the certificate files of a channel are checked for changes.
constexpr unsigned kCertificateRefreshSeconds = 5;

// The calls in progress on ChannelTo's channels, for CancelPeerCalls(): the core calls
// themselves, each with a reference of its own, not their ClientContexts.
//
// Why not the contexts: ~ClientContext releases its call before its interceptors (the only
// code that could take the context out of the set) are destroyed, and TryCancel on a
// context in that window touches a call already freed. Nothing in the context's lifetime
// can close that window from an interceptor. A reference on the grpc_call keeps the call
// alive for as long as it is in the set, so grpc_call_cancel on it is always safe (after
// the call ended it does nothing); the entry and its reference go together, under the
// mutex CancelPeerCalls holds, when the status arrives (POST_RECV_STATUS, the last hook of
// a call finished the usual way) or, for a stream dropped without Finish, when the
// interceptor is destroyed.
struct PeerCalls {
  absl::Mutex mu;
  std::set<grpc_call*> in_progress ABSL_GUARDED_BY(mu);
};

PeerCalls& Calls() {
  static PeerCalls* calls = new PeerCalls();
  return *calls;
}

// Adds the peer token to every call, names the message size limit in the status of a call
// whose message was over it, and keeps the call in Calls() while it is in progress.
class PeerCallInterceptor final : public grpc::experimental::Interceptor {
 public:
  PeerCallInterceptor(grpc::ClientContext* context, const std::string* token, int max_message_bytes)
      : context_(context), token_(token), max_message_bytes_(max_message_bytes) {}
  ~PeerCallInterceptor() override { Done(); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (!token_->empty()) {
        methods->GetSendInitialMetadata()->emplace("authorization",
                                                   absl::StrCat("Bearer ", *token_));
      }
      // The call exists by now: the channel creates it (set_call) before any hook runs.
      grpc_call* call = context_->c_call();
      if (call != nullptr) {
        PeerCalls& calls = Calls();
        absl::MutexLock lock(&calls.mu);
        if (call_ == nullptr && calls.in_progress.insert(call).second) {
          grpc_call_ref(call);
          call_ = call;
        }
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      Done();
      grpc::Status* status = methods->GetRecvStatus();
      // gRPC's own wording: "Received message larger than max (N vs. M)" (also "Sent ...").
      if (status->error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
          absl::StrContains(status->error_message(), "message larger than max")) {
        *status =
            grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                         absl::StrCat(limits::OverLimit("a message between Ferry's services",
                                                        limits::kGrpcMessageBytes,
                                                        static_cast<uint64_t>(max_message_bytes_)),
                                      " (", status->error_message(), ")"));
      }
    }
    methods->Proceed();
  }

 private:
  void Done() {
    grpc_call* call = nullptr;
    {
      PeerCalls& calls = Calls();
      absl::MutexLock lock(&calls.mu);
      if (call_ == nullptr) return;
      calls.in_progress.erase(call_);
      call = call_;
      call_ = nullptr;
    }
    grpc_call_unref(call);  // outside the lock: the last reference frees the call
  }

  grpc::ClientContext* context_;  // used only in hooks, while the call is in progress
  grpc_call* call_ = nullptr;     // our reference while the call is in Calls(); under its mu
  const std::string* token_;      // owned by the factory, which the channel keeps
  int max_message_bytes_;
};

class PeerCallInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  PeerCallInterceptorFactory(std::string token, int max_message_bytes)
      : token_(std::move(token)), max_message_bytes_(max_message_bytes) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new PeerCallInterceptor(info->client_context(), &token_, max_message_bytes_);
  }

 private:
  const std::string token_;
  int max_message_bytes_;
};

std::shared_ptr<grpc::ChannelCredentials> Credentials(const PeerOptions& peer) {
  if (peer.tls_ca_path.empty()) return grpc::InsecureChannelCredentials();
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> certificates =
      peer.tls_cert_path.empty()
          ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                peer.tls_ca_path, kCertificateRefreshSeconds)
          : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                peer.tls_key_path, peer.tls_cert_path, peer.tls_ca_path,
                kCertificateRefreshSeconds);
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(certificates);
  tls.watch_root_certs();
  if (!peer.tls_cert_path.empty()) tls.watch_identity_key_cert_pairs();
  // The peer's certificate must name the host the address names.
  tls.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(tls);
}

}  // namespace

bool IsReplicaList(const std::string& address) {
  return address.find(',') != std::string::npos || absl::StartsWith(address, "dns:");
}

std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address, const PeerOptions& peer) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  if (peer.max_message_bytes > 0) {
    args.SetMaxReceiveMessageSize(peer.max_message_bytes);
    args.SetMaxSendMessageSize(peer.max_message_bytes);
  }
  if (IsReplicaList(address)) {
    // A replica that vanished without closing its connections (a lost node, a paused
    // process) is noticed within kKeepaliveTime + kKeepaliveTimeout and gets no more calls.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
                static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTime)));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(absl::ToInt64Milliseconds(kKeepaliveTimeout)));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // go on pinging an idle connection
    // Every address gets a connection; a call goes to one whose "leader" check is SERVING.
    // A call that fails UNAVAILABLE is tried again, up to 3 times within 1.4 s: it met a
    // leader that was just killed (its connection reset before gRPC saw it go) or that just
    // lost its Lease (it refused), and the next try goes to the new leader. Writes stay safe:
    // they are compare-and-set, so a try that finds its change made fails ABORTED, never
    // commits twice.
    args.SetServiceConfigJSON(absl::StrCat(
        R"({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ")",
        kLeaderHealthName,
        R"("}, "methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, )",
        R"("initialBackoff": "0.4s", "maxBackoff": "1s", "backoffMultiplier": 2.5, )",
        R"("retryableStatusCodes": ["UNAVAILABLE"]}}]})"));
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(
      std::make_unique<PeerCallInterceptorFactory>(peer.token, peer.max_message_bytes));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, Credentials(peer), args,
                                                                 std::move(factories));
}

void CancelPeerCalls() {
  // Each call in the set holds a reference taken for it, released only after it has left
  // the set under this lock: the calls cancelled here are alive, whatever their contexts
  // are doing (see PeerCalls).
  PeerCalls& calls = Calls();
  absl::MutexLock lock(&calls.mu);
  for (grpc_call* call : calls.in_progress) grpc_call_cancel(call, nullptr);
}

size_t PeerCallsInProgress() {
  PeerCalls& calls = Calls();
  absl::MutexLock lock(&calls.mu);
  return calls.in_progress.size();
}

}  // namespace ferry::runtime
