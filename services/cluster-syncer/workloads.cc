#include "services/cluster-syncer/workloads.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/http/url.h"
#include "lib/kube/json_fields.h"
#include "lib/kube/list.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload_id.h"
#include "lib/runtime/parallel.h"
#include "lib/status/status_macros.h"

namespace ferry::cluster_syncer {
namespace {

// A replica count, in [0, INT_MAX] whatever number the API answered, so that differences of two
// counts cannot overflow.
int Count(const nlohmann::json& obj, const char* key, int64_t fallback = 0) {
  return static_cast<int>(
      std::clamp<int64_t>(kube::IntField(obj, key, fallback), 0, std::numeric_limits<int>::max()));
}

// The value at `path` in `obj`; null when any step is absent or not an object.
const nlohmann::json& Field(const nlohmann::json& obj, std::initializer_list<const char*> path) {
  const nlohmann::json* cur = &obj;
  for (const char* key : path) cur = &kube::Field(*cur, key);
  return *cur;
}

std::map<std::string, std::string> StringMap(const nlohmann::json& obj) {
  std::map<std::string, std::string> out;
  if (!obj.is_object()) return out;
  for (const auto& [k, v] : obj.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

// A condition's message, or its reason when it has none.
std::string MessageOrReason(const nlohmann::json& condition) {
  std::string message = kube::StringField(condition, "message");
  return message.empty() ? kube::StringField(condition, "reason") : message;
}

// The condition of `type` in status.conditions, or null.
const nlohmann::json& Condition(const nlohmann::json& object, const std::string& type) {
  static const nlohmann::json kNull;
  const nlohmann::json& conditions = Field(object, {"status", "conditions"});
  if (!conditions.is_array()) return kNull;
  for (const auto& c : conditions) {
    if (kube::StringField(c, "type") == type) return c;
  }
  return kNull;
}

const nlohmann::json& PodSpec(const std::string& kind, const nlohmann::json& object) {
  if (kind == "CronJob") return Field(object, {"spec", "jobTemplate", "spec", "template", "spec"});
  return Field(object, {"spec", "template", "spec"});
}

// Container waiting reasons a rollout does not get past by itself.
bool StuckReason(const std::string& reason) {
  return reason == "CrashLoopBackOff" || reason == "ImagePullBackOff" ||
         reason == "InvalidImageName";
}

// `selector` (a LabelSelector: matchLabels and matchExpressions) as a labelSelector query
// ("app=web,tier in (a,b),!legacy"); empty when it selects nothing it can express.
std::string SelectorQuery(const nlohmann::json& selector) {
  std::vector<std::string> terms;
  for (const auto& [k, v] : StringMap(Field(selector, {"matchLabels"}))) {
    terms.push_back(absl::StrCat(k, "=", v));
  }
  const nlohmann::json& expressions = Field(selector, {"matchExpressions"});
  if (expressions.is_array()) {
    for (const auto& e : expressions) {
      if (!e.is_object()) return "";
      const std::string key = kube::StringField(e, "key");
      const std::string op = kube::StringField(e, "operator");
      std::vector<std::string> values;
      if (e.contains("values") && e["values"].is_array()) {
        for (const auto& v : e["values"]) {
          if (v.is_string()) values.push_back(v.get<std::string>());
        }
      }
      if (key.empty()) return "";
      if (op == "In" || op == "NotIn") {
        if (values.empty()) return "";
        terms.push_back(
            absl::StrCat(key, op == "In" ? " in (" : " notin (", absl::StrJoin(values, ","), ")"));
      } else if (op == "Exists") {
        terms.push_back(key);
      } else if (op == "DoesNotExist") {
        terms.push_back(absl::StrCat("!", key));
      } else {
        return "";  // an operator we do not know: selecting more pods would be wrong
      }
    }
  }
  return absl::StrJoin(terms, ",");
}

// The label term that selects the pods of `object`'s current revision
// ("pod-template-hash=..."), or empty when it cannot be told (no revision yet).
std::string CurrentRevisionTerm(kube::KubeApi& client, const nlohmann::json& object,
                                const ClusterWorkloadInfo& w, const std::string& selector) {
  if (w.kind == "StatefulSet") {
    const nlohmann::json& revision = Field(object, {"status", "updateRevision"});
    if (!revision.is_string() || revision.get<std::string>().empty()) return "";
    return absl::StrCat("controller-revision-hash=", revision.get<std::string>());
  }
  if (w.kind == "DaemonSet") {
    // The controller labels pods with the template generation (this annotation; the
    // object's generation when it is missing).
    auto generation = w.annotations.find("deprecated.daemonset.template.generation");
    return absl::StrCat("pod-template-generation=", generation != w.annotations.end()
                                                        ? generation->second
                                                        : absl::StrCat(w.rollout.generation));
  }
  // Deployment: the pod-template-hash of its ReplicaSet of the current revision.
  auto revision = w.annotations.find("deployment.kubernetes.io/revision");
  const std::string uid = kube::StringField(Field(object, {"metadata"}), "uid");
  if (revision == w.annotations.end() || uid.empty()) return "";
  absl::StatusOr<nlohmann::json> sets =
      client.Get(absl::StrCat("/apis/apps/v1/namespaces/", w.namespace_,
                              "/replicasets?labelSelector=", http::UrlEncode(selector),
                              "&limit=", kRolloutPodsListed),
                 "list");
  if (!sets.ok() || !Field(*sets, {"items"}).is_array()) return "";
  for (const auto& rs : (*sets)["items"]) {
    const nlohmann::json& meta = Field(rs, {"metadata"});
    bool owned = false;
    const nlohmann::json& owners = Field(meta, {"ownerReferences"});
    if (owners.is_array()) {
      for (const auto& o : owners) owned |= o.is_object() && kube::StringField(o, "uid") == uid;
    }
    if (!owned || StringMap(Field(meta, {"annotations"}))["deployment.kubernetes.io/revision"] !=
                      revision->second) {
      continue;
    }
    const std::string hash = StringMap(Field(meta, {"labels"}))["pod-template-hash"];
    return hash.empty() ? "" : absl::StrCat("pod-template-hash=", hash);
  }
  return "";
}

// The pods of a Deployment, DaemonSet or StatefulSet `object` still updating fail it (see
// GetClusterWorkload): only pods of its current revision count.
void CheckPods(kube::KubeApi& client, const nlohmann::json& object, ClusterWorkloadInfo& w) {
  if (w.rollout.state != RolloutInfo::State::kUpdating) return;
  if (w.kind != "Deployment" && w.kind != "DaemonSet" && w.kind != "StatefulSet") return;
  if (w.namespace_.empty()) return;
  const std::string selector = SelectorQuery(Field(object, {"spec", "selector"}));
  if (selector.empty()) return;
  const std::string revision = CurrentRevisionTerm(client, object, w, selector);
  if (revision.empty()) return;  // which pods are the new ones is unknown: conditions decide
  absl::StatusOr<nlohmann::json> pods = client.Get(
      absl::StrCat("/api/v1/namespaces/", w.namespace_,
                   "/pods?labelSelector=", http::UrlEncode(absl::StrCat(selector, ",", revision)),
                   "&limit=", kRolloutPodsListed),
      "list");
  if (!pods.ok()) return;  // e.g. no RBAC for pods: the conditions alone decide
  std::vector<std::string> failing = FailingPods(w, *pods);
  if (failing.empty()) return;
  w.rollout.state = RolloutInfo::State::kError;
  w.rollout.messages.insert(w.rollout.messages.end(), failing.begin(), failing.end());
}

// At most `max` bytes of `text`, cut at a UTF-8 character boundary.
std::string Utf8Prefix(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

}  // namespace

std::vector<std::string> FailingPods(const ClusterWorkloadInfo& w, const nlohmann::json& pods) {
  std::vector<std::string> out;
  const nlohmann::json& items = Field(pods, {"items"});
  if (!items.is_array()) return out;
  for (const auto& pod : items) {
    const std::string name = kube::StringField(Field(pod, {"metadata"}), "name");
    for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
      const nlohmann::json& statuses = Field(pod, {"status", list});
      if (!statuses.is_array()) continue;
      for (const auto& c : statuses) {
        const nlohmann::json& waiting = Field(c, {"state", "waiting"});
        const std::string reason = waiting.is_object() ? kube::StringField(waiting, "reason") : "";
        if (!StuckReason(reason)) continue;
        // Only the spec's image counts: an old replica's crash is not this rollout's.
        const std::string container = kube::StringField(c, "name");
        const nlohmann::json& spec = Field(
            pod,
            {"spec", std::string(list) == "containerStatuses" ? "containers" : "initContainers"});
        std::string image;
        if (spec.is_array()) {
          for (const auto& s : spec) {
            if (kube::StringField(s, "name") == container) image = kube::StringField(s, "image");
          }
        }
        bool current = false;
        for (const RunningContainer& r : w.containers) {
          current |= r.name == container && r.image == image;
        }
        if (!current) continue;
        std::string message = absl::StrCat("pod ", name, " container ", container, ": ", reason);
        const std::string detail = kube::StringField(waiting, "message");
        if (!detail.empty())
          absl::StrAppend(&message, ": ", Utf8Prefix(detail, kMaxPodDetailBytes));
        out.push_back(std::move(message));
        if (out.size() >= kMaxFailingPodMessages) return out;
      }
    }
  }
  return out;
}

RolloutInfo RolloutOf(const std::string& kind, const nlohmann::json& object) {
  RolloutInfo r;
  const nlohmann::json& spec = Field(object, {"spec"});
  const nlohmann::json& status = Field(object, {"status"});
  r.generation = kube::IntField(Field(object, {"metadata"}), "generation");
  r.observed_generation = kube::IntField(status, "observedGeneration");
  using State = RolloutInfo::State;
  const bool observed = r.generation <= r.observed_generation;
  auto waiting_for_observation = [&] {
    r.state = State::kUpdating;
    r.messages.push_back("waiting for the controller to observe the new spec");
  };
  if (kind == "Deployment") {
    r.desired = Count(spec, "replicas", 1);
    r.updated = Count(status, "updatedReplicas");
    r.ready = Count(status, "readyReplicas");
    r.available = Count(status, "availableReplicas");
    r.outdated = std::max(0, Count(status, "replicas") - r.updated);
    if (!observed) {
      waiting_for_observation();
    } else if (const auto& p = Condition(object, "Progressing");
               !p.is_null() && kube::StringField(p, "reason") == "ProgressDeadlineExceeded") {
      r.state = State::kError;
      r.messages.push_back(
          absl::StrCat("progress deadline exceeded: ", kube::StringField(p, "message")));
    } else if (r.updated < r.desired) {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat(r.updated, " of ", r.desired, " new replicas updated"));
    } else if (r.outdated > 0) {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat(r.outdated, " old replicas pending termination"));
    } else if (r.available < r.updated) {
      r.state = State::kUpdating;
      r.messages.push_back(
          absl::StrCat(r.available, " of ", r.updated, " updated replicas available"));
    } else {
      r.state = State::kReady;
    }
    if (const auto& f = Condition(object, "ReplicaFailure");
        !f.is_null() && kube::StringField(f, "status") == "True") {
      r.messages.push_back(absl::StrCat("replica failure: ", kube::StringField(f, "message")));
      if (r.state != State::kReady) r.state = State::kError;
    }
  } else if (kind == "DaemonSet") {
    r.desired = Count(status, "desiredNumberScheduled");
    r.updated = Count(status, "updatedNumberScheduled");
    r.ready = Count(status, "numberReady");
    r.available = Count(status, "numberAvailable");
    r.outdated = std::max(0, Count(status, "currentNumberScheduled") - r.updated);
    if (!observed) {
      waiting_for_observation();
    } else if (r.updated < r.desired) {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat(r.updated, " of ", r.desired, " pods updated"));
    } else if (r.available < r.desired) {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat(r.available, " of ", r.desired, " updated pods available"));
    } else {
      r.state = State::kReady;
    }
  } else if (kind == "StatefulSet") {
    r.desired = Count(spec, "replicas", 1);
    r.updated = Count(status, "updatedReplicas");
    r.ready = Count(status, "readyReplicas");
    r.available = Count(status, "availableReplicas", r.ready);
    r.outdated = std::max(0, Count(status, "replicas") - r.updated);
    const std::string current = kube::StringField(status, "currentRevision");
    const std::string update = kube::StringField(status, "updateRevision");
    if (!observed) {
      waiting_for_observation();
    } else if (r.ready < r.desired) {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat(r.ready, " of ", r.desired, " pods ready"));
    } else if (!update.empty() && current != update) {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat("rolling update to revision ", update, " in progress"));
    } else {
      r.state = State::kReady;
    }
  } else if (kind == "Job") {
    r.desired = Count(spec, "completions", kube::IntField(spec, "parallelism", 1));
    r.ready = r.available = r.updated = Count(status, "succeeded");
    if (const auto& f = Condition(object, "Failed");
        !f.is_null() && kube::StringField(f, "status") == "True") {
      r.state = State::kError;
      r.messages.push_back(absl::StrCat("job failed: ", MessageOrReason(f)));
    } else if (const auto& c = Condition(object, "Complete");
               !c.is_null() && kube::StringField(c, "status") == "True") {
      r.state = State::kReady;
    } else {
      r.state = State::kUpdating;
      r.messages.push_back(absl::StrCat(r.ready, " of ", r.desired, " completions"));
    }
  } else if (kind == "CronJob") {
    // Nothing rolls out: the next run uses the new spec.
    r.state = State::kReady;
  } else if (kind == "HelmRelease" || kind == "FluxHelmRelease") {
    // helm-operator's Released condition (FluxHelmRelease has no other), or Flux v2's Ready.
    const auto& ready = Condition(object, "Ready");
    const auto& released = Condition(object, "Released");
    const auto& c = !ready.is_null() ? ready : released;
    if (c.is_null()) {
      r.state = State::kUnknown;
    } else if (kube::StringField(c, "status") == "True") {
      r.state = observed ? State::kReady : State::kUpdating;
    } else {
      r.state = kube::StringField(c, "reason").find("Fail") != std::string::npos ? State::kError
                                                                                 : State::kUpdating;
      r.messages.push_back(kube::StringField(c, "message"));
    }
  }
  return r;
}

