// Signed commits, notes commits and sync tags (--git_signing_key_path) against real git
// repositories, checked with the git CLI the way a protected repo's users would:
// `git verify-commit` / `git verify-tag` with an allowed signers file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/status/status_matchers.h"
#include "services/git-writer/config.h"
#include "services/git-writer/git_writer_service.h"
#include "services/git-writer/identity.h"
#include "services/git-writer/libgit2_repository.h"
#ifdef FERRY_HAVE_RNP
#include "services/git-writer/openpgp_signer.h"
#endif
#include "services/git-writer/signer.h"
#include "services/git-writer/writer.h"
#include "tests/support/git_repo.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::StatusIs;
using testing::GitRepo;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;

std::string Deployment(const std::string& name, const std::string& image) {
  return absl::StrCat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ", name,
                      "\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n"
                      "      - name: ",
                      name, "\n        image: ", image, "\n");
}

// Makes a key pair without a passphrase with ssh-keygen; returns the private key's path.
std::string MakeKey(const std::string& dir, const std::string& name,
                    const std::string& type = "ed25519") {
  const std::string path = absl::StrCat(dir, "/", name);
  int status = 0;
  const std::string out = RunCommand(
      absl::StrCat("ssh-keygen -q -t ", type, " -N '' -C ", name, " -f ", path, " 2>&1"), &status);
  EXPECT_EQ(status, 0) << out;
  return path;
}

// An allowed signers file trusting the public key of `key` for every principal.
std::string AllowedSigners(const std::string& key) {
  std::ifstream in(key + ".pub");
  std::string line;
  std::getline(in, line);
  const std::string path = key + ".allowed";
  std::ofstream(path) << "* " << line << "\n";
  return path;
}

// Fails every signature while `fail` is set; forwards to a real signer otherwise.
class SwitchableSigner : public Signer {
 public:
  explicit SwitchableSigner(std::shared_ptr<Signer> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::string> Sign(absl::string_view payload) override {
    if (succeed_first >= 0 && succeed_first-- == 0) fail = true;
    if (fail) return absl::FailedPreconditionError("the key at /keys/sign does not sign");
    return inner_->Sign(payload);
  }
  const SigningKey& key() const override { return inner_->key(); }
  bool fail = false;
  // When >= 0: this many more signatures succeed, then `fail` is set.
  int succeed_first = -1;

 private:
  std::shared_ptr<Signer> inner_;
};

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_ASSERT_OK_AND_ASSIGN(
        upstream_, GitRepo::Create({{"apps/web.yaml", Deployment("web", "nginx:1.25")}}));
    key_ = MakeKey(upstream_->dir(), "signing");
    other_key_ = MakeKey(upstream_->dir(), "other");
    FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> ssh,
                               SshSigner::Create(key_, &signer_metrics_));
    signer_ = std::make_shared<SwitchableSigner>(std::move(ssh));
    Libgit2Options o;
    o.url = upstream_->url();
    o.branch = "main";
    o.mirror_dir = upstream_->dir() + "/mirror.git";
    o.tags = {"ferry-sync"};
    o.signer = signer_;
    FERRY_ASSERT_OK_AND_ASSIGN(repo_, Libgit2Repository::Open(o));
    WriterOptions options;
    options.committer = {"Ferry", "ferry@example.com"};
    writer_ = std::make_unique<Writer>(*repo_, options, metrics_);
    FERRY_ASSERT_OK(writer_->Refresh());
  }

  absl::StatusOr<ApplyOutcome> Release(const std::string& to, const std::string& note) {
    ApplyRequest req;
    EditRequest e;
    e.workload = "apps:deployment/web";
    e.image = manifest::ImageChange{"web", to, std::nullopt};
    req.edits = {e};
    req.author = Signature{"alice", "alice@example.com"};
    req.note = note;
    return writer_->Apply(req);
  }

  // Runs `git -c gpg.ssh.allowedSignersFile=<allowed> <verb> <object>` in upstream; its
  // exit status, with its output in `output`.
  int Verify(const std::string& allowed, const std::string& verb, const std::string& object,
             std::string* output = nullptr) {
    int status = 0;
    std::string out =
        RunCommand(absl::StrCat("cd ", upstream_->dir(),
                                "/upstream.git && GIT_CONFIG_NOSYSTEM=1 "
                                "HOME=/nonexistent git -c gpg.ssh.allowedSignersFile=",
                                allowed, " ", verb, " ", object, " 2>&1"),
                   &status);
    if (output != nullptr) *output = out;
    return status;
  }

  double Signatures(const std::string& outcome) {
    return signer_metrics_.signatures.Add({{"outcome", outcome}}).Value();
  }

  prometheus::Registry registry_;
  WriterMetrics metrics_{registry_};
  SignerMetrics signer_metrics_{registry_};
  std::unique_ptr<GitRepo> upstream_;
  std::string key_;
  std::string other_key_;
  std::shared_ptr<SwitchableSigner> signer_;
  std::unique_ptr<Libgit2Repository> repo_;
  std::unique_ptr<Writer> writer_;
};

