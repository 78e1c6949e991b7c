#include "services/git-writer/known_hosts.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "lib/status/status_matchers.h"

namespace ferry::git_writer {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::_;

const std::string kKeyA = std::string("\0\0\0\x0bssh-ed25519\0\0\0\x20", 19) + std::string(32, 'A');
const std::string kKeyB = std::string("\0\0\0\x0bssh-ed25519\0\0\0\x20", 19) + std::string(32, 'B');

std::string Line(const std::string& hosts, const std::string& key) {
  return hosts + " ssh-ed25519 " + absl::Base64Escape(key) + " comment\n";
}

TEST(KnownHostsTest, PlainPortWildcardAndNegation) {
  KnownHosts kh =
      KnownHosts::Parse(Line("github.com,gh.example", kKeyA) + Line("[127.0.0.1]:2222", kKeyB) +
                        Line("*.corp,!bad.corp", kKeyA) + "# comment\n\n");
  EXPECT_EQ(kh.Check("github.com", 22, kKeyA), KnownHosts::Match::kKnown);
  EXPECT_EQ(kh.Check("GH.example", 22, kKeyA), KnownHosts::Match::kKnown);
  EXPECT_EQ(kh.Check("github.com", 22, kKeyB), KnownHosts::Match::kChanged);
  EXPECT_EQ(kh.Check("127.0.0.1", 2222, kKeyB), KnownHosts::Match::kKnown);
  EXPECT_EQ(kh.Check("127.0.0.1", 22, kKeyB), KnownHosts::Match::kUnknown);
  EXPECT_EQ(kh.Check("git.corp", 22, kKeyA), KnownHosts::Match::kKnown);
  EXPECT_EQ(kh.Check("bad.corp", 22, kKeyA), KnownHosts::Match::kUnknown);
  EXPECT_EQ(kh.Check("other.org", 22, kKeyA), KnownHosts::Match::kUnknown);
}

TEST(KnownHostsTest, HashedEntriesAndRevokedKeys) {
  // ssh-keygen -H style entry for "localhost": |1|base64(salt)|base64(HMAC-SHA1(salt, name)).
  // Salt and hash below computed for "localhost" with salt "0123456789abcdef0123".
  KnownHosts kh = KnownHosts::Parse(std::string("|1|MDEyMzQ1Njc4OWFiY2RlZjAxMjM=|"
                                                "KLskC4eXqSMAh12VdEWW++RhI/Q= ssh-ed25519 ") +
                                    absl::Base64Escape(kKeyA) + "\n");
  EXPECT_EQ(kh.Check("localhost", 22, kKeyA), KnownHosts::Match::kKnown);
  EXPECT_EQ(kh.Check("localhost", 22, kKeyB), KnownHosts::Match::kChanged);
  EXPECT_EQ(kh.Check("otherhost", 22, kKeyA), KnownHosts::Match::kUnknown);
  KnownHosts revoked =
      KnownHosts::Parse("@revoked " + Line("example.org", kKeyB) + Line("example.org", kKeyA));
  EXPECT_EQ(revoked.Check("example.org", 22, kKeyA), KnownHosts::Match::kKnown);
  EXPECT_EQ(revoked.Check("example.org", 22, kKeyB), KnownHosts::Match::kChanged);
}

TEST(KnownHostsTest, MissingFileIsRefusedWithReason) {
  EXPECT_THAT(KnownHosts::Load(""), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(KnownHosts::Load("/nonexistent/known_hosts"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(SshPortTest, FromUrls) {
  EXPECT_EQ(SshPort("ssh://git@127.0.0.1:2222/srv/repo.git"), 2222);
  EXPECT_EQ(SshPort("ssh://git@github.com/org/repo.git"), 22);
  EXPECT_EQ(SshPort("git@github.com:org/repo.git"), 22);
  EXPECT_EQ(SshPort("file:///srv/repo.git"), 22);
}

}  // namespace
}  // namespace ferry::git_writer