ClusterWorkloadInfo WorkloadOf(const std::string& kind, const nlohmann::json& object) {
  ClusterWorkloadInfo w;
  const auto& meta = Field(object, {"metadata"});
  w.kind = kind;
  w.name = kube::StringField(meta, "name");
  w.namespace_ = kube::StringField(meta, "namespace");
  w.id = manifest::ResourceId(w.namespace_, kind, w.name);
  w.labels = StringMap(Field(meta, {"labels"}));
  w.annotations = StringMap(Field(meta, {"annotations"}));
  const nlohmann::json& pod = PodSpec(kind, object);
  for (const char* list : {"containers", "initContainers"}) {
    const nlohmann::json& containers = Field(pod, {list});
    if (!containers.is_array()) continue;
    for (const auto& c : containers) {
      if (!c.is_object()) continue;
      w.containers.push_back({kube::StringField(c, "name"), kube::StringField(c, "image"),
                              std::string(list) == "initContainers"});
    }
  }
  w.rollout = RolloutOf(kind, object);
  return w;
}

bool IsClusterAddon(const nlohmann::json& object) {
  const auto& labels = Field(object, {"metadata", "labels"});
  if (!labels.is_object()) return false;
  return kube::StringField(labels, "kubernetes.io/cluster-service") == "true" ||
         labels.contains("addonmanager.kubernetes.io/mode");
}

