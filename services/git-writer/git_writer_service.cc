#include "services/git-writer/git_writer_service.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/convert/container.h"
#include "lib/convert/json.h"
#include "lib/convert/policy.h"
#include "lib/image/reference.h"
#include "lib/kustomize/layout.h"
#include "lib/limits/limits.h"
#include "lib/manifest/policy.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"
#include "lib/manifest/workload_id.h"
#include "lib/manifest/workload_selection.h"
#include "lib/names/names.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/proto_time.h"
#include "lib/status/grpc_status.h"
#include "services/git-writer/identity.h"
#include "services/git-writer/libgit2_repository.h"

namespace ferry::git_writer {
namespace {

void FillHead(const HeadInfo& head, const std::string& branch, ferry::v1::HeadResponse* out) {
  out->set_revision(head.revision);
  out->set_branch(branch);
  if (!head.revision.empty())
    *out->mutable_commit_time() = runtime::ToProtoTimestamp(head.commit_time);
  *out->mutable_last_fetch() = runtime::ToProtoTimestamp(head.last_fetch);
  out->set_fetch_error(head.fetch_error);
  out->set_verify_error(head.verify_error);
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

// The name fields of a policy change and an image edit: one line each, bounded.
absl::Status ValidateEditNames(const ferry::v1::Edit& edit) {
  const std::string prefix = edit.workload() + ": ";
  std::vector<std::pair<std::string, std::string>> fields;
  if (edit.has_image()) {
    fields = {{"container", edit.image().container()},
              {"from_image", edit.image().from_image()},
              {"to_image", edit.image().to_image()}};
  } else if (edit.has_policy()) {
    const ferry::v1::PolicyChange& p = edit.policy();
    fields = {{"lock user", p.lock().user()},
              {"lock message", p.lock().message()},
              {"tag filter container", p.set_tag_filter().container()},
              {"tag filter", p.set_tag_filter().pattern()},
              {"tag filter container", p.remove_tag_filter()},
              {"tag filter", p.set_tag_all()}};
  }
  for (const auto& [what, value] : fields) {
    if (absl::Status s = names::ValidateName(what, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<EditRequest> ToEdit(const ferry::v1::Edit& edit) {
  if (absl::Status s = manifest::WorkloadId::Parse(edit.workload()).status(); !s.ok()) return s;
  if (absl::Status s = ValidateEditNames(edit); !s.ok()) return s;
  EditRequest out;
  out.workload = edit.workload();
  switch (edit.change_case()) {
    case ferry::v1::Edit::kImage: {
      const ferry::v1::ImageEdit& image = edit.image();
      if (image.container().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(edit.workload(), ": image edit needs a container"));
      }
      absl::StatusOr<image::Reference> to = image::Reference::Parse(image.to_image());
      if (!to.ok()) return to.status();
      manifest::ImageChange change{image.container(), image.to_image(), std::nullopt};
      if (!image.from_image().empty()) change.from_image = image.from_image();
      out.image = change;
      return out;
    }
    case ferry::v1::Edit::kPolicy: {
      absl::StatusOr<manifest::PolicyUpdate> update = convert::ToPolicyUpdate(edit.policy());
      if (!update.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(edit.workload(), ": ", update.status().message()));
      }
      out.policy = *std::move(update);
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(edit.workload(), ": edit has neither an image nor a policy change"));
  }
}

// True when every string field of `message` (nested, repeated and map fields included) is
// UTF-8: one that is not makes the whole answer fail to serialize.
bool StringsAreUtf8(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!field->is_repeated()) {
        if (!names::IsUtf8(reflection->GetString(message, field))) return false;
        continue;
      }
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        if (!names::IsUtf8(reflection->GetRepeatedString(message, field, i))) return false;
      }
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (!field->is_repeated()) {
        if (!StringsAreUtf8(reflection->GetMessage(message, field))) return false;
        continue;
      }
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        if (!StringsAreUtf8(reflection->GetRepeatedMessage(message, field, i))) return false;
      }
    }
  }
  return true;
}

// `text` when it is UTF-8, else each of its lines escaped (the lines stay lines).
std::string Utf8Lines(const std::string& text) {
  if (names::IsUtf8(text)) return text;
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) lines.push_back(names::Escape(line));
  return absl::StrJoin(lines, "\n");
}

