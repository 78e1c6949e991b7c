// The seed document's fluxctl command lines, verbatim but for the binary's name (ferryctl)
// and the registry host (the test registry's), against the whole stack: each exits 0 and the
// releases land in git. The seed has five command lines; the sixth use it describes is
// fluxctl as a Drone plugin step, run here with the setting names such plugins used.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "lib/status/status_matchers.h"
#include "tests/binaries.h"
#include "tests/stack.h"

namespace ferry {
namespace {

using testing::Stack;
using testing::StartStack;

// An image config created at `created` (RFC 3339), so tags order by creation time.
std::string Config(const std::string& created) {
  return absl::StrCat(R"({"architecture":"amd64","os":"linux","created":")", created, R"("})");
}

std::string ZeroReplicas(const std::string& kind, const std::string& ns, const std::string& name,
                         const std::string& containers) {
  return absl::StrCat(
      "apiVersion: apps/v1\nkind: ", kind, "\nmetadata:\n  name: ", name, "\n  namespace: ", ns,
      "\nspec:\n  replicas: 0\n", kind == "StatefulSet" ? "  serviceName: " + name + "\n" : "",
      "  selector: {matchLabels: {app: ", name, "}}\n  template:\n",
      "    metadata: {labels: {app: ", name, "}}\n    spec:\n      containers:\n", containers);
}

struct Outcome {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

class SeedCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = testing::RegistryServer::Start(stack_.dir.path + "/registry");
    FERRY_ASSERT_OK(registry);
    stack_.registry = *std::move(registry);
    struct Push {
      const char* repository;
      const char* tag;
      const char* created;
    };
    for (const Push& p :
         {Push{"weaveworksdemos/front-end", "0.2.0", "2016-11-09T10:26:00Z"},
          Push{"weaveworksdemos/front-end", "0.3.0", "2016-11-18T16:00:00Z"},
          Push{"weaveworksdemos/cart", "0.3.0", "2016-11-09T10:26:00Z"},
          Push{"weaveworks/helloworld", "master-a000001", "2016-07-12T17:16:00Z"},
          Push{"weaveworks/helloworld", "master-a000002", "2016-07-12T17:17:00Z"},
          Push{"weaveworks/helloworld", "master-9a16ff945b9e", "2016-07-20T13:19:00Z"},
          Push{"weaveworks/sidecar", "master-a000001", "2016-08-23T09:53:00Z"},
          Push{"weaveworks/sidecar", "master-a000002", "2016-08-23T10:05:00Z"}}) {
      FERRY_ASSERT_OK(stack_.registry->PushImage(p.repository, p.tag, Config(p.created)));
    }
    host_ = stack_.registry->host();
    auto container = [&](const std::string& name, const std::string& image) {
      return absl::StrCat("      - name: ", name, "\n        image: ", host_, "/", image, "\n");
    };
    StartStack(
        stack_,
        {{"namespaces.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: sock-shop}\n"},
         {"sock-shop/front-end.yaml",
          ZeroReplicas("Deployment", "sock-shop", "front-end",
                       container("front-end", "weaveworksdemos/front-end:0.2.0"))},
         // Two workloads named cart: the legacy id sock-shop/cart is ambiguous.
         {"sock-shop/cart.yaml", ZeroReplicas("Deployment", "sock-shop", "cart",
                                              container("cart", "weaveworksdemos/cart:0.3.0")) +
                                     "---\n" +
                                     ZeroReplicas("StatefulSet", "sock-shop", "cart",
                                                  container("cart", "weaveworksdemos/cart:0.3.0"))},
         {"default/helloworld.yaml",
          ZeroReplicas("Deployment", "default", "helloworld",
                       container("helloworld", "weaveworks/helloworld:master-9a16ff945b9e") +
                           container("sidecar", "weaveworks/sidecar:master-a000001"))}},
        "seed");
    if (HasFatalFailure()) return;
    stack_.StartApi({"--no_automation"});
    ASSERT_GT(stack_.api.grpc_port, 0);
  }

