#include "lib/kube/list.h"

#include <algorithm>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/http/url.h"
#include "lib/kube/json_fields.h"
#include "lib/limits/limits.h"

namespace ferry::kube {

absl::Status ForEachListItem(KubeApi& client, const std::string& path, const ListOptions& options,
                             const std::function<bool(const nlohmann::json& item)>& fn) {
  const std::string first = absl::StrCat(path, path.find('?') == std::string::npos ? "?" : "&",
                                         "limit=", options.page_size);
  std::string next;  // the continue token of the page to read; empty for the first
  uint64_t pages = 0;
  do {
    if (++pages > limits::kKubeListPages.default_value) {
      return absl::ResourceExhaustedError(limits::OverLimit("GET " + path, limits::kKubeListPages,
                                                            limits::kKubeListPages.default_value));
    }
    // The token is opaque: encoded, it is one query value whatever it holds.
    const std::string page_path =
        next.empty() ? first : absl::StrCat(first, "&continue=", http::UrlEncode(next));
    auto past_deadline = [&] {
      return absl::DeadlineExceededError(absl::StrCat(
          "GET ", path, ": the list did not end by its deadline (", pages - 1, " pages read)"));
    };
    absl::Duration timeout = options.page_timeout;
    if (options.deadline != absl::InfiniteFuture()) {
      const absl::Duration left = options.deadline - absl::Now();
      // Less than a millisecond is no time for a request (and no timeout at all to some
      // clients).
      if (left < absl::Milliseconds(1)) return past_deadline();
      timeout = std::min(timeout, left);
    }
    absl::StatusOr<nlohmann::json> page = options.metadata_only
                                              ? client.ListMetadataWithin(page_path, timeout)
                                              : client.GetWithin(page_path, "list", timeout);
    if (!page.ok()) {
      if (options.deadline != absl::InfiniteFuture() && absl::Now() >= options.deadline) {
        return past_deadline();
      }
      return page.status();
    }
    if (auto items = page->find("items"); items != page->end() && items->is_array()) {
      for (const nlohmann::json& item : *items) {
        if (!fn(item)) return absl::OkStatus();
      }
    }
    const nlohmann::json& meta = Field(*page, "metadata");
    next = StringField(meta, "continue");
    if (options.resource_version != nullptr && Field(meta, "resourceVersion").is_string()) {
      *options.resource_version = StringField(meta, "resourceVersion");
    }
  } while (!next.empty());
  return absl::OkStatus();
}

}  // namespace ferry::kube
