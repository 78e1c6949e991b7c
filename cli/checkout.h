// A local checkout of the config repo as Ferry reads it: plain YAML files, and each
// kustomize root built with the kustomize on PATH (FERRY_KUSTOMIZE_COMMAND names another
// command), by the same rules git-writer follows (lib/kustomize).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "lib/kustomize/layout.h"
#include "lib/manifest/resource.h"

namespace ferry::cli {

struct CheckoutRoot {
  kustomize::Root root;
  std::string output;  // what kustomize built
  std::string error;   // why it was not built ("" when it was)
  std::map<std::string, kustomize::Origin> origins;
};

struct Checkout {
  std::string dir;
  // *.yaml, *.yml and Kustomization files (hidden folders and Helm charts left out).
  std::map<std::string, std::string> files;
  kustomize::Layout layout;
  // The plain files' resources and what each root built, sorted by id; problems, a root's
  // build failure among them.
  manifest::LoadResult loaded;
  std::map<std::string, CheckoutRoot> roots;  // by the root's kustomization file

  // The root that rendered `r`, or null for a resource of a plain file.
  const CheckoutRoot* RootOf(const manifest::Resource& r) const;
};

// Reads the checkout at `dir`. InvalidArgument when `dir` is not a folder.
absl::StatusOr<Checkout> LoadCheckout(const std::string& dir, const manifest::LoadOptions& load);

// The workload `workload` ("namespace:kind/name" or "kind/name") of `checkout`.
// InvalidArgument for a malformed id, NotFound naming the id.
absl::StatusOr<const manifest::Resource*> FindWorkload(const Checkout& checkout,
                                                       const std::string& workload,
                                                       const std::string& default_namespace);

// What `root` builds with `changed` (path -> content) written over the checkout's files, in
// a temporary copy of the folders it reads (the checkout is not touched). FailedPrecondition
// with kustomize's message when it does not build.
absl::StatusOr<std::string> BuildWithChanges(const Checkout& checkout, const CheckoutRoot& root,
                                             const std::map<std::string, std::string>& changed);

}  // namespace ferry::cli
