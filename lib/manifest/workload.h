// Workloads: the resources that run containers, and where each container's image is
// written in the manifest (a pod spec's `image`, or HelmRelease values in their several
// shapes).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/manifest/resource.h"

namespace ferry::manifest {

// A path from a resource's root to a node: map keys, and decimal indexes in sequences.
using NodePath = std::vector<std::string>;

// One field that holds (part of) a container's image.
struct ImageField {
  enum class Part {
    kFull,      // "registry/path:tag" in one scalar
    kName,      // "registry/path" (no tag); the tag is in a kTag field
    kRegistry,  // registry host only
    kPath,      // repository path only (registry in a kRegistry field)
    kTag,       // tag only
  };
  NodePath path;
  Part part = Part::kFull;
};

// A container of a workload.
struct Container {
  std::string name;
  // The image reference as the manifest spells it (assembled from its fields).
  std::string image;
  bool init = false;
  // Where the image is written; editing the image rewrites these fields.
  std::vector<ImageField> fields;
};

// True for kinds whose containers Ferry manages: Deployment, DaemonSet, StatefulSet,
// ReplicaSet, ReplicationController, Job, CronJob, Pod, HelmRelease, FluxHelmRelease.
bool IsWorkloadKind(absl::string_view kind);

// The containers of a workload resource: containers then initContainers of its pod
// template, or the images of a HelmRelease's (or FluxHelmRelease's) values (top-level `image` is
// the container "chart-image"; a map `<key>: {image: ...}` one level down is the container "<key>";
// the annotation maps repository.fluxcd.io/<c>, tag.fluxcd.io/<c>, registry.fluxcd.io/<c> name
// dotted paths into the values). Empty for other kinds.
std::vector<Container> FindContainers(const Resource& resource);

// The node at `path` under `root`, or an undefined node.
YAML::Node NodeAt(const YAML::Node& root, const NodePath& path);

// "spec.template.spec.containers[0].image".
std::string PathToString(const NodePath& path);

}  // namespace ferry::manifest
