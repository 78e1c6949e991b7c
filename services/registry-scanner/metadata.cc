#include "services/registry-scanner/metadata.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::registry_scanner {
namespace {

using json = nlohmann::json;

bool IsIndex(const std::string& media_type) {
  return media_type == "application/vnd.oci.image.index.v1+json" ||
         media_type == "application/vnd.docker.distribution.manifest.list.v2+json";
}

bool IsSchema1(const std::string& media_type) {
  return absl::StartsWith(media_type, "application/vnd.docker.distribution.manifest.v1");
}

// Fills created / labels from an image config (or a schema 1 v1Compatibility) JSON.
void ReadConfig(const json& config, const MetadataOptions& options, TagMetadata& out) {
  if (config.contains("config") && config["config"].is_object() &&
      config["config"].contains("Labels") && config["config"]["Labels"].is_object()) {
    for (auto& [k, v] : config["config"]["Labels"].items()) {
      if (v.is_string()) out.labels[k] = v.get<std::string>();
    }
  }
  std::optional<absl::Time> from_config;
  if (config.contains("created") && config["created"].is_string()) {
    from_config = ParseCreated(config["created"].get<std::string>());
  }
  std::optional<absl::Time> oci;
  std::optional<absl::Time> schema;
  if (auto it = out.labels.find("org.opencontainers.image.created"); it != out.labels.end()) {
    oci = ParseCreated(it->second);
  }
  if (auto it = out.labels.find("org.label-schema.build-date"); it != out.labels.end()) {
    schema = ParseCreated(it->second);
  }
  auto use_labels = [&] {
    if (oci) {
      out.created = oci;
      out.created_source = CreatedSource::kOciLabel;
    } else if (schema) {
      out.created = schema;
      out.created_source = CreatedSource::kLabelSchema;
    }
  };
  if (options.prefer_labels) use_labels();
  if (!out.created && from_config) {
    out.created = from_config;
    out.created_source = CreatedSource::kConfig;
  }
  if (!out.created) use_labels();
  if (!out.created) {
    out.incomplete_reason =
        "the image config has no creation time (missing or zero) and no "
        "org.opencontainers.image.created / org.label-schema.build-date label";
  }
}

}  // namespace

absl::StatusOr<PlatformSpec> PlatformSpec::Parse(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("platform \"", text, "\": use os/arch[/variant], e.g. linux/arm64/v8"));
  }
  PlatformSpec p;
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

std::optional<absl::Time> ParseCreated(const std::string& text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return std::nullopt;
  if (t <= absl::FromUnixSeconds(0)) return std::nullopt;  // Go's zero time and the epoch
  // Past 9999-12-31T23:59:59Z no google.protobuf.Timestamp holds it (nor its JSON form).
  if (t > absl::FromUnixSeconds(253402300799)) return std::nullopt;
  return t;
}

absl::StatusOr<TagMetadata> FetchTagMetadata(RegistryClient& client, const std::string& registry,
                                             const std::string& path, const std::string& reference,
                                             const MetadataOptions& options,
                                             http::Priority priority) {
  absl::StatusOr<Manifest> top = client.GetManifest(registry, path, reference, priority);
  if (!top.ok()) return top.status();
  TagMetadata out;
  out.digest = top->digest;
  out.media_type = top->media_type;
  const std::string where = absl::StrCat(registry, "/", path, ":", reference);
  try {
    json manifest = json::parse(top->body);
    if (IsIndex(top->media_type)) {
      std::string chosen;
      for (const json& m : manifest.value("manifests", json::array())) {
        Platform p;
        p.digest = m.value("digest", "");
        if (m.contains("platform")) {
          p.os = m["platform"].value("os", "");
          p.architecture = m["platform"].value("architecture", "");
          p.variant = m["platform"].value("variant", "");
        }
        if (p.os == "unknown") continue;  // attestation manifests
        out.platforms.push_back(p);
        if (chosen.empty() && p.os == options.platform.os &&
            p.architecture == options.platform.architecture &&
            (options.platform.variant.empty() || p.variant == options.platform.variant)) {
          chosen = p.digest;
        }
      }
      if (chosen.empty()) {
        out.incomplete_reason =
            absl::StrCat("no ", options.platform.os, "/", options.platform.architecture,
                         " image in the manifest list");
        return out;
      }
      absl::StatusOr<Manifest> platform_manifest =
          client.GetManifest(registry, path, chosen, priority);
      if (!platform_manifest.ok()) return platform_manifest.status();
      manifest = json::parse(platform_manifest->body);
    } else if (IsSchema1(top->media_type)) {
      out.platforms.push_back(
          {manifest.value("os", "linux"), manifest.value("architecture", ""), "", out.digest});
      if (manifest.contains("history") && !manifest["history"].empty()) {
        json v1 = json::parse(manifest["history"][0].value("v1Compatibility", "{}"));
        ReadConfig(v1, options, out);
      } else {
        out.incomplete_reason = "schema 1 manifest without history";
      }
      return out;
    }
    if (!manifest.contains("config") || !manifest["config"].contains("digest")) {
      return absl::InternalError(absl::StrCat(where, ": manifest has no config"));
    }
    absl::StatusOr<std::string> config_blob =
        client.GetBlob(registry, path, manifest["config"]["digest"].get<std::string>(), priority);
    if (!config_blob.ok()) return config_blob.status();
    json config = json::parse(*config_blob);
    if (!IsIndex(top->media_type)) {
      out.platforms.push_back({config.value("os", ""), config.value("architecture", ""),
                               config.value("variant", ""), out.digest});
    }
    ReadConfig(config, options, out);
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat(where, ": malformed JSON: ", e.what()));
  }
  return out;
}

}  // namespace ferry::registry_scanner
