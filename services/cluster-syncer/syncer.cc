#include "services/cluster-syncer/syncer.h"

#include <openssl/evp.h>

#include <algorithm>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/http/url.h"
#include "lib/kube/json_fields.h"
#include "lib/kube/list.h"
#include "lib/log/laps.h"
#include "lib/log/log.h"
#include "lib/manifest/policy.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/yaml_json.h"
#include "lib/runtime/parallel.h"
#include "lib/status/status_macros.h"

namespace ferry::cluster_syncer {
namespace {

constexpr int kRanks = 5;

// Runs fn(i) for i in [0, n) on up to `parallelism` threads.
void ParallelFor(size_t n, int parallelism, const std::function<void(size_t)>& fn) {
  runtime::ParallelFor(n, static_cast<size_t>(std::max(1, parallelism)), fn);
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

// Group-insensitive identity: the same object is served under several groups/versions
// (e.g. Ingress in extensions and networking.k8s.io).
std::string ObjectKey(const std::string& kind, const std::string& ns, const std::string& name) {
  return absl::StrCat(kind, "|", ns, "|", name);
}

std::string GroupOf(const std::string& api_version) {
  size_t slash = api_version.find('/');
  return slash == std::string::npos ? "" : api_version.substr(0, slash);
}

// Ports without `protocol` get the server's default, TCP, written out: protocol is part of
// the key of these lists, and Kubernetes before 1.22 rejects a server-side apply without it.
void DefaultProtocols(nlohmann::json& ports) {
  if (!ports.is_array()) return;
  for (auto& port : ports) {
    if (port.is_object() && !port.contains("protocol")) port["protocol"] = "TCP";
  }
}

void DefaultPortProtocols(const std::string& kind, nlohmann::json& object) {
  if (!object.contains("spec") || !object["spec"].is_object()) return;
  nlohmann::json& spec = object["spec"];
  if (kind == "Service") {
    if (spec.contains("ports")) DefaultProtocols(spec["ports"]);
    return;
  }
  // Pod templates: Deployment & co (spec.template.spec), CronJob (one level deeper), Pod.
  nlohmann::json* pod = nullptr;
  if (kind == "Pod") {
    pod = &spec;
  } else if (kind == "CronJob" && spec.contains("jobTemplate")) {
    nlohmann::json& job = spec["jobTemplate"];
    if (job.contains("spec") && job["spec"].contains("template") &&
        job["spec"]["template"].contains("spec")) {
      pod = &job["spec"]["template"]["spec"];
    }
  } else if (spec.contains("template") && spec["template"].is_object() &&
             spec["template"].contains("spec")) {
    pod = &spec["template"]["spec"];
  }
  if (pod == nullptr || !pod->is_object()) return;
  for (const char* list : {"containers", "initContainers"}) {
    if (!pod->contains(list) || !(*pod)[list].is_array()) continue;
    for (auto& container : (*pod)[list]) {
      if (container.is_object() && container.contains("ports"))
        DefaultProtocols(container["ports"]);
    }
  }
}

struct LiveObject {
  std::string kind;
  std::string ns;
  std::string name;
  std::string checksum;
  std::string source;
  std::map<std::string, std::string> annotations;
  bool owned = false;                            // has ownerReferences (made by a controller)
  std::shared_ptr<const kube::ApiResource> api;  // shared by the objects of one listing
};

// Unavailable and Unauthenticated mean the API cannot be used at all: the sync stops.
bool Unreachable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kUnauthenticated;
}

}  // namespace

namespace internal {

// A resource from git on its way to the cluster. Its object is held only while a sync needs
// it: from the parse until its rank is applied, as compact JSON text (a fifth of the memory
// of a parsed document); an item of a file parsed in an earlier sync carries its checksums
// alone, and its object is parsed again from the file only when it must be written.
struct Item {
  std::string id;
  std::string path;
  size_t index = 0;  // among the resources of its file
  std::string api_version;
  std::string kind;
  std::string name;
  std::string manifest_namespace;  // as the loader saw it
  std::string declared_namespace;  // metadata.namespace of the object ("" when not a string)
  // JSON without metadata.namespace, port protocols written out; empty when not held.
  std::string object;
  int rank = kRanks - 1;
  // Once resolved; shared by the items of one kind (SyncRun::Resolve). Null before.
  std::shared_ptr<const kube::ApiResource> api;
  std::string ns;  // effective, once resolved
  // The checksum of the object as applied, of a namespaced kind (namespace set) and of a
  // cluster-scoped one (no namespace); which one counts is known once the kind is resolved.
  std::string namespaced_checksum;
  std::string cluster_checksum;
  std::string checksum;
  // Set when the object cannot be serialised: the item fails unless skipped.
  std::string dump_error;
  enum class State { kPending, kApplied, kUnchanged, kFailed, kSkipped } state = State::kPending;
  std::string error;
};

}  // namespace internal

using internal::Item;

// One file's parse, kept between syncs without the objects: unchanged files are not parsed
// again.
struct Syncer::ParsedFile {
  uint64_t hash = 0;
  size_t size = 0;
  std::vector<std::string> errors;
  std::vector<Item> items;  // objects empty
};

int ApplyRank(const std::string& group, const std::string& kind) {
  static const std::map<std::string, int> kRank = {
      {"Namespace", 0},
      {"CustomResourceDefinition", 1},
      {"ServiceAccount", 1},
      {"ClusterRole", 1},
      {"Role", 1},
      {"Service", 1},
      {"PersistentVolume", 1},
      {"StorageClass", 1},
      {"PriorityClass", 1},
      {"ResourceQuota", 2},
      {"LimitRange", 2},
      {"Secret", 2},
      {"ConfigMap", 2},
      {"ClusterRoleBinding", 2},
      {"RoleBinding", 2},
      {"PersistentVolumeClaim", 2},
      {"Ingress", 2},
      {"NetworkPolicy", 2},
      {"PodDisruptionBudget", 2},
      {"Deployment", 3},
      {"DaemonSet", 3},
      {"StatefulSet", 3},
      {"ReplicaSet", 3},
      {"Job", 3},
      {"CronJob", 3},
      {"Pod", 3},
      {"ReplicationController", 3},
      {"HelmRelease", 3},
      {"FluxHelmRelease", 3},
  };
  auto it = kRank.find(kind);
  if (it == kRank.end()) return kRanks - 1;
  // Built-in kinds only: a custom "Service" of some CRD group is "everything else".
  static const std::set<std::string> kBuiltinGroups = {"",
                                                       "apps",
                                                       "batch",
                                                       "rbac.authorization.k8s.io",
                                                       "apiextensions.k8s.io",
                                                       "networking.k8s.io",
                                                       "extensions",
                                                       "policy",
                                                       "storage.k8s.io",
                                                       "scheduling.k8s.io",
                                                       "helm.fluxcd.io",
                                                       "helm.toolkit.fluxcd.io",
                                                       "flux.weave.works"};
  return kBuiltinGroups.count(group) ? it->second : kRanks - 1;
}

SyncMetrics::SyncMetrics(prometheus::Registry& registry)
    : syncs_(prometheus::BuildCounter()
                 .Name("ferry_sync_total")
                 .Help("Syncs by outcome (success: every object applied; partial: some failed; "
                       "error: the sync could not run).")
                 .Register(registry)),
      objects_(prometheus::BuildCounter()
                   .Name("ferry_sync_objects_total")
                   .Help("Objects by what a sync did with them (applied, unchanged, failed, "
                         "pruned, skipped).")
                   .Register(registry)),
      files_(prometheus::BuildCounter()
                 .Name("ferry_sync_manifest_files_total")
                 .Help("Manifest files syncs read from git-writer, by how their text came: "
                       "sent; known (unchanged since the revision parsed before: no text); "
                       "read_again (the revision read again, whole, because a file that came "
                       "without text was needed).")
                 .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("ferry_sync_duration_seconds")
                    .Help("Duration of syncs.")
                    .Register(registry)
                    .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                                     30, 60, 120, 300})),
      last_success_(prometheus::BuildGauge()
                        .Name("ferry_sync_last_success_timestamp_seconds")
                        .Help("When the last sync without errors finished (Unix time).")
                        .Register(registry)
                        .Add({})),
      revision_(prometheus::BuildGauge()
                    .Name("ferry_sync_revision_info")
                    .Help("The revision the last sync that ran applied (value 1).")
                    .Register(registry)) {}

