// A real ferry-git-writer over a fresh file:// upstream, which a test can stop and start again
// over the same state folder (its mirror). Included by tests/*_test.cc files compiled with
// the binaries' paths (FERRY_*_BIN).
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ferry/v1/git_writer.grpc.pb.h"
#include "tests/binaries.h"
#include "tests/support/git_repo.h"

namespace ferry::testing {

// The one Deployment ("default:deployment/web", container "app") the upstream starts with.
inline std::string WebDeployment(const std::string& image) {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n"
         "spec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: " +
         image + "\n";
}

// An edit moving container "app" of the web Deployment to `image`.
inline ferry::v1::Edit WebRelease(const std::string& image) {
  ferry::v1::Edit edit;
  edit.set_workload("default:deployment/web");
  edit.mutable_image()->set_container("app");
  edit.mutable_image()->set_to_image(image);
  return edit;
}

class GitWriterProcess {
 public:
  // An upstream holding apps/web.yaml with image nginx:1.25; not started.
  GitWriterProcess() {
    auto created = GitRepo::Create({{"apps/web.yaml", WebDeployment("nginx:1.25")}});
    EXPECT_TRUE(created.ok()) << created.status();
    if (created.ok()) repo_ = *std::move(created);
  }

  // Starts (or, after Kill, starts again over the same mirror) with `flags`; true when it
  // listens.
  bool Start(const std::vector<std::string>& flags = {}) {
    if (repo_ == nullptr) return false;
    std::vector<std::string> argv = {FERRY_GIT_WRITER_BIN, "--git_url=" + repo_->url(),
                                     "--state_dir=" + state_dir(), "--git_poll_interval=1h"};
    for (const char* address : {"--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0"}) {
      argv.push_back(address);
    }
    argv.insert(argv.end(), flags.begin(), flags.end());
    running_ = Running();
    StartArgv(argv, running_);
    if (running_.grpc_port == 0) return false;
    stub_ = ferry::v1::GitWriter::NewStub(running_.Channel());
    return true;
  }

  // SIGKILL, as a crash or an evicted pod would.
  void Kill() { running_.process.reset(); }

  // Applies `edit` as Alice.
  grpc::Status Apply(const ferry::v1::Edit& edit, ferry::v1::ApplyUpdatesResponse* response) {
    ferry::v1::ApplyUpdatesRequest request;
    *request.add_edits() = edit;
    request.mutable_cause()->set_user("Alice <alice@example.com>");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->ApplyUpdates(&ctx, request, response);
  }

  // The upstream head as git-writer reports it (after its fetch).
  grpc::Status Head(std::string* revision) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ferry::v1::HeadResponse head;
    grpc::Status s = stub_->Head(&ctx, {}, &head);
    *revision = head.revision();
    return s;
  }

  GitRepo& repo() { return *repo_; }
  std::string state_dir() const { return repo_->dir() + "/state"; }
  std::string mirror_dir() const { return state_dir() + "/mirror.git"; }
  std::string Output() { return running_.process ? running_.process->Output() : ""; }

 private:
  std::unique_ptr<GitRepo> repo_;
  Running running_;
  std::unique_ptr<ferry::v1::GitWriter::Stub> stub_;
};

}  // namespace ferry::testing
