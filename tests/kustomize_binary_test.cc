// Kustomize repos end to end (issue 18), through the real binaries against a real registry,
// git repo and kube-apiserver: a base with two overlays (a replicas patch and an `images:` pin
// in one, a namePrefix in the other) and a plain file. The cluster gets exactly what kustomize
// renders; the api lists the rendered workloads; a release edits the pinning `images:` entry
// and the automation the base's literal; a broken, escaping, remote or function-running root
// fails alone. The main scenario runs with git-writer's default command (a current kustomize,
// when one is on PATH) and with the test cluster's kubectl 1.20 (kustomize 2.0.3).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "ferry/v1/api.grpc.pb.h"
#include "ferry/v1/registry_scanner.grpc.pb.h"
#include "lib/status/status_matchers.h"
#include "tests/stack.h"
#include "tests/support/kube_fixture.h"
#include "tests/support/ports.h"
#include "tests/sync_steps.h"

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Image;
using testing::Stack;
using testing::StartStack;

// An image config created on 2024-01-<day>, so tags order by creation time.
std::string Config(int day) {
  return absl::StrCat(R"({"architecture":"amd64","os":"linux","created":"2024-01-)",
                      absl::Dec(day, absl::kZeroPad2), R"(T00:00:00Z"})");
}

// The kustomize repo of these tests; `ns` prefixes its namespaces (one set per test, since
// the tests of one process share a cluster), `registry` is the images' host.
struct KustomizeRepo {
  KustomizeRepo(const std::string& ns, const std::string& registry)
      : prod(ns + "-prod"),
        staging(ns + "-staging"),
        plain(ns + "-plain"),
        registry(registry),
        web(registry + "/team/web") {}

  std::string prod, staging, plain;
  std::string registry;
  std::string web;  // the image repository of the base's Deployment

  std::string BaseDeployment(const std::string& tag) const {
    return absl::StrCat(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
        "      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n"
        "        image: ",
        web, ":", tag, " # the base's tag\n");
  }
  std::string ProdKustomization(const std::string& tag) const {
    return absl::StrCat("namespace: ", prod,
                        "\nbases:\n- ../../base\npatchesStrategicMerge:\n- replicas.yaml\n"
                        "images:\n- name: ",
                        web, " # prod runs what this pins\n  newTag: \"", tag, "\"\n");
  }
  static std::string Replicas(int n) {
    return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n",
                        "  replicas: ", n, "\n");
  }
  std::string StagingKustomization(const std::string& extra = "") const {
    return absl::StrCat("namespace: ", staging, "\nnamePrefix: stg-\nbases:\n- ../../base\n",
                        extra);
  }
  std::string Worker(const std::string& tag) const {
    return testing::Deployment(plain, "worker", registry + "/team/worker:" + tag);
  }

  std::map<std::string, std::string> Files() const {
    std::string namespaces;
    for (const std::string& n : {prod, staging, plain}) {
      absl::StrAppend(&namespaces, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ", n,
                      "}\n");
    }
    return {
        {"namespaces.yaml", namespaces},
        {"base/kustomization.yaml", "resources:\n- deployment.yaml\n- service.yaml\n"},
        {"base/deployment.yaml", BaseDeployment("1.0")},
        {"base/service.yaml",
         "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n"
         "  ports:\n  - port: 80\n"},
        {"overlays/prod/kustomization.yaml", ProdKustomization("1.1")},
        {"overlays/prod/replicas.yaml", Replicas(2)},
        {"overlays/staging/kustomization.yaml", StagingKustomization()},
        {"plain/worker.yaml", Worker("3.0")},
    };
  }
};

// The shared cluster (KustomizeBinaryTest fails before its tests run when there is none).
const testing::KubeCluster& Cluster() { return **testing::SharedKubeCluster(); }

// `kubectl -n ns get what -o jsonpath=...` (the output, or the error with a marker).
std::string Get(const std::string& ns, const std::string& what, const std::string& jsonpath) {
  int status = 0;
  std::string out = Cluster().Kubectl(
      absl::StrCat("-n ", ns, " get ", what, " -o 'jsonpath=", jsonpath, "'"), &status);
  return status == 0 ? out : "(kubectl failed) " + out;
}

// "replicas image" of a Deployment.
std::string ReplicasAndImage(const std::string& ns, const std::string& name) {
  return Get(ns, "deployment " + name,
             "{.spec.replicas} {.spec.template.spec.containers[0].image}");
}

// The Deployments and Services of a namespace ("kind/name" lines, as kubectl sorts them).
std::string Objects(const std::string& ns) {
  int status = 0;
  std::string out = Cluster().Kubectl("-n " + ns + " get deployments,services -o name", &status);
  return status == 0 ? out : "(kubectl failed) " + out;
}

