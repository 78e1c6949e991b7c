// Ferry's limits on input that may be hostile or merely too big, kept in one place.
//
// Every limit is a named default here plus the flag that changes it; the binary that owns the
// flag (its config.cc) reads it, and the code that enforces it names both in its error through
// OverLimit(). docs/limits.md lists them all with their reasons. Over a limit, the one item
// (a file, a document, a request, a body) fails alone; the service goes on.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ferry::limits {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;

// A named limit: its default and the flag that raises it ("" when no flag: fixed by design).
struct Limit {
  absl::string_view what;  // "manifest file size"
  absl::string_view unit;  // "bytes", "levels", ...
  uint64_t default_value;
  absl::string_view flag;  // "--max_manifest_file_bytes"
};

// ---- Manifests read from the repo (lib/manifest; git-writer, cluster-syncer) ----

// Checked per YAML document while it is parsed, before a tree is built or an alias expanded
// (lib/manifest/document.h); a document over one fails alone. Every walk over a parsed
// document (YAML->JSON for applying, the editor's verification, finding containers) visits
// an alias once per use, so the sizes count each alias as what it repeats.
//
// Nesting of mappings and sequences, aliases expanded. The deepest Kubernetes objects (CRD
// schemas) stay under 50; yaml-cpp itself stops at about 500, so the flag takes at most 400.
inline constexpr Limit kManifestDepth{"manifest nesting depth", "levels", 100,
                                      "--max_manifest_depth"};
// Nodes (scalars, mappings, sequences), aliases expanded. A large CRD has some 30,000;
// a parsed node costs yaml-cpp about 350 bytes, so this bounds a document to ~70 MB.
inline constexpr Limit kManifestNodes{"manifest document size (aliases expanded)", "nodes", 200'000,
                                      "--max_manifest_nodes"};
// Bytes of scalars (keys and values), aliases expanded: what YAML->JSON produces. Kubernetes
// stores objects up to 1.5 MiB; a List document may hold several.
inline constexpr Limit kManifestExpandedBytes{"manifest document text (aliases expanded)", "bytes",
                                              16 * kMiB, "--max_manifest_expanded_bytes"};

// ---- Names and messages (git-writer commits) ----

// An author given with a request ("Name <email>" or a bare name), whole text. Fixed: the
// names and addresses of people are short, and the text lands in every commit header.
inline constexpr Limit kAuthorBytes{"author", "bytes", 256, ""};
// A commit message given with a request. Long enough for any hand-written message and a
// generated list of every edit; the message is stored in the repo forever.
inline constexpr Limit kCommitMessageBytes{"commit message", "bytes", 64 * kKiB,
                                           "--max_commit_message_bytes"};
// A job record stored as a git note on Ferry's commit: its results take ~250 bytes per
// workload changed or skipped (the api leaves out the workloads a job did not concern), so
// a release of 10,000 workloads fits, and the request stays well under kGrpcMessageBytes.
inline constexpr Limit kJobNoteBytes{"job note", "bytes", 4 * kMiB, ""};
// A path in a request or a file name in the repo (PATH_MAX on Linux).
inline constexpr Limit kPathBytes{"path", "bytes", 4096, ""};
// A one-line name in a request: workload id, container, tag filter, lock user or message.
inline constexpr Limit kRequestNameBytes{"name", "bytes", 1024, ""};
// Edits in one ApplyUpdates request (one commit); each is looked up in the whole index.
inline constexpr Limit kEditsPerRequest{"edits in one request", "edits", 10000, ""};
// One manifest file served by git-writer (ReadManifests, the workload index). Twice the
// largest object Kubernetes stores (1.5 MiB) and 1 MiB under gRPC's default 4 MiB receive
// limit, so every ReadManifests message fits a peer with default settings. A bigger file is
// a load error of its own; the others are served.
inline constexpr Limit kManifestFileBytes{"manifest file size", "bytes", 3 * kMiB,
                                          "--max_manifest_file_bytes"};
// All manifest files of one revision together (one ReadManifests answer; git-writer keeps
// a few revisions' worth in memory). Over it the whole read fails with ResourceExhausted.
inline constexpr Limit kManifestTreeBytes{"manifest files at one revision", "bytes", 64 * kMiB,
                                          "--max_manifest_tree_bytes"};
// Kustomize roots built at one revision (each runs the kustomize command once when its
// folders change). Roots past it, in path order, are errors of their own naming the flag.
inline constexpr Limit kKustomizeRoots{"kustomize roots at one revision", "roots", 1000,
                                       "--max_kustomize_roots"};
