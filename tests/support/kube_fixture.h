// A GoogleTest fixture for tests against the shared Kubernetes API: the cluster of this
// test process (SharedKubeCluster) and a temporary folder per test suite.
//
// Without a cluster every test of the suite FAILS (never skips): a missing peer must not turn
// into a green run. The failure is raised in the fixture's constructor, so a derived SetUp()
// never runs against a null cluster; it is not raised in SetUpTestSuite(), whose failures
// GoogleTest reports as skipped tests (and CTest then as "not run").
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/support/kube.h"

namespace ferry::testing {

class KubeSuite : public ::testing::Test {
 protected:
  KubeSuite() {
    if (cluster_ == nullptr) FailWithoutCluster();
  }

  static void SetUpTestSuite() {
    error_ = new std::string();
    auto cluster = SharedKubeCluster();
    if (!cluster.ok()) {
      *error_ = cluster.status().ToString();
      return;
    }
    char tmpl[] = "/tmp/ferry-kube-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      *error_ = absl::StrCat("mkdtemp(", tmpl, ") failed");
      return;
    }
    cluster_ = *cluster;
    dir_ = new std::string(tmpl);
  }
  static void TearDownTestSuite() {
    if (dir_) std::filesystem::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
    delete error_;
    error_ = nullptr;
    cluster_ = nullptr;
  }

  static inline std::string* dir_ = nullptr;
  static inline KubeCluster* cluster_ = nullptr;

 private:
  // A fatal failure of the current test (FAIL() returns, so it cannot be used in a constructor).
  static void FailWithoutCluster() {
    FAIL() << "no Kubernetes API for this test: " << *error_
           << "\n(build the test cluster's binaries with: bash tests/kube/build.sh)";
  }

  static inline std::string* error_ = nullptr;  // why cluster_ is null
};

}  // namespace ferry::testing
