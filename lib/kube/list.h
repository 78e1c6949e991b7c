// Lists of the Kubernetes API read a page at a time (`limit` + `continue`), so that a
// collection of 10,000 objects never lives in memory as one JSON document: only the page
// being read does, and the caller keeps what it needs of each item. The one paging loop of
// Ferry's services: the page limit (limits::kKubeListPages) and the encoding of continue
// tokens live here.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/kube/kube_api.h"

namespace ferry::kube {

// Objects asked for per list request. The API server caps the JSON it builds per answer by
// it; 500 is what kubectl asks for.
inline constexpr int kListPageSize = 500;

struct ListOptions {
  // Each page with KubeApi::ListMetadataWithin (metadata only), else KubeApi::GetWithin
  // (verb "list").
  bool metadata_only = false;
  int page_size = kListPageSize;
  // Each page's request is given up after this (DeadlineExceeded or Unavailable).
  absl::Duration page_timeout = KubeApi::kDefaultCallTimeout;
  // The whole list is given up at this time: no page is asked for after it, and each
  // page's timeout ends by it.
  absl::Time deadline = absl::InfiniteFuture();
  // Receives the list's metadata.resourceVersion (the snapshot every page was read from),
  // where a watch of the collection starts. Optional.
  std::string* resource_version = nullptr;
};

// Calls `fn` with each item of the collection at `path` (which may carry a query string
// already), page after page, until the list ends or `fn` returns false (then OK, and no
// further page is asked for). The first error of a page request, as KubeApi answers it (the
// items before it have been passed to `fn`); ResourceExhausted after limits::kKubeListPages
// pages that all handed out a continue token (a server that never ends its list);
// DeadlineExceeded when `options.deadline` passed before the list ended.
absl::Status ForEachListItem(KubeApi& client, const std::string& path, const ListOptions& options,
                             const std::function<bool(const nlohmann::json& item)>& fn);

}  // namespace ferry::kube
