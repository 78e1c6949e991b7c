// Channels from one Ferry service to another (the api to git-writer, registry-scanner and
// cluster-syncer; cluster-syncer to git-writer).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "lib/runtime/flags.h"

namespace ferry::runtime {

// A channel to the peer at `address` ("host:port") with `peer`'s settings:
//   - TLS when peer.tls_ca_path is set, verifying the peer's certificate (its names must
//     cover the host of `address`) against that CA, and presenting peer.tls_cert_path /
//     tls_key_path when set (mutual TLS); the files are watched, so renewed certificates
//     are used by the next connection;
//   - "authorization: Bearer <peer.token>" on every call when the token is set;
//   - messages up to peer.max_message_bytes both ways; an answer over it fails
//     RESOURCE_EXHAUSTED with a message naming the limit and --grpc_max_message_bytes;
//   - reconnects within 5 s after the peer restarts (gRPC's default backoff grows to 2 min);
//   - its calls in progress are cancelled by CancelPeerCalls().
// `address` may also be a gRPC target naming several replicas of a leader-elected peer (a
// list with a comma, e.g. "ipv4:10.0.0.5:3031,10.0.0.6:3031", or a name resolved through DNS
// to each replica's address, e.g. "dns:///ferry-git-writer-replicas:3031" for a headless
// Kubernetes Service, re-resolved when a connection is lost): the channel then connects to
// each of them, asks each one's health service for kLeaderHealthName (gRPC client-side
// health checking) and sends calls only to those that report it SERVING, round robin: the
// leader, for git-writer or cluster-syncer with --leader_elect. While none is ready (a
// leader is being elected) calls fail UNAVAILABLE, or wait for one with wait_for_ready.
// (A Kubernetes Service routes to the pods whose probe passes; Ferry's probes check that the
// process serves, so that a standby counts as available for rollouts and disruption
// budgets: a plain Service name would reach the standby too.)
std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address, const PeerOptions& peer);

// Whether ChannelTo treats `address` as several replicas (see above).
bool IsReplicaList(const std::string& address);

// Cancels every call in progress on channels made by ChannelTo (they fail CANCELLED). A
// stopping server calls it once its drain timeout has passed (ServeUntilSignal), so that a
// handler waiting on a peer that does not answer returns and the process can exit.
void CancelPeerCalls();

// How many calls on ChannelTo's channels are in progress (for tests).
size_t PeerCallsInProgress();

}  // namespace ferry::runtime