TEST_F(SigningTest, CommitNoteAndSyncTagAreSignedAndVerifyWithGit) {
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, Release("nginx:1.26", "{\"id\":\"job-1\"}"));
  FERRY_ASSERT_OK(out.edits[0].status);
  ASSERT_EQ(upstream_->Head(), out.revision);
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", out.revision));

  // The content is what it would be unsigned.
  EXPECT_EQ(upstream_->Show(out.revision, "apps/web.yaml"), Deployment("web", "nginx:1.26"));
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out.revision), "{\"id\":\"job-1\"}");
  EXPECT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), out.revision + "\n");
  EXPECT_EQ(upstream_->Git("cat-file -t ferry-sync"), "tag\n");
  EXPECT_EQ(upstream_->Git("log -1 '--format=%an|%cn|%s' " + out.revision),
            "alice|Ferry|Release apps:deployment/web web: nginx:1.26\n");

  const std::string allowed = AllowedSigners(key_);
  std::string output;
  EXPECT_EQ(Verify(allowed, "verify-commit", out.revision, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("Good \"git\" signature"));
  EXPECT_EQ(Verify(allowed, "verify-commit", "refs/notes/ferry", &output), 0) << output;
  EXPECT_EQ(Verify(allowed, "verify-tag", "ferry-sync", &output), 0) << output;
  EXPECT_EQ(upstream_->Git("cat-file -p ferry-sync").find("-----BEGIN SSH SIGNATURE-----"),
            upstream_->Git("cat-file -p ferry-sync").find("Synced by Ferry\n") + 16);

  // Another key in the allowed signers file: none of them verifies.
  const std::string stranger = AllowedSigners(other_key_);
  EXPECT_NE(Verify(stranger, "verify-commit", out.revision, &output), 0) << output;
  EXPECT_NE(Verify(stranger, "verify-commit", "refs/notes/ferry", &output), 0) << output;
  EXPECT_NE(Verify(stranger, "verify-tag", "ferry-sync", &output), 0) << output;

  // The next release's note is a signed notes commit on top of the first.
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome second, Release("nginx:1.27", "{\"id\":\"job-2\"}"));
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", second.revision));
  EXPECT_EQ(upstream_->Git("rev-list --count refs/notes/ferry"), "2\n");
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out.revision), "{\"id\":\"job-1\"}");
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + second.revision), "{\"id\":\"job-2\"}");
  EXPECT_EQ(Verify(allowed, "verify-commit", second.revision, &output), 0) << output;
  EXPECT_EQ(Verify(allowed, "verify-commit", "refs/notes/ferry", &output), 0) << output;
  EXPECT_EQ(Verify(allowed, "verify-commit", "refs/notes/ferry^", &output), 0) << output;
  EXPECT_EQ(Verify(allowed, "verify-tag", "ferry-sync", &output), 0) << output;
  EXPECT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), second.revision + "\n");
  // 2 commits, 2 notes commits, 2 tags.
  EXPECT_EQ(Signatures("ok"), 6);
  EXPECT_EQ(Signatures("error"), 0);
}

// A note written to a notes tree with fanout (as git makes for many notes) keeps its fanout
// and stays readable by git.
TEST_F(SigningTest, ANoteGoesWhereTheFanoutOfTheNotesTreePutsIt) {
  const std::string head = upstream_->Head();
  // A notes tree whose entries sit in two-character folders, as git writes them past 256.
  const std::string up = upstream_->dir() + "/upstream.git";
  int failures = 0;
  auto git = [&](const std::string& command) {
    int status = 0;
    const std::string out = RunCommand(absl::StrCat("cd ", up, " && ", command), &status);
    failures += status != 0;
    return std::string(absl::StripTrailingAsciiWhitespace(out));
  };
  const std::string blob = git("echo old | git hash-object -w --stdin");
  const std::string sub =
      git(absl::StrCat("printf '100644 blob ", blob, "\\t", head.substr(2), "\\n' | git mktree"));
  const std::string root =
      git(absl::StrCat("printf '040000 tree ", sub, "\\t", head.substr(0, 2), "\\n' | git mktree"));
  const std::string notes_commit =
      git("GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e "
          "git commit-tree -m notes " +
          root);
  git("git update-ref refs/notes/ferry " + notes_commit);
  ASSERT_EQ(failures, 0);
  ASSERT_EQ(upstream_->Git("notes --ref=ferry show " + head), "old\n");
  FERRY_ASSERT_OK(writer_->Refresh());

  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, Release("nginx:1.26", "{\"id\":\"job-1\"}"));
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out.revision), "{\"id\":\"job-1\"}");
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + head), "old\n");
  EXPECT_EQ(upstream_->Git("rev-parse refs/notes/ferry^"), notes_commit + "\n");
  // The old note stays in its folder. The new note joins that folder only when its commit
  // id starts with the same two characters (one time in 256: ids hold the commit's time).
  std::string in_folder = head.substr(0, 2) + "/" + head.substr(2) + "\n";
  if (out.revision.substr(0, 2) == head.substr(0, 2)) {
    std::string mine = out.revision.substr(0, 2) + "/" + out.revision.substr(2) + "\n";
    in_folder = out.revision < head ? mine + in_folder : in_folder + mine;
  }
  EXPECT_EQ(upstream_->Git("ls-tree -r --name-only refs/notes/ferry " + head.substr(0, 2)),
            in_folder);
  std::string output;
  EXPECT_EQ(Verify(AllowedSigners(key_), "verify-commit", "refs/notes/ferry", &output), 0)
      << output;
}

