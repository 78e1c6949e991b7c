// A GoogleTest fixture for tests against the shared Kubernetes API: the cluster of this
// test process (SharedKubeCluster) and a temporary folder per test suite.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/kube.h"

namespace ferry::testing {

class KubeSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = SharedKubeCluster();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    char tmpl[] = "/tmp/ferry-kube-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
  }
  static void TearDownTestSuite() {
    if (dir_) std::filesystem::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr) GTEST_SKIP() << "no cluster";
  }

  static inline std::string* dir_ = nullptr;
  static inline KubeCluster* cluster_ = nullptr;
};

}  // namespace ferry::testing