const std::vector<std::pair<std::string, std::string>>& WorkloadKinds() {
  static const std::vector<std::pair<std::string, std::string>> kKinds = {
      {"apps", "Deployment"},
      {"apps", "DaemonSet"},
      {"apps", "StatefulSet"},
      {"batch", "CronJob"},
      {"batch", "Job"},
      {"helm.fluxcd.io", "HelmRelease"},
      {"helm.toolkit.fluxcd.io", "HelmRelease"},
      {"flux.weave.works", "FluxHelmRelease"}};
  return kKinds;
}

bool Listed(const std::string& kind, const nlohmann::json& object) {
  if (IsClusterAddon(object)) return false;
  const auto& owners = Field(object, {"metadata", "ownerReferences"});
  return kind != "Job" || !owners.is_array() || owners.empty();
}

namespace {

absl::Status CheckAllowed(const std::string& ns, const std::set<std::string>& allow) {
  if (ns.empty() || allow.empty() || allow.count(ns)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("namespace ", ns, " is outside the allowed namespaces (--allow_namespace)"));
}

// The object of workload `id` and its kind; NotFound when no served workload kind has it.
absl::StatusOr<std::pair<std::string, nlohmann::json>> GetWorkloadObject(
    kube::KubeApi& client, kube::Discovery& discovery, const manifest::WorkloadId& id,
    ReadFrom from = ReadFrom::kEtcd) {
  const std::string ns = id.cluster_scoped() ? "" : id.namespace_();
  for (const auto& [group, kind] : WorkloadKinds()) {
    if (absl::AsciiStrToLower(kind) != id.kind()) continue;
    absl::StatusOr<kube::ApiResource> api = discovery.FindPreferred(group, kind);
    if (!api.ok()) {
      if (api.status().code() == absl::StatusCode::kNotFound) continue;  // e.g. no such CRD
      return api.status();  // not "absent": discovery could not say
    }
    std::string path = api->ObjectPath(ns, id.name());
    if (from == ReadFrom::kWatchCache) path += "?resourceVersion=0";
    absl::StatusOr<nlohmann::json> obj = client.Get(path, "get");
    if (obj.ok()) return std::make_pair(kind, *std::move(obj));
    if (obj.status().code() != absl::StatusCode::kNotFound) return obj.status();
  }
  return absl::NotFoundError(absl::StrCat("workload ", id.ToString(), " is not in the cluster"));
}

}  // namespace

