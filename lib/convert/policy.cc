#include "lib/convert/policy.h"

namespace ferry::convert {

absl::StatusOr<manifest::PolicyUpdate> ToPolicyUpdate(const ferry::v1::PolicyChange& change) {
  manifest::PolicyUpdate update;
  switch (change.change_case()) {
    case ferry::v1::PolicyChange::kAutomate:
      update.automated = true;
      break;
    case ferry::v1::PolicyChange::kDeautomate:
      update.automated = false;
      break;
    case ferry::v1::PolicyChange::kLock:
      update.locked = true;
      update.locked_user = change.lock().user();
      update.locked_msg = change.lock().message();
      break;
    case ferry::v1::PolicyChange::kUnlock:
      update.locked = false;
      break;
    case ferry::v1::PolicyChange::kSetTagFilter:
      if (change.set_tag_filter().container().empty()) {
        return absl::InvalidArgumentError("set_tag_filter needs a container");
      }
      update.tag_filters[change.set_tag_filter().container()] = change.set_tag_filter().pattern();
      break;
    case ferry::v1::PolicyChange::kRemoveTagFilter:
      update.tag_filters[change.remove_tag_filter()] = std::nullopt;
      break;
    case ferry::v1::PolicyChange::kSetTagAll:
      update.tag_all = std::optional<std::string>(change.set_tag_all());
      break;
    case ferry::v1::PolicyChange::kRemoveTagAll:
      update.tag_all = std::optional<std::string>();
      break;
    case ferry::v1::PolicyChange::kSetMinAge:
      update.min_ages[change.set_min_age().container()] = change.set_min_age().duration();
      break;
    case ferry::v1::PolicyChange::kRemoveMinAge:
      update.min_ages[change.remove_min_age()] = std::nullopt;
      break;
    case ferry::v1::PolicyChange::kSetRollback:
      update.rollback = std::optional<std::string>(change.set_rollback());
      break;
    case ferry::v1::PolicyChange::kRemoveRollback:
      update.rollback = std::optional<std::string>();
      break;
    case ferry::v1::PolicyChange::kSetRollbackTimeout:
      update.rollback_timeout = std::optional<std::string>(change.set_rollback_timeout());
      break;
    case ferry::v1::PolicyChange::kRemoveRollbackTimeout:
      update.rollback_timeout = std::optional<std::string>();
      break;
    case ferry::v1::PolicyChange::kRejectTag:
      if (change.reject_tag().container().empty()) {
        return absl::InvalidArgumentError("reject_tag needs a container");
      }
      update.reject[change.reject_tag().container()].push_back(
          {change.reject_tag().tag(), change.reject_tag().job()});
      break;
    case ferry::v1::PolicyChange::kClearRejected:
      update.clear_rejected.insert(change.clear_rejected());
      break;
    default:
      return absl::InvalidArgumentError("empty policy change");
  }
  return update;
}

std::vector<ferry::v1::PolicyChange> ToPolicyChanges(const manifest::PolicyUpdate& update) {
  std::vector<ferry::v1::PolicyChange> out;
  if (update.automated.has_value()) {
    if (*update.automated) {
      out.emplace_back().set_automate(true);
    } else {
      out.emplace_back().set_deautomate(true);
    }
  }
  if (update.locked.has_value()) {
    if (*update.locked) {
      ferry::v1::LockChange* lock = out.emplace_back().mutable_lock();
      lock->set_user(update.locked_user);
      lock->set_message(update.locked_msg);
    } else {
      out.emplace_back().set_unlock(true);
    }
  }
  for (const auto& [container, pattern] : update.tag_filters) {
    if (pattern.has_value()) {
      ferry::v1::TagFilterChange* filter = out.emplace_back().mutable_set_tag_filter();
      filter->set_container(container);
      filter->set_pattern(*pattern);
    } else {
      out.emplace_back().set_remove_tag_filter(container);
    }
  }
  if (update.tag_all.has_value()) {
    if (update.tag_all->has_value()) {
      out.emplace_back().set_set_tag_all(**update.tag_all);
    } else {
      out.emplace_back().set_remove_tag_all(true);
    }
  }
  for (const auto& [container, duration] : update.min_ages) {
    if (duration.has_value()) {
      ferry::v1::MinAgeChange* change = out.emplace_back().mutable_set_min_age();
      change->set_container(container);
      change->set_duration(*duration);
    } else {
      out.emplace_back().set_remove_min_age(container);
    }
  }
  if (update.rollback.has_value()) {
    if (update.rollback->has_value()) {
      out.emplace_back().set_set_rollback(**update.rollback);
    } else {
      out.emplace_back().set_remove_rollback(true);
    }
  }
  if (update.rollback_timeout.has_value()) {
    if (update.rollback_timeout->has_value()) {
      out.emplace_back().set_set_rollback_timeout(**update.rollback_timeout);
    } else {
      out.emplace_back().set_remove_rollback_timeout(true);
    }
  }
  for (const std::string& container : update.clear_rejected) {
    out.emplace_back().set_clear_rejected(container);
  }
  for (const auto& [container, tags] : update.reject) {
    for (const policy::RejectedTag& t : tags) {
      ferry::v1::RejectTag* reject = out.emplace_back().mutable_reject_tag();
      reject->set_container(container);
      reject->set_tag(t.tag);
      reject->set_job(t.job);
    }
  }
  return out;
}

void FillPolicy(const manifest::Policies& policies, ferry::v1::Policy* out) {
  out->set_automated(policies.automated);
  out->set_locked(policies.locked);
  out->set_locked_user(policies.locked_user);
  out->set_locked_msg(policies.locked_msg);
  out->set_ignore(policies.ignore == manifest::IgnoreMode::kAll ? ferry::v1::IGNORE_MODE_ALL
                  : policies.ignore == manifest::IgnoreMode::kSyncOnly
                      ? ferry::v1::IGNORE_MODE_SYNC_ONLY
                      : ferry::v1::IGNORE_MODE_UNSPECIFIED);
  for (const auto& [container, pattern] : policies.tag_filters) {
    (*out->mutable_tag_filters())[container] = pattern;
  }
  out->set_tag_all(policies.tag_all);
  for (const auto& [container, age] : policies.min_ages)
    (*out->mutable_min_ages())[container] = age;
  out->set_min_age_all(policies.min_age_all);
  out->set_rollback(policies.rollback);
  out->set_rollback_timeout(policies.rollback_timeout);
  for (const auto& [container, tags] : policies.rejected) {
    (*out->mutable_rejected())[container] = tags;
  }
  for (const std::string& error : policies.errors) out->add_errors(error);
}

}  // namespace ferry::convert
