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
}

}  // namespace ferry::convert
