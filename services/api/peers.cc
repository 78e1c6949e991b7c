#include "services/api/peers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/runtime/channel.h"
#include "lib/status/grpc_status.h"

namespace ferry::api {

absl::Status AwaitPeer(const char* service, const PeerLink& link, absl::Duration wait,
                       const CancelSet* cancel) {
  if (link.channel == nullptr) return absl::OkStatus();
  wait = std::max(wait, absl::ZeroDuration());
  const absl::Time give_up = absl::Now() + wait;
  grpc_connectivity_state state = link.channel->GetState(/*try_to_connect=*/true);
  bool refused = false;  // a connection attempt failed (rather than never completing)
  while (state != GRPC_CHANNEL_READY) {
    refused = refused || state == GRPC_CHANNEL_TRANSIENT_FAILURE;
    if (cancel != nullptr && cancel->cancelled()) {
      return absl::CancelledError(absl::StrCat("the api is shutting down (was waiting for ",
                                               service, " at ", link.address, ")"));
    }
    const absl::Time now = absl::Now();
    if (now >= give_up) {
      return absl::UnavailableError(absl::StrCat(
          service, " at ", link.address, " is not reachable: ",
          runtime::IsReplicaList(link.address)
              ? "none of its replicas reports leading (a leader is being elected, or none runs)"
          : refused ? "it refuses connections (is it running?)"
                    : "no connection completes",
          ", waited ", absl::FormatDuration(wait), " (--peer_wait)"));
    }
    // Short slices, so that a shutdown is noticed at once.
    link.channel->WaitForStateChange(
        state, absl::ToChronoTime(std::min(give_up, now + absl::Milliseconds(100))));
    state = link.channel->GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

CallBudget CallBudget::AtMost(absl::Duration most) const {
  const absl::Time end = absl::Now() + most;
  if (end >= deadline) return *this;
  CallBudget shorter = *this;
  shorter.deadline = end;
  shorter.timeout = most;
  shorter.limit = nullptr;  // the shorter bound is not the flag's
  return shorter;
}

PeerBase::PeerBase(const char* name, PeerLink link, absl::Duration peer_wait, CancelSet& cancel)
    : name_(name), link_(std::move(link)), peer_wait_(peer_wait), cancel_(cancel) {}

absl::Status PeerBase::Await(const CallBudget& budget) const {
  return AwaitPeer(name_, link_, std::min(peer_wait_, budget.deadline - absl::Now()), &cancel_);
}

absl::Status PeerBase::Start(PeerCall& call, const CallBudget& budget) const {
  if (budget.await_peer) {
    if (absl::Status s = Await(budget); !s.ok()) return s;
  }
  call.context_ = budget.caller != nullptr ? grpc::ClientContext::FromServerContext(*budget.caller)
                                           : std::make_unique<grpc::ClientContext>();
  call.context_->set_deadline(absl::ToChronoTime(budget.deadline));
  // Connected now, or not to be waited for: a call that cannot be sent fails at once rather
  // than outlast --peer_wait. Without a channel to watch (in-process fakes), gRPC waits for
  // ready, within the deadline; so it does for a peer's replicas (runtime::IsReplicaList):
  // while they elect a leader none is ready, and a call to be waited for waits for the new
  // one (its retry after meeting a leader that just died too), within its deadline.
  call.context_->set_wait_for_ready(
      budget.await_peer && (link_.channel == nullptr || runtime::IsReplicaList(link_.address)));
  if (budget.caller == nullptr) call.cancelled_at_shutdown_.emplace(cancel_, *call.context_);
  return absl::OkStatus();
}

absl::Status PeerBase::Failed(const grpc::Status& status, const CallBudget& budget) const {
  const std::string where =
      link_.address.empty() ? std::string(name_) : absl::StrCat(name_, " at ", link_.address);
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      if (budget.limit != nullptr) {
        return absl::UnavailableError(limits::OverLimit(
            absl::StrCat(where, " did not answer"), *budget.limit,
            static_cast<uint64_t>(std::max<int64_t>(1, absl::ToInt64Seconds(budget.timeout)))));
      }
      return absl::UnavailableError(
          absl::StrCat(where, " did not answer within ",
                       absl::FormatDuration(absl::Ceil(budget.timeout, absl::Milliseconds(1)))));
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(where, ": ", status.error_message()));
    default:
      return FromGrpcStatus(
          grpc::Status(status.error_code(), absl::StrCat(name_, ": ", status.error_message())));
  }
}

PeerClients::PeerClients(Peers stubs, CancelSet& cancel, JobTimeouts timeouts, PeerLinks links)
    : git("git-writer", stubs.git, std::move(links.git), timeouts.peer_wait, cancel),
      registry("registry-scanner", stubs.registry, std::move(links.registry), timeouts.peer_wait,
               cancel),
      cluster("cluster-syncer", stubs.cluster, std::move(links.cluster), timeouts.peer_wait,
              cancel),
      timeouts_(timeouts),
      cancel_(cancel) {}

CallBudget PeerClients::ForRequest(const grpc::ServerContext& caller, bool await_peer,
                                   absl::Duration timeout) const {
  const absl::Time by_caller = absl::FromChrono(caller.deadline());
  CallBudget budget{by_caller, by_caller - absl::Now(), nullptr, await_peer, &caller};
  return budget.AtMost(timeout);
}

CallBudget PeerClients::ForStage(Stage stage) const {
  auto budget = [](absl::Duration timeout, const limits::Limit& limit) {
    return CallBudget{absl::Now() + timeout, timeout, &limit, /*await_peer=*/true, nullptr};
  };
  switch (stage) {
    case Stage::kPlanning:
      return budget(timeouts_.planning, limits::kJobPlanningTimeout);
    case Stage::kCommit:
      return budget(timeouts_.commit, limits::kJobCommitTimeout);
    case Stage::kApply:
      return budget(timeouts_.apply, limits::kJobApplyTimeout);
  }
  return budget(timeouts_.planning, limits::kJobPlanningTimeout);
}

namespace {

// Reads every page of `method` into the first page's answer: `next` readies the request
// for the page after `page` (start_after its last workload, the revision pinned).
template <typename Stub, typename Request, typename Response, typename Next>
absl::StatusOr<Response> ReadAllPages(const PeerClient<Stub>& peer,
                                      grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                                   const Request&, Response*),
                                      Request request, const CallBudget& budget, Next next) {
  request.set_limit(kWorkloadReadPage);
  absl::StatusOr<Response> all = peer.Call(method, request, budget);
  if (!all.ok()) return all;
  // Bounded: every page but the last holds kWorkloadReadPage workloads, and ids only grow.
  for (bool more = all->more(); more && all->workloads_size() > 0;) {
    next(*all, request);
    absl::StatusOr<Response> page = peer.Call(method, request, budget);
    if (!page.ok()) return page.status();
    more = page->more();
    for (auto& w : *page->mutable_workloads()) *all->add_workloads() = std::move(w);
  }
  all->set_more(false);
  return all;
}

}  // namespace

absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> PeerClients::ListAllInGit(
    ferry::v1::ListManifestWorkloadsRequest request, const CallBudget& budget) const {
  return ReadAllPages(git, &GitWriterStub::ListWorkloads, std::move(request), budget,
                      [](const ferry::v1::ListManifestWorkloadsResponse& so_far,
                         ferry::v1::ListManifestWorkloadsRequest& next) {
                        next.set_revision(so_far.revision());
                        next.set_start_after(so_far.workloads().rbegin()->id());
                      });
}

absl::StatusOr<ferry::v1::ListClusterWorkloadsResponse> PeerClients::ListAllInCluster(
    ferry::v1::ListClusterWorkloadsRequest request, const CallBudget& budget) const {
  return ReadAllPages(cluster, &ClusterSyncerStub::ListWorkloads, std::move(request), budget,
                      [](const ferry::v1::ListClusterWorkloadsResponse& so_far,
                         ferry::v1::ListClusterWorkloadsRequest& next) {
                        next.set_start_after(so_far.workloads().rbegin()->id());
                      });
}

CallBudget PeerClients::Until(absl::Time deadline, bool await_peer) const {
  return CallBudget{deadline, deadline - absl::Now(), nullptr, await_peer, nullptr};
}

}  // namespace ferry::api