void SyncMetrics::Record(const SyncReport& report) {
  const std::string outcome =
      !report.error.empty() ? "error" : (report.failed > 0 ? "partial" : "success");
  syncs_.Add({{"outcome", outcome}}).Increment();
  objects_.Add({{"result", "applied"}}).Increment(report.applied);
  objects_.Add({{"result", "unchanged"}}).Increment(report.unchanged);
  objects_.Add({{"result", "failed"}}).Increment(report.failed);
  objects_.Add({{"result", "pruned"}}).Increment(report.pruned);
  objects_.Add({{"result", "skipped"}}).Increment(report.skipped);
  files_.Add({{"text", "sent"}}).Increment(report.files.sent);
  files_.Add({{"text", "known"}}).Increment(report.files.known);
  files_.Add({{"text", "read_again"}}).Increment(report.files.read_again);
  duration_.Observe(absl::ToDoubleSeconds(report.finished - report.started));
  if (outcome == "success")
    last_success_.Set(absl::ToDoubleSeconds(report.finished - absl::UnixEpoch()));
  if (report.error.empty() && !report.revision.empty()) {
    absl::MutexLock lock(&mu_);
    if (revision_series_ != nullptr) revision_.Remove(revision_series_);
    revision_series_ = &revision_.Add({{"revision", report.revision}});
    revision_series_->Set(1);
  }
}

namespace {

// Live objects carrying the sync set's label, listed once per kind and kept for the rest of
// one sync. Thread-safe.
class LiveObjects {
 public:
  LiveObjects(kube::KubeApi& client, const SyncOptions& options)
      : client_(client), options_(options) {}

  // The labelled objects of `api`'s kind (in the allowed namespaces when there is a list),
  // shared with every later caller of the sync. The API's error when a listing fails.
  using Listing = std::shared_ptr<const std::vector<LiveObject>>;
  absl::StatusOr<Listing> List(const kube::ApiResource& api);

 private:
  static LiveObject FromMetadata(const std::shared_ptr<const kube::ApiResource>& api,
                                 const nlohmann::json& meta);

