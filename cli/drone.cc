// ferryctl as a Drone plugin: the step's settings arrive as PLUGIN_* environment variables
// and become a release.
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"

namespace ferry::cli {
namespace {

std::string Get(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? "" : std::string(absl::StripAsciiWhitespace(it->second));
}

// Drone passes list settings comma-separated.
std::vector<std::string> List(const std::string& value) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

absl::StatusOr<bool> Bool(const std::map<std::string, std::string>& env, const std::string& key,
                          const std::string& setting) {
  const std::string v = absl::AsciiStrToLower(Get(env, key));
  if (v.empty() || v == "false" || v == "0" || v == "no") return false;
  if (v == "true" || v == "1" || v == "yes") return true;
  return absl::InvalidArgumentError(
      absl::StrCat("setting ", setting, ": '", Get(env, key), "' is not true or false"));
}

}  // namespace

bool IsDronePlugin(const std::map<std::string, std::string>& environment) {
  if (Get(environment, "DRONE") == "true") return true;
  for (const auto& [key, value] : environment) {
    if (absl::StartsWith(key, "PLUGIN_")) return true;
  }
  return false;
}

absl::Status DroneToRelease(const std::map<std::string, std::string>& env, ReleaseOptions& release,
                            ClientOptions& client) {
  if (std::string url = Get(env, "PLUGIN_URL"); !url.empty()) client.url = url;
  if (std::string token = Get(env, "PLUGIN_TOKEN"); !token.empty()) client.token = token;
  if (std::string timeout = Get(env, "PLUGIN_TIMEOUT"); !timeout.empty()) client.timeout = timeout;
  if (absl::StatusOr<bool> tls = Bool(env, "PLUGIN_TLS", "tls"); !tls.ok()) {
    return tls.status();
  } else if (*tls) {
    client.tls = true;
  }
  if (std::string ca = Get(env, "PLUGIN_TLS_CA_FILE"); !ca.empty()) client.ca_file = ca;
  if (std::string source = Get(env, "PLUGIN_SOURCE"); !source.empty()) client.source = source;

  // The names plugins built on fluxctl used go to the deprecated aliases, so that mixing
  // them with workload is refused as on the command line.
  for (auto [key, field] : {std::make_pair("PLUGIN_WORKLOAD", &release.workloads),
                            std::make_pair("PLUGIN_WORKLOADS", &release.workloads),
                            std::make_pair("PLUGIN_CONTROLLER", &release.controllers),
                            std::make_pair("PLUGIN_CONTROLLERS", &release.controllers),
                            std::make_pair("PLUGIN_SERVICE", &release.services),
                            std::make_pair("PLUGIN_SERVICES", &release.services)}) {
    for (const std::string& w : List(Get(env, key))) field->push_back(w);
  }
  absl::StatusOr<bool> all = Bool(env, "PLUGIN_ALL", "all");
  if (!all.ok()) return all.status();
  release.all = *all;
  if (std::string ns = Get(env, "PLUGIN_NAMESPACE"); !ns.empty()) release.namespace_ = ns;
  release.image = Get(env, "PLUGIN_IMAGE");
  absl::StatusOr<bool> all_images = Bool(env, "PLUGIN_UPDATE_ALL_IMAGES", "update_all_images");
  if (!all_images.ok()) return all_images.status();
  release.update_all_images = *all_images;
  for (const char* key : {"PLUGIN_EXCLUDE", "PLUGIN_EXCLUDES"}) {
    for (const std::string& w : List(Get(env, key))) release.excludes.push_back(w);
  }
  for (auto [key, setting, field] : {std::make_tuple("PLUGIN_DRY_RUN", "dry_run", &release.dry_run),
                                     std::make_tuple("PLUGIN_FORCE", "force", &release.force),
                                     std::make_tuple("PLUGIN_WAIT", "wait", &release.watch)}) {
    absl::StatusOr<bool> v = Bool(env, key, setting);
    if (!v.ok()) return v.status();
    *field = *v;
  }
  release.user = Get(env, "PLUGIN_USER");
  if (release.user.empty()) {
    const std::string author = Get(env, "DRONE_COMMIT_AUTHOR");
    const std::string email = Get(env, "DRONE_COMMIT_AUTHOR_EMAIL");
    release.user =
        email.empty() || author.empty() ? author : absl::StrCat(author, " <", email, ">");
  }
  release.message = Get(env, "PLUGIN_MESSAGE");
  if (release.message.empty()) {
    const std::string link = Get(env, "DRONE_BUILD_LINK");
    const std::string sha = Get(env, "DRONE_COMMIT_SHA");
    const std::string repo = Get(env, "DRONE_REPO");
    std::vector<std::string> parts;
    if (!link.empty()) parts.push_back(link);
    if (!sha.empty()) parts.push_back(absl::StrCat("commit ", repo.empty() ? "" : repo + "@", sha));
    if (!parts.empty()) release.message = absl::StrCat("Drone build ", absl::StrJoin(parts, ", "));
  }
  release.verbosity = 1;  // CI logs show what was skipped
  if (release.workloads.empty() && release.controllers.empty() && release.services.empty() &&
      !release.all) {
    return absl::InvalidArgumentError(
        "setting workload (or workloads, controller, service, or all: true) is required: which "
        "workloads to release");
  }
  if (release.image.empty() && !release.update_all_images) {
    return absl::InvalidArgumentError(
        "setting image (repo:tag) or update_all_images: true is required");
  }
  return absl::OkStatus();
}

}  // namespace ferry::cli
