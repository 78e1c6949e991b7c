// The api's calls to the services behind it (git-writer, registry-scanner, cluster-syncer),
// made in one place. Every call:
//   - ends by the deadline of its CallBudget, which PeerClients decides: a request's own
//     calls within kPeerCallTimeout or by the caller's deadline when it is earlier, a job's
//     by its stage's flag (--job_planning_timeout, --job_commit_timeout, --job_apply_timeout),
//     one deadline shared by the stage's calls;
//   - when its budget says so, first waits up to --peer_wait (never past the deadline) for a
//     peer that is not connected, so a restarting peer is ridden out and one that is down is
//     named with its address; otherwise it is sent at once and fails when the peer is down.
//     wait_for_ready is set only where there is no channel to watch (in-process fakes);
//   - is cancelled with the request it serves (the caller hanging up, the server's drain
//     deadline), or, for jobs and background work, at shutdown (CancelSet::CancelAll);
//   - fails with a Status naming the peer: with its address when it could not be reached or
//     did not answer in time (and the flag that raises that deadline), prefixed with its name
//     when it answered with an error of its own (whose code is kept).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/limits/limits.h"
#include "services/api/config.h"
#include "services/api/jobs.h"

namespace ferry::api {

// The three services behind the api, as stubs (generated mocks or fakes in tests).
struct Peers {
  ferry::v1::GitWriter::StubInterface& git;
  ferry::v1::RegistryScanner::StubInterface& registry;
  ferry::v1::ClusterSyncer::StubInterface& cluster;
};

// Where a peer is, to wait for it to connect. Without a channel (tests with in-process
// fakes) nothing is waited for.
struct PeerLink {
  std::string address;
  std::shared_ptr<grpc::ChannelInterface> channel;
};

struct PeerLinks {
  PeerLink git, registry, cluster;
};

// How long a single call outside a job stage may take: a request's own calls, the
// automation's Watch, one tag listing.
inline constexpr absl::Duration kPeerCallTimeout = absl::Seconds(30);
// GetVersion's call to each peer (a cheap call, only to read the version it answers with).
inline constexpr absl::Duration kVersionCallTimeout = absl::Seconds(5);
// Export's stream of every resource from cluster-syncer.
inline constexpr absl::Duration kExportTimeout = absl::Minutes(5);

// Waits until `link`'s channel is connected, at most `wait` (at once when it is, or has no
// channel). UNAVAILABLE naming `service` and its address when it does not connect in time;
// CANCELLED when `cancel` (optional) is cancelled meanwhile (a shutdown).
absl::Status AwaitPeer(const char* service, const PeerLink& link, absl::Duration wait,
                       const CancelSet* cancel = nullptr);

// The stages of a job with a deadline of their own (JobTimeouts).
enum class Stage { kPlanning, kCommit, kApply };

// What bounds one call (or the calls of one stage, which share it). Made by PeerClients.
struct CallBudget {
  absl::Time deadline = absl::InfiniteFuture();
  // The timeout the deadline came from, and the limit (with its flag) when a flag sets it:
  // named in the error when the deadline passes.
  absl::Duration timeout = absl::InfiniteDuration();
  const limits::Limit* limit = nullptr;
  // Wait up to --peer_wait for a peer that is not connected (else fail at once).
  bool await_peer = false;
  // A request's own call: cancelled with the request. Null: cancelled at shutdown.
  const grpc::ServerContext* caller = nullptr;

  // This budget, ending no later than `timeout` from now.
  CallBudget AtMost(absl::Duration timeout) const;
};

// One call's context, readied by PeerClient::Start. Not copyable, not movable.
class PeerCall {
 public:
  PeerCall() = default;
  PeerCall(const PeerCall&) = delete;
  PeerCall& operator=(const PeerCall&) = delete;

  // Whether Start readied it (the call may have been made).
  bool started() const { return context_ != nullptr; }
  // The call's context; requires started().
  grpc::ClientContext& context() { return *context_; }

 private:
  friend class PeerBase;
  std::unique_ptr<grpc::ClientContext> context_;
  std::optional<ScopedCancel> cancelled_at_shutdown_;  // after context_: goes first
};

// What every PeerClient does, whatever its stub. Thread-safe.
class PeerBase {
 public:
  PeerBase(const char* name, PeerLink link, absl::Duration peer_wait, CancelSet& cancel);

  // "git-writer", "registry-scanner" or "cluster-syncer".
  const char* name() const { return name_; }

  // Waits for the peer to be connected, up to --peer_wait and not past budget.deadline: OK
  // at once when it is (or there is no channel). UNAVAILABLE naming the peer, its address
  // and --peer_wait; CANCELLED when the api shuts down meanwhile.
  absl::Status Await(const CallBudget& budget) const;

  // Readies `call` under `budget`: waits for the peer (budget.await_peer), sets the deadline
  // and wait_for_ready, and ties the call's cancellation to its caller or to shutdown. Fails
  // as Await does.
  absl::Status Start(PeerCall& call, const CallBudget& budget) const;

