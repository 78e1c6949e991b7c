#include "lib/kube/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ferry::kube {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The entry of list `section` (clusters, users, contexts) named `name`, or an error.
absl::StatusOr<YAML::Node> Named(const YAML::Node& root, const std::string& section,
                                 const std::string& field, const std::string& name,
                                 const std::string& path) {
  const YAML::Node list = root[section];
  if (list && list.IsSequence()) {
    for (const YAML::Node& entry : list) {
      if (entry["name"] && entry["name"].as<std::string>("") == name && entry[field]) {
        return entry[field];
      }
    }
  }
  return absl::NotFoundError(
      absl::StrCat("kubeconfig ", path, ": no ", section, " entry named '", name, "'"));
}

std::string Str(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v && v.IsScalar() ? v.as<std::string>() : "";
}

absl::StatusOr<std::string> Base64Data(const std::string& data, const std::string& field,
                                       const std::string& path) {
  std::string decoded;
  if (!absl::Base64Unescape(data, &decoded)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", path, ": ", field, " is not valid base64"));
  }
  return decoded;
}

}  // namespace

absl::StatusOr<ClusterAccess> LoadKubeconfig(const std::string& path, const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("cannot read kubeconfig ", path));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": ", e.what()));
  }
  if (!root.IsMap())
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": not a mapping"));
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  auto resolve = [&](const std::string& file) {
    if (file.empty() || std::filesystem::path(file).is_absolute()) return file;
    return (base / file).string();
  };

  ClusterAccess access;
  access.context = context.empty() ? Str(root, "current-context") : context;
  if (access.context.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", path, " has no current-context; pass --context NAME"));
  }
  auto ctx = Named(root, "contexts", "context", access.context, path);
  if (!ctx.ok()) return ctx.status();
  if (std::string ns = Str(*ctx, "namespace"); !ns.empty()) access.default_namespace = ns;

  auto cluster = Named(root, "clusters", "cluster", Str(*ctx, "cluster"), path);
  if (!cluster.ok()) return cluster.status();
  access.server = std::string(absl::StripSuffix(Str(*cluster, "server"), "/"));
  if (access.server.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", path, ": cluster '", Str(*ctx, "cluster"), "' has no server"));
  }
  if (std::string data = Str(*cluster, "certificate-authority-data"); !data.empty()) {
    auto pem = Base64Data(data, "certificate-authority-data", path);
    if (!pem.ok()) return pem.status();
    access.tls.ca_pem = *pem;
  } else if (std::string file = Str(*cluster, "certificate-authority"); !file.empty()) {
    auto pem = ReadFile(resolve(file), "certificate-authority");
    if (!pem.ok()) return pem.status();
    access.tls.ca_pem = *pem;
  }
  access.tls.insecure_skip_tls_verify = Str(*cluster, "insecure-skip-tls-verify") == "true";

  const std::string user_name = Str(*ctx, "user");
  if (!user_name.empty()) {
    auto user = Named(root, "users", "user", user_name, path);
    if (!user.ok()) return user.status();
    if (std::string data = Str(*user, "client-certificate-data"); !data.empty()) {
      auto pem = Base64Data(data, "client-certificate-data", path);
      if (!pem.ok()) return pem.status();
      access.tls.client_cert_pem = *pem;
    } else if (std::string file = Str(*user, "client-certificate"); !file.empty()) {
      auto pem = ReadFile(resolve(file), "client-certificate");
      if (!pem.ok()) return pem.status();
      access.tls.client_cert_pem = *pem;
    }
    if (std::string data = Str(*user, "client-key-data"); !data.empty()) {
      auto pem = Base64Data(data, "client-key-data", path);
      if (!pem.ok()) return pem.status();
      access.tls.client_key_pem = *pem;
    } else if (std::string file = Str(*user, "client-key"); !file.empty()) {
      auto pem = ReadFile(resolve(file), "client-key");
      if (!pem.ok()) return pem.status();
      access.tls.client_key_pem = *pem;
    }
    access.token = Str(*user, "token");
    if (std::string file = Str(*user, "tokenFile"); !file.empty())
      access.token_path = resolve(file);
    access.username = Str(*user, "username");
    access.password = Str(*user, "password");
    if ((*user)["exec"] || (*user)["auth-provider"]) {
      if (access.token.empty() && access.token_path.empty() && access.tls.client_cert_pem.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kubeconfig ", path, ": user '", user_name,
            "' authenticates with an exec or auth-provider plugin, which Ferry does not run; "
            "use a token, a token file or a client certificate"));
      }
    }
  }
  if (access.tls.client_cert_pem.empty() != access.tls.client_key_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": user '", user_name,
                                                   "' has a client certificate without its key "
                                                   "(or a key without its certificate)"));
  }
  return access;
}

absl::StatusOr<ClusterAccess> InClusterAccess(const std::string& account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return absl::FailedPreconditionError(
        "not running in a pod (KUBERNETES_SERVICE_HOST/PORT unset); pass --kubeconfig PATH");
  }
  ClusterAccess access;
  const std::string h = host;
  access.server =
      absl::StrCat("https://", h.find(':') != std::string::npos ? "[" + h + "]" : h, ":", port);
  access.token_path = account_dir + "/token";
  auto token = ReadFile(access.token_path, "service account token");
  if (!token.ok()) return token.status();
  auto ca = ReadFile(account_dir + "/ca.crt", "service account CA");
  if (!ca.ok()) return ca.status();
  access.tls.ca_pem = *ca;
  if (auto ns = ReadFile(account_dir + "/namespace", "namespace"); ns.ok() && !ns->empty()) {
    access.default_namespace = std::string(absl::StripAsciiWhitespace(*ns));
  }
  access.context = "in-cluster";
  return access;
}

absl::StatusOr<ClusterAccess> LoadClusterAccess(const std::string& kubeconfig,
                                                const std::string& context) {
  return kubeconfig.empty() ? InClusterAccess() : LoadKubeconfig(kubeconfig, context);
}

}  // namespace ferry::kube