// A signature that cannot be made fails that write, names the flag, and changes nothing:
// upstream, the notes ref and the tag stay where they were.
TEST_F(SigningTest, ASigningFailureFailsTheWriteAndLeavesTheRepoAsItWas) {
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome first, Release("nginx:1.26", "{\"id\":\"job-1\"}"));
  FERRY_ASSERT_OK(writer_->SetSyncMarker("ferry-sync", first.revision));
  const std::string notes = upstream_->Git("rev-parse refs/notes/ferry");

  signer_->fail = true;
  absl::StatusOr<ApplyOutcome> failed = Release("nginx:1.27", "{\"id\":\"job-2\"}");
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("cannot sign the commit (--git_signing_key_path)")));
  EXPECT_EQ(upstream_->Head(), first.revision);
  EXPECT_EQ(upstream_->Git("rev-parse refs/notes/ferry"), notes);
  // The sync tag: refused, and still on the first release.
  EXPECT_THAT(writer_->SetSyncMarker("ferry-sync", first.revision),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot sign the sync tag (--git_signing_key_path)")));
  EXPECT_EQ(upstream_->Git("rev-parse ferry-sync^{commit}"), first.revision + "\n");

  // With a key that signs again, the same release goes through, signed, on the first.
  signer_->fail = false;
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome again, Release("nginx:1.27", "{\"id\":\"job-2\"}"));
  EXPECT_EQ(upstream_->Git("rev-parse " + again.revision + "^"), first.revision + "\n");
  EXPECT_EQ(Verify(AllowedSigners(key_), "verify-commit", again.revision), 0);
}

// A note whose notes commit cannot be signed is not stored (the release itself is, signed);
// the notes ref stays where it was, here and upstream.
TEST_F(SigningTest, ANoteThatCannotBeSignedIsNotStored) {
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome first, Release("nginx:1.26", "{\"id\":\"job-1\"}"));
  const std::string notes = upstream_->Git("rev-parse refs/notes/ferry");
  signer_->succeed_first = 1;  // the commit, not its note
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome second, Release("nginx:1.27", "{\"id\":\"job-2\"}"));
  EXPECT_EQ(upstream_->Head(), second.revision);
  EXPECT_EQ(Verify(AllowedSigners(key_), "verify-commit", second.revision), 0);
  EXPECT_EQ(upstream_->Git("rev-parse refs/notes/ferry"), notes);
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + second.revision), "");
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + first.revision), "{\"id\":\"job-1\"}");
  FERRY_ASSERT_OK_AND_ASSIGN(auto listed, writer_->ListNotes(10));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].first, first.revision);
}

