// Lists of the Kubernetes API read a page at a time (`limit` + `continue`), so that a
// collection of 10,000 objects never lives in memory as one JSON document: only the page
// being read does, and the caller keeps what it needs of each item.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "lib/http/url.h"
#include "lib/kube/kube_api.h"

namespace ferry::cluster_syncer {

// Objects asked for per list request. The API server caps the JSON it builds per answer by
// it; 500 is what kubectl asks for.
inline constexpr int kKubeListPageSize = 500;

using http::UrlEncode;

// Calls `fn` with each item of the collection at `path` (which may carry a query string
// already), page after page. `metadata_only` lists with KubeApi::ListMetadata, else with
// KubeApi::Get (verb "list"). The first error of a page request, as KubeApi answers it
// (the items before it have been passed to `fn`); ResourceExhausted after
// limits::kKubeListPages pages that all handed out a continue token. `resource_version` (optional)
// receives the list's metadata.resourceVersion (the snapshot every page was read from), where a
// watch of the collection starts.
absl::Status ForEachListItem(kube::KubeApi& client, const std::string& path, bool metadata_only,
                             const std::function<void(const nlohmann::json&)>& fn,
                             int page_size = kKubeListPageSize,
                             std::string* resource_version = nullptr);

}  // namespace ferry::cluster_syncer