  kube::KubeApi& client_;
  const SyncOptions& options_;
  absl::Mutex mu_;
  // "group/kind" -> objects.
  std::map<std::string, Listing> by_resource_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<LiveObjects::Listing> LiveObjects::List(const kube::ApiResource& api) {
  const std::string cache_key = api.group + "/" + api.kind;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_resource_.find(cache_key);
    if (it != by_resource_.end()) return it->second;
  }
  std::vector<std::string> namespaces = {""};
  if (!options_.allow_namespaces.empty() && api.namespaced) {
    namespaces.clear();
    for (const std::string& ns : options_.allow_namespaces) namespaces.push_back(ns);
  }
  auto out = std::make_shared<std::vector<LiveObject>>();
  auto shared_api = std::make_shared<const kube::ApiResource>(api);
  const std::string selector =
      "?labelSelector=" + http::UrlEncode(absl::StrCat(kSyncSetLabel, "=", options_.sync_set));
  for (const std::string& ns : namespaces) {
    FERRY_RETURN_IF_ERROR(kube::ForEachListItem(
        client_, api.CollectionPath(ns) + selector, {.metadata_only = true},
        [&](const nlohmann::json& obj) {
          out->push_back(FromMetadata(shared_api, kube::Field(obj, "metadata")));
          return true;
        }));
  }
  absl::MutexLock lock(&mu_);
  by_resource_[cache_key] = out;
  return out;
}

LiveObject LiveObjects::FromMetadata(const std::shared_ptr<const kube::ApiResource>& api,
                                     const nlohmann::json& meta) {
  LiveObject live;
  live.kind = api->kind;
  live.ns = kube::StringField(meta, "namespace");
  live.name = kube::StringField(meta, "name");
  live.api = api;
  if (const nlohmann::json& annotations = kube::Field(meta, "annotations");
      annotations.is_object()) {
    for (const auto& [k, v] : annotations.items()) {
      if (v.is_string()) live.annotations[k] = v.get<std::string>();
    }
  }
  live.checksum = live.annotations[kChecksumAnnotation];
  live.source = live.annotations[kSourceAnnotation];
  live.owned = meta.contains("ownerReferences") && !meta["ownerReferences"].empty();
  return live;
}

// One call of Syncer::Sync once its files are parsed: applies the items rank by rank and
// collects garbage. Errors of single resources go to the report; a returned error means the
// sync could not go on (its message is the report's error).
class SyncRun {
 public:
  // The objects of a file's resources, by index (empty where a resource has none); an error
  // when the file's text could not be read again.
  using ObjectLoader =
      std::function<absl::StatusOr<std::vector<std::string>>(const ManifestFileContent&)>;

  // "kind|namespace|name" -> checksum.
  using Checksums = std::map<std::string, std::string>;

  // `record`: the checksums the last sync left, taken instead of listing the cluster (null:
  // list); it must outlive Run().
  SyncRun(kube::KubeApi& client, kube::Discovery& discovery, const SyncOptions& options,
          runtime::Clock& clock, bool dry_run, SyncReport& report, ObjectLoader load_objects,
          const Checksums* record)
      : client_(client),
        discovery_(discovery),
        options_(options),
        clock_(clock),
        dry_run_(dry_run),
        report_(report),
        live_(client, options),
        load_objects_(std::move(load_objects)),
        record_(record) {}

  // Takes the items of one file (and their objects, by index, when the file was parsed for
  // this sync: else they are loaded from `file` when needed) and reports its errors. `file`
  // must outlive Run().
  void AddFile(const ManifestFileContent& file, const std::vector<std::string>& errors,
               const std::vector<Item>& items, std::vector<std::string> objects);
  // Room for `items` items in all (AddFile's growth would copy them).
  void Reserve(size_t items) { items_.reserve(items); }
  absl::Status Run();
  // After Run(): the checksums of the objects this sync applied or found unchanged.
  Checksums Record() const;

 private:
  // Lists the live objects of the items' kinds the API already serves, side by side (the
  // ranks would list them one after the other). Kinds of CRDs this sync creates are listed
  // at their rank.
  void ListServedKindsAhead();
  bool AllowedNamespace(const std::string& ns) const {
    return options_.allow_namespaces.empty() || options_.allow_namespaces.count(ns) > 0;
  }
  absl::Status ApplyItemsOfRank(int rank);
  // Finds the item's resource and effective namespace, and skips it when outside the allowed
  // namespaces. An error only when discovery itself failed.
  absl::Status Resolve(Item& item);
  // The last checks, and the checksum of the kind's scope.
  void Prepare(Item& item);
  // Gives the items of `todo` that will be written and hold no object theirs, parsed again
  // from their files. Unavailable when the text of one could not be read.
  absl::Status LoadObjects(const std::vector<Item*>& todo, const Checksums& live_checksums);
  // The object as written: with its namespace, labels and annotations.
  nlohmann::json Desired(const Item& item) const;
  // Live checksums of the kinds of `todo`, listed from the cluster (without a record).
  absl::StatusOr<Checksums> ListedChecksums(const std::vector<Item*>& todo);
  // Applies what changed, in parallel.
  absl::Status Apply(const std::vector<Item*>& todo, const Checksums& live_checksums);
  absl::Status WaitForNewCrds(const std::vector<Item*>& todo);
  // Counts the items in the report; returns "kind|name" of the failed ones.
  std::set<std::string> Tally();
  absl::Status CollectGarbage(const std::set<std::string>& failed_names);
  absl::StatusOr<std::vector<LiveObject>> FindGarbage(const std::set<std::string>& failed_names);
  void Prune(const std::vector<LiveObject>& doomed);

