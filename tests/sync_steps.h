// Steps tests take with a running git-writer and cluster-syncer: push a commit as another
// user would, tell git-writer (as a webhook would) and have the syncer sync that revision.
// Included by tests/*_test.cc files compiled with the binaries' paths (FERRY_*_BIN).
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "ferry/v1/cluster_syncer.grpc.pb.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "tests/binaries.h"
#include "tests/support/git_repo.h"

namespace ferry::testing {

// Commits `files` upstream, notifies `git` and syncs the new revision with `syncer`; the
// sync's result in `result`.
inline void PushAndSync(GitRepo& repo, const Running& git, const Running& syncer,
                        const std::map<std::string, std::string>& files,
                        ferry::v1::SyncResult* result) {
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(60); };
  absl::StatusOr<std::string> pushed = repo.CommitWithCli(files, "change");
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  grpc::ClientContext notify_ctx;
  notify_ctx.set_deadline(deadline());
  ferry::v1::HeadResponse head;
  grpc::Status s = ferry::v1::GitWriter::NewStub(git.Channel())->Notify(&notify_ctx, {}, &head);
  ASSERT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext sync_ctx;
  sync_ctx.set_deadline(deadline());
  ferry::v1::SyncNowRequest request;
  request.set_revision(*pushed);
  s = ferry::v1::ClusterSyncer::NewStub(syncer.Channel())->SyncNow(&sync_ctx, request, result);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(result->revision(), *pushed);
}

}  // namespace ferry::testing
