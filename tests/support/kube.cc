#include "tests/support/kube.h"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/support/git_repo.h"

namespace ferry::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeCluster>> KubeCluster::Start(const std::string& dir) {
  std::unique_ptr<KubeCluster> k(new KubeCluster());
  std::filesystem::create_directories(dir);
  k->dir_ = std::filesystem::absolute(dir).string();
  auto process = Subprocess::Start(
      {"/bin/bash", std::string(FERRY_SOURCE_DIR) + "/tests/kube/cluster.sh", k->dir_});
  if (!process.ok()) return process.status();
  k->process_ = *std::move(process);
  auto line = k->process_->WaitForLine(
      [](const std::string& l) { return absl::StartsWith(l, "ferry-kube ready "); },
      absl::Minutes(20));
  if (!line) {
    return absl::UnavailableError(
        absl::StrCat("the test Kubernetes API did not start:\n", k->process_->Output()));
  }
  k->server_ = ReadAll(k->dir_ + "/server");
  k->bin_ = ReadAll(k->dir_ + "/bin");
  return k;
}

absl::StatusOr<std::unique_ptr<KubeCluster>> KubeCluster::Attach(const std::string& dir) {
  std::unique_ptr<KubeCluster> k(new KubeCluster());
  k->dir_ = dir;
  k->server_ = ReadAll(dir + "/server");
  k->bin_ = ReadAll(dir + "/bin");
  if (k->server_.empty() || k->bin_.empty()) {
    return absl::UnavailableError(absl::StrCat("no test Kubernetes API running in ", dir));
  }
  return k;
}

KubeCluster::~KubeCluster() {
  if (process_) {
    process_->Signal(SIGTERM);
    process_->Wait(absl::Seconds(30));
  }
}

std::string KubeCluster::token() const { return ReadAll(dir_ + "/token"); }

std::string KubeCluster::Kubectl(const std::string& args, int* status,
                                 const std::string& stdin_text) const {
  std::string cmd = absl::StrCat(bin_, "/kubectl --kubeconfig ", kubeconfig(), " ", args);
  if (!stdin_text.empty()) {
    const std::string input = dir_ + "/kubectl-stdin-" + std::to_string(std::rand()) + ".yaml";
    std::ofstream(input) << stdin_text;
    cmd += " < " + ShellQuote(input);
  }
  return RunCommand(cmd + " 2>&1", status);
}

absl::StatusOr<KubeCluster*> SharedKubeCluster() {
  struct Shared {
    std::string dir;
    absl::StatusOr<std::unique_ptr<KubeCluster>> cluster;
    ~Shared() {
      if (cluster.ok()) cluster->reset();
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  };
  static Shared* shared = [] {
    auto* s = new Shared{"", absl::UnknownError("not started")};
    if (const char* running = std::getenv("FERRY_TEST_KUBE_DIR"); running != nullptr) {
      s->cluster = KubeCluster::Attach(running);
      return s;
    }
    char tmpl[] = "/tmp/ferry-kube-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      s->cluster = absl::InternalError("mkdtemp failed");
      return s;
    }
    s->dir = tmpl;
    s->cluster = KubeCluster::Start(s->dir + "/cluster");
    return s;
  }();
  static const bool registered = [] {
    std::atexit([] { delete shared; });
    return true;
  }();
  (void)registered;
  if (!shared->cluster.ok()) return shared->cluster.status();
  return shared->cluster->get();
}

}  // namespace ferry::testing