  kube::KubeApi& client_;
  kube::Discovery& discovery_;
  const SyncOptions& options_;
  runtime::Clock& clock_;
  const bool dry_run_;
  SyncReport& report_;
  LiveObjects live_;
  const ObjectLoader load_objects_;
  const Checksums* const record_;
  std::map<std::string, const ManifestFileContent*> files_;  // by path
  std::vector<Item> items_;
  std::set<std::string> broken_paths_;
  std::map<std::string, std::string> defined_in_;  // object key -> path
  // "apiVersion|kind" -> the resource serving it, shared by the items of the kind.
  std::map<std::string, std::shared_ptr<const kube::ApiResource>> apis_;
};

void SyncRun::AddFile(const ManifestFileContent& file, const std::vector<std::string>& errors,
                      const std::vector<Item>& items, std::vector<std::string> objects) {
  files_[file.path] = &file;
  for (const std::string& e : errors) {
    broken_paths_.insert(file.path);
    report_.errors.push_back({"", file.path, e});
    ++report_.failed;
  }
  for (const Item& item : items) {
    items_.push_back(item);
    if (item.index < objects.size()) items_.back().object = std::move(objects[item.index]);
  }
}

SyncRun::Checksums SyncRun::Record() const {
  Checksums record;
  for (const Item& item : items_) {
    if (item.state == Item::State::kApplied || item.state == Item::State::kUnchanged) {
      record[ObjectKey(item.kind, item.ns, item.name)] = item.checksum;
    }
  }
  return record;
}

absl::Status SyncRun::Run() {
  log::Laps laps;
  if (record_ == nullptr) ListServedKindsAhead();
  report_.phases.list_ms += laps.Next();
  for (int rank = 0; rank < kRanks; ++rank) FERRY_RETURN_IF_ERROR(ApplyItemsOfRank(rank));
  const std::set<std::string> failed_names = Tally();
  laps.Next();
  if (options_.garbage_collection) FERRY_RETURN_IF_ERROR(CollectGarbage(failed_names));
  report_.phases.prune_ms = laps.Next();
  return absl::OkStatus();
}

void SyncRun::ListServedKindsAhead() {
  absl::StatusOr<std::vector<kube::ApiResource>> served = discovery_.All();
  if (!served.ok()) return;      // each rank finds its kinds, and fails, on its own
  std::set<std::string> wanted;  // "apiVersion|kind"
  for (const Item& item : items_) {
    if (item.state == Item::State::kPending) wanted.insert(item.api_version + "|" + item.kind);
  }
  std::vector<const kube::ApiResource*> kinds;
  std::set<std::string> listed;  // LiveObjects' key: "group/kind"
  for (const kube::ApiResource& api : *served) {
    if (wanted.count(api.ApiVersion() + "|" + api.kind) &&
        listed.insert(api.group + "/" + api.kind).second) {
      kinds.push_back(&api);
    }
  }
  // A listing that fails here is not kept: the rank lists its kind again and reports it.
  ParallelFor(kinds.size(), options_.parallelism,
              [&](size_t k) { live_.List(*kinds[k]).IgnoreError(); });
}

absl::Status SyncRun::ApplyItemsOfRank(int rank) {
  std::vector<Item*> todo;
  for (Item& item : items_) {
    if (item.rank == rank && item.state == Item::State::kPending) todo.push_back(&item);
  }
  // Resolve kinds and namespaces first (discovery may refresh once for new CRDs).
  for (Item* item : todo) {
    FERRY_RETURN_IF_ERROR(Resolve(*item));
    if (item->state == Item::State::kPending) Prepare(*item);
  }
  std::erase_if(todo, [](Item* i) { return i->state != Item::State::kPending; });
  log::Laps laps;
  // The record is read in place: Sync holds it, immutable, for the whole run, so the workers
  // of LoadObjects and Apply may read it side by side (a copy of its entries per rank cost
  // 20,000 keys per sync at 10,000 workloads).
  Checksums listed;
  if (record_ == nullptr) {
    FERRY_ASSIGN_OR_RETURN(listed, ListedChecksums(todo));
  }
  const Checksums& live_checksums = record_ != nullptr ? *record_ : listed;
  report_.phases.list_ms += laps.Next();
  FERRY_RETURN_IF_ERROR(LoadObjects(todo, live_checksums));
  FERRY_RETURN_IF_ERROR(Apply(todo, live_checksums));
  // The objects of this rank are not needed any more.
  for (Item& item : items_) {
    if (item.rank == rank) std::string().swap(item.object);
  }
  absl::Status crds = WaitForNewCrds(todo);
  report_.phases.apply_ms += laps.Next();
  return crds;
}

absl::Status SyncRun::Resolve(Item& item) {
  std::shared_ptr<const kube::ApiResource>& api = apis_[item.api_version + "|" + item.kind];
  if (api == nullptr) {
    absl::StatusOr<kube::ApiResource> found = discovery_.Find(item.api_version, item.kind);
    if (!found.ok()) {
      if (found.status().code() != absl::StatusCode::kNotFound) {
        return absl::UnavailableError(
            absl::StrCat("API discovery failed: ", found.status().message()));
      }
      item.state = Item::State::kFailed;
      item.error = std::string(found.status().message());
      return absl::OkStatus();
    }
    api = std::make_shared<const kube::ApiResource>(*std::move(found));
  }
  item.api = api;
  if (api->namespaced) {
    item.ns =
        !item.declared_namespace.empty() ? item.declared_namespace : options_.default_namespace;
    if (!AllowedNamespace(item.ns)) item.state = Item::State::kSkipped;
  } else {
    item.id = manifest::ResourceId("", item.kind, item.name);
    if (!options_.allow_namespaces.empty() &&
        !(item.kind == "Namespace" && AllowedNamespace(item.name))) {
      item.state = Item::State::kSkipped;
    }
  }
  return absl::OkStatus();
}

void SyncRun::Prepare(Item& item) {
  const std::string key = ObjectKey(item.kind, item.ns, item.name);
  if (auto [it, inserted] = defined_in_.emplace(key, item.path); !inserted) {
    item.state = Item::State::kFailed;
    item.error = absl::StrCat("defined twice: also in ", it->second);
    return;
  }
  if (!item.dump_error.empty()) {
    item.state = Item::State::kFailed;
    item.error = item.dump_error;
    return;
  }
  item.checksum = item.api->namespaced ? item.namespaced_checksum : item.cluster_checksum;
}

absl::Status SyncRun::LoadObjects(const std::vector<Item*>& todo, const Checksums& live_checksums) {
  std::map<std::string, std::vector<Item*>> by_path;
  for (Item* item : todo) {
    auto live = live_checksums.find(ObjectKey(item->kind, item->ns, item->name));
    if (item->object.empty() && (live == live_checksums.end() || live->second != item->checksum))
      by_path[item->path].push_back(item);
  }
  std::vector<const std::vector<Item*>*> groups;
  for (const auto& [path, items] : by_path) groups.push_back(&items);
  absl::Mutex mu;
  absl::Status failed;  // the first failure
  ParallelFor(groups.size(), options_.parallelism, [&](size_t g) {
    const std::vector<Item*>& items = *groups[g];
    absl::StatusOr<std::vector<std::string>> objects =
        load_objects_(*files_.at(items.front()->path));
    if (!objects.ok()) {
      absl::MutexLock lock(&mu);
      failed.Update(objects.status());
      return;
    }
    for (Item* item : items) {
      if (item->index < objects->size()) item->object = std::move((*objects)[item->index]);
    }
  });
  absl::MutexLock lock(&mu);
  return failed;
}

nlohmann::json SyncRun::Desired(const Item& item) const {
  nlohmann::json object = nlohmann::json::parse(item.object);
  auto& meta = object["metadata"];
  if (item.api->namespaced) meta["namespace"] = item.ns;
  auto& labels = meta["labels"];
  if (!labels.is_object()) labels = nlohmann::json::object();
  labels[kSyncSetLabel] = options_.sync_set;
  auto& annotations = meta["annotations"];
  if (!annotations.is_object()) annotations = nlohmann::json::object();
  annotations[kChecksumAnnotation] = item.checksum;
  annotations[kSourceAnnotation] = item.path;
  return object;
}

absl::StatusOr<SyncRun::Checksums> SyncRun::ListedChecksums(const std::vector<Item*>& todo) {
  Checksums live_checksums;
  std::set<std::string> listed;
  for (Item* item : todo) {
    if (!listed.insert(item->api->group + "/" + item->api->kind).second) continue;
    absl::StatusOr<LiveObjects::Listing> live = live_.List(*item->api);
    if (!live.ok()) {
      if (Unreachable(live.status())) {
        return absl::UnavailableError(
            absl::StrCat("listing ", item->kind, ": ", live.status().message()));
      }
      continue;  // e.g. no list permission: every object of the kind is applied
    }
    for (const LiveObject& o : **live) {
      live_checksums[ObjectKey(o.kind, o.ns, o.name)] = o.checksum;
    }
  }
  return live_checksums;
}

absl::Status SyncRun::Apply(const std::vector<Item*>& todo, const Checksums& live_checksums) {
  // Set by whichever apply finds the API server unreachable (the applies run in parallel).
  struct UnreachableError {
    absl::Mutex mu;
    bool seen ABSL_GUARDED_BY(mu) = false;
    std::string error ABSL_GUARDED_BY(mu);
  } unreachable;
  ParallelFor(todo.size(), options_.parallelism, [&](size_t i) {
    Item* item = todo[i];
    auto live = live_checksums.find(ObjectKey(item->kind, item->ns, item->name));
    if (live != live_checksums.end() && live->second == item->checksum) {
      item->state = Item::State::kUnchanged;
      return;
    }
    if (item->object.empty()) {  // the file no longer yields it: cannot happen for one hash
      item->state = Item::State::kFailed;
      item->error = "the manifest could not be read again";
      return;
    }
    absl::StatusOr<nlohmann::json> applied =
        client_.Apply(item->api->ObjectPath(item->ns, item->name), Desired(*item), kFieldManager,
                      options_.force_conflicts, dry_run_);
    if (applied.ok()) {
      item->state = Item::State::kApplied;
      return;
    }
    item->state = Item::State::kFailed;
    item->error = std::string(applied.status().message());
    if (Unreachable(applied.status())) {
      absl::MutexLock lock(&unreachable.mu);
      unreachable.seen = true;
      unreachable.error = item->error;
    }
  });
  absl::MutexLock lock(&unreachable.mu);
  if (unreachable.seen) return absl::UnavailableError(unreachable.error);
  return absl::OkStatus();
}

// CRDs created now: wait until they are served, then learn their kinds.
absl::Status SyncRun::WaitForNewCrds(const std::vector<Item*>& todo) {
  bool new_crds = false;
  for (Item* item : todo) {
    if (item->kind != "CustomResourceDefinition" || item->state != Item::State::kApplied ||
        dry_run_) {
      continue;
    }
    new_crds = true;
    const absl::Time deadline = clock_.Now() + options_.crd_wait;
    while (clock_.Now() < deadline) {
      absl::StatusOr<nlohmann::json> crd =
          client_.Get(item->api->ObjectPath("", item->name), "get");
      bool established = false;
      if (crd.ok()) {
        const nlohmann::json& conditions = kube::Field(kube::Field(*crd, "status"), "conditions");
        for (const auto& c : conditions.is_array() ? conditions : nlohmann::json::array()) {
          established |= kube::StringField(c, "type") == "Established" &&
                         kube::StringField(c, "status") == "True";
        }
      }
      if (established) break;
      clock_.SleepFor(absl::Milliseconds(100));
    }
  }
  if (!new_crds) return absl::OkStatus();
  if (absl::Status s = discovery_.Refresh(); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("API discovery failed: ", s.message()));
  }
  return absl::OkStatus();
}

