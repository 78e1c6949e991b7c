#include "lib/kube/lease.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ferry::kube {
namespace {

constexpr char kMicroTime[] = "%Y-%m-%d%ET%H:%M:%E6SZ";

std::string FormatMicroTime(absl::Time t) {
  return absl::FormatTime(kMicroTime, t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseMicroTime(const nlohmann::json& spec, const char* key) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return absl::InfinitePast();
  absl::Time t;
  std::string error;
  if (!it->is_string() ||
      !absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &t, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("Lease spec.", key, " is not a time"));
  }
  return t;
}

}  // namespace

nlohmann::json LeaseToJson(const std::string& ns, const std::string& name,
                           const LeaseRecord& record) {
  nlohmann::json metadata = {{"name", name}, {"namespace", ns}};
  if (!record.resource_version.empty()) metadata["resourceVersion"] = record.resource_version;
  nlohmann::json spec = {
      {"holderIdentity", record.holder_identity},
      {"leaseDurationSeconds", std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(
                                                        record.lease_duration, absl::Seconds(1))))},
      {"leaseTransitions", record.lease_transitions}};
  if (record.acquire_time != absl::InfinitePast()) {
    spec["acquireTime"] = FormatMicroTime(record.acquire_time);
  }
  if (record.renew_time != absl::InfinitePast()) {
    spec["renewTime"] = FormatMicroTime(record.renew_time);
  }
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", metadata},
          {"spec", spec}};
}

absl::StatusOr<LeaseRecord> LeaseFromJson(const nlohmann::json& lease) {
  LeaseRecord record;
  if (!lease.is_object()) return absl::InvalidArgumentError("a Lease is not a JSON object");
  if (auto m = lease.find("metadata"); m != lease.end() && m->is_object()) {
    if (auto rv = m->find("resourceVersion"); rv != m->end() && rv->is_string()) {
      record.resource_version = rv->get<std::string>();
    }
  }
  auto s = lease.find("spec");
  if (s == lease.end() || !s->is_object()) return record;
  const nlohmann::json& spec = *s;
  if (auto h = spec.find("holderIdentity"); h != spec.end() && h->is_string()) {
    record.holder_identity = h->get<std::string>();
  }
  if (auto d = spec.find("leaseDurationSeconds"); d != spec.end() && d->is_number_integer()) {
    record.lease_duration = absl::Seconds(std::clamp<int64_t>(d->get<int64_t>(), 0, 86400 * 365));
  }
  if (auto t = spec.find("leaseTransitions"); t != spec.end() && t->is_number_integer()) {
    record.lease_transitions = t->get<int64_t>();
  }
  absl::StatusOr<absl::Time> acquire = ParseMicroTime(spec, "acquireTime");
  if (!acquire.ok()) return acquire.status();
  record.acquire_time = *acquire;
  absl::StatusOr<absl::Time> renew = ParseMicroTime(spec, "renewTime");
  if (!renew.ok()) return renew.status();
  record.renew_time = *renew;
  return record;
}

KubeLeaseApi::KubeLeaseApi(KubeClient& kube, std::string ns, std::string name,
                           absl::Duration timeout)
    : kube_(kube), ns_(std::move(ns)), name_(std::move(name)), timeout_(timeout) {}

absl::StatusOr<LeaseRecord> KubeLeaseApi::Get() {
  absl::StatusOr<nlohmann::json> lease = kube_.GetWithin(
      absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", ns_, "/leases/", name_), "lease",
      timeout_);
  if (!lease.ok()) return lease.status();
  return LeaseFromJson(*lease);
}

absl::StatusOr<LeaseRecord> KubeLeaseApi::Create(const LeaseRecord& record) {
  LeaseRecord fresh = record;
  fresh.resource_version.clear();
  absl::StatusOr<nlohmann::json> lease =
      kube_.Create(absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", ns_, "/leases"),
                   LeaseToJson(ns_, name_, fresh), "lease", timeout_);
  if (!lease.ok()) return lease.status();
  return LeaseFromJson(*lease);
}

absl::StatusOr<LeaseRecord> KubeLeaseApi::Update(const LeaseRecord& record) {
  absl::StatusOr<nlohmann::json> lease = kube_.Replace(
      absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", ns_, "/leases/", name_),
      LeaseToJson(ns_, name_, record), "lease", timeout_);
  if (!lease.ok()) return lease.status();
  return LeaseFromJson(*lease);
}

}  // namespace ferry::kube