// ListWorkloads' entry of a workload resource; empty when a string in it is not UTF-8 (gRPC
// would fail the whole answer on it).
std::optional<ferry::v1::ManifestWorkload> AnswerOf(const manifest::Resource& r,
                                                    const Index& index) {
  ferry::v1::ManifestWorkload w;
  w.set_id(r.id);
  if (auto found = index.containers.find(ContainersKey(r)); found != index.containers.end()) {
    for (const manifest::Container& c : *found->second) {
      convert::FillContainer(c.name, c.image, c.init, w.add_containers());
    }
  }
  convert::FillPolicy(manifest::ReadPolicies(r.annotations), w.mutable_policy());
  w.set_path(r.source.path);
  w.set_document(r.source.document);
  w.set_line(r.source.line);
  if (const RenderedRoot* root = index.RootOf(r)) {
    w.set_kustomize_root(root->root.folder.empty() ? "." : root->root.folder);
    auto origin = root->origins.find(r.id);
    if (origin != root->origins.end()) w.set_path(origin->second.file);
    absl::StatusOr<kustomize::EditTarget> policy =
        kustomize::PolicyTarget(*index.layout, root->root, root->origins, r.id);
    if (!policy.ok()) w.set_policy_error(std::string(policy.status().message()));
    w.set_document(0);
    w.set_line(0);
  }
  if (!StringsAreUtf8(w)) return std::nullopt;
  return w;
}

// The serialized entries of every workload of `index` (Index::answers), made on the first
// call: those not carried over from the index it was made from.
const std::vector<std::string>& AnswersOf(const Index& index) {
  absl::call_once(index.answers_once, [&index] {
    index.answers.resize(index.loaded.resources.size());
    for (size_t i = 0; i < index.loaded.resources.size(); ++i) {
      const manifest::Resource& r = index.loaded.resources[i];
      if (!index.answers[i].empty() || !manifest::IsWorkloadKind(r.kind)) continue;
      if (std::optional<ferry::v1::ManifestWorkload> answer = AnswerOf(r, index)) {
        answer->SerializeToString(&index.answers[i]);  // never empty: the id is set
      }
    }
    index.answers_made.store(true, std::memory_order_release);
  });
  return index.answers;
}
}  // namespace

