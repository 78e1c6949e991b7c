// Ferry's container images, built without a Docker daemon (scripts/build-images.sh), pushed
// to a real registry (docker-registry on loopback), pulled back with skopeo, unpacked into
// a root filesystem and run there with chroot as uid 65532: no host library is visible.
// Checks the digests are reproducible, the images small, the config what deploy/base
// expects, and that each service answers the gRPC health check and serves /metrics; the
// syncer in its image applies the config repo to a real Kubernetes API (tests/kube), and
// ferryctl in its image lists the workloads and, as a Drone plugin, dry-runs a release.
//
// One process for all tests (registered with add_test, not gtest_discover_tests): the
// images are built once in SetUpTestSuite. Needs root (chroot), apt access to the Debian
// archive or a warm cache (/var/cache/ferry-images), skopeo and docker-registry.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "ferry/v1/git_writer.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/binaries.h"
#include "tests/support/http.h"
#include "tests/support/kube.h"
#include "tests/support/registry.h"
#include "tests/support/subprocess.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using grpc::health::v1::HealthCheckResponse;
using json = nlohmann::json;
using testing::CheckHealth;
using testing::Running;
using testing::StartArgv;
using testing::Subprocess;
using testing::TempDir;

const std::string kSource = FERRY_SOURCE_DIR;
const std::string kBuild = FERRY_BINARY_DIR;

struct Result {
  int code = -1;
  std::string output;
};

