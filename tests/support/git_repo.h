// Real git repositories for tests, made with the git CLI in a temporary folder: a bare
// "upstream" repo (served over file://) and helpers that act on it like another user would.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ferry::testing {

class GitRepo {
 public:
  // Creates upstream.git (bare) with branch `branch` holding `files` in one commit.
  static absl::StatusOr<std::unique_ptr<GitRepo>> Create(
      const std::map<std::string, std::string>& files, const std::string& branch = "main");
  ~GitRepo();

  // The temporary folder holding everything; removed on destruction.
  const std::string& dir() const { return dir_; }
  // file:// URL of the bare upstream repo.
  std::string url() const { return "file://" + dir_ + "/upstream.git"; }
  const std::string& branch() const { return branch_; }

  // Commits `files` (path -> content) to upstream from a scratch clone, as another user
  // pushing with the git CLI would. Returns the new head.
  absl::StatusOr<std::string> CommitWithCli(const std::map<std::string, std::string>& files,
                                            const std::string& message);
  // Upstream head of the branch.
  std::string Head() const;
  // A file's content at a revision of upstream ("" when missing).
  std::string Show(const std::string& revision, const std::string& path) const;
  // Runs `git <args>` in the bare upstream repo and returns its stdout.
  std::string Git(const std::string& args) const;

 private:
  GitRepo() = default;
  std::string dir_;
  std::string branch_;
  int scratch_ = 0;
};

// Runs a shell command; returns its stdout, and its exit status in `status` when given.
std::string RunCommand(const std::string& command, int* status = nullptr);

}  // namespace ferry::testing
