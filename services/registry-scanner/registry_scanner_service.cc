#include "services/registry-scanner/registry_scanner_service.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/image/reference.h"
#include "lib/policy/tag_pattern.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/grpc_status.h"

namespace ferry::registry_scanner {
namespace {

void FillTag(const std::string& tag, const TagMetadata& m, ferry::v1::TagInfo* out,
             std::optional<absl::Time> first_seen = std::nullopt) {
  if (first_seen) *out->mutable_first_seen() = runtime::ToProtoTimestamp(*first_seen);
  out->set_tag(tag);
  out->set_digest(m.digest);
  out->set_media_type(m.media_type);
  if (m.created) *out->mutable_created() = runtime::ToProtoTimestamp(*m.created);
  switch (m.created_source) {
    case CreatedSource::kConfig:
      out->set_created_source(ferry::v1::CREATED_SOURCE_CONFIG);
      break;
    case CreatedSource::kOciLabel:
      out->set_created_source(ferry::v1::CREATED_SOURCE_OCI_LABEL);
      break;
    case CreatedSource::kLabelSchema:
      out->set_created_source(ferry::v1::CREATED_SOURCE_LABEL_SCHEMA);
      break;
    case CreatedSource::kNone:
      break;
  }
  for (const Platform& p : m.platforms) {
    ferry::v1::Platform* pp = out->add_platforms();
    pp->set_os(p.os);
    pp->set_architecture(p.architecture);
    pp->set_variant(p.variant);
    pp->set_digest(p.digest);
  }
  for (const auto& [k, v] : m.labels) (*out->mutable_labels())[k] = v;
  out->set_incomplete_reason(m.incomplete_reason);
}

// The lib/policy ranking a ListTags ordering names: the kind's order without a filter
// (TagPattern::Order ranks every tag the kind can rank, filter or not).
policy::TagPattern OrderingPattern(ferry::v1::TagOrdering ordering) {
  const char* text = "glob:*";
  switch (ordering) {
    case ferry::v1::TAG_ORDERING_SEMVER:
      text = "semver:*";
      break;
    case ferry::v1::TAG_ORDERING_NUMERICAL:
      text = "numerical:";
      break;
    case ferry::v1::TAG_ORDERING_ALPHABETICAL:
      text = "alphabetical:";
      break;
    default:
      break;
  }
  return *policy::TagPattern::Parse(text);
}

// Orders tags best first (lib/policy's ranking); tags that the ordering cannot rank are left
// out.
std::vector<TagRecord> Order(std::vector<TagRecord> tags, ferry::v1::TagOrdering ordering) {
  std::map<std::string, TagRecord*> by_tag;
  std::vector<policy::TagCandidate> candidates;
  candidates.reserve(tags.size());
  for (TagRecord& t : tags) {
    by_tag.emplace(t.tag, &t);
    candidates.emplace_back(t.tag, t.metadata.created, t.metadata.incomplete_reason);
  }
  std::vector<TagRecord> out;
  for (const policy::TagCandidate& c : OrderingPattern(ordering).Order(std::move(candidates))) {
    out.push_back(std::move(*by_tag.at(c.tag)));
  }
  return out;
}

}  // namespace

grpc::Status RegistryScannerService::Watch(grpc::ServerContext*,
                                           const ferry::v1::WatchRequest* request,
                                           ferry::v1::WatchResponse* response) {
  // A refused repository is named in the answer and the others are watched: the call is OK,
  // so the caller sees what changed (gRPC drops the response body of a failed call).
  std::vector<std::string> repos;
  std::vector<ferry::v1::RefusedRepository> refused;
  for (const std::string& repository : request->repositories()) {
    absl::StatusOr<image::Reference> checked = policy_.CheckRepository(repository);
    if (checked.ok()) {
      repos.push_back(repository);
      continue;
    }
    ferry::v1::RefusedRepository& r = refused.emplace_back();
    r.set_repository(repository);
    r.set_reason(std::string(checked.status().message()));
    r.set_code(static_cast<int>(checked.status().code()));
  }
  auto result = scanner_.Watch(repos);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const std::string& a : result->first) response->add_added(a);
  for (const std::string& r : result->second) response->add_removed(r);
  for (ferry::v1::RefusedRepository& r : refused) *response->add_refused() = std::move(r);
  return grpc::Status::OK;
}