std::set<std::string> SyncRun::Tally() {
  std::set<std::string> failed_names;  // kind|name of failed items: never pruned
  for (const Item& item : items_) {
    switch (item.state) {
      case Item::State::kApplied:
        ++report_.applied;
        break;
      case Item::State::kUnchanged:
        ++report_.unchanged;
        break;
      case Item::State::kSkipped:
        ++report_.skipped;
        break;
      case Item::State::kFailed:
      case Item::State::kPending:
        ++report_.failed;
        report_.errors.push_back(
            {item.id, item.path, item.error.empty() ? "not applied" : item.error});
        failed_names.insert(item.kind + "|" + item.name);
        break;
    }
  }
  return failed_names;
}

absl::Status SyncRun::CollectGarbage(const std::set<std::string>& failed_names) {
  FERRY_ASSIGN_OR_RETURN(std::vector<LiveObject> doomed, FindGarbage(failed_names));
  std::stable_sort(doomed.begin(), doomed.end(), [](const LiveObject& a, const LiveObject& b) {
    return ApplyRank(a.api->group, a.kind) > ApplyRank(b.api->group, b.kind);
  });
  Prune(doomed);
  return absl::OkStatus();
}

// What to prune: objects Ferry applied (labelled, with a checksum) that git no longer holds,
// except those of failed items and broken files, those marked ignore, and those outside the
// allowed namespaces.
absl::StatusOr<std::vector<LiveObject>> SyncRun::FindGarbage(
    const std::set<std::string>& failed_names) {
  std::set<std::string> in_git;
  for (const Item& item : items_) {
    in_git.insert(ObjectKey(
        item.kind, item.ns.empty() && item.api == nullptr ? item.manifest_namespace : item.ns,
        item.name));
  }
  absl::StatusOr<std::vector<kube::ApiResource>> all = discovery_.All();
  if (!all.ok()) {
    return absl::UnavailableError(absl::StrCat("API discovery failed: ", all.status().message()));
  }
  std::set<std::string> seen_kinds;
  std::vector<const kube::ApiResource*> kinds;
  for (const kube::ApiResource& api : *all) {
    if (!api.Can("list") || !api.Can("delete")) continue;
    if (!seen_kinds.insert(api.group + "/" + api.kind).second) continue;  // preferred only
    kinds.push_back(&api);
  }
  // Every kind is listed, side by side; those the items have were listed already.
  std::vector<absl::StatusOr<LiveObjects::Listing>> listings(kinds.size());
  ParallelFor(kinds.size(), options_.parallelism,
              [&](size_t k) { listings[k] = live_.List(*kinds[k]); });
  std::vector<LiveObject> doomed;
  std::set<std::string> doomed_keys;
  for (const absl::StatusOr<LiveObjects::Listing>& live : listings) {
    if (!live.ok()) continue;  // not allowed to list it: not ours to prune
    for (const LiveObject& o : **live) {
      const std::string key = ObjectKey(o.kind, o.ns, o.name);
      // Only what Ferry applied: controllers copy labels (Endpoints get their Service's)
      // but not Ferry's checksum annotation.
      if (o.checksum.empty() || o.owned) continue;
      if (in_git.count(key) || failed_names.count(o.kind + "|" + o.name) ||
          broken_paths_.count(o.source) || doomed_keys.count(key)) {
        continue;
      }
      if (manifest::ReadPolicies(o.annotations).ignore != manifest::IgnoreMode::kNone) continue;
      if (!o.ns.empty() && !AllowedNamespace(o.ns)) continue;
      doomed_keys.insert(key);
      doomed.push_back(o);
    }
  }
  return doomed;
}