absl::Status ForEachClusterWorkload(kube::KubeApi& client, kube::Discovery& discovery,
                                    const std::string& ns, const std::set<std::string>& allow,
                                    const std::function<void(ClusterWorkloadInfo)>& fn) {
  std::vector<std::string> namespaces;
  if (!ns.empty()) {
    FERRY_RETURN_IF_ERROR(CheckAllowed(ns, allow));
    namespaces.push_back(ns);
  } else if (!allow.empty()) {
    namespaces.assign(allow.begin(), allow.end());
  } else {
    namespaces.push_back("");
  }
  for (const auto& entry : WorkloadKinds()) {
    // A named reference, not a structured binding: C++17 lambdas cannot capture those.
    const std::string& kind = entry.second;
    absl::StatusOr<kube::ApiResource> api = discovery.FindPreferred(entry.first, kind);
    if (!api.ok()) {
      if (api.status().code() == absl::StatusCode::kNotFound) continue;  // e.g. no HelmRelease CRD
      return api.status();
    }
    for (const std::string& n : namespaces) {
      FERRY_RETURN_IF_ERROR(
          kube::ForEachListItem(client, api->CollectionPath(n), {}, [&](const nlohmann::json& obj) {
            if (Listed(kind, obj)) fn(WorkloadOf(kind, obj));
            return true;
          }));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ClusterWorkloadInfo>> ListClusterWorkloads(
    kube::KubeApi& client, kube::Discovery& discovery, const std::string& ns,
    const std::set<std::string>& allow) {
  std::vector<ClusterWorkloadInfo> out;
  FERRY_RETURN_IF_ERROR(ForEachClusterWorkload(
      client, discovery, ns, allow, [&](ClusterWorkloadInfo w) { out.push_back(std::move(w)); }));
  std::sort(out.begin(), out.end(),
            [](const ClusterWorkloadInfo& a, const ClusterWorkloadInfo& b) { return a.id < b.id; });
  return out;
}

absl::StatusOr<std::vector<ClusterWorkloadInfo>> GetClusterWorkloads(
    kube::KubeApi& client, kube::Discovery& discovery, const std::vector<std::string>& ids,
    const std::string& ns, const std::set<std::string>& allow, size_t threads, ReadFrom from,
    const std::function<bool()>& cancelled) {
  FERRY_RETURN_IF_ERROR(CheckAllowed(ns, allow));
  std::vector<manifest::WorkloadId> wanted;
  std::set<std::string> seen;  // an id named twice is read once
  for (const std::string& id : ids) {
    absl::StatusOr<manifest::WorkloadId> parsed = manifest::WorkloadId::Parse(id);
    if (!parsed.ok() || parsed->cluster_scoped()) continue;  // no workload kind is
    const std::string& in = parsed->namespace_();
    if ((!ns.empty() && in != ns) || (!allow.empty() && !allow.count(in))) continue;
    if (seen.insert(parsed->ToString()).second) wanted.push_back(*std::move(parsed));
  }
  std::vector<absl::StatusOr<std::pair<std::string, nlohmann::json>>> got(wanted.size(),
                                                                          absl::NotFoundError(""));
  // Items are taken in order, so those skipped after a failure come after it.
  std::atomic<bool> stop{false};
  runtime::ParallelFor(wanted.size(), threads, [&](size_t i) {
    if (!stop && cancelled && cancelled()) {
      got[i] = absl::CancelledError("the caller is gone");
      stop = true;
    }
    if (stop) {
      if (got[i].ok() || got[i].status().code() == absl::StatusCode::kNotFound) {
        got[i] = absl::AbortedError("not read: an earlier read failed");
      }
      return;
    }
    got[i] = GetWorkloadObject(client, discovery, wanted[i], from);
    if (!got[i].ok() && got[i].status().code() != absl::StatusCode::kNotFound) stop = true;
  });
  std::vector<ClusterWorkloadInfo> out;
  for (auto& object : got) {
    if (!object.ok()) {
      if (object.status().code() == absl::StatusCode::kNotFound) continue;
      return object.status();
    }
    if (Listed(object->first, object->second)) {
      out.push_back(WorkloadOf(object->first, object->second));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ClusterWorkloadInfo& a, const ClusterWorkloadInfo& b) { return a.id < b.id; });
  return out;
}

absl::StatusOr<ClusterWorkloadInfo> GetClusterWorkload(kube::KubeApi& client,
                                                       kube::Discovery& discovery,
                                                       const std::string& id) {
  absl::StatusOr<manifest::WorkloadId> parsed = manifest::WorkloadId::Parse(id);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<std::pair<std::string, nlohmann::json>> object =
      GetWorkloadObject(client, discovery, *parsed);
  if (!object.ok()) return object.status();
  ClusterWorkloadInfo w = WorkloadOf(object->first, object->second);
  CheckPods(client, object->second, w);
  return w;
}

}  // namespace ferry::cluster_syncer