grpc::Status RegistryScannerService::ListTags(grpc::ServerContext*,
                                              const ferry::v1::ListTagsRequest* request,
                                              ferry::v1::ListTagsResponse* response) {
  if (request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit must be 0 (all) or more");
  }
  if (absl::StatusOr<image::Reference> checked = policy_.CheckRepository(request->repository());
      !checked.ok()) {
    return ToGrpcStatus(checked.status());
  }
  // The api asks while it answers someone (ListImages, a release's planning): a repository
  // never scanned is scanned ahead of the due scans.
  absl::StatusOr<std::vector<TagRecord>> tags =
      scanner_.Tags(request->repository(), http::Priority::kInteractive);
  if (!tags.ok()) return ToGrpcStatus(tags.status());
  auto repos = scanner_.Repositories();
  response->set_repository(request->repository());
  response->set_fresh(true);
  if (repos.ok()) {
    for (const RepositoryRecord& r : *repos) {
      if (r.name != request->repository()) continue;
      response->set_fresh(r.last_error.empty());
      response->set_last_error(r.last_error);
      if (r.last_scan) *response->mutable_last_scan() = runtime::ToProtoTimestamp(*r.last_scan);
    }
  }
  std::vector<TagRecord> ordered = Order(*std::move(tags), request->ordering());
  response->set_total(static_cast<int32_t>(ordered.size()));
  for (const TagRecord& t : ordered) {
    if (request->limit() > 0 && response->tags_size() >= request->limit()) break;
    FillTag(t.tag, t.metadata, response->add_tags(), t.first_seen);
  }
  return grpc::Status::OK;
}

grpc::Status RegistryScannerService::GetImage(grpc::ServerContext*,
                                              const ferry::v1::GetImageRequest* request,
                                              ferry::v1::TagInfo* response) {
  absl::StatusOr<image::Reference> ref = image::Reference::Parse(request->reference());
  if (!ref.ok()) return ToGrpcStatus(ref.status());
  if (absl::Status allowed = policy_.CheckRegistry(ref->Registry()); !allowed.ok()) {
    return ToGrpcStatus(allowed);
  }
  if (ref->tag().empty() && ref->digest().empty()) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("reference \"", request->reference(), "\" has no tag or digest"));
  }
  // The cache as it is: a repository not scanned yet is not scanned for one tag (its first
  // scan, queued behind the others for the host's budget, took seconds at a start).
  if (ref->digest().empty()) {
    absl::StatusOr<std::vector<TagRecord>> tags = scanner_.KnownTags(ref->Repository());
    if (tags.ok()) {
      for (const TagRecord& t : *tags) {
        if (t.tag == ref->tag()) {
          FillTag(t.tag, t.metadata, response, t.first_seen);
          return grpc::Status::OK;
        }
      }
    }
  }
  // Not known yet: asked of the registry now, ahead of the scans waiting for the host's budget
  // (a release waits for this answer).
  const std::string reference = ref->digest().empty() ? ref->tag() : ref->digest();
  if (request->digest_only()) {
    // One request. INTERNAL is an answer without the digest header or a refusal of HEAD
    // (405 and the like): the full read below. Any other failure (a timeout, 401, 429, 5xx)
    // would fail it too, after more requests to a registry that may be struggling.
    absl::StatusOr<std::string> digest = client_.ManifestDigest(
        ref->Registry(), ref->Path(), reference, http::Priority::kInteractive);
    if (digest.ok()) {
      response->set_tag(ref->tag());
      response->set_digest(*digest);
      return grpc::Status::OK;
    }
    if (!absl::IsInternal(digest.status())) return ToGrpcStatus(digest.status());
  }
  absl::StatusOr<TagMetadata> m = FetchTagMetadata(client_, ref->Registry(), ref->Path(), reference,
                                                   metadata_, http::Priority::kInteractive);
  if (!m.ok()) return ToGrpcStatus(m.status());
  FillTag(ref->tag(), *m, response);
  return grpc::Status::OK;
}

