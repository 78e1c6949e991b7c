// FakeLeaseApi: one Lease in memory, for tests of code that elects a leader (leader.h).
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/kube/leader.h"

namespace ferry::kube {

// One Lease in memory with resourceVersion compare-and-swap, as the API server keeps it.
// Thread-compatible (tests call it from one thread, or guard it).
class FakeLeaseApi final : public LeaseApi {
 public:
  absl::StatusOr<LeaseRecord> Get() override {
    ++gets;
    if (!get_error.ok()) return get_error;
    if (!lease) return absl::NotFoundError("leases \"x\" not found");
    return *lease;
  }
  absl::StatusOr<LeaseRecord> Create(const LeaseRecord& record) override {
    if (lease) return absl::AlreadyExistsError("already exists");
    return Store(record);
  }
  absl::StatusOr<LeaseRecord> Update(const LeaseRecord& record) override {
    ++updates;
    if (!update_error.ok()) return update_error;
    if (!lease) return absl::NotFoundError("gone");
    if (record.resource_version != lease->resource_version) {
      return absl::AbortedError("Operation cannot be fulfilled: the object has been modified");
    }
    return Store(record);
  }
  // Another writer changes the lease (as another instance's renewal would).
  LeaseRecord& Set(LeaseRecord record) {
    Store(record);
    return *lease;
  }

  std::optional<LeaseRecord> lease;
  absl::Status get_error, update_error;
  int gets = 0, updates = 0;

 private:
  LeaseRecord Store(LeaseRecord record) {
    record.resource_version = std::to_string(++version_);
    lease = record;
    return record;
  }
  int version_ = 0;
};

}  // namespace ferry::kube
