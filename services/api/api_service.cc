#include "services/api/api_service.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_selection.h"
#include "lib/names/names.h"
#include "lib/runtime/proto_time.h"
#include "lib/runtime/server.h"
#include "lib/runtime/version_header.h"
#include "lib/status/grpc_status.h"
#include "services/api/image_listing.h"
#include "services/api/paging.h"
#include "services/api/release_planner.h"
#include "services/api/tag_explanation.h"
#include "services/api/workload_listing.h"

namespace ferry::api {
namespace {

// The answer, or the failure as the call's status.
template <typename T>
grpc::Status Answer(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// The cause of a change becomes its commit's author and part of its message: checked here,
// before a job exists, with the rules git-writer applies (lib/names).
grpc::Status ValidateCause(const ferry::v1::Cause& cause) {
  if (!cause.user().empty()) {
    absl::StatusOr<names::Author> author = names::ParseAuthor(cause.user());
    if (!author.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("cause.user: ", author.status().message()));
    }
  }
  if (absl::Status s = names::ValidateCommitMessage(cause.message()); !s.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("cause.message: ", s.message()));
  }
  return grpc::Status::OK;
}

}  // namespace

ApiService::ApiService(const Access& access, const Sources& sources, JobStore& jobs,
                       JobRecordStore* shared)
    : access_(access), sources_(sources), peers_(sources.shared()), jobs_(jobs), shared_(shared) {}

ApiService::ApiService(const Access& access, const PeerClients& peers, JobStore& jobs,
                       JobRunner& runner, Executor& executor, JobRecordStore* shared)
    : access_(access),
      own_sources_(Sources({Source{"", &peers, &executor, &runner}})),
      sources_(*own_sources_),
      peers_(peers),
      jobs_(jobs),
      shared_(shared) {}

absl::StatusOr<const Source*> ApiService::PageSource(const std::string& requested,
                                                     const PagePosition& from) const {
  if (!requested.empty() || !sources_.named()) return sources_.Named(requested, "");
  const Source* source = sources_.From(from.source);
  if (source == nullptr) {
    return absl::InvalidArgumentError(
        "page_token: its source is gone; start the list again without page_token");
  }
  return source;
}

std::optional<std::string> ApiService::PassOver(const std::string& requested, const Source& source,
                                                const absl::Status& failed,
                                                absl::string_view request_key) const {
  if (!requested.empty() || !sources_.named() || sources_.all().size() == 1) return std::nullopt;
  if (failed.code() != absl::StatusCode::kUnavailable &&
      failed.code() != absl::StatusCode::kDeadlineExceeded) {
    return std::nullopt;
  }
  return NextSourceToken(requested, source, request_key);
}

std::string ApiService::NextSourceToken(const std::string& requested, const Source& source,
                                        absl::string_view request_key) const {
  if (!requested.empty() || !sources_.named()) return "";
  const Source* next = sources_.After(source);
  return next == nullptr ? "" : EncodePageToken({"", "", next->name}, request_key);
}

grpc::Status ApiService::ListWorkloads(grpc::ServerContext* context,
                                       const ferry::v1::ListWorkloadsRequest* request,
                                       ferry::v1::ListWorkloadsResponse* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  absl::StatusOr<int32_t> page_size = PageSizeOf(request->page_size(), kWorkloadPages);
  if (!page_size.ok()) return ToGrpcStatus(page_size.status());
  // The filters are names (and part of a shared page's key): bounded before anything is read.
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"namespace", &request->namespace_()},
        {"container", &request->container()}}) {
    if (value->size() > manifest::WorkloadId::kMaxNameBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat(field, ": at most ", manifest::WorkloadId::kMaxNameBytes,
                                       " bytes (a Kubernetes name)"));
    }
  }
  const std::string request_key = WorkloadsRequestKey(*request);
  absl::StatusOr<PagePosition> from = DecodePageToken(request->page_token(), request_key);
  if (!from.ok()) return ToGrpcStatus(from.status());
  absl::StatusOr<const Source*> source = PageSource(request->source(), *from);
  if (!source.ok()) return ToGrpcStatus(source.status());
  const CallBudget budget = peers_.ForRequest(*context, /*await_peer=*/false);
  // A first page is read at git's revision of now (a continuation at its token's): readers
  // of the same moment and revision share one page (workload_pages_), and a commit is seen
  // by the next read. A git-writer that does not answer fails the page's own read below;
  // one whose Head alone failed has its page read at the revision it serves, shared as such.
  std::string revision = from->revision;
  if (revision.empty()) {
    absl::StatusOr<ferry::v1::HeadResponse> head = (*source)->peers->git.Call(
        &GitWriterStub::Head, ferry::v1::HeadRequest(), budget.AtMost(kPeerCallTimeout));
    if (head.ok()) revision = head->revision();
  }
  ferry::v1::ListWorkloadsRequest query;  // everything the page depends on
  query.set_namespace_(request->namespace_());
  query.set_container(request->container());
  query.set_source(request->source());
  query.set_page_size(*page_size);
  query.set_page_token(absl::StrCat(revision, "\n", from->last_id));
  WorkloadPages::Outcome page =
      workload_pages_->Get(absl::StrCat((*source)->name, "\n", query.SerializeAsString()),
                           std::nullopt, budget.deadline);
  if (!page.ok()) {
    std::optional<std::string> next =
        PassOver(request->source(), **source, page.status(), request_key);
    if (!next.has_value()) return ToGrpcStatus(SourceError(**source, page.status()));
    response->add_unavailable_sources(absl::StrCat((*source)->name, ": ", page.status().message()));
    response->set_next_page_token(*next);
    return grpc::Status::OK;
  }
  *response = **page;
  return grpc::Status::OK;
}

