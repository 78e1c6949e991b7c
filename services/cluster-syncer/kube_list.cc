#include "services/cluster-syncer/kube_list.h"

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/limits/limits.h"

namespace ferry::cluster_syncer {

absl::Status ForEachListItem(kube::KubeApi& client, const std::string& path, bool metadata_only,
                             const std::function<void(const nlohmann::json&)>& fn, int page_size,
                             std::string* resource_version) {
  const std::string first =
      absl::StrCat(path, path.find('?') == std::string::npos ? "?" : "&", "limit=", page_size);
  std::string next;  // the continue token of the page to read; empty for the first
  uint64_t pages = 0;
  do {
    if (++pages > limits::kKubeListPages.default_value) {
      return absl::ResourceExhaustedError(limits::OverLimit("GET " + path, limits::kKubeListPages,
                                                            limits::kKubeListPages.default_value));
    }
    const std::string page_path = next.empty() ? first : first + "&continue=" + UrlEncode(next);
    absl::StatusOr<nlohmann::json> page =
        metadata_only ? client.ListMetadata(page_path) : client.Get(page_path, "list");
    if (!page.ok()) return page.status();
    if (auto items = page->find("items"); items != page->end() && items->is_array()) {
      for (const nlohmann::json& item : *items) fn(item);
    }
    next.clear();
    if (auto meta = page->find("metadata"); meta != page->end() && meta->is_object()) {
      if (auto token = meta->find("continue"); token != meta->end() && token->is_string()) {
        next = token->get<std::string>();
      }
      if (auto rv = meta->find("resourceVersion");
          resource_version != nullptr && rv != meta->end() && rv->is_string()) {
        *resource_version = rv->get<std::string>();
      }
    }
  } while (!next.empty());
  return absl::OkStatus();
}

}  // namespace ferry::cluster_syncer
