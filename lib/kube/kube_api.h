// The Kubernetes API calls Ferry makes, as an interface: KubeClient (kube_client.h) talks to
// a real API server over HTTPS, FakeKubeApi (fake_kube_api.h) keeps objects in memory for
// unit tests.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::kube {

// Paths are API paths ("/api/v1/namespaces/ns/configmaps/name", a collection, or a discovery
// document such as "/apis"), with a query string where the call takes one. Errors are the
// API's, mapped as ApiError (kube_client.h) says: NotFound, AlreadyExists, InvalidArgument,
// PermissionDenied, Unauthenticated, Aborted (conflict), ResourceExhausted, Internal; and
// Unavailable when the API server cannot be reached. Objects in answers may come without
// their metadata.managedFields (KubeClient drops them: Ferry reads none). Implementations are
// thread-safe.
class KubeApi {
 public:
  virtual ~KubeApi() = default;

  // GET `path`; `verb` names the call for metrics ("get", "list", "discovery").
  virtual absl::StatusOr<nlohmann::json> Get(const std::string& path, const std::string& verb) = 0;
  // A collection's objects with their metadata only (a PartialObjectMetadataList): `items`,
  // each with its `metadata`.
  virtual absl::StatusOr<nlohmann::json> ListMetadata(const std::string& path) = 0;
  // Server-side apply of `object` at `path` (the object's own URL) with field manager
  // `manager`; `force` takes over fields owned by other managers; `dry_run` writes nothing.
  // The object as stored.
  virtual absl::StatusOr<nlohmann::json> Apply(const std::string& path,
                                               const nlohmann::json& object,
                                               const std::string& manager, bool force,
                                               bool dry_run) = 0;
  // DELETE with background propagation; `dry_run` deletes nothing.
  virtual absl::Status Delete(const std::string& path, bool dry_run) = 0;

  // How long a call may take when the caller gives no timeout.
  static constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(60);

  // Get and ListMetadata given up after `timeout` (DeadlineExceeded or Unavailable), for
  // reads that must be over by a deadline (a Lease's renewal, a page of a list). The default
  // ignores `timeout`, as ApplyWithin's does: a decorator around a client that talks to a
  // server forwards these too (FencedKubeApi), or the timeout is lost.
  virtual absl::StatusOr<nlohmann::json> GetWithin(const std::string& path, const std::string& verb,
                                                   absl::Duration timeout) {
    (void)timeout;
    return Get(path, verb);
  }
  virtual absl::StatusOr<nlohmann::json> ListMetadataWithin(const std::string& path,
                                                            absl::Duration timeout) {
    (void)timeout;
    return ListMetadata(path);
  }

  // Apply and Delete given up after `timeout` (DeadlineExceeded or Unavailable), for writes
  // that must be over by a deadline (a leader's, FencedKubeApi). The default ignores
  // `timeout`: right for implementations that answer at once (in memory); those that talk to
  // a server override them.
  virtual absl::StatusOr<nlohmann::json> ApplyWithin(const std::string& path,
                                                     const nlohmann::json& object,
                                                     const std::string& manager, bool force,
                                                     bool dry_run, absl::Duration timeout) {
    (void)timeout;
    return Apply(path, object, manager, force, dry_run);
  }
  virtual absl::Status DeleteWithin(const std::string& path, bool dry_run, absl::Duration timeout) {
    (void)timeout;
    return Delete(path, dry_run);
  }

  // Watches `path` (a collection with its query: "watch=1&resourceVersion=...", usually
  // "timeoutSeconds=..."): gives each event ({"type": ADDED | MODIFIED | DELETED | BOOKMARK |
  // ERROR, "object": ...}) to `on_event` as it arrives. OK when the server ended the stream;
  // Cancelled when `on_event` returned false or `stop` became true (checked about once a
  // second); the API's error for a refused watch; Unavailable / DeadlineExceeded when the
  // connection failed or outlived `timeout`; DeadlineExceeded also when, once the stream had
  // begun, nothing arrived for kWatchIdleTimeout (a connection gone silent; a quiet watch that
  // allows bookmarks is sent one now and then, and one that is not ends then too: the caller
  // resumes it), Unavailable when the server did not answer at all in that time;
  // ResourceExhausted for an event over kMaxWatchEventBytes. The default: Unimplemented
  // (implementations that cannot stream).
  static constexpr size_t kMaxWatchEventBytes = 8 << 20;
  static constexpr absl::Duration kWatchIdleTimeout = absl::Seconds(150);
  virtual absl::Status Watch(const std::string& path, absl::Duration timeout,
                             const std::atomic<bool>& stop,
                             const std::function<bool(const nlohmann::json& event)>& on_event) {
    (void)path, (void)timeout, (void)stop, (void)on_event;
    return absl::UnimplementedError("this Kubernetes API client cannot watch");
  }
};

}  // namespace ferry::kube