std::string ApiService::WorkloadsRequestKey(const ferry::v1::ListWorkloadsRequest& request) {
  return absl::StrCat("ListWorkloads\n", request.namespace_(), "\n", request.container(), "\n",
                      request.source());
}

absl::StatusOr<ferry::v1::ListWorkloadsResponse> ApiService::LoadWorkloadPage(
    const std::string& key) const {
  // The key: the source's name, then the query ListWorkloads made (its page_token holding
  // the revision and the last id before the page).
  const size_t cut = key.find('\n');
  ferry::v1::ListWorkloadsRequest query;
  if (cut == std::string::npos || !query.ParseFromString(key.substr(cut + 1))) {
    return absl::InternalError("malformed page key");
  }
  absl::StatusOr<const Source*> source = sources_.Named(key.substr(0, cut), "");
  if (!source.ok()) return source.status();
  const PeerClients& peers = *(*source)->peers;
  const std::vector<std::string> position = absl::StrSplit(query.page_token(), '\n');
  if (position.size() != 2) return absl::InternalError("malformed page position");
  const int32_t page_size = query.page_size();
  const std::string request_key = WorkloadsRequestKey(query);
  // The page is shared: its calls are not the caller's (who may go away), within
  // kPeerCallTimeout; a caller waiting for it gives up at its own deadline.
  const CallBudget budget = peers.Until(absl::Now() + kPeerCallTimeout, /*await_peer=*/false);
  // A page of git's list and of the cluster's from the same id on: their merge is complete
  // up to the first id either one stops at.
  ferry::v1::ListManifestWorkloadsRequest git_request;
  git_request.set_namespace_(query.namespace_());
  git_request.set_revision(position[0]);
  git_request.set_start_after(position[1]);
  git_request.set_limit(page_size);
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git =
      peers.git.Call(&GitWriterStub::ListWorkloads, git_request, budget);
  if (!in_git.ok()) return in_git.status();
  // The cluster's view and the last sync's errors; without them the list still answers,
  // marked not ready.
  ferry::v1::ListClusterWorkloadsRequest cluster_request;
  cluster_request.set_namespace_(query.namespace_());
  cluster_request.set_start_after(position[1]);
  cluster_request.set_limit(page_size);
  absl::StatusOr<ferry::v1::ListClusterWorkloadsResponse> in_cluster =
      peers.cluster.Call(&ClusterSyncerStub::ListWorkloads, cluster_request, budget);
  absl::StatusOr<ferry::v1::SyncResult> last_sync = peers.cluster.Call(
      &ClusterSyncerStub::GetSyncStatus, ferry::v1::GetSyncStatusRequest(), budget);
  std::string page_end;  // the last id both lists are complete up to ("": the end)
  auto shorten = [&page_end](const std::string& last) {
    if (page_end.empty() || last < page_end) page_end = last;
  };
  if (in_git->more() && in_git->workloads_size() > 0) {
    shorten(in_git->workloads().rbegin()->id());
  }
  if (in_cluster.ok() && in_cluster->more() && in_cluster->workloads_size() > 0) {
    shorten(in_cluster->workloads().rbegin()->id());
  }
  auto beyond = [&page_end](const auto& w) { return !page_end.empty() && w.id() > page_end; };
  auto drop_beyond = [&beyond](auto& workloads) {
    workloads.erase(std::remove_if(workloads.begin(), workloads.end(), beyond), workloads.end());
  };
  drop_beyond(*in_git->mutable_workloads());
  if (in_cluster.ok()) drop_beyond(*in_cluster->mutable_workloads());
  // A misspelt namespace is NOT_FOUND on the first page of a list of one source; a list
  // of every source may find it in another.
  ferry::v1::ListWorkloadsRequest merging = query;
  const bool first_page =
      position[1].empty() && (sources_.all().size() == 1 || !query.source().empty());
  merging.set_page_token(first_page ? "" : "continued");
  absl::StatusOr<ferry::v1::ListWorkloadsResponse> merged =
      MergeWorkloads(merging, *in_git, in_cluster.ok() ? &*in_cluster : nullptr,
                     last_sync.ok() ? &*last_sync : nullptr);
  if (!merged.ok()) return merged.status();
  // Two pages merged hold up to twice the page: the rest comes with the next one.
  if (merged->workloads_size() > page_size) {
    merged->mutable_workloads()->DeleteSubrange(page_size, merged->workloads_size() - page_size);
    page_end = merged->workloads().rbegin()->id();
  }
  if (std::string cut_at = CutToPageBytes(*merged->mutable_workloads(),
                                          [](const ferry::v1::Workload& w) { return w.id(); });
      !cut_at.empty()) {
    page_end = cut_at;
  }
  for (ferry::v1::Workload& w : *merged->mutable_workloads()) w.set_source((*source)->name);
  merged->set_next_page_token(
      page_end.empty()
          ? NextSourceToken(query.source(), **source, request_key)
          : EncodePageToken({in_git->revision(), page_end, (*source)->name}, request_key));
  return merged;
}