// Runs `command` with bash, stdout and stderr together.
Result Shell(const std::string& command, absl::Duration timeout = absl::Minutes(10)) {
  Result r;
  auto p = Subprocess::Start({"/bin/bash", "-c", command});
  if (!p.ok()) {
    r.output = std::string(p.status().message());
    return r;
  }
  std::optional<int> code = (*p)->Wait(timeout);
  r.code = code.value_or(-1);
  r.output = (*p)->Output();
  return r;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json ReadJson(const std::string& path) {
  json j = json::parse(Read(path), nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << path;
  return j;
}

std::string Blob(const std::string& layout, const std::string& digest) {
  return layout + "/blobs/sha256/" + digest.substr(7);
}

struct Image {
  std::string name;
  std::string digest;     // as built
  double compressed = 0;  // bytes
  std::string pulled;     // OCI layout pulled back from the registry
  std::string pulled_digest;
  json manifest, config;
  std::string rootfs;
};

struct Suite {
  bool skipped = false;
  std::string setup_error;
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<testing::RegistryServer> registry;
  std::string build_output;
  std::string bin;                // the binaries the images are built from
  std::string script;             // "<fixed inputs> bash scripts/build-images.sh"
  std::vector<std::string> tags;  // version, revision
  std::map<std::string, Image> images;
  json definition;
};
Suite* suite = nullptr;

const char* const kServices[] = {"ferry-api", "ferry-git-writer", "ferry-registry-scanner",
                                 "ferry-cluster-syncer"};

class ImagesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite = new Suite;
    if (geteuid() != 0) {
      suite->skipped = true;
      return;
    }
    suite->setup_error = BuildPushPull();
  }
  static void TearDownTestSuite() {
    delete suite;
    suite = nullptr;
  }
  void SetUp() override {
    if (suite->skipped) GTEST_SKIP() << "needs root (chroot)";
    ASSERT_EQ(suite->setup_error, "") << suite->build_output;
  }

  static std::string BuildPushPull() {
    suite->definition = ReadJson(kSource + "/deploy/images/images.json");
    suite->dir = std::make_unique<TempDir>();
    const std::string dir = suite->dir->path;
    auto registry = testing::RegistryServer::Start(dir + "/registry");
    if (!registry.ok()) return std::string(registry.status().message());
    suite->registry = *std::move(registry);
    const std::string host = suite->registry->host();

    // The inputs, fixed for every build of this test: a copy of the binaries, the commit and
    // its time (the checkout and build folder may change under a long test).
    suite->bin = dir + "/bin";
    Result snapshot =
        Shell(absl::StrCat("set -e; cd ", kBuild, "; for f in services/*/ferry-* cli/ferryctl; do ",
                           "[ -f \"$f\" ] && [ -x \"$f\" ] || continue; mkdir -p ", suite->bin,
                           "/$(dirname $f); cp $f ", suite->bin, "/$f; done; cd ", kSource,
                           "; echo \"export FERRY_IMAGE_REVISION=$(git rev-parse HEAD) ",
                           "SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)\" > ", dir, "/inputs"));
    if (snapshot.code != 0) return "copying the binaries: " + snapshot.output;
    suite->script =
        absl::StrCat(". ", dir, "/inputs && bash ", kSource, "/scripts/build-images.sh");

    // Build every image and push them to the registry.
    Result build = Shell(absl::StrCat(suite->script, " --out ", dir, "/out --build-dir ",
                                      suite->bin, " --push ", host, "/ferry"));
    suite->build_output = build.output;
    if (build.code != 0) return "build-images.sh failed";
    json built = ReadJson(dir + "/out/images.json");
    for (const auto& t : built["tags"]) suite->tags.push_back(t.get<std::string>());
    if (suite->tags.size() != 2) return "images.json: expected two tags";
    for (const auto& b : built["images"]) {
      Image image;
      image.name = b["name"].get<std::string>();
      image.digest = b["digest"].get<std::string>();
      image.compressed = b["compressed"].get<double>();
      suite->images[image.name] = image;
    }

    // Pull each back by its version tag and unpack its layers into a root filesystem.
    for (auto& [name, image] : suite->images) {
      image.pulled = dir + "/pulled/" + name;
      fs::create_directories(dir + "/pulled");
      Result pull =
          Shell(absl::StrCat("skopeo copy -q --src-tls-verify=false docker://", host, "/ferry/",
                             name, ":", suite->tags[0], " oci:", image.pulled, ":", suite->tags[0]),
                absl::Minutes(2));
      if (pull.code != 0) return "skopeo copy " + name + ": " + pull.output;
      json index = ReadJson(image.pulled + "/index.json");
      image.pulled_digest = index["manifests"][0]["digest"].get<std::string>();
      image.manifest = ReadJson(Blob(image.pulled, image.pulled_digest));
      image.config = ReadJson(Blob(image.pulled, image.manifest["config"]["digest"]));
      image.rootfs = dir + "/rootfs/" + name;
      fs::create_directories(image.rootfs);
      for (const auto& layer : image.manifest["layers"]) {
        Result untar = Shell(absl::StrCat("tar -xzf ", Blob(image.pulled, layer["digest"]), " -C ",
                                          image.rootfs, " --numeric-owner"));
        if (untar.code != 0) return "unpacking " + name + ": " + untar.output;
      }
      // The device nodes a container runtime provides.
      Result dev =
          Shell(absl::StrCat("set -e; cd ", image.rootfs, "; mkdir -m 755 dev; ",
                             "mknod -m 666 dev/null c 1 3; mknod -m 666 dev/zero c 1 5; ",
                             "mknod -m 666 dev/random c 1 8; mknod -m 666 dev/urandom c 1 9"));
      if (dev.code != 0) return "mknod in " + name + ": " + dev.output;
    }
    return "";
  }

  static const Image& Get(const std::string& name) { return suite->images.at(name); }

  // argv run as a container runtime would: only the image's environment, uid/gid 65532,
  // the image's root filesystem as / (no host library visible).
  static std::vector<std::string> InImage(const std::string& name, std::vector<std::string> argv,
                                          const std::vector<std::string>& env = {}) {
    std::vector<std::string> out = {"/usr/bin/env", "-i"};
    for (const auto& e : Get(name).config["config"]["Env"]) out.push_back(e.get<std::string>());
    out.insert(out.end(), env.begin(), env.end());
    for (const char* a : {"/usr/sbin/chroot", "--userspec=65532:65532"}) out.push_back(a);
    out.push_back(Get(name).rootfs);
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  static std::string Entrypoint(const std::string& name) {
    return Get(name).config["config"]["Entrypoint"][0].get<std::string>();
  }
};

TEST_F(ImagesTest, BuildsEveryImageAndReportsItsCompressedSize) {
  ASSERT_EQ(suite->images.size(), 5u) << suite->build_output;
  for (const char* name : kServices) {
    ASSERT_TRUE(suite->images.count(name)) << name;
    EXPECT_LT(Get(name).compressed, 40e6) << name << " is over the 40 MB target";
    EXPECT_TRUE(
        std::regex_search(suite->build_output, std::regex(std::string(name) + " +[0-9.]+ MB")))
        << suite->build_output;
  }
  ASSERT_TRUE(suite->images.count("ferryctl"));
  EXPECT_LT(Get("ferryctl").compressed, 40e6);
}

TEST_F(ImagesTest, SameCommitAndPackagesGiveTheSameDigest) {
  const std::string out = suite->dir->path + "/again";
  Result again = Shell(absl::StrCat(suite->script, " --out ", out, " --build-dir ", suite->bin,
                                    " --only ferry-git-writer"));
  ASSERT_EQ(again.code, 0) << again.output;
  json index = ReadJson(out + "/ferry-git-writer/index.json");
  EXPECT_EQ(index["manifests"][0]["digest"].get<std::string>(), Get("ferry-git-writer").digest);
}

TEST_F(ImagesTest, PushesBothTagsAndPullsBackTheSameManifest) {
  for (const auto& [name, image] : suite->images) {
    EXPECT_EQ(image.pulled_digest, image.digest) << name;
    Result raw = Shell(absl::StrCat("skopeo inspect --raw --tls-verify=false docker://",
                                    suite->registry->host(), "/ferry/", name, ":", suite->tags[1],
                                    " | sha256sum"));
    ASSERT_EQ(raw.code, 0) << raw.output;
    EXPECT_EQ("sha256:" + raw.output.substr(0, 64), image.digest) << name << " revision tag";
  }
}

// The containerPort values of deploy/base/<file>.yaml.
std::set<std::string> DeployPorts(const std::string& file) {
  std::string text = Read(kSource + "/deploy/base/" + file + ".yaml");
  std::set<std::string> ports;
  std::regex re("containerPort: ([0-9]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    ports.insert((*it)[1].str() + "/tcp");
  }
  return ports;
}

TEST_F(ImagesTest, ConfigIsWhatDeployBaseExpects) {
  for (const char* name : kServices) {
    SCOPED_TRACE(name);
    const std::string file = std::string(name).substr(strlen("ferry-"));
    const std::string yaml = Read(kSource + "/deploy/base/" + file + ".yaml");
    const Image& image = Get(name);
    const json& c = image.config["config"];
    // deploy/base names the image by the name the script pushes, runs it as 65532 with a
    // read-only root filesystem, sets no command (the entrypoint runs with FERRY_* env).
    EXPECT_TRUE(absl::StrContains(yaml, std::string("image: ") + name));
    EXPECT_TRUE(absl::StrContains(yaml, "runAsUser: 65532"));
    EXPECT_TRUE(absl::StrContains(yaml, "readOnlyRootFilesystem: true"));
    EXPECT_FALSE(absl::StrContains(yaml, "command:"));
    EXPECT_EQ(c["User"], "65532:65532");
    EXPECT_EQ(c["Entrypoint"], json::array({std::string("/usr/local/bin/") + name}));
    std::set<std::string> exposed;
    for (const auto& [port, _] : c["ExposedPorts"].items()) exposed.insert(port);
    EXPECT_EQ(exposed, DeployPorts(file));
    // deploy/base sets no workingDir: the image's must exist and be the user's.
    struct stat st {};
    const std::string workdir = c["WorkingDir"].get<std::string>();
    ASSERT_EQ(stat((image.rootfs + workdir).c_str(), &st), 0) << workdir;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_uid, 65532u);
    // What a service writes under a read-only root is a volume in deploy/base.
    for (const auto& def : suite->definition["images"]) {
      if (def["name"] != name) continue;
      for (const auto& d : def["state_dirs"]) {
        EXPECT_TRUE(absl::StrContains(yaml, "mountPath: " + d.get<std::string>())) << d;
        ASSERT_EQ(stat((image.rootfs + d.get<std::string>()).c_str(), &st), 0) << d;
        EXPECT_EQ(st.st_uid, 65532u) << d;
      }
    }
    EXPECT_TRUE(absl::StrContains(yaml, "mountPath: /tmp"));
  }
  for (const auto& [name, image] : suite->images) {
    SCOPED_TRACE(name);
    for (const char* key : {"source", "revision", "version", "licenses", "created"}) {
      const std::string annotation = std::string("org.opencontainers.image.") + key;
      EXPECT_TRUE(image.manifest["annotations"].contains(annotation)) << annotation;
      EXPECT_TRUE(image.config["config"]["Labels"].contains(annotation)) << annotation;
    }
    EXPECT_EQ(image.manifest["annotations"]["org.opencontainers.image.version"], suite->tags[0]);
    EXPECT_EQ(image.config["created"],
              image.manifest["annotations"]["org.opencontainers.image.created"]);
  }
}