// Polls `get` until it returns `want` or 60 s pass; returns the last value.
std::string WaitFor(const std::function<std::string()>& get, const std::string& want) {
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  std::string got = get();
  while (got != want && absl::Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    got = get();
  }
  return got;
}

// The cluster's kubectl 1.20 (kustomize 2.0.3) as git-writer's kustomize command.
std::vector<std::string> OldKustomize() {
  return {"--kustomize_command=" + Cluster().bin() + "/kubectl kustomize"};
}

// Whether git-writer's default command has something to run (kustomize or kubectl on PATH).
bool KustomizeOnPath() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    for (const char* name : {"/kustomize", "/kubectl"}) {
      if (access(absl::StrCat(dir, name).c_str(), X_OK) == 0) return true;
    }
  }
  return false;
}

std::map<std::string, ferry::v1::Workload> ListWorkloads(Stack& stack) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ferry::v1::ListWorkloadsResponse response;
  grpc::Status s = stack.stub->ListWorkloads(&ctx, {}, &response);
  FERRY_EXPECT_OK(s);
  std::map<std::string, ferry::v1::Workload> out;
  for (const ferry::v1::Workload& w : response.workloads()) out[w.id()] = w;
  return out;
}

// ListImages of one workload's only container: "current=<tag> tags=<tag,...>" or the error.
std::string ImagesOf(Stack& stack, const std::string& workload) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ferry::v1::ListImagesRequest request;
  request.set_workload(workload);
  ferry::v1::ListImagesResponse response;
  grpc::Status s = stack.stub->ListImages(&ctx, request, &response);
  if (!s.ok()) return "rpc: " + s.error_message();
  if (response.workloads_size() != 1 || response.workloads(0).containers_size() != 1) {
    return "unexpected: " + response.DebugString();
  }
  const ferry::v1::ContainerImages& c = response.workloads(0).containers(0);
  if (!c.error().empty()) return "error: " + c.error();
  std::string current, tags;
  for (const ferry::v1::ImageTag& t : c.tags()) {
    if (t.current()) current = t.info().tag();
    absl::StrAppend(&tags, tags.empty() ? "" : ",", t.info().tag());
  }
  return absl::StrCat("current=", current, " tags=", tags);
}

class KustomizeBinaryTest : public testing::KubeSuite {};

