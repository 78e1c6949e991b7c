// Workload ids: "namespace:kind/name", the one spelling every service and ferryctl use for a
// workload ("default:deployment/helloworld"), and Flux v1's before them.
//
// One grammar, checked here and nowhere else:
//
//   namespace  a DNS label (lower-case letters, digits and '-', starting and ending with a
//              letter or digit, at most 63), or "<cluster>" for cluster-scoped objects
//   kind       lower-case letters, digits, '.' and '-', at most 63
//   name       a Kubernetes object name: a DNS subdomain (dot-separated DNS labels of
//              lower-case letters, digits and '-', at most 253 in all)
//
// so an id is one line of printable ASCII of at most kMaxBytes, holding one ':' and one '/'.
// Every refusal is InvalidArgument with one message, "\"<text>\" is not a workload id:
// <what is wrong>; use namespace:kind/name, e.g. default:deployment/helloworld", the text
// escaped with names::Escape (and cut short when it is over kMaxBytes). Callers that name a
// request field put it in front ("workloads: ...").
//
// Objects read from a manifest or the cluster get their ids from Format (ResourceId), which
// does not check: the API server validates object names, and kinds that are not workloads
// have names outside this grammar ("<cluster>:clusterrole/system:auth-delegator").
//
// All functions are pure and thread-safe.
#pragma once

#include <compare>
#include <cstddef>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::manifest {

// Lower-case letters, digits and '-', starting and ending with a letter or digit (RFC 1123),
// of any length.
bool IsDnsLabelText(absl::string_view s);
// IsDnsLabelText and at most 63 bytes: a namespace's name, a label of a DNS name.
bool IsDnsLabel(absl::string_view s);

// A valid workload id. Value type; only Parse and ParseLoose make one.
class WorkloadId {
 public:
  // The namespace of cluster-scoped objects.
  static constexpr absl::string_view kClusterScope = "<cluster>";
  static constexpr size_t kMaxNamespaceBytes = 63;
  static constexpr size_t kMaxKindBytes = 63;
  static constexpr size_t kMaxNameBytes = 253;
  static constexpr size_t kMaxBytes = kMaxNamespaceBytes + 1 + kMaxKindBytes + 1 + kMaxNameBytes;

  // Parses the canonical form "namespace:kind/name", as services take it. InvalidArgument
  // (the message above) for anything else, upper-case kinds included.
  static absl::StatusOr<WorkloadId> Parse(absl::string_view text);

  // Parses an id as people type it: "namespace:kind/name", or "kind/name" in
  // `default_namespace`, the kind in any case ("sock-shop:Deployment/front-end" is
  // "sock-shop:deployment/front-end"). The result is held to the same grammar and refused
  // with the same message as Parse. Legacy "namespace/name" ids are read as "kind/name":
  // telling them apart needs the list of workloads, which is ferryctl's to fetch.
  static absl::StatusOr<WorkloadId> ParseLoose(absl::string_view text,
                                               absl::string_view default_namespace);

  // The id text of an object: "namespace:kind/name" with the kind lower-cased and
  // kClusterScope when `namespace_` is empty. Not checked (see above).
  static std::string Format(absl::string_view namespace_, absl::string_view kind,
                            absl::string_view name);

  // The namespace as written in the id: kClusterScope for cluster-scoped objects.
  const std::string& namespace_() const { return namespace_value_; }
  // Lower-case.
  const std::string& kind() const { return kind_; }
  const std::string& name() const { return name_; }
  bool cluster_scoped() const { return namespace_value_ == kClusterScope; }

  // "namespace:kind/name"; Parse(ToString()) gives this id back.
  std::string ToString() const;

  friend bool operator==(const WorkloadId& a, const WorkloadId& b) = default;
  // Ordered as their ToString() texts are (the order Ferry lists ids in).
  friend std::strong_ordering operator<=>(const WorkloadId& a, const WorkloadId& b);

 private:
  WorkloadId(std::string namespace_value, std::string kind, std::string name)
      : namespace_value_(std::move(namespace_value)),
        kind_(std::move(kind)),
        name_(std::move(name)) {}

  // Checks the parts split from `text` (which the message quotes).
  static absl::StatusOr<WorkloadId> FromParts(absl::string_view text, absl::string_view ns,
                                              absl::string_view kind, absl::string_view name);

  std::string namespace_value_;
  std::string kind_;
  std::string name_;
};

std::ostream& operator<<(std::ostream& os, const WorkloadId& id);

}  // namespace ferry::manifest