TEST_F(ImagesTest, ServiceImagesHaveNoShellNoPackageManagerAndAnSbom) {
  for (const auto& [name, image] : suite->images) {
    SCOPED_TRACE(name);
    const bool cli = name == "ferryctl";
    EXPECT_EQ(fs::exists(image.rootfs + "/bin/sh"), cli);
    for (const char* tool : {"/usr/bin/dpkg", "/usr/bin/apt", "/usr/bin/apt-get", "/bin/bash",
                             "/usr/bin/bash", "/usr/bin/perl"}) {
      EXPECT_FALSE(fs::exists(image.rootfs + tool)) << tool;
    }
    EXPECT_TRUE(fs::exists(image.rootfs + "/etc/ssl/certs/ca-certificates.crt"));
    EXPECT_TRUE(fs::exists(image.rootfs + "/usr/share/zoneinfo/Europe/Paris"));
    EXPECT_TRUE(absl::StrContains(Read(image.rootfs + "/etc/passwd"), ":65532:65532:"));
    // The SBOM lists Ferry and every package with a dpkg status entry, at its version.
    json sbom = ReadJson(image.rootfs + "/usr/share/doc/ferry/sbom.spdx.json");
    EXPECT_EQ(sbom["spdxVersion"], "SPDX-2.3");
    std::map<std::string, std::string> listed;
    for (const auto& p : sbom["packages"]) {
      listed[p["name"].get<std::string>()] = p["versionInfo"].get<std::string>();
    }
    EXPECT_EQ(listed[name], suite->tags[0]);
    int packages = 0;
    for (const auto& entry : fs::directory_iterator(image.rootfs + "/var/lib/dpkg/status.d")) {
      ++packages;
      const std::string pkg = entry.path().filename();
      std::smatch m;
      const std::string control = Read(entry.path());
      ASSERT_TRUE(std::regex_search(control, m, std::regex("\nVersion: ([^\n]+)"))) << pkg;
      EXPECT_EQ(listed[pkg], m[1].str()) << pkg;
      EXPECT_TRUE(fs::exists(image.rootfs + "/usr/share/doc/" + pkg + "/copyright")) << pkg;
    }
    EXPECT_EQ(listed.size(), packages + 1u);
    EXPECT_TRUE(listed.count("libc6"));
    EXPECT_TRUE(listed.count("ca-certificates"));
  }
}

