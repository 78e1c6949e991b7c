#include "services/cluster-syncer/cluster_syncer_service.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "lib/convert/container.h"
#include "lib/manifest/workload_selection.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/grpc_status.h"
#include "lib/status/status_macros.h"
#include "services/cluster-syncer/export.h"

namespace ferry::cluster_syncer {

void ToProto(const SyncReport& report, ferry::v1::SyncResult* out) {
  out->set_revision(report.revision);
  *out->mutable_started() = runtime::ToProtoTimestamp(report.started);
  *out->mutable_finished() = runtime::ToProtoTimestamp(report.finished);
  out->set_applied(report.applied);
  out->set_unchanged(report.unchanged);
  out->set_failed(report.failed);
  out->set_pruned(report.pruned);
  for (const ResourceFailure& f : report.errors) {
    ferry::v1::ResourceError* e = out->add_errors();
    e->set_resource(f.resource);
    e->set_path(f.path);
    e->set_error(f.error);
  }
  out->set_error(report.error);
}

void ToProto(const RolloutInfo& r, ferry::v1::RolloutStatus* out) {
  switch (r.state) {
    case RolloutInfo::State::kReady:
      out->set_state(ferry::v1::ROLLOUT_STATE_READY);
      break;
    case RolloutInfo::State::kUpdating:
      out->set_state(ferry::v1::ROLLOUT_STATE_UPDATING);
      break;
    case RolloutInfo::State::kError:
      out->set_state(ferry::v1::ROLLOUT_STATE_ERROR);
      break;
    case RolloutInfo::State::kUnknown:
      out->set_state(ferry::v1::ROLLOUT_STATE_UNKNOWN);
      break;
  }
  out->set_desired(r.desired);
  out->set_updated(r.updated);
  out->set_ready(r.ready);
  out->set_available(r.available);
  out->set_outdated(r.outdated);
  out->set_generation(r.generation);
  out->set_observed_generation(r.observed_generation);
  for (const std::string& m : r.messages) out->add_messages(m);
}

void ToProto(const ClusterWorkloadInfo& w, ferry::v1::ClusterWorkload* out) {
  out->set_id(w.id);
  for (const RunningContainer& c : w.containers) {
    convert::FillContainer(c.name, c.image, c.init, out->add_containers());
  }
  ToProto(w.rollout, out->mutable_rollout());
  out->mutable_labels()->insert(w.labels.begin(), w.labels.end());
  out->mutable_annotations()->insert(w.annotations.begin(), w.annotations.end());
}

namespace {

// `w` as ListWorkloads answers it; `scratch` is the message it is serialized through.
ListedWorkload ToListed(ClusterWorkloadInfo w, ferry::v1::ClusterWorkload& scratch) {
  scratch.Clear();
  ToProto(w, &scratch);
  return {std::move(w.id), scratch.SerializeAsString()};
}

// The ids of `request` its page can hold (those after start_after): a caller paging through
// them has each read once.
std::vector<std::string> IdsOfPage(const ferry::v1::ListClusterWorkloadsRequest& request) {
  std::vector<std::string> ids;
  for (const std::string& id : request.ids()) {
    if (id > request.start_after()) ids.push_back(id);
  }
  return ids;
}

}  // namespace

ListedWorkload ToListed(ClusterWorkloadInfo w) {
  ferry::v1::ClusterWorkload scratch;
  return ToListed(std::move(w), scratch);
}

ClusterSyncerService::ClusterSyncerService(kube::KubeApi& kube, kube::Discovery& discovery,
                                           SyncLoop& loop, std::set<std::string> allow_namespaces,
                                           WorkloadWatch* watch)
    : kube_(kube),
      discovery_(discovery),
      loop_(loop),
      allow_(std::move(allow_namespaces)),
      workloads_([this](const std::string& ns) { return ListWorkloadsServed(ns); },
                 runtime::SystemClock(), kWorkloadListMaxAge, kWorkloadListMaxStale,
                 kWorkloadListNamespaces, runtime::Refresh::kInBackground),
      watch_(watch) {}

absl::StatusOr<std::vector<ListedWorkload>> ClusterSyncerService::ListWorkloadsServed(
    const std::string& ns) {
  std::vector<ListedWorkload> out;
  ferry::v1::ClusterWorkload scratch;
  FERRY_RETURN_IF_ERROR(ForEachClusterWorkload(
      kube_, discovery_, ns, allow_,
      [&](ClusterWorkloadInfo w) { out.push_back(ToListed(std::move(w), scratch)); }));
  std::sort(out.begin(), out.end(),
            [](const ListedWorkload& a, const ListedWorkload& b) { return a.id < b.id; });
  return out;
}

WorkloadListCache::Outcome ClusterSyncerService::NamedWorkloads(
    grpc::ServerContext& context, const ferry::v1::ListClusterWorkloadsRequest& request,
    std::optional<absl::Duration> max_age) {
  // A listing as recent as the caller asked for (or as Get would answer from at once).
  if (std::shared_ptr<const std::vector<ListedWorkload>> listed =
          workloads_.Peek(request.namespace_(), max_age.value_or(kWorkloadListMaxStale));
      listed != nullptr) {
    return listed;
  }
  const std::vector<std::string> ids = IdsOfPage(request);
  // A caller that takes a listing a second old or older is answered from the API server's
  // watch cache (usually moments behind etcd, with no bound promised: a rule of thumb, for
  // callers that already accept a listing that old); one that asks for now, from etcd.
  const ReadFrom from = max_age.value_or(kWorkloadListMaxStale) >= kWorkloadReadFromCacheMinAge
                            ? ReadFrom::kWatchCache
                            : ReadFrom::kEtcd;
  absl::StatusOr<std::vector<ClusterWorkloadInfo>> read =
      GetClusterWorkloads(kube_, discovery_, ids, request.namespace_(), allow_,
                          kWorkloadReadThreads, from, [&context] { return context.IsCancelled(); });
  if (!read.ok()) return read.status();
  auto out = std::make_shared<std::vector<ListedWorkload>>();
  ferry::v1::ClusterWorkload scratch;
  for (ClusterWorkloadInfo& w : *read) out->push_back(ToListed(std::move(w), scratch));
  return std::shared_ptr<const std::vector<ListedWorkload>>(std::move(out));
}

grpc::Status ClusterSyncerService::ListWorkloads(
    grpc::ServerContext* context, const ferry::v1::ListClusterWorkloadsRequest* request,
    ferry::v1::ListClusterWorkloadsResponse* response) {
  absl::StatusOr<manifest::WorkloadSelection> selection = manifest::WorkloadSelection::Make(
      request->start_after(), request->limit(), {request->ids().begin(), request->ids().end()});
  if (!selection.ok()) return ToGrpcStatus(selection.status());
  if (request->max_age_ms() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "max_age_ms: 0 (the default) or more milliseconds");
  }
  std::optional<absl::Duration> max_age;
  if (request->max_age_ms() > 0) max_age = absl::Milliseconds(request->max_age_ms());
  // The watch's answer is as fresh as the API server's watch cache, which a caller accepting
  // a second-old listing accepts (as NamedWorkloads' reads do).
  std::shared_ptr<const std::vector<ListedWorkload>> watched;
  if (watch_ != nullptr && (!max_age || *max_age >= kWorkloadReadFromCacheMinAge)) {
    watched = request->ids_size() > 0 ? watch_->Named(request->namespace_(), IdsOfPage(*request))
                                      : watch_->Workloads(request->namespace_());
  }
  WorkloadListCache::Outcome workloads = std::move(watched);
  if (*workloads == nullptr) {
    workloads = request->ids_size() > 0 &&
                        static_cast<size_t>(request->ids_size()) <= kWorkloadsReadOneByOne
                    ? NamedWorkloads(*context, *request, max_age)
                    : workloads_.Get(request->namespace_(), max_age);
  }
  if (!workloads.ok()) return ToGrpcStatus(workloads.status());
  bool parsed = true;
  response->set_more(selection->Page(
      **workloads, [](const ListedWorkload& w) -> const std::string& { return w.id; },
      [](const ListedWorkload&) { return true; },
      [&](const ListedWorkload& w) {
        parsed = parsed && response->add_workloads()->ParseFromString(w.message);
        return true;
      }));
  if (!parsed) {  // the syncer's own serialization: not reachable
    return grpc::Status(grpc::StatusCode::INTERNAL, "a listed workload could not be read back");
  }
  return grpc::Status::OK;
}