grpc::Status ApiService::ListImages(grpc::ServerContext* context,
                                    const ferry::v1::ListImagesRequest* request,
                                    ferry::v1::ListImagesResponse* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  if (request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: 0 (all) or more");
  }
  absl::StatusOr<int32_t> page_size = PageSizeOf(request->page_size(), kImagePages);
  if (!page_size.ok()) return ToGrpcStatus(page_size.status());
  const std::string request_key =
      absl::StrCat("ListImages\n", request->namespace_(), "\n", request->workload(), "\n",
                   request->limit(), "\n", request->source());
  absl::StatusOr<PagePosition> from = DecodePageToken(request->page_token(), request_key);
  if (!from.ok()) return ToGrpcStatus(from.status());
  const CallBudget budget = peers_.ForRequest(*context, /*await_peer=*/false);
  ferry::v1::ListManifestWorkloadsRequest git_request;
  git_request.set_revision(from->revision);
  if (!request->workload().empty()) {
    absl::StatusOr<manifest::WorkloadId> id = manifest::WorkloadId::Parse(request->workload());
    if (!id.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("workload: ", id.status().message()));
    }
    git_request.add_ids(request->workload());  // that one workload's entry, not the index
  } else {
    git_request.set_namespace_(request->namespace_());
    git_request.set_start_after(from->last_id);
    git_request.set_limit(*page_size);
  }
  absl::StatusOr<const Source*> source =
      request->workload().empty()
          ? PageSource(request->source(), *from)
          : sources_.Holding(request->source(), {request->workload()}, budget);
  if (!source.ok()) return ToGrpcStatus(source.status());
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git =
      (*source)->peers->git.Call(&GitWriterStub::ListWorkloads, git_request, budget);
  if (!in_git.ok()) {
    std::optional<std::string> next =
        request->workload().empty()
            ? PassOver(request->source(), **source, in_git.status(), request_key)
            : std::nullopt;
    if (!next.has_value()) return ToGrpcStatus(SourceError(**source, in_git.status()));
    response->add_unavailable_sources(
        absl::StrCat((*source)->name, ": ", in_git.status().message()));
    response->set_next_page_token(*next);
    return grpc::Status::OK;
  }
  TagCache tags(*tag_lists_, budget);  // one ListTags per repository and moment, for all
  absl::StatusOr<ferry::v1::ListImagesResponse> listed =
      ListImagesOf(*request, *in_git, tags.Lookup(), absl::Now());
  if (!listed.ok()) return ToGrpcStatus(listed.status());
  std::string page_end =
      CutToPageBytes(*listed->mutable_workloads(),
                     [](const ferry::v1::WorkloadImages& w) { return w.workload(); });
  if (page_end.empty() && in_git->more() && in_git->workloads_size() > 0) {
    page_end = in_git->workloads().rbegin()->id();
  }
  for (ferry::v1::WorkloadImages& w : *listed->mutable_workloads()) w.set_source((*source)->name);
  if (!page_end.empty()) {
    listed->set_next_page_token(
        EncodePageToken({in_git->revision(), page_end, (*source)->name}, request_key));
  } else if (request->workload().empty()) {
    listed->set_next_page_token(NextSourceToken(request->source(), **source, request_key));
  }
  *response = *std::move(listed);
  return grpc::Status::OK;
}

