#include "services/api/api_service.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"
#include "lib/policy/tag_pattern.h"
#include "lib/runtime/proto_time.h"

namespace ferry::api {
namespace {

void SetDeadline(grpc::ClientContext& ctx, const grpc::ServerContext& caller) {
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(30);
  ctx.set_deadline(std::min(deadline, caller.deadline()));
}

// A downstream failure as the api's answer: which service, and its message.
grpc::Status Downstream(const char* service, const grpc::Status& s) {
  grpc::StatusCode code = s.error_code();
  if (code == grpc::StatusCode::DEADLINE_EXCEEDED) code = grpc::StatusCode::UNAVAILABLE;
  return grpc::Status(code, absl::StrCat(service, ": ", s.error_message()));
}

}  // namespace

ApiService::ApiService(const Access& access, ferry::v1::GitWriter::StubInterface& git,
                       ferry::v1::RegistryScanner::StubInterface& registry,
                       ferry::v1::ClusterSyncer::StubInterface& cluster)
    : access_(access), git_(git), registry_(registry), cluster_(cluster) {}

grpc::Status ApiService::ListWorkloads(grpc::ServerContext* context,
                                       const ferry::v1::ListWorkloadsRequest* request,
                                       ferry::v1::ListWorkloadsResponse* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  ferry::v1::ListManifestWorkloadsRequest git_request;
  git_request.set_namespace_(request->namespace_());
  ferry::v1::ListManifestWorkloadsResponse in_git;
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx, *context);
    grpc::Status s = git_.ListWorkloads(&ctx, git_request, &in_git);
    if (!s.ok()) return Downstream("git-writer", s);
  }
  // The cluster's view and the last sync's errors; without them the list still answers,
  // marked not ready.
  bool cluster_known = true;
  std::map<std::string, ferry::v1::ClusterWorkload> running;
  {
    ferry::v1::ListClusterWorkloadsRequest cluster_request;
    cluster_request.set_namespace_(request->namespace_());
    ferry::v1::ListClusterWorkloadsResponse in_cluster;
    grpc::ClientContext ctx;
    SetDeadline(ctx, *context);
    if (cluster_.ListWorkloads(&ctx, cluster_request, &in_cluster).ok()) {
      for (const auto& w : in_cluster.workloads()) running[w.id()] = w;
    } else {
      cluster_known = false;
    }
  }
  std::map<std::string, std::string> sync_errors;
  {
    ferry::v1::SyncResult sync;
    grpc::ClientContext ctx;
    SetDeadline(ctx, *context);
    if (cluster_.GetSyncStatus(&ctx, ferry::v1::GetSyncStatusRequest(), &sync).ok()) {
      for (const auto& e : sync.errors()) {
        if (!e.resource().empty()) sync_errors[e.resource()] = e.error();
      }
    }
  }
  auto has_container = [&](const auto& containers) {
    if (request->container().empty()) return true;
    return std::any_of(containers.begin(), containers.end(),
                       [&](const ferry::v1::Container& c) { return c.name() == request->container(); });
  };
  std::vector<ferry::v1::Workload> out;
  for (const ferry::v1::ManifestWorkload& g : in_git.workloads()) {
    if (!has_container(g.containers())) continue;
    ferry::v1::Workload w;
    w.set_id(g.id());
    *w.mutable_containers() = g.containers();
    *w.mutable_policy() = g.policy();
    w.set_path(g.path());
    auto live = running.find(g.id());
    if (live != running.end()) {
      *w.mutable_rollout() = live->second.rollout();
      running.erase(live);
    } else {
      w.mutable_rollout()->set_state(ferry::v1::ROLLOUT_STATE_UNKNOWN);
      w.mutable_rollout()->add_messages(cluster_known ? "not in the cluster"
                                                      : "the cluster state is not known");
    }
    if (!cluster_known) w.set_read_only(ferry::v1::READ_ONLY_REASON_NOT_READY);
    if (auto e = sync_errors.find(g.id()); e != sync_errors.end()) w.set_sync_error(e->second);
    out.push_back(std::move(w));
  }
  for (auto& [id, live] : running) {  // in the cluster, not in git
    if (!has_container(live.containers())) continue;
    ferry::v1::Workload w;
    w.set_id(id);
    *w.mutable_containers() = live.containers();
    *w.mutable_rollout() = live.rollout();
    w.set_read_only(ferry::v1::READ_ONLY_REASON_NOT_IN_REPO);
    out.push_back(std::move(w));
  }
  std::sort(out.begin(), out.end(),
            [](const ferry::v1::Workload& a, const ferry::v1::Workload& b) { return a.id() < b.id(); });
  for (ferry::v1::Workload& w : out) *response->add_workloads() = std::move(w);
  response->set_revision(in_git.revision());
  return grpc::Status::OK;
}

namespace {

// The scanner's ordering that matches a filter's ranking.
ferry::v1::TagOrdering OrderingFor(const policy::TagPattern& pattern) {
  switch (pattern.kind()) {
    case policy::PatternKind::kSemver: return ferry::v1::TAG_ORDERING_SEMVER;
    case policy::PatternKind::kNumerical: return ferry::v1::TAG_ORDERING_NUMERICAL;
    case policy::PatternKind::kAlphabetical: return ferry::v1::TAG_ORDERING_ALPHABETICAL;
    default: return ferry::v1::TAG_ORDERING_CREATED;
  }
}

bool ValidWorkloadId(const std::string& id) {
  const size_t colon = id.find(':');
  const size_t slash = id.find('/', colon == std::string::npos ? 0 : colon);
  return colon != std::string::npos && colon > 0 && slash != std::string::npos &&
         slash > colon + 1 && slash + 1 < id.size();
}

}  // namespace