// 1-3: what is applied, listed and released, with git-writer run with `git_args`.
void MainScenario(const std::string& ns, const std::vector<std::string>& git_args) {
  Stack stack;
  FERRY_ASSERT_OK_AND_ASSIGN(stack.registry,
                             testing::RegistryServer::Start(stack.dir.path + "/registry"));
  const KustomizeRepo repo(ns, stack.registry->host());
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.0", Config(1)));
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.1", Config(2)));
  FERRY_ASSERT_OK(stack.registry->PushImage("team/worker", "3.0", Config(1)));
  const std::map<std::string, std::string> files = repo.Files();
  StartStack(stack, files, ns, {}, git_args);
  if (::testing::Test::HasFatalFailure()) return;
  // git-writer says which command builds the roots: the one asked for, when one was.
  for (const std::string& arg : git_args) {
    const std::string flag = "--kustomize_command=";
    if (arg.rfind(flag, 0) != 0) continue;
    EXPECT_NE(stack.git.process->Output().find("command=\"" + arg.substr(flag.size()) + "\""),
              std::string::npos)
        << stack.git.process->Output();
  }

  // 1. Exactly the rendered objects: the overlays' namespaces, patch, pin and prefix; the
  // plain file; nothing of the base on its own.
  EXPECT_EQ(ReplicasAndImage(repo.prod, "web"), "2 " + repo.web + ":1.1");
  EXPECT_EQ(ReplicasAndImage(repo.staging, "stg-web"), "0 " + repo.web + ":1.0");
  EXPECT_EQ(ReplicasAndImage(repo.plain, "worker"),
            "0 " + stack.registry->host() + "/team/worker:3.0");
  EXPECT_EQ(Objects(repo.prod), "deployment.apps/web\nservice/web\n");
  EXPECT_EQ(Objects(repo.staging), "deployment.apps/stg-web\nservice/stg-web\n");
  EXPECT_EQ(Objects(repo.plain), "deployment.apps/worker\n");
  int status = 0;
  const std::string base = Cluster().Kubectl("-n default get deployment web", &status);
  EXPECT_NE(status, 0) << "the base was applied on its own: " << base;

  // 2. The api lists the rendered workloads with their root and defining file.
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  std::map<std::string, ferry::v1::Workload> workloads = ListWorkloads(stack);
  const std::string prod_id = repo.prod + ":deployment/web";
  const std::string staging_id = repo.staging + ":deployment/stg-web";
  const std::string plain_id = repo.plain + ":deployment/worker";
  ASSERT_EQ(workloads.count(prod_id), 1u);
  ASSERT_EQ(workloads.count(staging_id), 1u);
  ASSERT_EQ(workloads.count(plain_id), 1u);
  EXPECT_EQ(workloads.count("default:deployment/web"), 0u);
  EXPECT_EQ(workloads[prod_id].kustomize_root(), "overlays/prod");
  EXPECT_EQ(workloads[prod_id].path(), "base/deployment.yaml");
  ASSERT_EQ(workloads[prod_id].containers_size(), 1);
  EXPECT_EQ(workloads[prod_id].containers(0).image(), repo.web + ":1.1");
  EXPECT_EQ(workloads[staging_id].kustomize_root(), "overlays/staging");
  EXPECT_EQ(workloads[staging_id].path(), "base/deployment.yaml");
  EXPECT_EQ(workloads[plain_id].kustomize_root(), "");
  EXPECT_EQ(workloads[plain_id].path(), "plain/worker.yaml");
  EXPECT_EQ(ImagesOf(stack, prod_id), "current=1.1 tags=1.1,1.0");
  EXPECT_EQ(ImagesOf(stack, staging_id), "current=1.0 tags=1.1,1.0");

  // 3. A release of prod edits its images: entry, one line, the comment kept.
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.2", Config(3)));
  ferry::v1::ReleaseSpec spec;
  spec.add_workloads(prod_id);
  spec.set_image(repo.web + ":1.2");
  ferry::v1::Job submitted;
  FERRY_ASSERT_OK(stack.Release(spec, &submitted));
  ferry::v1::Job done = stack.Follow(submitted.id());
  ASSERT_EQ(done.state(), ferry::v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  ASSERT_EQ(done.results_size(), 1) << done.DebugString();
  EXPECT_EQ(done.results(0).status(), ferry::v1::WORKLOAD_RESULT_STATUS_SUCCESS)
      << done.DebugString();
  EXPECT_THAT(done.results(0).kustomize_roots(), ElementsAre("overlays/prod/kustomization.yaml"));
  EXPECT_EQ(stack.repo->Git("diff --numstat HEAD~1 HEAD"),
            "1\t1\toverlays/prod/kustomization.yaml\n");
  EXPECT_EQ(stack.repo->Show("HEAD", "overlays/prod/kustomization.yaml"),
            repo.ProdKustomization("1.2"));
  EXPECT_EQ(stack.repo->Show("HEAD", "base/deployment.yaml"), files.at("base/deployment.yaml"));
  EXPECT_EQ(WaitFor([&] { return ReplicasAndImage(repo.prod, "web"); }, "2 " + repo.web + ":1.2"),
            "2 " + repo.web + ":1.2");
  EXPECT_EQ(ReplicasAndImage(repo.staging, "stg-web"), "0 " + repo.web + ":1.0");
}

TEST_F(KustomizeBinaryTest, MainScenarioWithTheDefaultCommand) {
  if (!KustomizeOnPath()) {
    if (std::getenv("CI") != nullptr) FAIL() << "CI has kubectl on PATH";
    GTEST_SKIP() << "neither kustomize nor kubectl is on PATH: git-writer's default command "
                    "has nothing to run (the kubectl 1.20 case still runs)";
  }
  MainScenario("kz-default", {});
}

TEST_F(KustomizeBinaryTest, MainScenarioWithKubectl120) { MainScenario("kz-old", OldKustomize()); }

// 4. The automation releases a pushed tag to the staging overlay once that overlay marks its
// workload automated (a policy in the shared base is refused): the base's literal moves, prod
// keeps what its images: entry pins.
TEST_F(KustomizeBinaryTest, AutomationReleasesANewTagToTheAutomatedOverlayOnly) {
  Stack stack;
  const int webhook_port = testing::FreeLoopbackPort();
  std::ofstream(stack.dir.path + "/secret") << "hook-secret\n";
  FERRY_ASSERT_OK_AND_ASSIGN(
      stack.registry,
      testing::RegistryServer::StartWithNotifications(
          stack.dir.path + "/registry",
          "http://127.0.0.1:" + std::to_string(webhook_port) + "/webhook", "hook-secret"));
  const KustomizeRepo repo("kz-auto", stack.registry->host());
  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "1.0", Config(1)));
  const std::map<std::string, std::string> files = repo.Files();
  StartStack(stack, files, "kz-auto",
             {"--scan_interval=1h", "--webhook_address=127.0.0.1:" + std::to_string(webhook_port),
              "--webhook_secret_path=" + stack.dir.path + "/secret"},
             OldKustomize());
  if (HasFatalFailure()) return;
  stack.StartApi({"--no_automation"});
  ASSERT_GT(stack.api.grpc_port, 0);
  const std::string staging_id = repo.staging + ":deployment/stg-web";

  // The base is shared by both roots: the api refuses, naming them.
  const std::string head = stack.repo->Head();
  ferry::v1::UpdatePolicyRequest policy;
  ferry::v1::WorkloadPolicyChanges* change = policy.add_changes();
  change->set_workload(staging_id);
  change->add_changes()->set_automate(true);
  policy.mutable_cause()->set_user("Alice <alice@example.com>");
  ferry::v1::Job policy_job;
  grpc::ClientContext policy_ctx;
  policy_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status refused = stack.stub->UpdatePolicy(&policy_ctx, policy, &policy_job);
  const std::string roots = "overlays/prod/kustomization.yaml, overlays/staging/kustomization.yaml";
  if (refused.ok()) {
    // Not the contract (issue 18: the answer is FAILED_PRECONDITION), but the job it ran must
    // at least fail for the same reason.
    const ferry::v1::Job job = stack.Follow(policy_job.id());
    EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_FAILED) << job.DebugString();
    EXPECT_THAT(job.error(), HasSubstr(roots));
    ADD_FAILURE() << "UpdatePolicy of a workload defined in a base two roots build answered OK "
                     "and ran a job, not FAILED_PRECONDITION naming the roots; the job:\n"
                  << job.DebugString();
  } else {
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << refused.error_message();
    EXPECT_THAT(refused.error_message(), HasSubstr(roots));
    EXPECT_THAT(refused.error_message(), HasSubstr("patch in the overlay overlays/staging"));
  }
  EXPECT_EQ(stack.repo->Head(), head) << "a refused policy committed something";

  // The overlay marks its own workload automated, with a patch committed by a person.
  ferry::v1::SyncResult synced;
  testing::PushAndSync(
      *stack.repo, stack.git, stack.syncer,
      {{"overlays/staging/kustomization.yaml",
        repo.StagingKustomization("patchesStrategicMerge:\n- automated.yaml\n")},
       {"overlays/staging/automated.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n"
        "    ferry.dev/automated: \"true\"\n"}},
      &synced);
  if (HasFatalFailure()) return;
  ASSERT_EQ(synced.failed(), 0) << synced.DebugString();
  const std::string before = stack.repo->Head();

  // The automation's first pass hands the repository to the scanner.
  stack.StartApi({"--automation_interval=1h"});
  ASSERT_GT(stack.api.grpc_port, 0);
  auto scanner = ferry::v1::RegistryScanner::NewStub(stack.scanner.Channel());
  const std::string watched = WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ferry::v1::StatusResponse status;
        if (!scanner->Status(&ctx, {}, &status).ok()) return std::string();
        for (const auto& r : status.repositories()) {
          if (r.repository() == repo.web) return r.repository();
        }
        return std::string();
      },
      repo.web);
  ASSERT_EQ(watched, repo.web) << stack.api.process->Output();

  FERRY_ASSERT_OK(stack.registry->PushImage("team/web", "2.0", Config(5)));
  EXPECT_EQ(
      WaitFor([&] { return ReplicasAndImage(repo.staging, "stg-web"); }, "0 " + repo.web + ":2.0"),
      "0 " + repo.web + ":2.0")
      << stack.api.process->Output();
  // No images: entry decides staging's image: the base's literal moved, its comment kept.
  EXPECT_EQ(stack.repo->Show("HEAD", "base/deployment.yaml"), repo.BaseDeployment("2.0"));
  EXPECT_EQ(stack.repo->Git("diff --name-only " + before + " HEAD"), "base/deployment.yaml\n");
  EXPECT_EQ(stack.repo->Show("HEAD", "overlays/prod/kustomization.yaml"),
            files.at("overlays/prod/kustomization.yaml"));
  EXPECT_EQ(ReplicasAndImage(repo.prod, "web"), "2 " + repo.web + ":1.1");
}