grpc::Status ApiService::ExplainTags(grpc::ServerContext* context,
                                     const ferry::v1::ExplainTagsRequest* request,
                                     ferry::v1::ExplainTagsResponse* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  if (absl::Status s = ValidateExplainTagsRequest(*request); !s.ok()) return ToGrpcStatus(s);
  const CallBudget budget = peers_.ForRequest(*context, /*await_peer=*/false);
  absl::StatusOr<const Source*> source =
      sources_.Holding(request->source(), {request->workload()}, budget);
  if (!source.ok()) return ToGrpcStatus(source.status());
  // That one workload's entry, not the index.
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git = (*source)->peers->git.Call(
      &GitWriterStub::ListWorkloads, ByIds({request->workload()}), budget);
  if (!in_git.ok()) return ToGrpcStatus(SourceError(**source, in_git.status()));
  TagCache tags(*tag_lists_, budget);
  return Answer(ExplainTagsOf(*request, *in_git, tags.Lookup(), absl::Now()), response);
}

grpc::Status ApiService::GetIdentity(grpc::ServerContext* context,
                                     const ferry::v1::GetIdentityRequest* request,
                                     ferry::v1::Identity* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  absl::StatusOr<const Source*> source = sources_.Named(request->source(), "the deploy key");
  if (!source.ok()) return ToGrpcStatus(source.status());
  absl::StatusOr<ferry::v1::Identity> identity =
      (*source)->peers->git.Call(&GitWriterStub::GetIdentity, ferry::v1::GetDeployKeyRequest(),
                                 peers_.ForRequest(*context, /*await_peer=*/false));
  if (!identity.ok()) return ToGrpcStatus(SourceError(**source, identity.status()));
  *response = *std::move(identity);
  return grpc::Status::OK;
}

grpc::Status ApiService::Export(grpc::ServerContext* context,
                                const ferry::v1::ExportRequest* request,
                                grpc::ServerWriter<ferry::v1::ExportedResource>* writer) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  absl::StatusOr<const Source*> source = sources_.Named(request->source(), "an export");
  if (!source.ok()) return ToGrpcStatus(source.status());
  const PeerClients& peers = *(*source)->peers;
  ferry::v1::ExportResourcesRequest forward;
  *forward.mutable_namespaces() = request->namespaces();
  *forward.mutable_kinds() = request->kinds();
  const CallBudget budget = peers_.ForRequest(*context, /*await_peer=*/false, kExportTimeout);
  PeerCall call;
  absl::StatusOr<std::unique_ptr<grpc::ClientReaderInterface<ferry::v1::ExportedResource>>> stream =
      peers.cluster.Open(&ClusterSyncerStub::Export, forward, budget, call);
  if (!stream.ok()) return ToGrpcStatus(stream.status());
  ferry::v1::ExportedResource resource;
  while ((*stream)->Read(&resource)) {
    if (!writer->Write(resource)) {
      call.context().TryCancel();
      break;
    }
  }
  grpc::Status s = (*stream)->Finish();
  return s.ok() || context->IsCancelled() ? grpc::Status::OK
                                          : ToGrpcStatus(peers.cluster.Failed(s, budget));
}

