// What a tag is: its digest, every platform of a multi-platform image, and for the chosen
// platform the creation time and labels from the image config.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/registry-scanner/registry_client.h"

namespace ferry::registry_scanner {

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string digest;  // of this platform's manifest
};

enum class CreatedSource { kNone, kConfig, kOciLabel, kLabelSchema };

struct TagMetadata {
  std::string digest;  // of the manifest (or index) the tag points to
  std::string media_type;
  std::optional<absl::Time> created;
  CreatedSource created_source = CreatedSource::kNone;
  std::vector<Platform> platforms;
  std::map<std::string, std::string> labels;
  // Why `created` is missing; empty when it is known.
  std::string incomplete_reason;
};

// Which platform of a multi-platform image to describe.
struct PlatformSpec {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  // Parses "os/arch[/variant]" ("linux/arm64/v8"). InvalidArgument otherwise.
  static absl::StatusOr<PlatformSpec> Parse(const std::string& text);
};

struct MetadataOptions {
  PlatformSpec platform;
  // Take the creation time from the org.opencontainers.image.created /
  // org.label-schema.build-date labels first (the config's is used otherwise, and the
  // labels whenever the config's is missing or zero).
  bool prefer_labels = false;
};

// Reads the manifest of `reference` and, for the chosen platform, its config blob.
// Docker schema 2, OCI manifests, Docker manifest lists, OCI indexes and legacy schema 1.
// Its requests go out with `priority` (kInteractive: someone waits for the answer now).
absl::StatusOr<TagMetadata> FetchTagMetadata(RegistryClient& client, const std::string& registry,
                                             const std::string& path, const std::string& reference,
                                             const MetadataOptions& options,
                                             http::Priority priority = http::Priority::kBackground);

// Parses an RFC 3339 time; nullopt for unparsable times, for zero ("0001-01-01T00:00:00Z")
// and others not after the epoch, and for times past 9999 (no Timestamp holds them).
std::optional<absl::Time> ParseCreated(const std::string& text);

}  // namespace ferry::registry_scanner
