#include "services/git-writer/git_writer_service.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lib/convert/container.h"
#include "lib/image/reference.h"
#include "lib/manifest/policy.h"
#include "lib/manifest/workload.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/grpc_status.h"
#include "services/git-writer/identity.h"

namespace ferry::git_writer {
namespace {

void FillHead(const HeadInfo& head, const std::string& branch, ferry::v1::HeadResponse* out) {
  out->set_revision(head.revision);
  out->set_branch(branch);
  if (!head.revision.empty()) *out->mutable_commit_time() = runtime::ToProtoTimestamp(head.commit_time);
  *out->mutable_last_fetch() = runtime::ToProtoTimestamp(head.last_fetch);
  out->set_fetch_error(head.fetch_error);
}

bool IsFullRevision(const std::string& rev) {
  if (rev.size() != 40) return false;
  for (char c : rev) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateRevision(const std::string& rev) {
  if (rev.empty() || IsFullRevision(rev)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("revision \"", rev, "\" is not a full 40-hex commit id"));
}

absl::Status ValidateWorkload(const std::string& id) {
  size_t colon = id.find(':');
  size_t slash = id.find('/', colon == std::string::npos ? 0 : colon);
  if (colon == std::string::npos || colon == 0 || slash == std::string::npos ||
      slash == colon + 1 || slash + 1 == id.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workload \"", id, "\" is not an id; use namespace:kind/name, e.g. "
        "default:deployment/helloworld"));
  }
  return absl::OkStatus();
}

absl::StatusOr<EditRequest> ToEdit(const ferry::v1::Edit& edit) {
  if (absl::Status s = ValidateWorkload(edit.workload()); !s.ok()) return s;
  EditRequest out;
  out.workload = edit.workload();
  switch (edit.change_case()) {
    case ferry::v1::Edit::kImage: {
      const ferry::v1::ImageEdit& image = edit.image();
      if (image.container().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(edit.workload(), ": image edit needs a container"));
      }
      absl::StatusOr<image::Reference> to = image::Reference::Parse(image.to_image());
      if (!to.ok()) return to.status();
      manifest::ImageChange change{image.container(), image.to_image(), std::nullopt};
      if (!image.from_image().empty()) change.from_image = image.from_image();
      out.image = change;
      return out;
    }
    case ferry::v1::Edit::kPolicy: {
      const ferry::v1::PolicyChange& p = edit.policy();
      manifest::PolicyUpdate u;
      switch (p.change_case()) {
        case ferry::v1::PolicyChange::kAutomate: u.automated = true; break;
        case ferry::v1::PolicyChange::kDeautomate: u.automated = false; break;
        case ferry::v1::PolicyChange::kLock:
          u.locked = true;
          u.locked_user = p.lock().user();
          u.locked_msg = p.lock().message();
          break;
        case ferry::v1::PolicyChange::kUnlock: u.locked = false; break;
        case ferry::v1::PolicyChange::kSetTagFilter:
          if (p.set_tag_filter().container().empty()) {
            return absl::InvalidArgumentError("set_tag_filter needs a container");
          }
          u.tag_filters[p.set_tag_filter().container()] = p.set_tag_filter().pattern();
          break;
        case ferry::v1::PolicyChange::kRemoveTagFilter:
          u.tag_filters[p.remove_tag_filter()] = std::nullopt;
          break;
        case ferry::v1::PolicyChange::kSetTagAll:
          u.tag_all = std::optional<std::string>(p.set_tag_all());
          break;
        case ferry::v1::PolicyChange::kRemoveTagAll:
          u.tag_all = std::optional<std::string>();
          break;
        default:
          return absl::InvalidArgumentError(absl::StrCat(edit.workload(), ": empty policy change"));
      }
      out.policy = u;
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(edit.workload(), ": edit has neither an image nor a policy change"));
  }
}

void FillPolicy(const manifest::Policies& p, ferry::v1::Policy* out) {
  out->set_automated(p.automated);
  out->set_locked(p.locked);
  out->set_locked_user(p.locked_user);
  out->set_locked_msg(p.locked_msg);
  out->set_ignore(p.ignore == manifest::IgnoreMode::kAll        ? ferry::v1::IGNORE_MODE_ALL
                  : p.ignore == manifest::IgnoreMode::kSyncOnly ? ferry::v1::IGNORE_MODE_SYNC_ONLY
                                                                : ferry::v1::IGNORE_MODE_UNSPECIFIED);
  for (const auto& [c, pattern] : p.tag_filters) (*out->mutable_tag_filters())[c] = pattern;
  out->set_tag_all(p.tag_all);
}

}  // namespace