grpc::Status ApiService::Release(grpc::ServerContext* context,
                                 const ferry::v1::ReleaseRequest* request,
                                 ferry::v1::Job* response) {
  if (grpc::Status s = access_.Check(*context, Role::kWrite); !s.ok()) return s;
  if (!request->has_spec()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "spec is missing: say what to release");
  }
  const ferry::v1::ReleaseSpec& spec = request->spec();
  if (absl::Status s = ValidateReleaseSpec(spec); !s.ok()) return ToGrpcStatus(s);
  if (grpc::Status s = ValidateCause(request->cause()); !s.ok()) return s;
  if (!spec.image().empty() && !spec.force()) {
    // An image the registry does not have would only break the rollout.
    ferry::v1::GetImageRequest lookup;
    lookup.set_reference(spec.image());
    lookup.set_digest_only(true);  // whether it exists: one request to the registry
    // A scanner that may be restarting is waited for (--peer_wait).
    absl::StatusOr<ferry::v1::TagInfo> info = peers_.registry.Call(
        &RegistryScannerStub::GetImage, lookup, peers_.ForRequest(*context, /*await_peer=*/true));
    if (info.status().code() == absl::StatusCode::kNotFound) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("image ", spec.image(), " is not in its registry (", info.status().message(),
                       "); push it first, or force the release"));
    }
    if (!info.ok()) return ToGrpcStatus(info.status());
  }
  absl::StatusOr<const Source*> source =
      spec.all_workloads()
          ? sources_.Named(request->source(), "a release of every workload")
          : sources_.Holding(request->source(), {spec.workloads().begin(), spec.workloads().end()},
                             peers_.ForRequest(*context, /*await_peer=*/true));
  if (!source.ok()) return ToGrpcStatus(source.status());
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_RELEASE);
  *job.mutable_cause() = request->cause();
  *job.mutable_release_spec() = spec;
  job.set_dry_run(spec.dry_run());
  job.set_source((*source)->name);
  *response = jobs_.Submit(std::move(job));
  ferry::v1::Job submitted = *response;
  // A dry run writes nothing: it may take the read-only lane, so it never waits behind
  // jobs stuck on a peer.
  Executor& executor = *(*source)->executor;
  (*source)->runner->Run(
      submitted.id(), [&executor, submitted] { executor.RunRelease(submitted); },
      submitted.dry_run());
  return grpc::Status::OK;
}

grpc::Status ApiService::UpdatePolicy(grpc::ServerContext* context,
                                      const ferry::v1::UpdatePolicyRequest* request,
                                      ferry::v1::Job* response) {
  if (grpc::Status s = access_.Check(*context, Role::kWrite); !s.ok()) return s;
  if (absl::Status s = ValidatePolicyChanges(request->changes()); !s.ok()) return ToGrpcStatus(s);
  if (grpc::Status s = ValidateCause(request->cause()); !s.ok()) return s;
  // Every workload must exist in git, and a container filter must name one of its containers.
  // A git-writer that is down answers UNAVAILABLE after --peer_wait.
  std::vector<std::string> ids;
  for (const ferry::v1::WorkloadPolicyChanges& w : request->changes()) ids.push_back(w.workload());
  const CallBudget budget = peers_.ForRequest(*context, /*await_peer=*/true);
  absl::StatusOr<const Source*> source = sources_.Holding(request->source(), ids, budget);
  if (!source.ok()) return ToGrpcStatus(source.status());
  absl::StatusOr<ferry::v1::ListManifestWorkloadsResponse> in_git =
      (*source)->peers->ListAllInGit(ByIds(ids), budget);
  if (!in_git.ok()) return ToGrpcStatus(SourceError(**source, in_git.status()));
  std::map<std::string, const ferry::v1::ManifestWorkload*> by_id;
  for (const auto& w : in_git->workloads()) by_id[w.id()] = &w;
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_POLICY);
  *job.mutable_cause() = request->cause();
  job.set_source((*source)->name);
  for (const ferry::v1::WorkloadPolicyChanges& w : request->changes()) {
    auto found = by_id.find(w.workload());
    if (found == by_id.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("workload ", w.workload(), " is not in the repository (at ",
                                       in_git->revision().substr(0, 12), ")"));
    }
    if (!found->second->policy_error().empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, found->second->policy_error());
    }
    ferry::v1::WorkloadPolicyChanges* out = job.add_policy_changes();
    *out = w;
    for (ferry::v1::PolicyChange& c : *out->mutable_changes()) {
      if (c.has_lock() && c.lock().user().empty())
        c.mutable_lock()->set_user(request->cause().user());
      if (c.has_lock() && c.lock().message().empty()) {
        c.mutable_lock()->set_message(request->cause().message());
      }
      if (!c.has_set_tag_filter()) continue;
      const auto& containers = found->second->containers();
      std::vector<std::string> names;
      for (const auto& k : containers) names.push_back(k.name());
      if (std::find(names.begin(), names.end(), c.set_tag_filter().container()) == names.end()) {
        return grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat(w.workload(), " has no container ", c.set_tag_filter().container(),
                         " (containers: ", absl::StrJoin(names, ", "), ")"));
      }
    }
  }
  *response = jobs_.Submit(std::move(job));
  ferry::v1::Job submitted = *response;
  Executor& executor = *(*source)->executor;
  (*source)->runner->Run(submitted.id(), [&executor, submitted] { executor.RunPolicy(submitted); });
  return grpc::Status::OK;
}