void SyncRun::Prune(const std::vector<LiveObject>& doomed) {
  for (const LiveObject& o : doomed) {
    const std::string id = manifest::ResourceId(o.ns, o.kind, o.name);
    if (options_.gc_dry_run || dry_run_) {
      log::Info("would prune", {{"resource", id}});
      report_.pruned_ids.push_back(id);
      ++report_.pruned;
      continue;
    }
    absl::Status deleted = client_.Delete(o.api->ObjectPath(o.ns, o.name), false);
    if (deleted.ok() || deleted.code() == absl::StatusCode::kNotFound) {
      log::Info("pruned", {{"resource", id}});
      report_.pruned_ids.push_back(id);
      ++report_.pruned;
    } else {
      ++report_.failed;
      report_.errors.push_back({id, o.source, absl::StrCat("prune: ", deleted.message())});
    }
  }
}

}  // namespace

Syncer::Syncer(kube::KubeApi& client, kube::Discovery& discovery, SyncOptions options,
               runtime::Clock& clock)
    : client_(client), discovery_(discovery), options_(std::move(options)), clock_(clock) {}

// The text of the files that came without it, read on first need, once per sync: every file
// of the revision, whole. Thread-safe.
class Syncer::Texts {
 public:
  explicit Texts(Reread reread) : reread_(std::move(reread)) {}