// One ListWorkloads answer (a single message): under the message size every Ferry channel
// receives (kGrpcMessageBytes below), with room for the envelope. ~1 KiB per workload, so a
// repo of 10,000 workloads fits.
inline constexpr Limit kWorkloadIndexBytes{"workload index answer", "bytes", 16 * kMiB - 64 * kKiB,
                                           "--max_workload_index_bytes"};

// ---- Webhooks (registry-scanner) ----

// A push webhook's body (Docker Distribution notification envelopes are a few KiB): a
// declared Content-Length over it is refused before reading, a body growing past it while
// read (chunked, compressed) is cut off; either way 413 before any parsing or HMAC.
inline constexpr Limit kWebhookBody{"webhook body size", "bytes", 1 * kMiB,
                                    "--webhook_max_body_bytes"};

// ---- Answers of the Kubernetes API (lib/kube; cluster-syncer, api, leader election) ----

// Nesting of arrays and objects in one answer or watch event, checked on the text before it is
// parsed. The parse itself does not recurse, but copying, exporting and printing an object do,
// one stack frame per level: a proxy or an aggregated API answering 100,000 levels would end
// the process. The API server refuses requests nested deeper than 10,000 levels; real objects
// (CRD schemas) stay under 50.
inline constexpr Limit kKubeJsonDepth{"Kubernetes API answer nesting depth", "levels", 1000, ""};
// Pages of one list (`limit` + `continue`). An API server ends a list with its last page; one
// that kept handing out continue tokens (a broken proxy or aggregated API) would keep the
// listing going, and its caller waiting, without end. 10,000 pages of 500 objects are five
// million objects.
inline constexpr Limit kKubeListPages{"Kubernetes API list", "pages", 10'000, ""};

// ---- Messages between services and from clients (lib/runtime) ----

// One gRPC message, received or sent, on every server and every channel between services.
// The biggest legitimate messages are unary answers over the whole repo or cluster
// (ListWorkloads, a release plan: about 1 KiB per workload, so some 10,000 workloads) and one
// manifest file of ReadManifests (a stream, one file per message, each under the manifest
// file limit). gRPC's own default of 4 MiB would cut a large repo's listing; 16 MiB bounds
// what one call can make a process allocate.
inline constexpr Limit kGrpcMessageBytes{"gRPC message size", "bytes", 16 * kMiB,
                                         "--grpc_max_message_bytes"};
static_assert(kWorkloadIndexBytes.default_value < kGrpcMessageBytes.default_value,
              "a workload index answer must fit in one message between services");

// ---- Jobs and peers (api) ----

// How long the api waits for a peer (git-writer, registry-scanner, cluster-syncer) that is
// not connected, in a job and in a request's own calls: long enough for a peer restarting
// in place, short enough that a peer that is down fails the job (or answers the caller
// UNAVAILABLE) instead of holding a worker. The job's stage deadlines bound it too.
inline constexpr Limit kPeerWait{"wait for a peer to connect", "seconds", 10, "--peer_wait"};
// The stages of a job (each stage's calls share its deadline). Planning reads git, the
// cluster and every image repository concerned; commit is git-writer's commit and push
// (with its retries when upstream moves); apply is cluster-syncer applying the revision;
// rollout is the default wait for a release's rollout when the release gives none.
inline constexpr Limit kJobPlanningTimeout{"job planning stage", "seconds", 120,
                                           "--job_planning_timeout"};
inline constexpr Limit kJobCommitTimeout{"job commit stage", "seconds", 120,
                                         "--job_commit_timeout"};
inline constexpr Limit kJobApplyTimeout{"job apply stage", "seconds", 300, "--job_apply_timeout"};
inline constexpr Limit kJobRolloutTimeout{"job rollout wait", "seconds", 300,
                                          "--job_rollout_timeout"};

// ---- git-writer's first revision (git-writer, cluster-syncer) ----

// Before its first revision git-writer's Head waits this long at most for the first fetch in
// progress (it takes seconds to tens of seconds on a big repository), and cluster-syncer gives
// Head as long until git-writer has served it a revision; after that, a Head that does not
// answer within 5 s fails the sync. Fixed by design: the caller's own deadline shortens it.
inline constexpr Limit kFirstFetchWait{"wait for git-writer's first fetch", "seconds", 60, ""};

// The message for an item over `limit`: "<item>: <what> is <actual> <unit>, over the limit of
// <max> <unit> (raise it with <flag>)". `actual` 0 means unknown ("over the limit of ...").
std::string OverLimit(absl::string_view item, const Limit& limit, uint64_t max,
                      uint64_t actual = 0);

}  // namespace ferry::limits