grpc::Status ApiService::Sync(grpc::ServerContext* context, const ferry::v1::SyncRequest* request,
                              ferry::v1::Job* response) {
  if (grpc::Status s = access_.Check(*context, Role::kWrite); !s.ok()) return s;
  if (grpc::Status s = ValidateCause(request->cause()); !s.ok()) return s;
  absl::StatusOr<const Source*> source = sources_.Named(request->source(), "a sync");
  if (!source.ok()) return ToGrpcStatus(source.status());
  ferry::v1::Job job;
  job.set_kind(ferry::v1::JOB_KIND_SYNC);
  *job.mutable_cause() = request->cause();
  job.set_source((*source)->name);
  *response = jobs_.Submit(std::move(job));
  ferry::v1::Job submitted = *response;
  Executor& executor = *(*source)->executor;
  (*source)->runner->Run(submitted.id(), [&executor, submitted] { executor.RunSync(submitted); });
  return grpc::Status::OK;
}

grpc::Status ApiService::JobFromNotes(const grpc::ServerContext& caller, const std::string& id,
                                      ferry::v1::Job* out) const {
  ferry::v1::ListJobNotesRequest request;
  request.set_job_id(id);
  request.set_limit(1);
  // Each source's notes in turn: a job committed to one repo only.
  absl::Status unanswered;
  for (const Source& source : sources_.all()) {
    absl::StatusOr<ferry::v1::ListJobNotesResponse> notes = source.peers->git.Call(
        &GitWriterStub::ListJobNotes, request, peers_.ForRequest(caller, /*await_peer=*/false));
    if (notes.ok() && !notes->jobs().empty()) {
      *out = notes->jobs(0);
      out->set_source(source.name);
      return grpc::Status::OK;
    }
    if (!notes.ok() && notes.status().code() != absl::StatusCode::kNotFound && unanswered.ok()) {
      unanswered = SourceError(source, notes.status());
    }
  }
  if (!unanswered.ok()) return ToGrpcStatus(unanswered);
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("no job ", id,
                                   ": this api does not hold it (it keeps recent "
                                   "jobs) and no commit's git note records it"));
}

grpc::Status ApiService::GetJob(grpc::ServerContext* context,
                                const ferry::v1::GetJobRequest* request, ferry::v1::Job* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  if (request->id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id is empty");
  if (std::optional<ferry::v1::Job> job = jobs_.Get(request->id())) {
    *response = *std::move(job);
    return grpc::Status::OK;
  }
  if (shared_ != nullptr) {
    // Another replica's job. A record that cannot be read (logged and counted) leaves the
    // git notes to answer.
    if (absl::StatusOr<ferry::v1::Job> recorded = SharedRecord(*context, request->id());
        recorded.ok()) {
      *response = *std::move(recorded);
      return grpc::Status::OK;
    }
  }
  return JobFromNotes(*context, request->id(), response);
}

grpc::Status ApiService::WatchJob(grpc::ServerContext* context,
                                  const ferry::v1::GetJobRequest* request,
                                  grpc::ServerWriter<ferry::v1::Job>* writer) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  if (request->id().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id is empty");
  uint64_t version = 0;
  std::optional<ferry::v1::Job> job = jobs_.Get(request->id(), &version);
  if (!job.has_value() && shared_ != nullptr) {
    if (absl::StatusOr<ferry::v1::Job> recorded = SharedRecord(*context, request->id());
        recorded.ok()) {
      return WatchRecord(context, *std::move(recorded), writer);
    }
  }
  if (!job.has_value()) {
    ferry::v1::Job recorded;
    grpc::Status s = JobFromNotes(*context, request->id(), &recorded);
    if (s.ok()) writer->Write(recorded);
    return s;
  }
  for (;;) {
    if (!writer->Write(*job)) return grpc::Status::OK;  // the caller went away
    if (job->state() == ferry::v1::JOB_STATE_SUCCEEDED ||
        job->state() == ferry::v1::JOB_STATE_FAILED) {
      return grpc::Status::OK;
    }
    const uint64_t seen = version;
    while (version == seen) {
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      job = jobs_.WaitChange(request->id(), &version, absl::Seconds(1));
      if (!job.has_value()) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            absl::StrCat("job ", request->id(), " was dropped from the history"));
      }
    }
  }
}