// The deploy key (made by git-writer at start when missing) can be the signing key too.
TEST_F(SigningTest, TheDeployKeyCanBeTheSigningKey) {
  const std::string deploy = upstream_->dir() + "/keys/identity";
  FERRY_ASSERT_OK(EnsureDeployKey(deploy));
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> signer, SshSigner::Create(deploy));
  FERRY_ASSERT_OK_AND_ASSIGN(DeployKey key, ReadDeployKey(deploy));
  EXPECT_EQ(signer->key().fingerprint, key.fingerprint);
  EXPECT_TRUE(absl::StartsWith(key.public_key, signer->key().public_key.substr(0, 40)));
  EXPECT_EQ(signer->key().format, "ssh");

  // GetIdentity reports both keys.
  ServiceOptions options;
  options.ssh_key_path = deploy;
  options.signing_key = signer->key();
  GitWriterService service(*writer_, options);
  ferry::v1::Identity identity;
  grpc::ServerContext ctx;
  ASSERT_TRUE(service.GetIdentity(&ctx, nullptr, &identity).ok());
  EXPECT_EQ(identity.public_key(), key.public_key);
  EXPECT_EQ(identity.signing_format(), "ssh");
  EXPECT_EQ(identity.signing_fingerprint(), key.fingerprint);
  EXPECT_TRUE(absl::StartsWith(identity.signing_public_key(), "ssh-ed25519 AAAA"));

  // Signed with the deploy key, a commit verifies against the deploy key's public half.
  Libgit2Options o;
  o.url = upstream_->url();
  o.mirror_dir = upstream_->dir() + "/mirror2.git";
  o.signer = std::move(signer);
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, Libgit2Repository::Open(o));
  WriterOptions wo;
  wo.committer = {"Ferry", "ferry@example.com"};
  Writer writer(*repo, wo, metrics_);
  FERRY_ASSERT_OK(writer.Refresh());
  writer_ = nullptr;  // this test's writer only
  ApplyRequest req;
  EditRequest e;
  e.workload = "apps:deployment/web";
  e.image = manifest::ImageChange{"web", "nginx:1.30", std::nullopt};
  req.edits = {e};
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer.Apply(req));
  EXPECT_EQ(Verify(AllowedSigners(deploy), "verify-commit", out.revision), 0);
  EXPECT_NE(Verify(AllowedSigners(key_), "verify-commit", out.revision), 0);
}

TEST(SshSignerTest, RsaKeysSignToo) {
  const std::string dir = ::testing::TempDir() + "/ferry_signer_rsa";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string key = MakeKey(dir, "rsa", "rsa -b 3072");
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> signer, SshSigner::Create(key));
  EXPECT_TRUE(absl::StartsWith(signer->key().public_key, "ssh-rsa "));
  FERRY_ASSERT_OK_AND_ASSIGN(std::string signature, signer->Sign("payload\n"));
  EXPECT_TRUE(absl::StartsWith(signature, "-----BEGIN SSH SIGNATURE-----\n"));
  EXPECT_TRUE(absl::EndsWith(signature, "-----END SSH SIGNATURE-----\n"));
  // ssh-keygen checks it as git would (namespace "git").
  std::ofstream(dir + "/payload") << "payload\n";
  std::ofstream(dir + "/payload.sig") << signature;
  std::ofstream(dir + "/allowed") << "ferry " << signer->key().public_key << "\n";
  int status = 0;
  const std::string out =
      RunCommand(absl::StrCat("ssh-keygen -Y verify -f ", dir, "/allowed -I ferry -n git -s ", dir,
                              "/payload.sig < ", dir, "/payload 2>&1"),
                 &status);
  EXPECT_EQ(status, 0) << out;
  std::filesystem::remove_all(dir);
}

// A key that went away after the start: the signature fails with the file named (never its
// content) and is counted as an error.
TEST(SshSignerTest, AKeyRemovedAfterTheStartFailsAndIsCounted) {
  const std::string dir = ::testing::TempDir() + "/ferry_signer_removed";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string key = MakeKey(dir, "gone");
  prometheus::Registry registry;
  SignerMetrics metrics(registry);
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> signer, SshSigner::Create(key, &metrics));
  FERRY_ASSERT_OK(signer->Sign("one\n"));
  std::filesystem::remove(key);
  std::filesystem::remove(key + ".pub");
  EXPECT_THAT(signer->Sign("two\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(key)));
  EXPECT_EQ(metrics.signatures.Add({{"outcome", "ok"}}).Value(), 1);
  EXPECT_EQ(metrics.signatures.Add({{"outcome", "error"}}).Value(), 1);
  std::filesystem::remove_all(dir);
}

// --git_signing_key_path is checked at start: what cannot sign stops the binary (exit 2)
// with a message naming the flag, never the key's content.
class SigningConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-signing-config-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  absl::StatusOr<std::shared_ptr<Signer>> Make(std::vector<std::string> args) {
    CLI::App app("ferry-git-writer");
    Flags flags;
    AddFlags(app, flags);
    args.insert(args.begin(), {"--git_url=file:///srv/config.git", "--state_dir=/tmp/x"});
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
    absl::StatusOr<Config> config = ToConfig(flags);
    if (!config.ok()) return config.status();
    return MakeSigner(*config, nullptr);
  }

  std::string dir_;
};

TEST_F(SigningConfigTest, NoFlagNoSigner) {
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Signer> signer, Make({}));
  EXPECT_EQ(signer, nullptr);
}