  // Unavailable when the read fails, or does not serve `path` whole.
  absl::StatusOr<std::string> Of(const std::string& path) {
    absl::MutexLock lock(&mu_);
    if (!read_) {
      read_ = true;
      status_ = Read();
    }
    FERRY_RETURN_IF_ERROR(status_);
    auto it = texts_.find(path);
    if (it == texts_.end()) {
      return absl::UnavailableError(
          absl::StrCat("reading the manifests again: ", path, " is no longer served whole"));
    }
    return it->second;
  }
  // How many files the read brought (0: none was needed).
  int files_read() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(texts_.size());
  }

 private:
  absl::Status Read() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reread_ == nullptr) {
      return absl::UnavailableError(
          "a file that came unchanged is needed whole, and cannot be read again");
    }
    absl::StatusOr<std::vector<ManifestFileContent>> files = reread_();
    if (!files.ok()) {
      return absl::UnavailableError(
          absl::StrCat("reading the manifests again: ", files.status().message()));
    }
    for (ManifestFileContent& f : *files) {
      if (f.load_error.empty() && !f.unchanged) texts_[f.path] = std::move(f.content);
    }
    return absl::OkStatus();
  }

  const Reread reread_;
  mutable absl::Mutex mu_;
  bool read_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> texts_ ABSL_GUARDED_BY(mu_);  // by path
};

std::string Syncer::ParsedRevision() const {
  absl::MutexLock lock(&cache_mu_);
  return parse_revision_;
}

void Syncer::ForgetRecord() {
  absl::MutexLock lock(&cache_mu_);
  record_.reset();
}

SyncReport Syncer::Sync(const std::string& revision, std::vector<ManifestFileContent> files,
                        bool dry_run, Live live, const Reread& reread) {
  SyncReport report;
  report.revision = revision;
  report.started = clock_.Now();
  for (const ManifestFileContent& f : files)
    ++(f.unchanged ? report.files.known : report.files.sent);
  // 1. Parse, reusing the parse of files unchanged since the last sync.
  log::Laps laps;
  Texts texts(reread);
  absl::StatusOr<std::vector<FileParse>> parses = Parse(revision, files, texts);
  report.phases.parse_ms = laps.Next();
  if (!parses.ok()) {
    report.files.read_again = texts.files_read();
    report.error = std::string(parses.status().message());
    report.error_code = parses.status().code();
    report.finished = clock_.Now();
    return report;
  }
  std::vector<FileParse>& parsed = *parses;
  // A sync that writes takes the record away (one sync at a time) and leaves its own when it
  // ends without an error: should it end early (an exception), the next sync lists rather
  // than trust what this one may have changed.
  std::shared_ptr<const SyncRun::Checksums> record;
  if (!dry_run) {
    absl::MutexLock lock(&cache_mu_);
    record = std::move(record_);  // record_ is null now
    if (live != Live::kFromRecord || options_.garbage_collection) record.reset();
  }
  report.from_record = record != nullptr;
  SyncRun run(
      client_, discovery_, options_, clock_, dry_run, report,
      [this, &texts](const ManifestFileContent& file) -> absl::StatusOr<std::vector<std::string>> {
        if (!file.unchanged) return ParseFile(file).objects;
        FERRY_ASSIGN_OR_RETURN(std::string text, texts.Of(file.path));
        return ParseFile({file.path, std::move(text)}).objects;
      },
      record.get());
  size_t items = 0;
  for (const FileParse& p : parsed) items += p.file->items.size();
  run.Reserve(items);
  for (size_t f = 0; f < files.size(); ++f) {
    // Parsed in this sync: its items hold their objects, so the text is not read again.
    if (!parsed[f].objects.empty()) std::string().swap(files[f].content);
    run.AddFile(files[f], parsed[f].file->errors, parsed[f].file->items,
                std::move(parsed[f].objects));
  }
  parsed.clear();
  // 2. Apply rank by rank, 3. collect garbage.
  if (absl::Status s = run.Run(); !s.ok()) report.error = std::string(s.message());
  if (!dry_run) {
    absl::MutexLock lock(&cache_mu_);
    if (report.error.empty()) {
      record_ = std::make_shared<const SyncRun::Checksums>(run.Record());
    } else {
      record_.reset();  // what the cluster holds is not known: the next sync lists it
    }
  }
  report.files.read_again = texts.files_read();
  report.finished = clock_.Now();
  if (!report.error.empty() && report.error_code == absl::StatusCode::kOk) {
    report.error_code = absl::StatusCode::kUnavailable;
  }
  return report;
}