  // A failed call under `budget` as a Status naming the peer:
  //   DEADLINE_EXCEEDED  UNAVAILABLE, "<peer> at <address> did not answer: " with the budget's
  //                      limit and its flag ("within <timeout>" when no flag sets it);
  //   UNAVAILABLE        UNAVAILABLE, "<peer> at <address>: <message>";
  //   any other code     the same code, "<peer>: <message>" (the peer answered).
  // (Without an address, only the name.)
  absl::Status Failed(const grpc::Status& status, const CallBudget& budget) const;

 private:
  const char* name_;
  PeerLink link_;
  absl::Duration peer_wait_;
  CancelSet& cancel_;
};

// Typed calls to one peer through its generated StubInterface (so a generated mock or a
// fake can stand in). Thread-safe as the stub is.
template <typename Stub>
class PeerClient : public PeerBase {
 public:
  template <typename Request, typename Response>
  using Unary = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);
  template <typename Request, typename Response>
  using ServerStream = std::unique_ptr<grpc::ClientReaderInterface<Response>> (Stub::*)(
      grpc::ClientContext*, const Request&);

  PeerClient(const char* name, Stub& stub, PeerLink link, absl::Duration peer_wait,
             CancelSet& cancel)
      : PeerBase(name, std::move(link), peer_wait, cancel), stub_(stub) {}

  // Calls `method` (e.g. &GitWriter::StubInterface::Head) under `budget`: the answer, or the
  // failure as Start or Failed say. `call` (optional) keeps the context, e.g. to read the
  // answer's metadata.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(Unary<Request, Response> method, const Request& request,
                                const CallBudget& budget, PeerCall* call = nullptr) const {
    PeerCall own;
    PeerCall& used = call != nullptr ? *call : own;
    if (absl::Status s = Start(used, budget); !s.ok()) return s;
    Response out;
    grpc::Status s = (stub_.*method)(&used.context(), request, &out);
    if (!s.ok()) return Failed(s, budget);
    return out;
  }

  // Opens the server stream `method` under `budget` in `call` (which must outlive the
  // reader). The reader's Finish() status goes through Failed.
  template <typename Request, typename Response>
  absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<Response>>> Open(
      ServerStream<Request, Response> method, const Request& request, const CallBudget& budget,
      PeerCall& call) const {
    if (absl::Status s = Start(call, budget); !s.ok()) return s;
    return (stub_.*method)(&call.context(), request);
  }

 private:
  Stub& stub_;
};

using GitWriterStub = ferry::v1::GitWriter::StubInterface;
using RegistryScannerStub = ferry::v1::RegistryScanner::StubInterface;
using ClusterSyncerStub = ferry::v1::ClusterSyncer::StubInterface;

// Workloads in one page of the api's own whole-list reads (about 1 MiB of index).
inline constexpr int32_t kWorkloadReadPage = 2000;

// The three peers and the budgets of the api's calls to them: the one place that decides
// deadlines. Thread-safe.
class PeerClients {
 public:
  // `cancel` cancels job and background calls at shutdown; `links` are waited on (none:
  // in-process fakes, nothing to wait for).
  PeerClients(Peers stubs, CancelSet& cancel, JobTimeouts timeouts = {}, PeerLinks links = {});

  // A request's own calls: within `timeout`, or by the caller's deadline when earlier, and
  // cancelled with the caller. `await_peer`: a request about to start a job waits for a
  // restarting peer (--peer_wait); a read answering a person fails at once instead.
  CallBudget ForRequest(const grpc::ServerContext& caller, bool await_peer,
                        absl::Duration timeout = kPeerCallTimeout) const;
  // The calls of a job's `stage` starting now: its flag's timeout, peers waited for.
  CallBudget ForStage(Stage stage) const;
  // Calls ending by `deadline` that are cancelled at shutdown: a job's rollout wait, the
  // automation's own calls.
  CallBudget Until(absl::Time deadline, bool await_peer) const;

  // Every workload `request` selects, read in pages of kWorkloadReadPage under `budget` and
  // answered as one list: git-writer's index (every page at the first page's revision, its
  // load errors) and the cluster's workloads. Fails as the first failing page does.
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> ListAllInGit(
      ferry::v1::ListManifestWorkloadsRequest request, const CallBudget& budget) const;
  absl::StatusOr<ferry::v1::ListClusterWorkloadsResponse> ListAllInCluster(
      ferry::v1::ListClusterWorkloadsRequest request, const CallBudget& budget) const;

  const JobTimeouts& timeouts() const { return timeouts_; }
  // True once the api shuts down (every call of a job or of background work is cancelled).
  bool shutting_down() const { return cancel_.cancelled(); }

  PeerClient<GitWriterStub> git;
  PeerClient<RegistryScannerStub> registry;
  PeerClient<ClusterSyncerStub> cluster;

 private:
  const JobTimeouts timeouts_;
  const CancelSet& cancel_;
};

}  // namespace ferry::api
