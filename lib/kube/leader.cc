#include "lib/kube/leader.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/log/log.h"
#include "re2/re2.h"

namespace ferry::kube {

std::string MakeIdentity(const std::string& component, const std::string& pod) {
  std::random_device random;
  std::string suffix;
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&suffix, "%08x", random());
  return absl::StrCat("ferry-", component, "/", pod.empty() ? "unknown" : pod, "/", suffix);
}

bool IsFerryIdentity(const std::string& identity) {
  static const RE2& kForm = *new RE2("ferry-[a-z][a-z-]{0,62}/[^/]{1,253}/[0-9a-f]{16,64}");
  return RE2::FullMatch(identity, kForm);
}

LeaderElector::LeaderElector(LeaseApi& api, Options options, prometheus::Registry& registry,
                             runtime::Clock& clock)
    : api_(api),
      options_(std::move(options)),
      clock_(clock),
      leader_gauge_(prometheus::BuildGauge()
                        .Name("ferry_leader")
                        .Help("1 while this instance holds its leader election lease.")
                        .Register(registry)
                        .Add({{"component", options_.component}, {"lease", options_.lease}})),
      transitions_(prometheus::BuildCounter()
                       .Name("ferry_leader_transitions_total")
                       .Help("Times this instance became the leader.")
                       .Register(registry)
                       .Add({{"component", options_.component}, {"lease", options_.lease}})),
      foreign_gauge_(prometheus::BuildGauge()
                         .Name("ferry_leader_foreign_holder")
                         .Help("1 while an identity that is not a Ferry instance holds the lease "
                               "(never taken over).")
                         .Register(registry)
                         .Add({{"component", options_.component}, {"lease", options_.lease}})),
      vacant_seconds_(prometheus::BuildCounter()
                          .Name("ferry_leader_vacant_seconds_total")
                          .Help("Time the lease stood free or expired before this instance "
                                "took it.")
                          .Register(registry)
                          .Add({{"component", options_.component}, {"lease", options_.lease}})) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start() {
  log::Info("leader election",
            {{"lease", options_.lease},
             {"identity", options_.identity},
             {"lease_duration_ms", absl::ToInt64Milliseconds(options_.lease_duration)},
             {"renew_deadline_ms", absl::ToInt64Milliseconds(options_.renew_deadline)},
             {"retry_period_ms", absl::ToInt64Milliseconds(options_.retry_period)}});
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  Release();
}

bool LeaderElector::IsLeader() {
  absl::MutexLock lock(&mu_);
  return leading_ && clock_.SteadyNow() < renewed_at_ + options_.renew_deadline;
}

absl::Status LeaderElector::WritePermit() { return WriteValidity().status(); }

absl::StatusOr<absl::Duration> LeaderElector::WriteValidity() {
  absl::MutexLock lock(&mu_);
  const absl::Duration left = renewed_at_ + options_.renew_deadline - clock_.SteadyNow();
  if (leading_ && left >= kMinWriteValidity) return left;
  if (leading_ && left > absl::ZeroDuration()) {
    return absl::UnavailableError(
        absl::StrCat(options_.component, " ", options_.identity, " leads (lease ", options_.lease,
                     ") for less than ", absl::FormatDuration(kMinWriteValidity),
                     " more unless it renews: too little to write; retry after its renewal"));
  }
  std::string holder = observed_ ? observed_->holder_identity : "";
  std::string leader;
  if (holder.empty()) {
    leader = "no leader is elected yet";
  } else if (holder == options_.identity) {
    // It led and did not renew in time (paused, or the API server was unreachable): the
    // Lease may have passed to another instance since it last read it.
    leader =
        "its leadership lapsed (no renewal within the renew deadline) and a leader is "
        "being elected";
  } else if (!IsFerryIdentity(holder)) {
    leader = absl::StrCat("the lease is held by '", holder,
                          "', which is not a Ferry instance and is never taken over");
  } else {
    leader = absl::StrCat("the leader is ", holder);
  }
  return absl::UnavailableError(absl::StrCat(options_.component, " ", options_.identity,
                                             " is a standby (lease ", options_.lease, "): ", leader,
                                             "; writes go to the leader"));
}

std::string LeaderElector::Leader() {
  absl::MutexLock lock(&mu_);
  if (leading_) return options_.identity;
  return observed_ ? observed_->holder_identity : "";
}

void LeaderElector::SetLeadershipSink(std::function<void(bool)> sink) {
  absl::MutexLock lock(&mu_);
  sink_ = std::move(sink);
  if (sink_) sink_(leading_);
}

void LeaderElector::Observe(const LeaseRecord& record, absl::Time now) {
  if (!observed_ || *observed_ != record) {
    observed_ = record;
    observed_at_ = now;
  }
}