grpc::Status ClusterSyncerService::SyncNow(grpc::ServerContext*,
                                           const ferry::v1::SyncNowRequest* request,
                                           ferry::v1::SyncResult* response) {
  SyncReport report =
      loop_.SyncNow(request->revision(), request->dry_run(), request->skip_if_applied());
  if (!report.error.empty()) return ToGrpcStatus(absl::Status(report.error_code, report.error));
  ToProto(report, response);
  return grpc::Status::OK;
}

grpc::Status ClusterSyncerService::GetSyncStatus(grpc::ServerContext*,
                                                 const ferry::v1::GetSyncStatusRequest*,
                                                 ferry::v1::SyncResult* response) {
  auto [sequence, last] = loop_.Last();
  if (!last) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no sync has finished yet; call SyncNow or wait for the first sync");
  }
  ToProto(*last, response);
  return grpc::Status::OK;
}

grpc::Status ClusterSyncerService::WatchSync(grpc::ServerContext* context,
                                             const ferry::v1::WatchSyncRequest*,
                                             grpc::ServerWriter<ferry::v1::SyncResult>* writer) {
  // The syncs are the leader's: a standby's stream would stay silent, so it is refused, and
  // it ends when this instance stops leading (the caller reconnects, to the new leader).
  const auto standby = [] {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this cluster-syncer is a standby: sync results come from the leader");
  };
  if (!loop_.Leading()) return standby();
  auto [sequence, last] = loop_.Last();
  writer->SendInitialMetadata();  // subscribed: later syncs are not missed
  if (last) {
    ferry::v1::SyncResult out;
    ToProto(*last, &out);
    if (!writer->Write(out)) return grpc::Status::OK;
  }
  while (!context->IsCancelled()) {
    if (!loop_.Leading()) return standby();
    auto [next, report] = loop_.WaitNext(sequence, absl::Seconds(1));
    if (next == sequence || !report) continue;
    sequence = next;
    ferry::v1::SyncResult out;
    ToProto(*report, &out);
    if (!writer->Write(out)) return grpc::Status::OK;
  }
  return grpc::Status::OK;
}

