#include "tests/support/git_repo.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ferry::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kGitEnv[] =
    "GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com GIT_COMMITTER_NAME=Tester "
    "GIT_COMMITTER_EMAIL=tester@example.com GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent ";

void WriteFiles(const fs::path& root, const std::map<std::string, std::string>& files) {
  for (const auto& [path, content] : files) {
    fs::create_directories((root / path).parent_path());
    std::ofstream out(root / path, std::ios::binary);
    out << content;
  }
}

}  // namespace

std::string RunCommand(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    if (status) *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int rc = pclose(pipe);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

absl::StatusOr<std::unique_ptr<GitRepo>> GitRepo::Create(
    const std::map<std::string, std::string>& files, const std::string& branch) {
  std::unique_ptr<GitRepo> repo(new GitRepo());
  char tmpl[] = "/tmp/ferry-git-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  repo->dir_ = tmpl;
  repo->branch_ = branch;
  int status = 0;
  RunCommand(absl::StrCat(kGitEnv, "git init -q --bare -b ", branch, " ", repo->dir_,
                          "/upstream.git 2>&1"),
             &status);
  if (status != 0) return absl::InternalError("git init failed");
  absl::StatusOr<std::string> head = repo->CommitWithCli(files, "Initial manifests");
  if (!head.ok()) return head.status();
  return repo;
}

GitRepo::~GitRepo() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

absl::StatusOr<std::string> GitRepo::CommitWithCli(const std::map<std::string, std::string>& files,
                                                   const std::string& message) {
  const std::string work = absl::StrCat(dir_, "/scratch-", scratch_++);
  int status = 0;
  std::string out =
      RunCommand(absl::StrCat(kGitEnv, "git clone -q ", url(), " ", work, " 2>&1"), &status);
  if (status != 0) return absl::InternalError("git clone failed: " + out);
  RunCommand(absl::StrCat("cd ", work, " && ", kGitEnv, "git checkout -q -B ", branch_, " 2>&1"));
  WriteFiles(work, files);
  out = RunCommand(
      absl::StrCat("cd ", work, " && ", kGitEnv, "git add -A && ", kGitEnv, "git commit -q -m '",
                   message, "' && ", kGitEnv, "git push -q origin ", branch_, " 2>&1"),
      &status);
  std::error_code ec;
  fs::remove_all(work, ec);
  if (status != 0) return absl::AbortedError("git push failed: " + out);
  return Head();
}

std::string GitRepo::Git(const std::string& args) const {
  return RunCommand(
      absl::StrCat("cd ", dir_, "/upstream.git && ", kGitEnv, "git ", args, " 2>/dev/null"));
}

std::string GitRepo::Head() const {
  return std::string(absl::StripAsciiWhitespace(Git("rev-parse refs/heads/" + branch_)));
}

std::string GitRepo::Show(const std::string& revision, const std::string& path) const {
  return Git(absl::StrCat("show ", revision, ":", path));
}

}  // namespace ferry::testing
