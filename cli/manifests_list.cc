// ferryctl manifests list
#include <nlohmann/json.hpp>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/checkout.h"
#include "cli/exit_codes.h"
#include "cli/manifests.h"
#include "cli/table.h"
#include "lib/manifest/policy.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload.h"

namespace ferry::cli {
namespace {

const char* IgnoreName(manifest::IgnoreMode mode) {
  switch (mode) {
    case manifest::IgnoreMode::kAll:
      return "true";
    case manifest::IgnoreMode::kSyncOnly:
      return "sync_only";
    case manifest::IgnoreMode::kNone:
      return "";
  }
  return "";
}

// Workload-level policies, as fluxctl showed them: "automated,locked".
std::string PolicySummary(const manifest::Policies& p) {
  std::vector<std::string> parts;
  if (p.automated) parts.push_back("automated");
  if (p.locked) parts.push_back("locked");
  if (p.ignore == manifest::IgnoreMode::kAll) parts.push_back("ignore");
  if (p.ignore == manifest::IgnoreMode::kSyncOnly) parts.push_back("ignore=sync_only");
  return absl::StrJoin(parts, ",");
}

}  // namespace

int RunManifestsList(const ManifestsListOptions& options, std::ostream& out, std::ostream& err) {
  if (options.output != "table" && options.output != "json") {
    err << "ferryctl: -o must be table or json, not \"" << options.output << "\"\n";
    return kExitUsage;
  }
  manifest::LoadOptions load;
  load.default_namespace = options.namespace_;
  absl::StatusOr<Checkout> checkout = LoadCheckout(options.path, load);
  if (!checkout.ok()) {
    err << "ferryctl: " << checkout.status().message() << "\n";
    return ExitCodeFor(checkout.status());
  }
  const manifest::LoadResult* loaded = &checkout->loaded;
  for (const manifest::LoadError& e : loaded->errors) err << "warning: " << e.ToString() << "\n";
  // Where a workload is defined: its file and line, or for a rendered one its root and the
  // file that defines it.
  auto root_of = [&](const manifest::Resource& r) -> std::string {
    const CheckoutRoot* root = checkout->RootOf(r);
    if (root == nullptr) return "";
    return root->root.folder.empty() ? "." : root->root.folder;
  };
  auto file_of = [&](const manifest::Resource& r) -> std::string {
    const CheckoutRoot* root = checkout->RootOf(r);
    if (root == nullptr) return absl::StrCat(r.source.path, ":", r.source.line);
    auto origin = root->origins.find(r.id);
    return origin != root->origins.end() ? origin->second.file : root->root.file;
  };

  if (options.output == "json") {
    nlohmann::ordered_json workloads = nlohmann::ordered_json::array();
    for (const manifest::Resource& r : loaded->resources) {
      if (!manifest::IsWorkloadKind(r.kind)) continue;
      manifest::Policies p = manifest::ReadPolicies(r.annotations);
      nlohmann::ordered_json w;
      w["id"] = r.id;
      w["kind"] = r.kind;
      w["namespace"] = r.namespace_;
      w["name"] = r.name;
      const std::string root = root_of(r);
      if (root.empty()) {
        w["path"] = r.source.path;
        w["line"] = r.source.line;
      } else {
        w["path"] = file_of(r);
        w["kustomize_root"] = root;
      }
      w["containers"] = nlohmann::ordered_json::array();
      for (const manifest::Container& c : manifest::FindContainers(r)) {
        nlohmann::ordered_json jc;
        jc["name"] = c.name;
        jc["image"] = c.image;
        jc["init"] = c.init;
        std::string filter = p.TagFilterFor(c.name);
        if (!filter.empty()) jc["tag_filter"] = filter;
        w["containers"].push_back(jc);
      }
      nlohmann::ordered_json policy;
      policy["automated"] = p.automated;
      policy["locked"] = p.locked;
      if (!p.locked_user.empty()) policy["locked_user"] = p.locked_user;
      if (!p.locked_msg.empty()) policy["locked_msg"] = p.locked_msg;
      if (p.ignore != manifest::IgnoreMode::kNone) policy["ignore"] = IgnoreName(p.ignore);
      if (!p.tag_filters.empty()) policy["tag_filters"] = p.tag_filters;
      if (!p.tag_all.empty()) policy["tag_all"] = p.tag_all;
      w["policy"] = policy;
      workloads.push_back(w);
    }
    nlohmann::ordered_json doc;
    doc["workloads"] = workloads;
    if (!checkout->roots.empty()) {
      doc["kustomize_roots"] = nlohmann::ordered_json::array();
      for (const auto& [file, root] : checkout->roots) {
        nlohmann::ordered_json jr;
        jr["root"] = root.root.folder.empty() ? "." : root.root.folder;
        jr["file"] = file;
        if (!root.error.empty()) jr["error"] = root.error;
        doc["kustomize_roots"].push_back(jr);
      }
    }
    doc["errors"] = nlohmann::ordered_json::array();
    for (const manifest::LoadError& e : loaded->errors) doc["errors"].push_back(e.ToString());
    // A file name need not be UTF-8: such bytes are shown as U+FFFD rather than thrown on.
    out << doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    return kExitOk;
  }

  // The ROOT column only for a checkout with kustomize roots.
  const bool roots = !checkout->roots.empty();
  Table table = roots ? Table({"WORKLOAD", "CONTAINER", "IMAGE", "POLICY", "ROOT", "FILE"})
                      : Table({"WORKLOAD", "CONTAINER", "IMAGE", "POLICY", "FILE"});
  auto add = [&](std::vector<std::string> row, const std::string& root) {
    if (roots) row.insert(row.end() - 1, root);
    table.AddRow(row);
  };
  for (const manifest::Resource& r : loaded->resources) {
    if (!manifest::IsWorkloadKind(r.kind)) continue;
    manifest::Policies p = manifest::ReadPolicies(r.annotations);
    std::vector<manifest::Container> containers = manifest::FindContainers(r);
    const std::string file = file_of(r);
    const std::string root = root_of(r);
    if (containers.empty()) {
      add({r.id, "", "", PolicySummary(p), file}, root);
      continue;
    }
    for (size_t i = 0; i < containers.size(); ++i) {
      const manifest::Container& c = containers[i];
      std::string policy = i == 0 ? PolicySummary(p) : "";
      std::string filter = p.TagFilterFor(c.name);
      if (!filter.empty()) {
        policy =
            policy.empty() ? absl::StrCat("tag=", filter) : absl::StrCat(policy, ",tag=", filter);
      }
      add({i == 0 ? r.id : "", c.init ? c.name + " (init)" : c.name, c.image, policy,
           i == 0 ? file : ""},
          i == 0 ? root : "");
    }
  }
  table.Print(out);
  return kExitOk;
}

}  // namespace ferry::cli