absl::StatusOr<ferry::v1::Job> ApiService::SharedRecord(const grpc::ServerContext& context,
                                                        const std::string& id) {
  if (!IsJobId(id)) return absl::NotFoundError(absl::StrCat("no job record for id '", id, "'"));
  const absl::Time give_up = absl::Now() + kJobRecordLag;
  for (;;) {
    absl::StatusOr<ferry::v1::Job> recorded = shared_->Get(id);
    if (recorded.status().code() != absl::StatusCode::kNotFound || context.IsCancelled() ||
        absl::Now() >= give_up) {
      return recorded;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

grpc::Status ApiService::WatchRecord(grpc::ServerContext* context, ferry::v1::Job job,
                                     grpc::ServerWriter<ferry::v1::Job>* writer) {
  const std::string id = job.id();
  const absl::Time give_up = absl::Now() + kMaxJobRecordWatch;
  std::string written;
  absl::Time unreadable_since = absl::InfiniteFuture();
  for (;;) {
    if (std::string now = job.SerializeAsString(); now != written) {
      if (!writer->Write(job)) return grpc::Status::OK;  // the caller went away
      written = std::move(now);
    }
    if (job.state() == ferry::v1::JOB_STATE_SUCCEEDED ||
        job.state() == ferry::v1::JOB_STATE_FAILED) {
      return grpc::Status::OK;
    }
    for (const absl::Time next = absl::Now() + kJobRecordPoll; absl::Now() < next;) {
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      absl::SleepFor(std::min(absl::Milliseconds(100), next - absl::Now()));
    }
    if (absl::Now() > give_up) {
      return grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("job ", id, " (run by another api replica) did not finish within ",
                       absl::FormatDuration(kMaxJobRecordWatch),
                       " of watching; if its replica is gone, its record keeps its last state"));
    }
    absl::StatusOr<ferry::v1::Job> recorded = shared_->Get(id);
    if (recorded.ok()) {
      job = *std::move(recorded);
      unreadable_since = absl::InfiniteFuture();
      continue;
    }
    if (recorded.status().code() == absl::StatusCode::kNotFound) {
      // Its replica forgot it (bounded history): the git notes may still hold it.
      ferry::v1::Job noted;
      grpc::Status s = JobFromNotes(*context, id, &noted);
      if (s.ok()) writer->Write(noted);
      return s;
    }
    // The Kubernetes API did not answer: retried for a minute, then UNAVAILABLE.
    unreadable_since = std::min(unreadable_since, absl::Now());
    if (absl::Now() - unreadable_since > absl::Minutes(1)) {
      return grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("cannot read the record of job ", id,
                       " (run by another api replica): ", recorded.status().message()));
    }
  }
}

grpc::Status ApiService::ListJobs(grpc::ServerContext* context,
                                  const ferry::v1::ListJobsRequest* request,
                                  ferry::v1::ListJobsResponse* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  if (request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: 0 (default 50) or more");
  }
  const int limit = request->limit() == 0 ? 50 : std::min(request->limit(), 1000);
  // Only one source's jobs: every job held is looked at, the others' left out.
  const Source* only = nullptr;
  if (!request->source().empty()) {
    absl::StatusOr<const Source*> source = sources_.Named(request->source(), "");
    if (!source.ok()) return ToGrpcStatus(source.status());
    only = *source;
  }
  const int wanted = only == nullptr ? limit : 1000;
  auto keep = [only](const ferry::v1::Job& j) {
    return only == nullptr || j.source() == only->name;
  };
  std::vector<ferry::v1::Job> jobs;
  std::set<std::string> known;
  for (ferry::v1::Job& j : jobs_.List(wanted)) {
    known.insert(j.id());
    if (keep(j)) jobs.push_back(std::move(j));
  }
  if (shared_ != nullptr) {
    // Every replica's jobs; unreadable records (logged and counted) leave this replica's.
    if (absl::StatusOr<std::vector<ferry::v1::Job>> recorded = shared_->List(wanted, known);
        recorded.ok()) {
      for (auto& j : *recorded) {
        if (known.insert(j.id()).second && keep(j)) jobs.push_back(std::move(j));
      }
    }
  }
  if (static_cast<int>(jobs.size()) < limit) {
    // Older jobs, from before this process started, from each source's git notes (the
    // newest of all are kept below).
    ferry::v1::ListJobNotesRequest notes_request;
    notes_request.set_limit(limit);
    for (const Source& source : sources_.all()) {
      if (only != nullptr && &source != only) continue;
      absl::StatusOr<ferry::v1::ListJobNotesResponse> notes =
          source.peers->git.Call(&GitWriterStub::ListJobNotes, notes_request,
                                 peers_.ForRequest(*context, /*await_peer=*/false));
      if (!notes.ok()) continue;
      for (const auto& j : notes->jobs()) {
        if (known.insert(j.id()).second) {
          jobs.push_back(j);
          jobs.back().set_source(source.name);
        }
      }
    }
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const ferry::v1::Job& a, const ferry::v1::Job& b) {
    return runtime::FromProtoTimestamp(a.submitted()) > runtime::FromProtoTimestamp(b.submitted());
  });
  if (static_cast<int>(jobs.size()) > limit) jobs.resize(limit);
  for (auto& j : jobs) *response->add_jobs() = std::move(j);
  return grpc::Status::OK;
}