grpc::Status ApiService::ListImages(grpc::ServerContext* context,
                                    const ferry::v1::ListImagesRequest* request,
                                    ferry::v1::ListImagesResponse* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  if (request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit: 0 (all) or more");
  }
  std::string ns = request->namespace_();
  if (!request->workload().empty()) {
    if (!ValidWorkloadId(request->workload())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("workload '", request->workload(),
                                       "' is not of the form namespace:kind/name"));
    }
    ns = request->workload().substr(0, request->workload().find(':'));
  }
  ferry::v1::ListManifestWorkloadsRequest git_request;
  git_request.set_namespace_(ns);
  ferry::v1::ListManifestWorkloadsResponse in_git;
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx, *context);
    grpc::Status s = git_.ListWorkloads(&ctx, git_request, &in_git);
    if (!s.ok()) return Downstream("git-writer", s);
  }
  // One ListTags per repository and ordering.
  std::map<std::pair<std::string, int>, std::pair<grpc::Status, ferry::v1::ListTagsResponse>> tags;
  auto tags_of = [&](const std::string& repository, ferry::v1::TagOrdering ordering)
      -> const std::pair<grpc::Status, ferry::v1::ListTagsResponse>& {
    auto key = std::make_pair(repository, static_cast<int>(ordering));
    auto it = tags.find(key);
    if (it != tags.end()) return it->second;
    ferry::v1::ListTagsRequest list;
    list.set_repository(repository);
    list.set_ordering(ordering);
    ferry::v1::ListTagsResponse out;
    grpc::ClientContext ctx;
    SetDeadline(ctx, *context);
    grpc::Status s = registry_.ListTags(&ctx, list, &out);
    return tags.emplace(key, std::make_pair(s, std::move(out))).first->second;
  };
  bool found = request->workload().empty();
  for (const ferry::v1::ManifestWorkload& w : in_git.workloads()) {
    if (!request->workload().empty() && w.id() != request->workload()) continue;
    found = true;
    ferry::v1::WorkloadImages* out = response->add_workloads();
    out->set_workload(w.id());
    for (const ferry::v1::Container& c : w.containers()) {
      ferry::v1::ContainerImages* ci = out->add_containers();
      ci->set_container(c.name());
      ci->set_current_image(c.image());
      if (!c.has_image_ref()) {
        ci->set_error(absl::StrCat("'", c.image(), "' is not an image reference"));
        continue;
      }
      ci->set_repository(c.image_ref().registry() + "/" + c.image_ref().repository());
      const auto& filters = w.policy().tag_filters();
      std::string filter = filters.count(c.name()) ? filters.at(c.name()) : w.policy().tag_all();
      absl::StatusOr<policy::TagPattern> pattern =
          filter.empty() ? policy::TagPattern::Any() : policy::TagPattern::Parse(filter);
      if (!pattern.ok()) {
        ci->set_tag_filter(filter);
        ci->set_error(absl::StrCat("invalid tag filter: ", pattern.status().message()));
        continue;
      }
      ci->set_tag_filter(pattern->ToString());
      const auto& [status, listed] = tags_of(ci->repository(), OrderingFor(*pattern));
      if (!status.ok()) {
        ci->set_error(absl::StrCat("registry-scanner: ", status.error_message()));
        continue;
      }
      if (!listed.fresh()) ci->set_error(listed.last_error());
      ci->set_total(listed.total());
      std::vector<policy::TagCandidate> candidates;
      int shown = 0;
      for (const ferry::v1::TagInfo& t : listed.tags()) {
        const bool matches = pattern->Matches(t.tag());
        if (matches) {
          ci->set_filtered(ci->filtered() + 1);
          policy::TagCandidate candidate;
          candidate.tag = t.tag();
          if (t.has_created()) candidate.created = runtime::FromProtoTimestamp(t.created());
          candidates.push_back(std::move(candidate));
        }
        if (request->limit() > 0 && shown >= request->limit()) continue;
        ++shown;
        ferry::v1::ImageTag* it = ci->add_tags();
        *it->mutable_info() = t;
        it->set_matches_filter(matches);
        it->set_current(t.tag() == c.image_ref().tag());
      }
      ci->set_omitted(listed.tags_size() - shown);
      std::vector<policy::TagCandidate> ranked = pattern->Rank(std::move(candidates));
      if (!ranked.empty()) ci->set_latest_filtered(ranked.front().tag);
    }
  }
  if (!found) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("workload ", request->workload(), " is not in the repository"));
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::GetIdentity(grpc::ServerContext* context,
                                     const ferry::v1::GetIdentityRequest*,
                                     ferry::v1::Identity* response) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  grpc::ClientContext ctx;
  SetDeadline(ctx, *context);
  grpc::Status s = git_.GetIdentity(&ctx, ferry::v1::GetDeployKeyRequest(), response);
  return s.ok() ? s : Downstream("git-writer", s);
}

grpc::Status ApiService::Export(grpc::ServerContext* context, const ferry::v1::ExportRequest* request,
                                grpc::ServerWriter<ferry::v1::ExportedResource>* writer) {
  if (grpc::Status s = access_.Check(*context, Role::kRead); !s.ok()) return s;
  ferry::v1::ExportResourcesRequest forward;
  *forward.mutable_namespaces() = request->namespaces();
  *forward.mutable_kinds() = request->kinds();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::min(std::chrono::system_clock::now() + std::chrono::minutes(5),
                            context->deadline()));
  auto stream = cluster_.Export(&ctx, forward);
  ferry::v1::ExportedResource resource;
  while (stream->Read(&resource)) {
    if (!writer->Write(resource)) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status s = stream->Finish();
  return s.ok() || context->IsCancelled() ? grpc::Status::OK : Downstream("cluster-syncer", s);
}

}  // namespace ferry::api
