// Pages of the public lists (ListWorkloads, ListImages): how big a page is, and the opaque
// page token that continues a list where the previous page ended, at the same git revision.
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace ferry::api {

// Workloads in one page: the default (page_size 0) and the most a request gets.
struct PageSizes {
  int32_t default_size;
  int32_t max_size;
};
inline constexpr PageSizes kWorkloadPages{500, 5000};
inline constexpr PageSizes kImagePages{100, 1000};
// An answer ends before it grows past this (with at least one workload in it): under gRPC's
// default 4 MiB, so a client with default settings reads any page.
inline constexpr size_t kPageBytes = 4 * 1024 * 1024 - 64 * 1024;
// The longest page token accepted (Ferry's are a few hundred bytes).
inline constexpr size_t kMaxPageTokenBytes = 2048;

// `page_size` of a request: the default for 0, at most `sizes.max_size`. InvalidArgument
// when negative.
absl::StatusOr<int32_t> PageSizeOf(int32_t page_size, const PageSizes& sizes);

// Where a page ends: the revision of the list and the last workload id answered.
struct PagePosition {
  std::string revision;
  std::string last_id;
  // With several sources (sources.h): the source the next page reads ("" with one).
  std::string source;
};

// The token of `position` for requests that carry `request_key` (the fields a continuation
// must repeat: method, namespace, filters).
std::string EncodePageToken(const PagePosition& position, absl::string_view request_key);

// The position in `token` (empty: the first page, an empty position). InvalidArgument when
// the token is not one of Ferry's, or was made for a request other than `request_key`.
absl::StatusOr<PagePosition> DecodePageToken(absl::string_view token,
                                             absl::string_view request_key);

// Cuts `items` after the last one that keeps the answer within kPageBytes, keeping at least
// one. Returns the id (`id_of(item)`) of the last item kept when it cut, "" when everything
// fits.
template <typename Item, typename IdOf>
std::string CutToPageBytes(google::protobuf::RepeatedPtrField<Item>& items, IdOf id_of) {
  size_t bytes = 0;
  for (int i = 0; i < items.size(); ++i) {
    bytes += items[i].ByteSizeLong() + 8;  // the field's tag and length
    if (bytes > kPageBytes && i > 0) {
      items.DeleteSubrange(i, items.size() - i);
      return std::string(id_of(items[i - 1]));
    }
  }
  return "";
}

}  // namespace ferry::api