grpc::Status ApiService::GetVersion(grpc::ServerContext* context,
                                    const ferry::v1::GetVersionRequest*,
                                    ferry::v1::VersionInfo* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  Versions::Outcome versions = versions_->Get(
      "", std::nullopt,
      peers_.ForRequest(*context, /*await_peer=*/false, kVersionCallTimeout).deadline);
  if (!versions.ok()) return ToGrpcStatus(versions.status());
  *response = **versions;
  return grpc::Status::OK;
}

absl::StatusOr<ferry::v1::VersionInfo> ApiService::LoadVersions() const {
  ferry::v1::VersionInfo out;
  out.set_version(runtime::Version());
  *out.mutable_started() = runtime::ToProtoTimestamp(started_);
  // Every Ferry server puts its version into the metadata of its answers; a cheap call to
  // each peer reads it. The answer is shared (versions_): its calls are not a caller's.
  const CallBudget budget = peers_.Until(absl::Now() + kVersionCallTimeout, /*await_peer=*/false);
  auto ask = [&](const std::string& prefix, const PeerBase& peer,
                 const std::function<void(PeerCall*)>& call) {
    PeerCall made;
    call(&made);  // answered or not: the version is in whatever metadata came back (a
                  // request's budget never fails before the call is made)
    std::string version = "unavailable";
    for (const auto* metadata : {&made.context().GetServerInitialMetadata(),
                                 &made.context().GetServerTrailingMetadata()}) {
      auto it = metadata->find(runtime::kVersionHeader);
      if (it != metadata->end()) version.assign(it->second.data(), it->second.size());
    }
    (*out.mutable_services())[absl::StrCat(prefix, peer.name())] = version;
  };
  std::vector<std::string> verify_errors;
  for (const Source& source : sources_.all()) {
    const PeerClients& peers = *source.peers;
    const std::string prefix = source.name.empty() ? "" : absl::StrCat(source.name, "/");
    if (!source.name.empty()) out.add_sources(source.name);
    ask(prefix, peers.git, [&](PeerCall* call) {
      absl::StatusOr<ferry::v1::HeadResponse> head =
          peers.git.Call(&GitWriterStub::Head, ferry::v1::HeadRequest(), budget, call);
      // The api's health stays SERVING with an unverified git head (it still serves the last
      // verified revision); this is where a status check reads why git is held back.
      if (head.ok() && !head->verify_error().empty()) {
        verify_errors.push_back(source.name.empty()
                                    ? head->verify_error()
                                    : absl::StrCat(source.name, ": ", head->verify_error()));
      }
    });
    ask(prefix, peers.cluster, [&](PeerCall* call) {
      peers.cluster
          .Call(&ClusterSyncerStub::GetSyncStatus, ferry::v1::GetSyncStatusRequest(), budget, call)
          .IgnoreError();
    });
  }
  out.set_git_verify_error(absl::StrJoin(verify_errors, "; "));
  ask("", peers_.registry, [&](PeerCall* call) {
    peers_.registry.Call(&RegistryScannerStub::Status, ferry::v1::StatusRequest(), budget, call)
        .IgnoreError();
  });
  return out;
}

}  // namespace ferry::api