// 5-6. A broken overlay and roots refused for security each fail alone, with their reason;
// the other roots and the plain files apply, and the broken root's objects are not pruned.
TEST_F(KustomizeBinaryTest, BrokenAndRefusedRootsFailAloneAndKeepTheirObjects) {
  const std::string registry = "registry.invalid:5000";
  const KustomizeRepo repo("kz-bad", registry);
  std::map<std::string, std::string> files = repo.Files();
  const std::string kept = absl::StrCat(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: ", repo.plain,
      "}\ndata: {a: b}\n");
  files["overlays/extra/kustomization.yaml"] = "resources:\n- config.yaml\n";
  files["overlays/extra/config.yaml"] = kept;
  files["plain/leaving.yaml"] = absl::StrReplaceAll(kept, {{"name: extra", "name: leaving"}});
  FERRY_ASSERT_OK_AND_ASSIGN(auto git_repo, testing::GitRepo::Create(files));
  testing::Running git, syncer;
  testing::StartGitWriterAndSyncer(*git_repo, Cluster(),
                                   {"--sync_set=kz-bad", "--sync_garbage_collection"}, git, syncer,
                                   OldKustomize());
  ASSERT_GT(syncer.grpc_port, 0);
  std::optional<ferry::v1::SyncResult> first = testing::FirstSync(syncer);
  ASSERT_TRUE(first.has_value()) << syncer.process->Output();
  ASSERT_EQ(first->failed(), 0) << first->DebugString();
  ASSERT_EQ(Get(repo.plain, "configmap extra", "{.data.a}"), "b");

  const std::string function_cm =
      absl::StrReplaceAll(kept, {{"name: extra", "name: function-ran"}});
  ferry::v1::SyncResult result;
  testing::PushAndSync(
      *git_repo, git, syncer,
      {// Broken: a resource that does not exist.
       {"overlays/extra/kustomization.yaml", "resources:\n- config.yaml\n- missing.yaml\n"},
       // Leaves the repository.
       {"overlays/escape/kustomization.yaml", "resources:\n- ../../../etc\n"},
       // A remote base.
       {"overlays/remote/kustomization.yaml",
        "resources:\n- https://example.invalid/x//y?ref=v1\n"},
       // An exec function.
       {"overlays/function/kustomization.yaml",
        "resources:\n- config.yaml\ntransformers:\n- function.yaml\n"},
       {"overlays/function/config.yaml", function_cm},
       {"overlays/function/function.yaml",
        "apiVersion: example.com/v1\nkind: Transformer\nmetadata:\n  name: run\n  annotations:\n"
        "    config.kubernetes.io/function: |\n      exec:\n        path: /bin/true\n"},
       // Changes that must still apply in the same sync, and a file that leaves git.
       {"overlays/prod/replicas.yaml", KustomizeRepo::Replicas(3)},
       {"plain/worker.yaml", repo.Worker("3.1")},
       {"plain/leaving.yaml", ""}},
      &result);
  if (HasFatalFailure()) return;
  std::map<std::string, std::string> errors;
  for (const ferry::v1::ResourceError& e : result.errors()) errors[e.path()] += e.error();
  EXPECT_EQ(errors.size(), 4u) << result.DebugString();
  EXPECT_THAT(errors["overlays/extra/kustomization.yaml"], HasSubstr("missing.yaml"));
  EXPECT_THAT(errors["overlays/escape/kustomization.yaml"], HasSubstr("leaves the repository"));
  EXPECT_THAT(errors["overlays/remote/kustomization.yaml"],
              HasSubstr("remote reference \"https://example.invalid/x//y?ref=v1\" refused"));
  EXPECT_THAT(errors["overlays/function/kustomization.yaml"],
              HasSubstr("\"overlays/function/function.yaml\" declares a KRM function"));
  EXPECT_EQ(result.error(), "") << result.DebugString();

  // The rest applied; the broken root's ConfigMap is kept, what left git is pruned.
  EXPECT_EQ(ReplicasAndImage(repo.prod, "web"), "3 " + registry + "/team/web:1.1");
  EXPECT_EQ(ReplicasAndImage(repo.staging, "stg-web"), "0 " + registry + "/team/web:1.0");
  EXPECT_EQ(ReplicasAndImage(repo.plain, "worker"), "0 " + registry + "/team/worker:3.1");
  EXPECT_EQ(Get(repo.plain, "configmap extra", "{.data.a}"), "b") << "the broken root's object";
  int status = 0;
  Cluster().Kubectl("-n " + repo.plain + " get configmap function-ran", &status);
  EXPECT_NE(status, 0) << "the root with a function was applied";
  Cluster().Kubectl("-n " + repo.plain + " get configmap leaving", &status);
  EXPECT_NE(status, 0) << "what left git was not pruned: garbage collection did not run";
}

}  // namespace
}  // namespace ferry