  // Runs a command line of the seed: "fluxctl" becomes ferryctl, "quay.io" the test
  // registry's host; the api's address comes from FERRY_URL, as a CI step would set it.
  Outcome Run(const std::string& line, const std::vector<std::string>& env = {}) {
    std::string command = absl::StrReplaceAll(line, {{"quay.io", host_}});
    std::vector<std::string> argv = absl::StrSplit(command, ' ', absl::SkipEmpty());
    EXPECT_EQ(argv[0], "fluxctl");
    argv[0] = FERRYCTL_BIN;
    // stdout and stderr apart: the deprecation notes must stay off stdout.
    const std::string err_path = stack_.dir.path + "/stderr";
    std::string shell = "exec";
    for (const std::string& a : argv) absl::StrAppend(&shell, " '", a, "'");
    absl::StrAppend(&shell, " 2>", err_path);
    std::vector<std::string> environment = {"FERRY_URL=" + stack_.api.GrpcTarget()};
    environment.insert(environment.end(), env.begin(), env.end());
    auto p = testing::Subprocess::Start({"/bin/sh", "-c", shell}, environment);
    Outcome o;
    FERRY_EXPECT_OK(p);
    if (!p.ok()) return o;
    o.code = (*p)->Wait(absl::Seconds(90)).value_or(-1);
    o.out = (*p)->Output();
    std::ifstream in(err_path);
    std::stringstream err;
    err << in.rdbuf();
    o.err = err.str();
    return o;
  }

  std::string InGit(const std::string& path) {
    return stack_.repo->Show(stack_.repo->Head(), path);
  }