grpc::Status RegistryScannerService::WatchEvents(grpc::ServerContext* context,
                                                 const ferry::v1::WatchEventsRequest* request,
                                                 grpc::ServerWriter<ferry::v1::TagEvent>* writer) {
  const auto refused = [this]() -> std::optional<grpc::Status> {
    if (!permit_) return std::nullopt;
    absl::Status permit = permit_();
    if (permit.ok()) return std::nullopt;
    return ToGrpcStatus(permit);
  };
  if (std::optional<grpc::Status> s = refused()) return *s;
  std::set<std::string> only(request->repositories().begin(), request->repositories().end());
  uint64_t seen = scanner_.LastSequence();
  if (request->from_sequence() > 0 && request->from_sequence() <= seen) {
    seen = request->from_sequence() - 1;
  }
  // Initial metadata tells the client the subscription is in place: an event emitted after
  // it arrives is never missed.
  writer->SendInitialMetadata();
  while (!context->IsCancelled()) {
    if (std::optional<grpc::Status> s = refused()) return *s;
    for (const TagEvent& e : scanner_.WaitForEvents(seen, absl::Seconds(1))) {
      seen = std::max(seen, e.sequence);
      if (!only.empty() && !only.count(e.repository)) continue;
      ferry::v1::TagEvent out;
      switch (e.kind) {
        case TagEvent::Kind::kNewTag:
          out.set_kind(ferry::v1::TAG_EVENT_KIND_NEW_TAG);
          break;
        case TagEvent::Kind::kTagMoved:
          out.set_kind(ferry::v1::TAG_EVENT_KIND_TAG_MOVED);
          break;
        case TagEvent::Kind::kRepositoryError:
          out.set_kind(ferry::v1::TAG_EVENT_KIND_REPOSITORY_ERROR);
          break;
      }
      out.set_repository(e.repository);
      if (e.kind != TagEvent::Kind::kRepositoryError) {
        FillTag(e.tag.tag, e.tag.metadata, out.mutable_tag(), e.tag.first_seen);
      }
      out.set_previous_digest(e.previous_digest);
      out.set_error(e.error);
      out.set_sequence(e.sequence);
      *out.mutable_time() = runtime::ToProtoTimestamp(e.time);
      if (!writer->Write(out)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status RegistryScannerService::Status(grpc::ServerContext*, const ferry::v1::StatusRequest*,
                                            ferry::v1::StatusResponse* response) {
  auto repos = scanner_.Repositories();
  if (!repos.ok()) return ToGrpcStatus(repos.status());
  auto counts = scanner_.TagCounts();
  if (!counts.ok()) return ToGrpcStatus(counts.status());
  for (const RepositoryRecord& r : *repos) {
    if (!r.watched) continue;
    ferry::v1::RepositoryStatus* s = response->add_repositories();
    s->set_repository(r.name);
    if (r.last_scan) *s->mutable_last_scan() = runtime::ToProtoTimestamp(*r.last_scan);
    *s->mutable_next_scan() = runtime::ToProtoTimestamp(scanner_.NextScan(r));
    s->set_last_error(r.last_error);
    auto count = counts->find(r.name);
    s->set_tag_count(count == counts->end() ? 0 : count->second);
  }
  return grpc::Status::OK;
}

}  // namespace ferry::registry_scanner