TEST_F(ImagesTest, EntrypointsPrintTheVersionAsNonroot) {
  for (const auto& [name, image] : suite->images) {
    auto p = Subprocess::Start(InImage(name, {Entrypoint(name), "--version"}));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ((*p)->Wait(absl::Seconds(20)), 0) << name << ": " << (*p)->Output();
    EXPECT_EQ(absl::StripAsciiWhitespace((*p)->Output()), suite->tags[0]) << name;
  }
  // Drone runs a step's commands with the image's shell.
  auto p = Subprocess::Start(
      InImage("ferryctl", {"/bin/sh", "-c", "cd /tmp && ferryctl --version && id -u"}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Wait(absl::Seconds(20)), 0) << (*p)->Output();
  EXPECT_EQ((*p)->Output(), suite->tags[0] + "\n65532");
}

void ExpectServes(const Running& r, const std::string& component, const std::string& service) {
  SCOPED_TRACE(component);
  ASSERT_GT(r.grpc_port, 0);
  EXPECT_EQ(CheckHealth(r, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(r, service), HealthCheckResponse::SERVING);
  auto metrics =
      testing::HttpGet("http://127.0.0.1:" + std::to_string(r.metrics_port) + "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(absl::StrContains(metrics->body, "ferry_build_info{component=\"" + component + "\""))
      << metrics->body.substr(0, 2000);
}

TEST_F(ImagesTest, ServicesStartInTheirImageAndAnswerHealthAndMetrics) {
  const std::vector<std::string> listen = {"--grpc_address=127.0.0.1:0",
                                           "--metrics_address=127.0.0.1:0", "--drain_timeout=2s"};
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = listen;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  auto start = [&](const std::string& name, std::vector<std::string> extra, Running& r) {
    std::vector<std::string> argv = {Entrypoint(name)};
    for (const std::string& a : args(extra)) argv.push_back(a);
    StartArgv(InImage(name, argv), r);
  };

  // git-writer: a config repo inside its root filesystem (file://), the mirror in its state
  // folder. Its one workload runs an image of the test's registry (ferry-api's, version tag).
  const std::string registry_image = suite->registry->host() + "/ferry/ferry-api";
  const std::string image_v1 = registry_image + ":" + suite->tags[0];
  const std::string gw = Get("ferry-git-writer").rootfs;
  // A namespace of its own: the cluster may be shared with other test processes.
  const std::string ns = "ferry-images-" + std::to_string(getpid());
  const std::string manifests = absl::StrCat(
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ", ns,
      "\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: ", ns,
      "\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: web}}\n  template:\n",
      "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n",
      "        image: ", image_v1, "\n");
  Result repo = Shell(absl::StrCat(
      "set -e; src=$(mktemp -d); cd $src; git -c init.defaultBranch=main init -q; mkdir apps; ",
      "printf '%s' '", manifests, "' > apps/web.yaml; ",
      "git add -A; git -c user.name=t -c user.email=t@example.com commit -qm init; ",
      "git clone -q --bare $src ", gw, "/tmp/config.git; chown -R 65532:65532 ", gw,
      "/tmp/config.git; rm -rf $src"));
  ASSERT_EQ(repo.code, 0) << repo.output;
  Running git;
  start("ferry-git-writer",
        {"--git_url=file:///tmp/config.git", "--state_dir=/var/lib/ferry/git-writer",
         "--git_poll_interval=1h"},
        git);
  ExpectServes(git, "git-writer", "ferry.v1.GitWriter");

  // The scanner with its push webhook (which needs a secret), as deploy/base runs it.
  const std::string rs = Get("ferry-registry-scanner").rootfs;
  std::ofstream(rs + "/tmp/webhook-secret") << "s3cret\n";
  ASSERT_EQ(chown((rs + "/tmp/webhook-secret").c_str(), 65532, 65532), 0);
  Running scanner;
  start("ferry-registry-scanner",
        {"--state_dir=/var/lib/ferry/registry-scanner", "--webhook_address=127.0.0.1:0",
         "--webhook_secret_path=/tmp/webhook-secret",
         "--registry_insecure_hosts=" + suite->registry->host()},
        scanner);
  ExpectServes(scanner, "registry-scanner", "ferry.v1.RegistryScanner");

  // The syncer against a real Kubernetes API (tests/kube/cluster.sh): a kubeconfig inside
  // its root filesystem with the token and the CA inline.
  auto cluster = testing::SharedKubeCluster();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Result ca = Shell("base64 -w0 " + (*cluster)->ca_path());
  ASSERT_EQ(ca.code, 0) << ca.output;
  const std::string cs = Get("ferry-cluster-syncer").rootfs;
  std::ofstream(cs + "/tmp/kubeconfig")
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: "
      << (*cluster)->server() << "\n    certificate-authority-data: " << ca.output
      << "\nusers:\n- name: u\n  user:\n    token: " << (*cluster)->token()
      << "\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
  chmod((cs + "/tmp/kubeconfig").c_str(), 0644);
  Running syncer;
  start("ferry-cluster-syncer",
        {"--kubeconfig=/tmp/kubeconfig", "--git_writer_address=" + git.GrpcTarget(),
         "--sync_interval=1h"},
        syncer);
  ExpectServes(syncer, "cluster-syncer", "ferry.v1.ClusterSyncer");
  // It applies the config repo from inside its image.
  std::optional<ferry::v1::SyncResult> first = testing::FirstSync(syncer);
  ASSERT_TRUE(first.has_value()) << syncer.process->Output();
  EXPECT_EQ(first->failed(), 0) << first->DebugString();
  EXPECT_EQ(first->applied(), 2) << first->DebugString();
  struct DeleteNamespace {
    testing::KubeCluster* cluster;
    std::string ns;
    ~DeleteNamespace() { cluster->Kubectl("delete namespace --wait=false " + ns); }
  } cleanup{*cluster, ns};

  Running api;
  start("ferry-api",
        {"--git_writer_address=" + git.GrpcTarget(),
         "--registry_scanner_address=" + scanner.GrpcTarget(),
         "--cluster_syncer_address=" + syncer.GrpcTarget()},
        api);
  ExpectServes(api, "api", "ferry.v1.Ferry");

  // ferryctl from its image, through the api in its image, to the workloads git-writer
  // reads in its image.
  auto ctl = Subprocess::Start(InImage(
      "ferryctl", {"/usr/local/bin/ferryctl", "--url", api.GrpcTarget(), "list-workloads", "-a"}));
  ASSERT_TRUE(ctl.ok());
  EXPECT_EQ((*ctl)->Wait(absl::Seconds(60)), 0) << (*ctl)->Output();
  EXPECT_TRUE(absl::StrContains((*ctl)->Output(), "web")) << (*ctl)->Output();
  EXPECT_TRUE(absl::StrContains((*ctl)->Output(), image_v1)) << (*ctl)->Output();

  // The image as a Drone plugin: no command, the step's settings as PLUGIN_* variables: a
  // dry run of a release to the revision tag, which the scanner in its image finds in the
  // test's registry.
  const std::string image_rev = registry_image + ":" + suite->tags[1];
  auto drone = Subprocess::Start(
      InImage("ferryctl", {Entrypoint("ferryctl")},
              {"PLUGIN_URL=" + api.GrpcTarget(), "PLUGIN_WORKLOAD=" + ns + ":deployment/web",
               "PLUGIN_IMAGE=" + image_rev, "PLUGIN_DRY_RUN=true"}));
  ASSERT_TRUE(drone.ok());
  EXPECT_EQ((*drone)->Wait(absl::Seconds(60)), 0) << (*drone)->Output();
  EXPECT_TRUE(absl::StrContains((*drone)->Output(), suite->tags[1])) << (*drone)->Output();
}

// git-writer runs ssh-keygen (found on PATH) to create its deploy key when it has none, to
// sign commits (--git_signing_key_path) and to verify upstream's signatures
// (--git_verify_signatures): its image has it, with its libraries and nothing else of
// openssh-client, and says so in its SBOM.
TEST_F(ImagesTest, GitWriterImageRunsSshKeygenForItsKeysSigningAndVerification) {
  const std::string gw = Get("ferry-git-writer").rootfs;
  EXPECT_TRUE(fs::exists(gw + "/usr/bin/ssh-keygen"));
  EXPECT_FALSE(fs::exists(gw + "/usr/bin/ssh")) << "the ssh client is not needed";
  EXPECT_TRUE(fs::exists(gw + "/var/lib/dpkg/status.d/openssh-client"));
  json sbom = ReadJson(gw + "/usr/share/doc/ferry/sbom.spdx.json");
  std::set<std::string> listed;
  for (const auto& p : sbom["packages"]) listed.insert(p["name"].get<std::string>());
  EXPECT_TRUE(listed.count("openssh-client"));
  EXPECT_TRUE(listed.count("libselinux1")) << "ssh-keygen's library";
  for (const char* other : {"ferry-api", "ferry-cluster-syncer", "ferry-registry-scanner"}) {
    EXPECT_FALSE(fs::exists(Get(other).rootfs + "/usr/bin/ssh-keygen")) << other;
  }

  // ssh-keygen itself, as 65532 from the image's root: a signing key, its public half, a
  // signature, and the signature verified against an allowed signers file.
  const std::string dir = "/tmp/ssh-keygen-check";
  ASSERT_TRUE(fs::create_directories(gw + dir));
  ASSERT_EQ(chown((gw + dir).c_str(), 65532, 65532), 0);
  auto keygen = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "ssh-keygen");  // by PATH, as git-writer runs it
    auto p = Subprocess::Start(InImage("ferry-git-writer", args));
    Result r;
    if (!p.ok()) {
      r.output = std::string(p.status().message());
      return r;
    }
    r.code = (*p)->Wait(absl::Seconds(30)).value_or(-1);
    r.output = (*p)->Output();
    return r;
  };
  Result made = keygen({"-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", dir + "/key"});
  ASSERT_EQ(made.code, 0) << made.output;
  Result pub = keygen({"-y", "-P", "", "-f", dir + "/key"});
  ASSERT_EQ(pub.code, 0) << pub.output;
  EXPECT_TRUE(absl::StartsWith(pub.output, "ssh-ed25519 ")) << pub.output;
  EXPECT_EQ(absl::StripAsciiWhitespace(pub.output),
            absl::StripAsciiWhitespace(Read(gw + dir + "/key.pub")));
  std::ofstream(gw + dir + "/message") << "a commit\n";
  Result sign = keygen({"-Y", "sign", "-n", "git", "-f", dir + "/key", dir + "/message"});
  ASSERT_EQ(sign.code, 0) << sign.output;
  EXPECT_TRUE(absl::StrContains(Read(gw + dir + "/message.sig"), "BEGIN SSH SIGNATURE"));
  const std::string public_key = std::string(absl::StripAsciiWhitespace(pub.output));
  std::ofstream(gw + dir + "/allowed_signers") << "signer@example.com " << public_key << "\n";
  Result principals =
      keygen({"-Y", "find-principals", "-f", dir + "/allowed_signers", "-s", dir + "/message.sig"});
  EXPECT_EQ(principals.code, 0) << principals.output;
  EXPECT_TRUE(absl::StrContains(principals.output, "signer@example.com")) << principals.output;
  // -Y verify reads the message on stdin.
  std::string verify_cmd;
  for (const std::string& a : InImage(
           "ferry-git-writer", {"ssh-keygen", "-Y", "verify", "-f", dir + "/allowed_signers", "-I",
                                "signer@example.com", "-n", "git", "-s", dir + "/message.sig"})) {
    verify_cmd += "'" + a + "' ";
  }
  Result verified = Shell(verify_cmd + "< " + gw + dir + "/message");
  EXPECT_EQ(verified.code, 0) << verified.output;
  Result tampered = Shell(verify_cmd + "<<< 'another commit'");
  EXPECT_NE(tampered.code, 0) << tampered.output;

  // git-writer from its image: no deploy key yet (it creates one), commits signed with the
  // key above, upstream's head verified. The upstream commit is signed on the host.
  Result repo = Shell(absl::StrCat(
      "set -e; src=$(mktemp -d); cd $src; git -c init.defaultBranch=main init -q; mkdir apps; ",
      "echo 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}' ",
      "> apps/c.yaml; git add -A; git -c user.name=t -c user.email=signer@example.com ",
      "-c gpg.format=ssh -c user.signingkey=", gw, dir, "/key commit -S -qm init; ",
      "git clone -q --bare $src ", gw, dir, "/config.git; chown -R 65532:65532 ", gw, dir,
      "; rm -rf $src"));
  ASSERT_EQ(repo.code, 0) << repo.output;
  const std::string deploy_key = dir + "/state/ssh/id_ed25519";
  ASSERT_FALSE(fs::exists(gw + deploy_key));
  Running git;
  StartArgv(InImage("ferry-git-writer",
                    {Entrypoint("ferry-git-writer"), "--grpc_address=127.0.0.1:0",
                     "--metrics_address=127.0.0.1:0", "--drain_timeout=2s",
                     "--git_url=file://" + dir + "/config.git", "--state_dir=" + dir + "/state",
                     "--git_poll_interval=1h", "--git_ssh_key_path=" + deploy_key,
                     "--git_signing_key_path=" + dir + "/key", "--git_verify_signatures",
                     "--git_allowed_signers_path=" + dir + "/allowed_signers"}),
            git);
  ASSERT_GT(git.grpc_port, 0) << (git.process ? git.process->Output() : "");
  ExpectServes(git, "git-writer", "ferry.v1.GitWriter");
  // The deploy key ssh-keygen made in the image, the one git-writer reports.
  ASSERT_TRUE(fs::exists(gw + deploy_key)) << git.process->Output();
  auto stub = ferry::v1::GitWriter::NewStub(git.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ferry::v1::Identity identity;
  grpc::Status got = stub->GetIdentity(&ctx, ferry::v1::GetDeployKeyRequest(), &identity);
  ASSERT_TRUE(got.ok()) << got.error_message();
  EXPECT_EQ(absl::StripAsciiWhitespace(identity.public_key()),
            absl::StripAsciiWhitespace(Read(gw + deploy_key + ".pub")));
  EXPECT_EQ(identity.signing_format(), "ssh");
  EXPECT_TRUE(
      absl::StartsWith(identity.signing_public_key(), public_key.substr(0, public_key.rfind(' '))))
      << identity.signing_public_key();
  // Upstream's signed head, verified by ssh-keygen in the image: served, not held back.
  bool verified_head = false;
  std::string last;
  for (absl::Time deadline = absl::Now() + absl::Seconds(30);
       !verified_head && absl::Now() < deadline;) {
    auto metrics =
        testing::HttpGet("http://127.0.0.1:" + std::to_string(git.metrics_port) + "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    last = metrics->body;
    verified_head = absl::StrContains(last, "\nferry_git_head_verified 1");
    if (!verified_head) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(verified_head) << git.process->Output() << "\n" << last.substr(0, 3000);
  EXPECT_TRUE(absl::StrContains(last, "ferry_git_signature_checks_total{outcome=\"verified\"}"))
      << last.substr(0, 3000);
}

TEST_F(ImagesTest, DockerfilesAreGeneratedFromTheSameDefinition) {
  Result check = Shell(absl::StrCat(
      "bash ", kSource, "/scripts/build-images.sh --check-dockerfiles --build-dir ", kBuild));
  EXPECT_EQ(check.code, 0) << check.output;
  for (const auto& def : suite->definition["images"]) {
    const std::string dockerfile = Read(kSource + "/" + def["dockerfile"].get<std::string>());
    const Image& image = Get(def["name"]);
    const json& c = image.config["config"];
    EXPECT_TRUE(absl::StrContains(dockerfile, "USER " + c["User"].get<std::string>()));
    EXPECT_TRUE(absl::StrContains(dockerfile, "WORKDIR " + c["WorkingDir"].get<std::string>()));
    EXPECT_TRUE(absl::StrContains(dockerfile, "ENTRYPOINT " + c["Entrypoint"].dump()));
    // Every package the daemonless image takes files from, the Dockerfile installs (libc6
    // and base-files are in debian:12-slim).
    // gcc-12-base gives only the copyright of libstdc++6 and libgcc-s1, which depend on it.
    std::string packages = dockerfile.substr(dockerfile.find("FROM debian:12-slim"));
    packages = std::regex_replace(packages, std::regex("[\\\\\n]"), " ");
    for (const auto& entry : fs::directory_iterator(image.rootfs + "/var/lib/dpkg/status.d")) {
      const std::string pkg = entry.path().filename();
      if (pkg == "libc6" || pkg == "busybox-static" || pkg == "gcc-12-base") continue;
      EXPECT_TRUE(absl::StrContains(packages, " " + pkg + " "))
          << def["dockerfile"] << " does not install " << pkg;
    }
  }
}

TEST_F(ImagesTest, PushesWithCredentialsToATokenAuthRegistry) {
  auto registry =
      testing::RegistryServer::StartWithTokenAuth(suite->dir->path + "/token", "alice", "secret");
  ASSERT_TRUE(registry.ok()) << registry.status();
  const std::string host = (*registry)->host();
  const std::string auth_file = suite->dir->path + "/auth.json";
  // "alice:secret" in base64, as `skopeo login` / `docker login` store it.
  std::ofstream(auth_file) << "{\"auths\": {\"" << host << "\": {\"auth\": \"YWxpY2U6c2VjcmV0\"}}}";
  Result push = Shell(absl::StrCat("export REGISTRY_AUTH_FILE=", auth_file, "; ", suite->script,
                                   " --out ", suite->dir->path, "/token-out --build-dir ",
                                   suite->bin, " --only ferryctl --push ", host, "/ci/ferry"));
  ASSERT_EQ(push.code, 0) << push.output;
  Result raw =
      Shell(absl::StrCat("skopeo inspect --raw --tls-verify=false --creds alice:secret ",
                         "docker://", host, "/ci/ferry/ferryctl:", suite->tags[0], " | sha256sum"));
  ASSERT_EQ(raw.code, 0) << raw.output;
  json built = ReadJson(suite->dir->path + "/token-out/images.json");
  EXPECT_EQ("sha256:" + raw.output.substr(0, 64), built["images"][0]["digest"]);
  EXPECT_EQ(built["images"][0]["digest"], Get("ferryctl").digest);
  EXPECT_GT((*registry)->TokensIssued(), 0);
}

TEST_F(ImagesTest, PushToAnUnreachableOrRefusingRegistryFailsClearlyBeforeTagging) {
  const std::string& script = suite->script;
  const std::string out = suite->dir->path + "/bad";
  Result refused = Shell(absl::StrCat(script, " --out ", out, " --build-dir ", suite->bin,
                                      " --only ferryctl --push 127.0.0.1:1/ferry"));
  EXPECT_NE(refused.code, 0);
  EXPECT_TRUE(absl::StrContains(refused.output, "registry 127.0.0.1:1 unreachable"))
      << refused.output;

  // A registry that requires a password we do not have: HTTP 401, named, nothing pushed.
  auto locked = testing::RegistryServer::Start(suite->dir->path + "/locked", "alice", "secret");
  ASSERT_TRUE(locked.ok()) << locked.status();
  const std::string host = (*locked)->host();
  Result denied = Shell(
      absl::StrCat("export REGISTRY_AUTH_FILE=/nonexistent DOCKER_CONFIG=/nonexistent; ", script,
                   " --out ", out, " --build-dir ", suite->bin, " --push ", host, "/ferry"));
  EXPECT_NE(denied.code, 0);
  EXPECT_TRUE(absl::StrContains(denied.output, "registry " + host + " answered HTTP 401"))
      << denied.output;
  EXPECT_FALSE(absl::StrContains(denied.output, "building")) << "checked after the build";
  Result catalog = Shell("curl -sf -u alice:secret http://" + host + "/v2/_catalog");
  EXPECT_EQ(catalog.code, 0) << catalog.output;
  EXPECT_TRUE(absl::StrContains(catalog.output, "\"repositories\":[]")) << catalog.output;

  Result missing =
      Shell(absl::StrCat(script, " --out ", out, " --build-dir /nonexistent --only ferry-api"));
  EXPECT_NE(missing.code, 0);
  EXPECT_TRUE(absl::StrContains(missing.output, "is not built: run `bash scripts/build.sh build`"))
      << missing.output;
}

}  // namespace
}  // namespace ferry