grpc::Status GitWriterService::Head(grpc::ServerContext*, const ferry::v1::HeadRequest*,
                                    ferry::v1::HeadResponse* response) {
  HeadInfo head = writer_.CurrentHead();
  if (head.revision.empty()) {
    absl::StatusOr<HeadInfo> fetched = writer_.Refresh();
    if (!fetched.ok()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("no revision yet: ", fetched.status().message()));
    }
    head = *fetched;
  }
  FillHead(head, options_.branch, response);
  return grpc::Status::OK;
}

grpc::Status GitWriterService::WatchHead(grpc::ServerContext* context,
                                         const ferry::v1::WatchHeadRequest*,
                                         grpc::ServerWriter<ferry::v1::HeadResponse>* writer) {
  std::string sent;
  HeadInfo head = writer_.CurrentHead();
  while (!context->IsCancelled()) {
    if (!head.revision.empty() && head.revision != sent) {
      ferry::v1::HeadResponse response;
      FillHead(head, options_.branch, &response);
      if (!writer->Write(response)) break;
      sent = head.revision;
    }
    head = writer_.WaitForHeadChange(sent, absl::Seconds(1));
  }
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ReadManifests(grpc::ServerContext* context,
                                             const ferry::v1::ReadManifestsRequest* request,
                                             grpc::ServerWriter<ferry::v1::ManifestFile>* writer) {
  if (absl::Status s = ValidateRevision(request->revision()); !s.ok()) return ToGrpcStatus(s);
  std::vector<std::string> paths(request->paths().begin(), request->paths().end());
  std::string revision = request->revision().empty() ? writer_.CurrentHead().revision
                                                     : request->revision();
  absl::StatusOr<std::vector<RepoFile>> files = writer_.ReadManifests(revision, paths);
  if (!files.ok()) return ToGrpcStatus(files.status());
  for (const RepoFile& f : *files) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    ferry::v1::ManifestFile out;
    out.set_path(f.path);
    out.set_content(f.content);
    out.set_revision(revision);
    if (!writer->Write(out)) break;
  }
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ListWorkloads(grpc::ServerContext*,
                                             const ferry::v1::ListManifestWorkloadsRequest* request,
                                             ferry::v1::ListManifestWorkloadsResponse* response) {
  if (absl::Status s = ValidateRevision(request->revision()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::shared_ptr<const Index>> index = writer_.IndexAt(request->revision());
  if (!index.ok()) return ToGrpcStatus(index.status());
  response->set_revision((*index)->revision);
  response->set_readonly(options_.readonly);
  for (const manifest::Resource& r : (*index)->loaded.resources) {
    if (!manifest::IsWorkloadKind(r.kind)) continue;
    if (!request->namespace_().empty() && r.namespace_ != request->namespace_()) continue;
    ferry::v1::ManifestWorkload* w = response->add_workloads();
    w->set_id(r.id);
    for (const manifest::Container& c : manifest::FindContainers(r)) {
      convert::FillContainer(c.name, c.image, c.init, w->add_containers());
    }
    FillPolicy(manifest::ReadPolicies(r.annotations), w->mutable_policy());
    w->set_path(r.source.path);
    w->set_document(r.source.document);
    w->set_line(r.source.line);
  }
  for (const manifest::LoadError& e : (*index)->loaded.errors) {
    response->add_load_errors(e.ToString());
  }
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ApplyUpdates(grpc::ServerContext*,
                                            const ferry::v1::ApplyUpdatesRequest* request,
                                            ferry::v1::ApplyUpdatesResponse* response) {
  if (request->edits().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no edits given");
  }
  ApplyRequest apply;
  for (const ferry::v1::Edit& edit : request->edits()) {
    absl::StatusOr<EditRequest> e = ToEdit(edit);
    if (!e.ok()) return ToGrpcStatus(e.status());
    apply.edits.push_back(*std::move(e));
  }
  apply.message = request->message();
  apply.dry_run = request->dry_run();
  if (!request->cause().user().empty()) {
    // "Name <email>" or a bare name.
    std::string user = request->cause().user();
    Signature author{user, "ferry@localhost"};
    size_t lt = user.find('<');
    size_t gt = user.find('>', lt == std::string::npos ? 0 : lt);
    if (lt != std::string::npos && gt != std::string::npos) {
      author.name = std::string(absl::StripAsciiWhitespace(user.substr(0, lt)));
      author.email = user.substr(lt + 1, gt - lt - 1);
    }
    apply.author = author;
  }
  if (request->has_job()) {
    google::protobuf::util::JsonPrintOptions json;
    json.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(request->job(), &apply.note, json);
  }
  absl::StatusOr<ApplyOutcome> out = writer_.Apply(apply);
  if (!out.ok()) return ToGrpcStatus(out.status());
  response->set_revision(out->revision);
  response->set_no_changes(out->no_changes);
  response->set_diff(out->diff);
  response->set_retries(out->retries);
  absl::Status first_error;
  bool any_ok = false;
  for (int i = 0; i < request->edits_size(); ++i) {
    const EditOutcome& e = out->edits[i];
    ferry::v1::EditResult* r = response->add_results();
    *r->mutable_edit() = request->edits(i);
    r->set_code(static_cast<int>(e.status.code()));
    r->set_error(std::string(e.status.message()));
    r->set_path(e.path);
    if (e.status.ok()) any_ok = true;
    else if (first_error.ok()) first_error = e.status;
  }
  // A request whose every edit failed fails with the first edit's code, so a single edit's
  // NOT_FOUND / ABORTED / INVALID_ARGUMENT reaches the caller as the call's status.
  if (!any_ok) return ToGrpcStatus(first_error);
  return grpc::Status::OK;
}

grpc::Status GitWriterService::Notify(grpc::ServerContext*, const ferry::v1::NotifyRequest*,
                                      ferry::v1::HeadResponse* response) {
  absl::StatusOr<HeadInfo> head = writer_.Refresh();
  if (!head.ok()) return ToGrpcStatus(head.status());
  FillHead(*head, options_.branch, response);
  return grpc::Status::OK;
}

grpc::Status GitWriterService::SetSyncMarker(grpc::ServerContext*,
                                             const ferry::v1::SetSyncMarkerRequest* request,
                                             ferry::v1::SyncMarker* response) {
  if (!IsFullRevision(request->revision())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "revision must be a full 40-hex commit id");
  }
  if (absl::Status s = writer_.SetSyncMarker(options_.sync_tag, request->revision()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  response->set_name(options_.sync_tag);
  response->set_revision(request->revision());
  *response->mutable_time() = runtime::ToProtoTimestamp(absl::Now());
  return grpc::Status::OK;
}

grpc::Status GitWriterService::GetSyncMarker(grpc::ServerContext*,
                                             const ferry::v1::GetSyncMarkerRequest*,
                                             ferry::v1::SyncMarker* response) {
  absl::StatusOr<std::string> rev = writer_.GetSyncMarker(options_.sync_tag);
  if (!rev.ok()) return ToGrpcStatus(rev.status());
  response->set_name(options_.sync_tag);
  response->set_revision(*rev);
  return grpc::Status::OK;
}

grpc::Status GitWriterService::GetIdentity(grpc::ServerContext*,
                                           const ferry::v1::GetDeployKeyRequest*,
                                           ferry::v1::Identity* response) {
  if (options_.ssh_key_path.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "no deploy key is configured (--git_ssh_key_path)");
  }
  absl::StatusOr<DeployKey> key = ReadDeployKey(options_.ssh_key_path);
  if (!key.ok()) return ToGrpcStatus(key.status());
  response->set_public_key(key->public_key);
  response->set_fingerprint(key->fingerprint);
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ListJobNotes(grpc::ServerContext*,
                                            const ferry::v1::ListJobNotesRequest* request,
                                            ferry::v1::ListJobNotesResponse* response) {
  int limit = request->limit() > 0 ? std::min(request->limit(), 1000) : 50;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> notes = writer_.ListNotes(
      request->job_id().empty() ? limit : 1000);
  if (!notes.ok()) return ToGrpcStatus(notes.status());
  for (const auto& [commit, text] : *notes) {
    ferry::v1::Job job;
    if (!google::protobuf::util::JsonStringToMessage(text, &job).ok()) continue;
    if (!request->job_id().empty() && job.id() != request->job_id()) continue;
    if (job.revision().empty()) job.set_revision(commit);
    *response->add_jobs() = job;
    if (response->jobs_size() >= limit) break;
  }
  if (!request->job_id().empty() && response->jobs().empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no job ", request->job_id(), " in the git notes"));
  }
  return grpc::Status::OK;
}

}  // namespace ferry::git_writer