TEST_F(SigningConfigTest, AKeyThatCannotSignIsRefusedNamingTheFlag) {
  const std::string key = MakeKey(dir_, "sign");
  FERRY_ASSERT_OK_AND_ASSIGN(std::shared_ptr<Signer> signer,
                             Make({"--git_signing_key_path=" + key}));
  ASSERT_NE(signer, nullptr);
  EXPECT_TRUE(absl::StartsWith(signer->key().public_key, "ssh-ed25519 "));

  std::ifstream in(key);
  const std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string encrypted = MakeKey(dir_, "locked");
  int status = 0;
  RunCommand(absl::StrCat("ssh-keygen -q -p -N secret -P '' -f ", encrypted), &status);
  ASSERT_EQ(status, 0);
  const std::string open_to_all = dir_ + "/open";
  std::filesystem::copy_file(key, open_to_all);
  ::chmod(open_to_all.c_str(), 0644);
  for (const std::string& path : {dir_ + "/missing", key + ".pub", encrypted, open_to_all, dir_}) {
    absl::StatusOr<std::shared_ptr<Signer>> refused = Make({"--git_signing_key_path=" + path});
    EXPECT_THAT(refused,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--git_signing_key_path")))
        << path;
    EXPECT_THAT(refused.status().message(), Not(HasSubstr(secret.substr(40, 40)))) << path;
  }
}

TEST_F(SigningConfigTest, OnlySshAndOpenPgpFormatsAreAccepted) {
#ifdef FERRY_HAVE_RNP
  // An SSH key is no OpenPGP key.
  const std::string key = MakeKey(dir_, "sign");
  EXPECT_THAT(Make({"--git_signing_format=openpgp", "--git_signing_key_path=" + key}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--git_signing_key_path: " + key + " is not an OpenPGP key")));
#else
  EXPECT_THAT(Make({"--git_signing_format=openpgp"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--git_signing_format=openpgp is not supported by this build")));
#endif
  EXPECT_THAT(Make({"--git_signing_format=x509"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--git_signing_format")));
}

TEST_F(SigningConfigTest, TheBinaryExitsWithTwoNamingTheFlag) {
  int status = 0;
  const std::string out = RunCommand(
      absl::StrCat(FERRY_GIT_WRITER_BIN,
                   " --grpc_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 --git_url=file://",
                   dir_, "/none.git --state_dir=", dir_, "/state --git_signing_key_path=", dir_,
                   "/missing 2>&1"),
      &status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_THAT(out, HasSubstr("--git_signing_key_path"));
  EXPECT_THAT(out, HasSubstr("no key file at " + dir_ + "/missing"));
}

#ifdef FERRY_HAVE_RNP
// A gpg home holding one ed25519 signing key, and that secret key exported without a
// passphrase (what --git_signing_key_path takes); removed with its gpg-agent.
class GpgHome {
 public:
  GpgHome(const std::string& dir, const std::string& name) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    int status = 0;
    const std::string gpg =
        absl::StrCat("GNUPGHOME=", dir_, " gpg --batch --pinentry-mode loopback --passphrase '' ");
    std::string out = RunCommand(absl::StrCat(gpg, "--quick-gen-key '", name, " <", name,
                                              "@example.com>' ed25519 sign never 2>&1"),
                                 &status);
    EXPECT_EQ(status, 0) << out;
    out = RunCommand(absl::StrCat(gpg, "--armor --export-secret-keys > ", dir_, "/secret.asc 2>&1"),
                     &status);
    EXPECT_EQ(status, 0) << out;
    std::filesystem::permissions(
        secret_key(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    fingerprint_ = std::string(absl::StripTrailingAsciiWhitespace(
        RunCommand(absl::StrCat("GNUPGHOME=", dir_,
                                " gpg --batch --with-colons --list-secret-keys | grep '^fpr' | "
                                "head -1 | cut -d: -f10"))));
  }
  ~GpgHome() { RunCommand(absl::StrCat("GNUPGHOME=", dir_, " gpgconf --kill gpg-agent")); }
  const std::string& dir() const { return dir_; }
  std::string secret_key() const { return dir_ + "/secret.asc"; }
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  std::string dir_;
  std::string fingerprint_;
};

// A secret key file its group or others may read is refused, as ssh-keygen refuses one;
// so is a file over 1 MiB.
TEST(OpenPgpSignerTest, AKeyFileOthersMayReadIsRefused) {
  // A folder of this run's own: gpg-agent removes its sockets when it exits, which made a
  // remove_all of a shared folder fail now and then.
  std::string dir = ::testing::TempDir() + "/ferry_openpgp_mode_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  {
    GpgHome home(dir + "/gpg", "ferry");  // its agent stopped before the folder goes
    FERRY_ASSERT_OK(OpenPgpSigner::Create(home.secret_key()));
    for (mode_t mode : {0640, 0604, 0644}) {
      ::chmod(home.secret_key().c_str(), mode);
      EXPECT_THAT(OpenPgpSigner::Create(home.secret_key()),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read by others")))
          << std::oct << mode;
    }
    const std::string big = dir + "/big.asc";
    std::ofstream(big) << std::string((1 << 20) + 1, 'a');
    ::chmod(big.c_str(), 0600);
    EXPECT_THAT(OpenPgpSigner::Create(big),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("over")));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// --git_signing_format=openpgp: commits, notes commits and the sync tag signed with librnp,
// checked by `git verify-commit` / `verify-tag` with gpg's keyring.
TEST_F(SigningTest, OpenPgpSignaturesVerifyWithGitAndGpg) {
  GpgHome ours(upstream_->dir() + "/gpg-ours", "ferry");
  GpgHome theirs(upstream_->dir() + "/gpg-theirs", "stranger");
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<OpenPgpSigner> pgp,
                             OpenPgpSigner::Create(ours.secret_key(), &signer_metrics_));
  EXPECT_EQ(pgp->key().format, "openpgp");
  EXPECT_EQ(pgp->key().fingerprint, ours.fingerprint());
  EXPECT_TRUE(absl::StartsWith(pgp->key().public_key, "-----BEGIN PGP PUBLIC KEY BLOCK-----"))
      << pgp->key().public_key;
  EXPECT_FALSE(absl::StrContains(pgp->key().public_key, "PRIVATE"));

  Libgit2Options o;
  o.url = upstream_->url();
  o.mirror_dir = upstream_->dir() + "/mirror-pgp.git";
  o.tags = {"ferry-sync"};
  o.signer = std::move(pgp);
  FERRY_ASSERT_OK_AND_ASSIGN(auto repo, Libgit2Repository::Open(o));
  WriterOptions wo;
  wo.committer = {"Ferry", "ferry@example.com"};
  Writer writer(*repo, wo, metrics_);
  FERRY_ASSERT_OK(writer.Refresh());
  ApplyRequest req;
  EditRequest e;
  e.workload = "apps:deployment/web";
  e.image = manifest::ImageChange{"web", "nginx:1.40", std::nullopt};
  req.edits = {e};
  req.note = "{\"id\":\"job-pgp\"}";
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, writer.Apply(req));
  FERRY_ASSERT_OK(writer.SetSyncMarker("ferry-sync", out.revision));
  EXPECT_EQ(upstream_->Git("notes --ref=ferry show " + out.revision), "{\"id\":\"job-pgp\"}");

  auto verify = [&](const GpgHome& home, const std::string& verb, const std::string& object) {
    int status = 0;
    const std::string output =
        RunCommand(absl::StrCat("cd ", upstream_->dir(),
                                "/upstream.git && GIT_CONFIG_NOSYSTEM=1 GNUPGHOME=", home.dir(),
                                " git ", verb, " ", object, " 2>&1"),
                   &status);
    return std::make_pair(status, output);
  };
  for (const auto& [verb, object] :
       {std::pair<std::string, std::string>{"verify-commit", out.revision},
        {"verify-commit", "refs/notes/ferry"},
        {"verify-tag", "ferry-sync"}}) {
    auto [good, output] = verify(ours, verb, object);
    EXPECT_EQ(good, 0) << verb << " " << object << ": " << output;
    EXPECT_THAT(output, HasSubstr("Good signature")) << verb << " " << object;
    auto [bad, rejected] = verify(theirs, verb, object);
    EXPECT_NE(bad, 0) << verb << " " << object << ": " << rejected;
  }
}
#endif

// --git_verify_signatures: only revisions signed by an allowed key are served and built on.
class VerifiedReadsTest : public SigningTest {
 protected:
  // Commits a change to apps/web.yaml upstream with the git CLI, signed with `key` (SSH,
  // as `git commit -S` with gpg.format=ssh does) or unsigned when it is empty.
  std::string CommitWithCli(const std::string& image, const std::string& key) {
    const std::string work = absl::StrCat(upstream_->dir(), "/work", ++scratch_);
    std::ofstream(upstream_->dir() + "/web.yaml") << Deployment("web", image);
    const std::string sign =
        key.empty() ? "" : absl::StrCat(" -c gpg.format=ssh -c user.signingkey=", key, " ");
    int status = 0;
    const std::string out = RunCommand(absl::StrCat(
        "export GIT_AUTHOR_NAME=Bob GIT_AUTHOR_EMAIL=bob@example.com GIT_COMMITTER_NAME=Bob "
        "GIT_COMMITTER_EMAIL=bob@example.com GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent; ",
        "git clone -q ", upstream_->url(), " ", work, " && cp ", upstream_->dir(), "/web.yaml ",
        work, "/apps/web.yaml && cd ", work, " && git", sign, " commit -q ",
        key.empty() ? "" : "-S ", "-am 'Bump web' && git push -q origin main 2>&1"));
    EXPECT_EQ(upstream_->Git("log -1 --format=%s main"), "Bump web\n") << out;
    (void)status;
    return upstream_->Head();
  }

  // Trusts `allowed` (the signing key key_ when empty).
  void OpenVerifyingWriter(const std::string& allowed = "") {
    FERRY_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<SshVerifier> verifier,
        SshVerifier::Create(AllowedSigners(allowed.empty() ? key_ : allowed)));
    WriterOptions options;
    options.committer = {"Ferry", "ferry@example.com"};
    options.verifier = std::move(verifier);
    writer_ = std::make_unique<Writer>(*repo_, options, metrics_);
  }

  double Checks(const std::string& outcome) {
    return metrics_.signature_checks.Add({{"outcome", outcome}}).Value();
  }

  int scratch_ = 0;
};

TEST_F(VerifiedReadsTest, OnlySignedRevisionsOfAllowedKeysAreServed) {
  OpenVerifyingWriter();
  // Upstream's first commit is unsigned: nothing is served yet.
  const std::string unsigned_first = upstream_->Head();
  EXPECT_THAT(writer_->Refresh(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not signed")));
  EXPECT_EQ(writer_->CurrentHead().revision, "");
  EXPECT_THAT(writer_->CurrentHead().verify_error, HasSubstr(unsigned_first.substr(0, 12)));
  EXPECT_THAT(writer_->IndexAt(""), StatusIs(absl::StatusCode::kFailedPrecondition,
                                             HasSubstr("no verified revision yet")));
  EXPECT_EQ(metrics_.head_verified.Value(), 0);

  // A commit signed with an allowed key (by the git CLI) is served.
  const std::string good = CommitWithCli("nginx:1.30", key_);
  FERRY_ASSERT_OK(writer_->Refresh());
  EXPECT_EQ(writer_->CurrentHead().revision, good);
  EXPECT_EQ(writer_->CurrentHead().verify_error, "");
  EXPECT_EQ(metrics_.head_verified.Value(), 1);
  FERRY_ASSERT_OK_AND_ASSIGN(auto index, writer_->IndexAt(""));
  EXPECT_EQ(index->revision, good);

  // An unsigned head, then one signed by another key: the good revision stays served, the
  // reason is reported, reads of those revisions and writes are refused.
  const std::string unsigned_head = CommitWithCli("nginx:1.31", "");
  EXPECT_THAT(writer_->Refresh(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not signed")));
  EXPECT_EQ(writer_->CurrentHead().revision, good);
  EXPECT_THAT(writer_->CurrentHead().verify_error, HasSubstr(unsigned_head.substr(0, 12)));
  EXPECT_EQ(metrics_.head_verified.Value(), 0);
  FERRY_ASSERT_OK_AND_ASSIGN(index, writer_->IndexAt(""));
  EXPECT_EQ(index->revision, good);
  EXPECT_THAT(writer_->IndexAt(unsigned_head), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(writer_->ReadManifests(unsigned_head, {"apps"}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Release("nginx:1.40", ""), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(upstream_->Head(), unsigned_head);

  const std::string stranger = CommitWithCli("nginx:1.32", other_key_);
  EXPECT_THAT(writer_->Refresh(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("not in the allowed signers file")));
  EXPECT_EQ(writer_->CurrentHead().revision, good);
  EXPECT_THAT(writer_->CurrentHead().verify_error, HasSubstr(stranger.substr(0, 12)));

  // Signed again by an allowed key: served, and Ferry's own signed commit (its key is in the
  // allowed signers) becomes the head.
  const std::string fixed = CommitWithCli("nginx:1.33", key_);
  FERRY_ASSERT_OK(writer_->Refresh());
  EXPECT_EQ(writer_->CurrentHead().revision, fixed);
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, Release("nginx:1.34", ""));
  EXPECT_EQ(writer_->CurrentHead().revision, out.revision);
  EXPECT_EQ(writer_->CurrentHead().verify_error, "");
  EXPECT_EQ(metrics_.head_verified.Value(), 1);
  EXPECT_GE(Checks("verified"), 3);
  EXPECT_GE(Checks("rejected"), 3);
  EXPECT_EQ(Checks("error"), 0);
}

TEST_F(VerifiedReadsTest, ARejectedHeadIsCheckedOnceAcrossPolls) {
  OpenVerifyingWriter();
  const std::string stranger = CommitWithCli("nginx:1.32", other_key_);
  for (int poll = 0; poll < 4; ++poll) {
    EXPECT_THAT(writer_->Refresh(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                             HasSubstr("not in the allowed signers file")));
  }
  EXPECT_THAT(writer_->IndexAt(stranger), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Checks("rejected"), 1);
  EXPECT_EQ(Checks("verified"), 0);
  // A new head is checked (once).
  const std::string good = CommitWithCli("nginx:1.33", key_);
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK(writer_->Refresh());
  EXPECT_EQ(writer_->CurrentHead().revision, good);
  EXPECT_EQ(Checks("verified"), 1);
  EXPECT_EQ(Checks("rejected"), 1);
}

// A signed payload over 1 MiB is not handed to ssh-keygen.
TEST(SshVerifierTest, AnOversizedPayloadIsRefused) {
  const std::string dir = ::testing::TempDir() + "/ferry_verifier_big";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string key = MakeKey(dir, "sign");
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshSigner> signer, SshSigner::Create(key));
  FERRY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SshVerifier> verifier,
                             SshVerifier::Create(AllowedSigners(key)));
  const std::string small = "tree abc\n\nsmall\n";
  FERRY_ASSERT_OK_AND_ASSIGN(std::string signature, signer->Sign(small));
  FERRY_EXPECT_OK(verifier->Verify(small, signature));
  const std::string big((1 << 20) + 1, 'a');
  FERRY_ASSERT_OK_AND_ASSIGN(std::string big_signature, signer->Sign(big));
  EXPECT_THAT(verifier->Verify(big, big_signature),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("over")));
  std::filesystem::remove_all(dir);
}

TEST_F(VerifiedReadsTest, FerrysCommitSignedByAKeyNotAllowedIsNotServedEvenFromTheCache) {
  OpenVerifyingWriter(other_key_);  // Ferry signs with key_, which is not allowed
  const std::string good = CommitWithCli("nginx:1.30", other_key_);
  FERRY_ASSERT_OK(writer_->Refresh());
  FERRY_ASSERT_OK_AND_ASSIGN(ApplyOutcome out, Release("nginx:1.34", ""));
  EXPECT_EQ(upstream_->Head(), out.revision);  // pushed, but not served
  EXPECT_EQ(writer_->CurrentHead().revision, good);
  EXPECT_THAT(writer_->CurrentHead().verify_error, HasSubstr("is not served"));
  EXPECT_THAT(writer_->IndexAt(out.revision),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not served")));
  EXPECT_THAT(writer_->ReadManifests(out.revision, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  FERRY_ASSERT_OK_AND_ASSIGN(auto index, writer_->IndexAt(""));
  EXPECT_EQ(index->revision, good);
}

TEST_F(SigningConfigTest, FerrysKeyMustBeAnAllowedSignerWhenVerifying) {
  const std::string key = MakeKey(dir_, "sign");
  const std::string other = MakeKey(dir_, "other");
  FERRY_ASSERT_OK(Make({"--git_signing_key_path=" + key, "--git_verify_signatures",
                        "--git_allowed_signers_path=" + AllowedSigners(key)}));
  EXPECT_THAT(Make({"--git_signing_key_path=" + key, "--git_verify_signatures",
                    "--git_allowed_signers_path=" + AllowedSigners(other)}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--git_allowed_signers_path does not allow")));
#ifdef FERRY_HAVE_RNP
  EXPECT_THAT(
      Make({"--git_signing_key_path=" + key, "--git_signing_format=openpgp",
            "--git_verify_signatures", "--git_allowed_signers_path=" + AllowedSigners(key)}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--git_signing_format=openpgp cannot be used with "
                         "--git_verify_signatures")));
#endif

  // The binary exits with 2 naming the flag.
  int status = 0;
  const std::string out = RunCommand(
      absl::StrCat(FERRY_GIT_WRITER_BIN,
                   " --grpc_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 --git_url=file://",
                   dir_, "/none.git --state_dir=", dir_, "/state --git_signing_key_path=", key,
                   " --git_verify_signatures --git_allowed_signers_path=", other, ".allowed 2>&1"),
      &status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_THAT(out, HasSubstr("--git_allowed_signers_path"));
}

TEST_F(SigningConfigTest, VerifyingNeedsAnAllowedSignersFile) {
  EXPECT_THAT(Make({"--git_verify_signatures"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--git_allowed_signers_path: required")));
  EXPECT_THAT(
      Make({"--git_verify_signatures", "--git_allowed_signers_path=" + dir_ + "/none"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--git_allowed_signers_path")));
  EXPECT_THAT(Make({"--git_allowed_signers_path=" + dir_ + "/none"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("only used with --git_verify_signatures")));
  std::ofstream(dir_ + "/allowed") << "* ssh-ed25519 AAAA\n";
  FERRY_ASSERT_OK(
      Make({"--git_verify_signatures", "--git_allowed_signers_path=" + dir_ + "/allowed"}));
}

}  // namespace
}  // namespace ferry::git_writer