bool LeaderElector::TryAcquireOrRenew() {
  // Intervals on the steady reading; the wall time only goes into the Lease for others.
  const absl::Time now = clock_.SteadyNow();
  const absl::Time wall = clock_.Now();
  LeaseRecord wanted;
  wanted.holder_identity = options_.identity;
  wanted.lease_duration = options_.lease_duration;
  wanted.acquire_time = wall;
  wanted.renew_time = wall;

  absl::StatusOr<LeaseRecord> current = api_.Get();
  if (absl::IsNotFound(current.status())) {
    absl::StatusOr<LeaseRecord> created = api_.Create(wanted);
    if (!created.ok()) {
      log::Debug("lease create failed",
                 {{"lease", options_.lease}, {"error", std::string(created.status().message())}});
      return false;
    }
    absl::MutexLock lock(&mu_);
    Observe(*created, now);
    renewed_at_ = now;
    return true;
  }
  if (!current.ok()) {
    log::Warn("cannot read the leader election lease",
              {{"lease", options_.lease}, {"error", std::string(current.status().message())}});
    return false;
  }

  absl::Duration vacant = absl::ZeroDuration();
  {
    absl::MutexLock lock(&mu_);
    Observe(*current, now);
    const std::string& holder = current->holder_identity;
    const bool ferry = holder.empty() || IsFerryIdentity(holder);
    foreign_gauge_.Set(ferry ? 0 : 1);
    if (!ferry) {
      if (reported_foreign_ != holder) {
        reported_foreign_ = holder;
        log::Warn(
            "the leader election lease is held by an identity that is not a Ferry "
            "instance; it is never taken over",
            {{"lease", options_.lease}, {"holder", holder}});
      }
      return false;
    }
    reported_foreign_.clear();
    if (!holder.empty() && holder != options_.identity) {
      const absl::Duration duration = current->lease_duration > absl::ZeroDuration()
                                          ? current->lease_duration
                                          : options_.lease_duration;
      if (observed_at_ + duration > now) return false;  // held and not expired
      vacant = now - (observed_at_ + duration);
    } else if (holder.empty()) {
      vacant = now - observed_at_;
    }
  }
  wanted.resource_version = current->resource_version;
  if (current->holder_identity == options_.identity) {
    wanted.acquire_time = current->acquire_time;
    wanted.lease_transitions = current->lease_transitions;
  } else {
    wanted.lease_transitions = current->lease_transitions + 1;
  }
  absl::StatusOr<LeaseRecord> updated = api_.Update(wanted);
  if (!updated.ok()) {
    log::Debug("lease update failed",
               {{"lease", options_.lease}, {"error", std::string(updated.status().message())}});
    return false;
  }
  absl::MutexLock lock(&mu_);
  Observe(*updated, now);
  renewed_at_ = now;
  if (!leading_) vacant_seconds_.Increment(absl::ToDoubleSeconds(vacant));
  return true;
}

void LeaderElector::SetLeading(bool leading) {
  if (leading == leading_) return;
  leading_ = leading;
  leader_gauge_.Set(leading ? 1 : 0);
  if (leading) transitions_.Increment();
  if (leading) {
    log::Info("started leading", {{"lease", options_.lease}, {"identity", options_.identity}});
  } else {
    log::Warn("stopped leading", {{"lease", options_.lease},
                                  {"identity", options_.identity},
                                  {"holder", observed_ ? observed_->holder_identity : ""}});
  }
  if (sink_) sink_(leading);
}

void LeaderElector::UpdateLeadership(bool held, absl::Time attempt) {
  absl::MutexLock lock(&mu_);
  if (held) {
    SetLeading(true);
    return;
  }
  if (!leading_) return;
  const bool other_holder = observed_ && observed_->holder_identity != options_.identity;
  if (other_holder || attempt >= renewed_at_ + options_.renew_deadline ||
      clock_.SteadyNow() >= renewed_at_ + options_.renew_deadline) {
    SetLeading(false);
  }
}

void LeaderElector::Run() {
  while (true) {
    const absl::Time attempt = clock_.SteadyNow();
    const bool held = TryAcquireOrRenew();
    UpdateLeadership(held, attempt);
    absl::MutexLock lock(&mu_);
    // The next attempt a retry period after this one began (on the steady reading); at once
    // when it took longer. WaitUntil takes a wall-clock deadline: computed from now, so that
    // only a step during the wait itself can stretch it.
    clock_.WaitUntil(mu_, clock_.Now() + (attempt + options_.retry_period - clock_.SteadyNow()),
                     [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; });
    if (stop_) return;
  }
}

void LeaderElector::Release() {
  LeaseRecord released;
  {
    absl::MutexLock lock(&mu_);
    const bool valid = leading_ && clock_.SteadyNow() < renewed_at_ + options_.renew_deadline;
    SetLeading(false);
    if (!valid || !observed_ || observed_->holder_identity != options_.identity) return;
    released = *observed_;
  }
  // As client-go's ReleaseOnCancel: an empty holder and a 1 s duration.
  const absl::Time wall = clock_.Now();
  released.holder_identity.clear();
  released.lease_duration = absl::Seconds(1);
  released.acquire_time = wall;
  released.renew_time = wall;
  absl::StatusOr<LeaseRecord> updated = api_.Update(released);
  if (!updated.ok()) {
    log::Warn("could not release the leader election lease",
              {{"lease", options_.lease}, {"error", std::string(updated.status().message())}});
    return;
  }
  log::Info("released the leader election lease", {{"lease", options_.lease}});
  absl::MutexLock lock(&mu_);
  Observe(*updated, clock_.SteadyNow());
}

}  // namespace ferry::kube