absl::StatusOr<std::vector<Syncer::FileParse>> Syncer::Parse(
    const std::string& revision, std::vector<ManifestFileContent>& files, Texts& texts) {
  std::vector<FileParse> parsed(files.size());
  std::vector<size_t> misses;
  {
    absl::MutexLock lock(&cache_mu_);
    for (size_t i = 0; i < files.size(); ++i) {
      const ManifestFileContent& file = files[i];
      auto it = parse_cache_.find(file.path);
      // A file that came unchanged comes with the hash of its text: the cache's parse is of
      // that text, not of a failure to load, or the file is read again.
      const bool same = file.unchanged
                            ? it != parse_cache_.end() && it->second->size != std::string::npos &&
                                  it->second->hash == file.hash
                            : it != parse_cache_.end() && file.load_error.empty() &&
                                  it->second->size == file.content.size() &&
                                  it->second->hash == manifest::DocumentHash(file.content);
      if (same) {
        parsed[i].file = it->second;
      } else {
        misses.push_back(i);
      }
    }
  }
  for (size_t i : misses) {
    if (!files[i].unchanged) continue;
    FERRY_ASSIGN_OR_RETURN(files[i].content, texts.Of(files[i].path));
    files[i].unchanged = false;
  }
  // Parsing is CPU-bound and per file: the misses are spread over the workers.
  ParallelFor(misses.size(), options_.parallelism,
              [&](size_t m) { parsed[misses[m]] = ParseFile(files[misses[m]]); });
  {
    absl::MutexLock lock(&cache_mu_);
    // Updated in place, files gone from git forgotten: made anew, the cache cost a node and a
    // key per file and sync (10,000 of each at 10,000 workloads), whatever the change. The
    // files come in path order, the cache's order, so this is one pass over both; any other
    // order gives the same cache.
    auto at = parse_cache_.begin();
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string& path = files[i].path;
      while (at != parse_cache_.end() && at->first < path) at = parse_cache_.erase(at);
      if (at != parse_cache_.end() && at->first == path) {
        at->second = parsed[i].file;
        ++at;
      } else {
        parse_cache_.insert_or_assign(at, path, parsed[i].file);
      }
    }
    parse_cache_.erase(at, parse_cache_.end());
    parse_revision_ = revision;
  }
  return parsed;
}

namespace {

// Sets the namespace fields of `item`, its two checksums and its object from `object`. The file is
// part of the checksum: an object moved to another file is applied again, so its ferry.dev/source
// annotation (which GC consults) follows it.
void Checksum(const std::string& default_namespace, nlohmann::json object, Item& item) {
  DefaultPortProtocols(item.kind, object);
  auto& meta = object["metadata"];
  if (auto ns = meta.find("namespace"); ns != meta.end() && ns->is_string()) {
    item.declared_namespace = ns->get<std::string>();
  }
  // The loader refuses text that is not UTF-8, on which dump() throws; should any reach
  // here, it fails this resource alone rather than the process.
  try {
    meta["namespace"] =
        item.declared_namespace.empty() ? default_namespace : item.declared_namespace;
    item.namespaced_checksum = Sha256Hex(item.path + "\n" + object.dump()).substr(0, 32);
    meta.erase("namespace");
    item.object = object.dump();
    item.cluster_checksum = Sha256Hex(item.path + "\n" + item.object).substr(0, 32);
  } catch (const nlohmann::json::exception& e) {
    item.dump_error = absl::StrCat("cannot be serialised as JSON (", e.what(),
                                   "); the manifest must be UTF-8 text");
  }
}

}  // namespace

Syncer::FileParse Syncer::ParseFile(const ManifestFileContent& file) const {
  auto out = std::make_shared<ParsedFile>();
  FileParse parse;
  parse.file = out;
  out->hash = manifest::DocumentHash(file.content);
  out->size = file.content.size();
  if (!file.load_error.empty()) {
    out->size = std::string::npos;  // never taken for a served file of the same path
    out->errors.push_back(absl::StrCat(file.path, ": ", file.load_error));
    return parse;
  }
  manifest::LoadOptions load_options;
  load_options.default_namespace = options_.default_namespace;
  load_options.limits = options_.manifest_limits;
  manifest::LoadResult loaded = manifest::LoadFile(file.path, file.content, load_options);
  for (const manifest::LoadError& e : loaded.errors) out->errors.push_back(e.ToString());
  for (const manifest::Resource& r : loaded.resources) {
    Item item;
    item.id = r.id;
    item.path = file.path;
    item.index = out->items.size();
    item.api_version = r.api_version;
    item.kind = r.kind;
    item.name = r.name;
    item.manifest_namespace = r.namespace_;
    const manifest::Policies policies = manifest::ReadPolicies(r.annotations);
    if (policies.ignore != manifest::IgnoreMode::kNone) {
      item.state = Item::State::kSkipped;
    } else if (absl::StatusOr<nlohmann::json> json =
                   manifest::YamlToJson(r.node, options_.manifest_limits);
               !json.ok()) {
      item.state = Item::State::kFailed;
      item.error = std::string(json.status().message());
    } else {
      Checksum(options_.default_namespace, *std::move(json), item);
    }
    item.rank = ApplyRank(GroupOf(r.api_version), r.kind);
    parse.objects.push_back(std::move(item.object));
    item.object.clear();
    out->items.push_back(std::move(item));
  }
  return parse;
}

}  // namespace ferry::cluster_syncer
