// The Kubernetes client against a real API server (tests/kube/cluster.sh): kubeconfig
// variants, in-cluster access, errors, discovery, apply and delete.
#include "lib/kube/kube_client.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/kube_fixture.h"

namespace ferry::cluster_syncer {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class KubeClientTest : public testing::KubeSuite {
 protected:
  // Writes a kubeconfig under the test dir with `cluster_fields` and `user_fields` (YAML
  // lines, indented by the caller) and returns its path.
  static std::string Kubeconfig(const std::string& name, const std::string& cluster_fields,
                                const std::string& user_fields) {
    const std::string path = *dir_ + "/" + name;
    std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                        << "    server: " << cluster_->server() << "\n"
                        << cluster_fields << "users:\n- name: u\n  user:\n"
                        << user_fields
                        << "contexts:\n- name: other\n  context: {cluster: c, user: nobody}\n"
                        << "- name: main\n  context: {cluster: c, user: u, namespace: team}\n"
                        << "current-context: main\n";
    return path;
  }
  static absl::StatusOr<nlohmann::json> ListNamespaces(const std::string& kubeconfig) {
    auto access = kube::LoadKubeconfig(kubeconfig, "");
    if (!access.ok()) return access.status();
    prometheus::Registry registry;
    kube::KubeClient client(*access, registry);
    return client.Get("/api/v1/namespaces", "list");
  }
};

TEST_F(KubeClientTest, TokenWithCaFileRelativeToTheKubeconfig) {
  std::filesystem::copy_file(cluster_->ca_path(), *dir_ + "/ca-copy.crt",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string path = Kubeconfig("token.yaml", "    certificate-authority: ca-copy.crt\n",
                                      "    token: " + cluster_->token() + "\n");
  auto access = kube::LoadKubeconfig(path, "");
  ASSERT_TRUE(access.ok()) << access.status();
  EXPECT_EQ(access->default_namespace, "team");
  EXPECT_EQ(access->context, "main");
  auto list = ListNamespaces(path);
  ASSERT_TRUE(list.ok()) << list.status();
  bool found = false;
  for (const auto& ns : (*list)["items"]) found |= ns["metadata"]["name"] == "kube-system";
  EXPECT_TRUE(found) << list->dump();
}

TEST_F(KubeClientTest, ClientCertificateWithInlineCa) {
  const std::string ca = absl::Base64Escape(ReadFile(cluster_->ca_path()));
  const std::string path = Kubeconfig(
      "cert.yaml", "    certificate-authority-data: " + ca + "\n",
      "    client-certificate: " + cluster_->dir() + "/admin.crt\n" + "    client-key-data: " +
          absl::Base64Escape(ReadFile(cluster_->dir() + "/admin.key")) + "\n");
  auto list = ListNamespaces(path);
  EXPECT_TRUE(list.ok()) << list.status();
}

TEST_F(KubeClientTest, TokenFileIsReadAndAWrongTokenIsUnauthenticated) {
  std::ofstream(*dir_ + "/token-file") << cluster_->token() << "\n";
  const std::string ok =
      Kubeconfig("tokenfile.yaml", "    certificate-authority: " + cluster_->ca_path() + "\n",
                 "    tokenFile: " + *dir_ + "/token-file\n");
  EXPECT_TRUE(ListNamespaces(ok).ok());
  const std::string bad =
      Kubeconfig("badtoken.yaml", "    certificate-authority: " + cluster_->ca_path() + "\n",
                 "    token: not-the-token\n");
  auto list = ListNamespaces(bad);
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnauthenticated) << list.status();
  EXPECT_FALSE(absl::StrContains(list.status().message(), "not-the-token"));  // no secrets
}

TEST_F(KubeClientTest, WrongCaIsAClearTlsErrorUnlessVerificationIsSkipped) {
  const std::string other_ca = *dir_ + "/other-ca";
  ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other "
                         "-keyout " +
                         other_ca + ".key -out " + other_ca + ".crt 2>/dev/null")
                            .c_str()),
            0);
  const std::string token = "    token: " + cluster_->token() + "\n";
  const std::string wrong =
      Kubeconfig("wrongca.yaml", "    certificate-authority: " + other_ca + ".crt\n", token);
  auto list = ListNamespaces(wrong);
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnavailable) << list.status();
  EXPECT_TRUE(absl::StrContains(list.status().message(), "certificate")) << list.status();
  const std::string skip = Kubeconfig(
      "skip.yaml",
      "    certificate-authority: " + other_ca + ".crt\n    insecure-skip-tls-verify: true\n",
      token);
  EXPECT_TRUE(ListNamespaces(skip).ok());
}