  Stack stack_;
  std::string host_;
};

TEST_F(SeedCommandsTest, TheSeedsCommandLinesWorkUnchanged) {
  const std::string commits = stack_.repo->Git("rev-list --count HEAD");
  // 1. Every container of the legacy id to its latest tag.
  Outcome release = Run("fluxctl release --service=sock-shop/front-end --update-all-images");
  ASSERT_EQ(release.code, 0) << release.out << release.err;
  EXPECT_TRUE(absl::StrContains(InGit("sock-shop/front-end.yaml"),
                                "image: " + host_ + "/weaveworksdemos/front-end:0.3.0\n"));
  EXPECT_TRUE(absl::StrContains(release.out,
                                "sock-shop:deployment/front-end  success  front-end: " + host_ +
                                    "/weaveworksdemos/front-end:0.2.0 -> 0.3.0"))
      << release.out;
  EXPECT_TRUE(absl::StrContains(release.out, "Commit pushed:  " + stack_.repo->Head()))
      << release.out;
  EXPECT_TRUE(absl::StrContains(release.err, "--service is deprecated; use --workload (-w)"))
      << release.err;
  EXPECT_FALSE(absl::StrContains(release.out, "deprecated")) << release.out;

  // 2. The old name of list-workloads.
  Outcome services = Run("fluxctl list-services --namespace=sock-shop");
  ASSERT_EQ(services.code, 0) << services.out << services.err;
  EXPECT_TRUE(absl::StrContains(services.out, "sock-shop:deployment/front-end")) << services.out;
  EXPECT_TRUE(absl::StrContains(services.out, host_ + "/weaveworksdemos/front-end:0.3.0"))
      << services.out;

  // 3. The released tag is the running one.
  Outcome images = Run("fluxctl list-images --service=sock-shop/front-end");
  ASSERT_EQ(images.code, 0) << images.out << images.err;
  EXPECT_TRUE(absl::StrContains(images.out, "'-> 0.3.0")) << images.out;
  EXPECT_TRUE(absl::StrContains(images.out, "    0.2.0")) << images.out;

  // 4. One image to a workload with a sidecar: only the container running that image moves.
  Outcome controller =
      Run("fluxctl release --controller=default:deployment/helloworld "
          "--update-image=quay.io/weaveworks/helloworld:master-a000001");
  ASSERT_EQ(controller.code, 0) << controller.out << controller.err;
  const std::string helloworld = InGit("default/helloworld.yaml");
  EXPECT_TRUE(absl::StrContains(helloworld, host_ + "/weaveworks/helloworld:master-a000001\n"))
      << helloworld;
  EXPECT_TRUE(absl::StrContains(helloworld, host_ + "/weaveworks/sidecar:master-a000001\n"))
      << helloworld;
  EXPECT_TRUE(absl::StrContains(controller.out,
                                "default:deployment/helloworld  success  helloworld: " + host_ +
                                    "/weaveworks/helloworld:master-9a16ff945b9e -> "
                                    "master-a000001"))
      << controller.out;
  EXPECT_TRUE(absl::StrContains(controller.err, "--controller is deprecated")) << controller.err;

  // 5. The option's value after a space, both containers listed.
  Outcome tree = Run("fluxctl list-images --controller default:deployment/helloworld");
  ASSERT_EQ(tree.code, 0) << tree.out << tree.err;
  EXPECT_TRUE(absl::StrContains(tree.out, "'-> master-a000001")) << tree.out;
  EXPECT_TRUE(absl::StrContains(tree.out, "sidecar")) << tree.out;
  EXPECT_TRUE(absl::StrContains(tree.out, host_ + "/weaveworks/sidecar")) << tree.out;

  // 6. The Drone plugin step: the image and the target as settings, named as fluxctl-based
  // plugins named them.
  Outcome drone =
      Run("fluxctl", {"DRONE=true", "PLUGIN_URL=" + stack_.api.GrpcTarget(),
                      "PLUGIN_CONTROLLER=default:deployment/helloworld",
                      "PLUGIN_IMAGE=" + host_ + "/weaveworks/helloworld:master-a000002"});
  ASSERT_EQ(drone.code, 0) << drone.out << drone.err;
  EXPECT_TRUE(absl::StrContains(InGit("default/helloworld.yaml"),
                                host_ + "/weaveworks/helloworld:master-a000002\n"));
  EXPECT_EQ(std::stoi(stack_.repo->Git("rev-list --count HEAD")), std::stoi(commits) + 3)
      << "three releases, one commit each";
}

// fluxctl's -v lines, which scripts grep for: the job id, the commit, the time taken.
TEST_F(SeedCommandsTest, VerboseReleasePrintsFluxctlsLinesOnStdout) {
  Outcome release =
      Run("fluxctl release -v --controller=default:deployment/helloworld "
          "--update-image=quay.io/weaveworks/helloworld:master-a000002");
  ASSERT_EQ(release.code, 0) << release.out << release.err;
  const std::string head = stack_.repo->Head();
  EXPECT_TRUE(absl::StrContains(release.out, "Release job submitted, ID ")) << release.out;
  EXPECT_TRUE(absl::StrContains(release.out, "\nCommit pushed: " + head.substr(0, 7) + "\n"))
      << release.out;
  EXPECT_TRUE(absl::StrContains(release.out, "\nApplied " + head + "\n")) << release.out;
  EXPECT_TRUE(absl::StrContains(release.out, "\nTook ")) << release.out;
  EXPECT_TRUE(absl::StrContains(release.out, "Here's what happened:\n1. Submitted job.\n"))
      << release.out;
}

// Bad input: a usage error (exit 2) naming what to fix, and nothing committed.
TEST_F(SeedCommandsTest, MixedFlagsAndUnresolvableLegacyIdsSubmitNothing) {
  const std::string head = stack_.repo->Head();
  Outcome both =
      Run("fluxctl release --service=sock-shop/front-end --workload=sock-shop:deployment/front-end "
          "--update-all-images");
  EXPECT_EQ(both.code, 2) << both.err;
  EXPECT_TRUE(absl::StrContains(both.err, "--workload and --service both name workloads"))
      << both.err;

  Outcome ambiguous = Run("fluxctl release --service=sock-shop/cart --update-all-images");
  EXPECT_EQ(ambiguous.code, 2) << ambiguous.err;
  EXPECT_TRUE(absl::StrContains(ambiguous.err,
                                "\"sock-shop/cart\" is ambiguous: name one of "
                                "sock-shop:deployment/cart, sock-shop:statefulset/cart"))
      << ambiguous.err;

  Outcome nowhere = Run("fluxctl release --service=sockshop/front-end --update-all-images");
  EXPECT_EQ(nowhere.code, 2) << nowhere.err;
  EXPECT_TRUE(absl::StrContains(nowhere.err, "no workload in namespace \"sockshop\""))
      << nowhere.err;

  Outcome missing = Run("fluxctl list-images --service=sock-shop/frontend");
  EXPECT_EQ(missing.code, 3) << missing.err;  // not found, with the closest ids
  EXPECT_TRUE(absl::StrContains(missing.err, "closest: sock-shop:deployment/front-end"))
      << missing.err;

  EXPECT_EQ(stack_.repo->Head(), head);
}

}  // namespace
}  // namespace ferry