grpc::Status ClusterSyncerService::WaitRollout(
    grpc::ServerContext* context, const ferry::v1::WaitRolloutRequest* request,
    grpc::ServerWriter<ferry::v1::WaitRolloutProgress>* writer) {
  if (request->workloads().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "workloads: name at least one workload id");
  }
  const absl::Duration timeout =
      request->timeout_seconds() > 0 ? absl::Seconds(request->timeout_seconds()) : absl::Minutes(5);
  const absl::Time deadline = absl::Now() + timeout;
  // First the revision must have been applied.
  if (!request->revision().empty()) {
    auto [sequence, last] = loop_.Last();
    while (!(last && last->revision == request->revision() && last->error.empty())) {
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      if (absl::Now() >= deadline) {
        return grpc::Status(
            grpc::StatusCode::DEADLINE_EXCEEDED,
            absl::StrCat("revision ", request->revision(), " was not applied within ",
                         absl::FormatDuration(timeout)));
      }
      std::tie(sequence, last) =
          loop_.WaitNext(sequence, std::min(absl::Seconds(1), deadline - absl::Now()));
    }
  }
  std::string previous;
  while (true) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    ferry::v1::WaitRolloutProgress progress;
    bool all_done = true;
    for (const std::string& id : request->workloads()) {
      ferry::v1::WorkloadRollout* r = progress.add_rollouts();
      r->set_workload(id);
      absl::StatusOr<ClusterWorkloadInfo> w = GetClusterWorkload(kube_, discovery_, id);
      if (w.status().code() == absl::StatusCode::kInvalidArgument) return ToGrpcStatus(w.status());
      if (!w.ok()) {
        r->mutable_status()->set_state(ferry::v1::ROLLOUT_STATE_UNKNOWN);
        r->mutable_status()->add_messages(std::string(w.status().message()));
        all_done = false;
        continue;
      }
      ToProto(w->rollout, r->mutable_status());
      if (w->rollout.state != RolloutInfo::State::kReady &&
          w->rollout.state != RolloutInfo::State::kError) {
        all_done = false;
      }
    }
    progress.set_done(all_done);
    const std::string serialized = progress.SerializeAsString();
    if (serialized != previous || all_done) {
      if (!writer->Write(progress)) return grpc::Status::OK;
      previous = serialized;
    }
    if (all_done) return grpc::Status::OK;
    if (absl::Now() >= deadline) {
      return grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("the rollout did not finish within ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(std::min(absl::Milliseconds(500), deadline - absl::Now()));
  }
}

grpc::Status ClusterSyncerService::Export(grpc::ServerContext* context,
                                          const ferry::v1::ExportResourcesRequest* request,
                                          grpc::ServerWriter<ferry::v1::ExportedResource>* writer) {
  ExportOptions options;
  options.namespaces.assign(request->namespaces().begin(), request->namespaces().end());
  options.kinds.assign(request->kinds().begin(), request->kinds().end());
  options.allow = allow_;
  absl::Status s = ExportResources(kube_, discovery_, options,
                                   [&](const std::string& id, const std::string& yaml) {
                                     if (context->IsCancelled()) return false;
                                     ferry::v1::ExportedResource out;
                                     out.set_id(id);
                                     out.set_yaml(yaml);
                                     return writer->Write(out);
                                   });
  return ToGrpcStatus(s);
}

}  // namespace ferry::cluster_syncer