TEST_F(KubeClientTest, KubeconfigMistakesSayWhatToFix) {
  const std::string path = Kubeconfig("exec.yaml", "", "    exec:\n      command: aws\n");
  auto exec = kube::LoadKubeconfig(path, "");
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(exec.status().message(), "exec")) << exec.status();
  auto missing_context = kube::LoadKubeconfig(path, "nope");
  EXPECT_EQ(missing_context.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing_context.status().message(), "nope"));
  auto missing_user = kube::LoadKubeconfig(path, "other");
  EXPECT_EQ(missing_user.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing_user.status().message(), "nobody"));
  EXPECT_EQ(kube::LoadKubeconfig(*dir_ + "/absent.yaml", "").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KubeClientTest, InClusterServiceAccount) {
  const std::string account = *dir_ + "/serviceaccount";
  std::filesystem::create_directories(account);
  std::filesystem::copy_file(cluster_->ca_path(), account + "/ca.crt",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(account + "/token") << cluster_->token();
  std::ofstream(account + "/namespace") << "ferry";
  const std::string server = cluster_->server();  // https://127.0.0.1:PORT
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", server.substr(server.rfind(':') + 1).c_str(), 1);
  auto access = kube::InClusterAccess(account);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(access.ok()) << access.status();
  EXPECT_EQ(access->default_namespace, "ferry");
  prometheus::Registry registry;
  kube::KubeClient client(*access, registry);
  EXPECT_TRUE(client.Get("/api/v1/namespaces", "list").ok());
  EXPECT_EQ(kube::InClusterAccess(account).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(KubeClientTest, DiscoveryApplyAndApiErrors) {
  auto access = kube::LoadKubeconfig(cluster_->kubeconfig(), "");
  ASSERT_TRUE(access.ok()) << access.status();
  prometheus::Registry registry;
  kube::KubeClient client(*access, registry);
  kube::Discovery discovery(client);
  auto deploy = discovery.Find("apps/v1", "Deployment");
  ASSERT_TRUE(deploy.ok()) << deploy.status();
  EXPECT_EQ(deploy->name, "deployments");
  EXPECT_TRUE(deploy->namespaced);
  EXPECT_EQ(deploy->ObjectPath("web", "app"), "/apis/apps/v1/namespaces/web/deployments/app");
  auto ns = discovery.Find("v1", "Namespace");
  ASSERT_TRUE(ns.ok());
  EXPECT_FALSE(ns->namespaced);
  EXPECT_EQ(ns->ObjectPath("ignored", "x"), "/api/v1/namespaces/x");
  auto cron = discovery.FindPreferred("batch", "CronJob");
  ASSERT_TRUE(cron.ok()) << cron.status();
  EXPECT_EQ(cron->version, "v1beta1");  // Kubernetes 1.20
  auto unknown = discovery.Find("example.com/v1", "Widget");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "Widget")) << unknown.status();

  auto missing = client.Get("/api/v1/namespaces/does-not-exist", "get");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "\"does-not-exist\" not found"))
      << missing.status();

  nlohmann::json cm = {{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", {{"name", "client-test"}, {"namespace", "default"}}},
                       {"data", {{"k", "v"}}}};
  auto cms = discovery.Find("v1", "ConfigMap");
  ASSERT_TRUE(cms.ok());
  const std::string path = cms->ObjectPath("default", "client-test");
  const int64_t writes = client.writes();
  auto applied = client.Apply(path, cm, "ferry", true, false);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)["data"]["k"], "v");
  EXPECT_EQ(client.writes(), writes + 1);
  int status = 0;
  EXPECT_EQ(cluster_->Kubectl("get configmap client-test -o jsonpath={.data.k}", &status), "v");

  nlohmann::json invalid = cm;
  invalid["data"] = {{"k", {{"nested", "map"}}}};  // data values must be strings
  auto rejected = client.Apply(path, invalid, "ferry", true, false);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument) << rejected.status();

  ASSERT_TRUE(client.Delete(path, false).ok());
  EXPECT_EQ(client.Get(path, "get").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ferry::cluster_syncer
