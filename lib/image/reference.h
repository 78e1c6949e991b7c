// Container image references, per the Docker / OCI distribution reference grammar:
//
//   [registry-host[:port]/]path-component[/path-component...][:tag][@algorithm:hex]
//
// A reference keeps its spelling as written ("nginx", "index.docker.io/library/nginx") and
// also offers the normalized form used to compare repositories ("docker.io/library/nginx").
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::image {

// A parsed, valid image reference. Value type.
class Reference {
 public:
  // Parses `text`. InvalidArgument with the reason (empty, upper-case in the path, bad tag,
  // bad digest, name too long, ...). Hostile spellings are refused with a reason of their
  // own: control characters or spaces (the message does not echo such text), a URL scheme,
  // user info ("user:pass@host/..."), a port outside 1-65535, over 512 characters.
  static absl::StatusOr<Reference> Parse(absl::string_view text);

  // Parses a repository name as the registry scanner takes it: "registry-host[:port]/path",
  // with the host, without tag or digest, and already normalized (Repository() == text, so
  // "docker.io/library/nginx", not "nginx" or "docker.io/nginx"). InvalidArgument naming
  // what is wrong, and the normalized spelling when there is one.
  static absl::StatusOr<Reference> ParseRepository(absl::string_view text);

  // The text as given to Parse().
  const std::string& original() const { return original_; }
  // The name as written, without tag or digest ("nginx", "quay.io/org/app").
  const std::string& name() const { return name_; }
  // Registry host as written, empty when the name has none ("nginx").
  const std::string& domain() const { return domain_; }
  // Repository path as written, without the registry host ("nginx", "org/app").
  const std::string& path() const { return path_; }
  // Tag, empty when none.
  const std::string& tag() const { return tag_; }
  // Digest ("sha256:..."), empty when none.
  const std::string& digest() const { return digest_; }

  // Normalized registry host: "docker.io" for Docker Hub (also for "index.docker.io" and
  // references without a host).
  std::string Registry() const;
  // Normalized repository path inside the registry ("library/nginx" for "nginx").
  std::string Path() const;
  // Registry() + "/" + Path(): the repository's identity, for comparison and lookups.
  std::string Repository() const;
  // True when both name the same repository, whatever their spelling, tag or digest.
  bool SameRepository(const Reference& other) const { return Repository() == other.Repository(); }

  // Host of Registry(), without the port ("docker.io", "127.0.0.1").
  std::string Host() const;
  // Port of Registry(), 0 when none is written.
  int Port() const;

  // The reference as written: name()[:tag()][@digest()]. Parse(ToString()) gives the same
  // reference.
  std::string ToString() const;

  // This reference's name as written, with `tag` and no digest: the spelling a manifest
  // keeps when its tag is updated ("nginx:1.25" -> "nginx:1.26").
  std::string WithTag(absl::string_view tag) const;

  // The tag to show when none is written: "latest" for tag-less, digest-less references.
  std::string EffectiveTag() const { return tag_.empty() && digest_.empty() ? "latest" : tag_; }

 private:
  std::string original_;
  std::string name_;
  std::string domain_;  // as written; empty when the name has no registry host
  std::string path_;    // as written
  std::string tag_;
  std::string digest_;
};

// True when the references `a` and `b` denote the same image whatever their spelling
// ("nginx:1" and "docker.io/library/nginx:1"): the same repository, effective tag and
// digest. Texts that do not parse are the same only when equal.
bool SameImage(absl::string_view a, absl::string_view b);

// True when `text` is a content digest as registries write it: algorithm ':' hex, at most
// 256 characters ("sha256:" and 64 hex digits).
bool IsDigest(absl::string_view text);

// Checks that `tag` is a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
absl::Status ValidateTag(absl::string_view tag);

}  // namespace ferry::image