grpc::Status GitWriterService::Head(grpc::ServerContext* context, const ferry::v1::HeadRequest*,
                                    ferry::v1::HeadResponse* response) {
  // Before the first revision, a first fetch in progress is waited for while the caller
  // waits, less a moment for the answer to say why there is no revision yet.
  const absl::Time deadline =
      std::min(absl::FromChrono(context->deadline()) - absl::Milliseconds(200),
               absl::Now() + absl::Seconds(limits::kFirstFetchWait.default_value));
  absl::StatusOr<HeadInfo> head =
      writer_.ServedHead(deadline, [context] { return context->IsCancelled(); });
  if (!head.ok()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(head.status().message()));
  }
  FillHead(*head, options_.branch, response);
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
  for (const std::string& path : paths) {
    if (absl::Status s = Libgit2Repository::ValidatePath(path); !s.ok()) return ToGrpcStatus(s);
  }
  if (!ValidateRevision(request->known_revision()).ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "known_revision must be a full 40-hex commit id, or empty");
  }
  if (!request->known_revision().empty() && !paths.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "known_revision applies to the configured paths: leave paths empty");
  }
  std::string revision =
      request->revision().empty() ? writer_.CurrentHead().revision : request->revision();
  // The configured paths are served from the revision's index, which holds them already;
  // other paths are read from the repository.
  Writer::ServedManifests served;
  std::vector<RepoFile> read;
  if (paths.empty()) {
    absl::StatusOr<Writer::ServedManifests> indexed =
        writer_.ManifestsAt(revision, request->known_revision());
    if (!indexed.ok()) return ToGrpcStatus(indexed.status());
    served = *std::move(indexed);
    revision = served.index->revision;
  } else {
    absl::StatusOr<std::vector<RepoFile>> files = writer_.ReadManifests(revision, paths);
    if (!files.ok()) return ToGrpcStatus(files.status());
    read = *std::move(files);
    for (const RepoFile& f : read) served.files.push_back({&f.path, &f.content, f.error});
  }
  // Unchanged files go by name, up to 1,000 or 256 KiB of names to a message: a message per
  // file cost more than the file (~10 us each, 10,000 files to a repo of 10,000 workloads).
  constexpr int kUnchangedBatchPaths = 1000;
  constexpr size_t kUnchangedBatchBytes = 256 * 1024;
  ferry::v1::ManifestFile unchanged;
  size_t unchanged_bytes = 0;
  // Whether the caller is still there is asked before each write, not for each file: the
  // check polls gRPC's completion queue (~20 us), more than a file by name costs.
  auto write = [&](const ferry::v1::ManifestFile& message) {
    return !context->IsCancelled() && writer->Write(message);
  };
  auto flush_unchanged = [&]() {
    if (unchanged.unchanged_paths().empty()) return true;
    unchanged.set_revision(revision);
    const bool written = write(unchanged);
    unchanged.Clear();
    unchanged_bytes = 0;
    return written;
  };
  bool written = true;  // every message so far
  for (const Writer::ServedFile& f : served.files) {
    if (f.unchanged) {
      unchanged.add_unchanged_paths(*f.path);
      unchanged.add_unchanged_hashes(manifest::DocumentHash(*f.content));
      unchanged_bytes += f.path->size();
      if (unchanged.unchanged_paths_size() >= kUnchangedBatchPaths ||
          unchanged_bytes >= kUnchangedBatchBytes) {
        written = flush_unchanged();
      }
    } else {
      ferry::v1::ManifestFile out;
      out.set_path(*f.path);  // UTF-8: names that are not come escaped, with an error
      out.set_content(*f.content);
      out.set_revision(revision);
      out.set_load_error(f.error);
      written = flush_unchanged() && write(out);
    }
    if (!written) break;
  }
  // A stream cut short never ends OK: the reader would take the files it lacks as gone.
  if (!written || !flush_unchanged()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the reader went away");
  }
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ListWorkloads(grpc::ServerContext*,
                                             const ferry::v1::ListManifestWorkloadsRequest* request,
                                             ferry::v1::ListManifestWorkloadsResponse* response) {
  if (absl::Status s = ValidateRevision(request->revision()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = names::ValidateName("namespace", request->namespace_()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<manifest::WorkloadSelection> selection = manifest::WorkloadSelection::Make(
      request->start_after(), request->limit(), {request->ids().begin(), request->ids().end()});
  if (!selection.ok()) return ToGrpcStatus(selection.status());
  absl::StatusOr<std::shared_ptr<const Index>> index = writer_.IndexAt(request->revision());
  if (!index.ok()) return ToGrpcStatus(index.status());
  response->set_revision((*index)->revision);
  response->set_readonly(options_.readonly);
  response->set_verify_error(writer_.CurrentHead().verify_error);
  const Index& at = **index;
  // A listing reads the entries made once per revision (the first listing of a revision makes
  // every one not carried over from the index before it). Named workloads read them once they are
  // made, and are answered from the index directly before: a release of a few workloads right after
  // a commit costs what they do, not what the repo does.
  const std::vector<std::string>* answers =
      selection->named() && !at.answers_made.load(std::memory_order_acquire) ? nullptr
                                                                             : &AnswersOf(at);
  const bool more = selection->Page(
      at.loaded.resources, [](const manifest::Resource& r) -> const std::string& { return r.id; },
      [&](const manifest::Resource& r) {
        return manifest::IsWorkloadKind(r.kind) &&
               (request->namespace_().empty() || r.namespace_ == request->namespace_());
      },
      [&](const manifest::Resource& r) {
        bool answered = false;
        if (answers == nullptr) {
          std::optional<ferry::v1::ManifestWorkload> answer = AnswerOf(r, at);
          answered = answer.has_value();
          if (answered) *response->add_workloads() = *std::move(answer);
        } else {
          // Bytes this process serialized from a valid message parse; should they not, the
          // workload is skipped as one that cannot be answered.
          const std::string& answer = (*answers)[&r - at.loaded.resources.data()];
          answered = !answer.empty() && response->add_workloads()->ParseFromString(answer);
          if (!answered && !answer.empty()) response->mutable_workloads()->RemoveLast();
        }
        if (!answered) {
          response->add_load_errors(
              absl::StrCat(names::Escape(r.source.path), ": workload ", names::Escape(r.id),
                           " skipped: a name, image or annotation in it is not UTF-8"));
          return false;  // not answered: does not count toward the page
        }
        return true;
      });
  response->set_more(more);
  if (selection->first_page()) {
    for (const manifest::LoadError& e : (*index)->loaded.errors) {
      response->add_load_errors(Utf8Lines(e.ToString()));
    }
  }
  if (size_t size = response->ByteSizeLong(); size > options_.max_workload_index_bytes) {
    response->Clear();
    return ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        limits::OverLimit(absl::StrCat("the workload index at ", (*index)->revision.substr(0, 12)),
                          limits::kWorkloadIndexBytes, options_.max_workload_index_bytes, size),
        "; or ask for one namespace")));
  }
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ApplyUpdates(grpc::ServerContext*,
                                            const ferry::v1::ApplyUpdatesRequest* request,
                                            ferry::v1::ApplyUpdatesResponse* response) {
  if (request->edits().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no edits given");
  }
  if (static_cast<uint64_t>(request->edits_size()) > limits::kEditsPerRequest.default_value) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        limits::OverLimit("", limits::kEditsPerRequest, limits::kEditsPerRequest.default_value,
                          request->edits_size()) +
        "; split the request"));
  }
  if (absl::Status s =
          names::ValidateCommitMessage(request->message(), options_.max_commit_message_bytes);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  ApplyRequest apply;
  for (const ferry::v1::Edit& edit : request->edits()) {
    absl::StatusOr<EditRequest> e = ToEdit(edit);
    if (!e.ok()) return ToGrpcStatus(e.status());
    apply.edits.push_back(*std::move(e));
  }
  apply.message = request->message();
  apply.dry_run = request->dry_run();
  apply.all_or_nothing = request->all_or_nothing();
  apply.omit_diff = request->omit_diff();
  // For the commit template and the Ferry-Job trailer.
  if (absl::Status s = names::ValidateName("job id", request->job().id(),
                                           limits::kRequestNameBytes.default_value);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  apply.job_id = request->job().id();
  if (request->job().kind() != ferry::v1::JOB_KIND_UNSPECIFIED) {
    apply.job_kind = absl::AsciiStrToLower(
        absl::StripPrefix(ferry::v1::JobKind_Name(request->job().kind()), "JOB_KIND_"));
  }
  apply.user = request->cause().user();
  apply.cause_message = request->cause().message();
  if (!request->cause().user().empty()) {
    absl::StatusOr<names::Author> author = names::ParseAuthor(request->cause().user());
    if (!author.ok()) return ToGrpcStatus(author.status());
    apply.author =
        Signature{author->name, author->email.empty() ? "ferry@localhost" : author->email};
  }
  if (request->has_job()) {
    absl::StatusOr<std::string> note = convert::ToJson(request->job(), convert::JsonNames::kProto);
    if (!note.ok()) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("job: cannot be written as the commit's note: ", note.status().message())));
    }
    apply.note = *std::move(note);
    if (apply.note.size() > limits::kJobNoteBytes.default_value) {
      return ToGrpcStatus(absl::InvalidArgumentError(limits::OverLimit(
          "job", limits::kJobNoteBytes, limits::kJobNoteBytes.default_value, apply.note.size())));
    }
  }
  absl::StatusOr<ApplyOutcome> out = writer_.Apply(apply);
  // A write allocates and frees a few MB (packs, trees, the next index) on whichever gRPC
  // thread serves it; handing the freed pages back keeps RSS at the live heap.
  runtime::ReturnFreeMemory();
  if (!out.ok()) return ToGrpcStatus(out.status());
  response->set_revision(out->revision);
  response->set_no_changes(out->no_changes);
  response->set_diff(Utf8Lines(out->diff));
  response->set_retries(out->retries);
  response->set_pushed_branch(out->pushed_branch);
  for (const std::string& d : out->dropped) response->add_dropped_commits(Utf8Lines(d));
  absl::Status first_error;
  bool any_ok = false;
  for (int i = 0; i < request->edits_size(); ++i) {
    const EditOutcome& e = out->edits[i];
    ferry::v1::EditResult* r = response->add_results();
    *r->mutable_edit() = request->edits(i);
    r->set_code(static_cast<int>(e.status.code()));
    r->set_error(Utf8Lines(std::string(e.status.message())));
    r->set_path(e.path);
    for (const std::string& root : e.roots) r->add_kustomize_roots(root);
    if (e.status.ok())
      any_ok = true;
    else if (first_error.ok())
      first_error = e.status;
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
  const SigningKey& signing = options_.signing_key;
  if (options_.ssh_key_path.empty() && signing.format.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "no deploy key is configured (--git_ssh_key_path)");
  }
  if (!options_.ssh_key_path.empty()) {
    absl::StatusOr<DeployKey> key = ReadDeployKey(options_.ssh_key_path);
    if (!key.ok()) return ToGrpcStatus(key.status());
    response->set_public_key(key->public_key);
    response->set_fingerprint(key->fingerprint);
  }
  response->set_signing_format(signing.format);
  response->set_signing_public_key(signing.public_key);
  response->set_signing_fingerprint(signing.fingerprint);
  return grpc::Status::OK;
}

grpc::Status GitWriterService::ListJobNotes(grpc::ServerContext*,
                                            const ferry::v1::ListJobNotesRequest* request,
                                            ferry::v1::ListJobNotesResponse* response) {
  int limit = request->limit() > 0 ? std::min(request->limit(), 1000) : 50;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> notes =
      writer_.ListNotes(request->job_id().empty() ? limit : 1000);
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
