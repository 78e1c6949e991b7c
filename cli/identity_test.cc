// ferryctl identity: the deploy key's line as fluxctl printed it, and the signing key (when
// git-writer signs its commits) on a line of its own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "ferry/v1/api_mock.grpc.pb.h"

namespace ferry::cli {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::Return;
using ::testing::SetArgPointee;

class IdentityTest : public ::testing::Test {
 protected:
  int Run(const ferry::v1::Identity& identity, bool fingerprint) {
    EXPECT_CALL(stub_, GetIdentity(_, _, _))
        .WillOnce(DoAll(SetArgPointee<2>(identity), Return(grpc::Status::OK)));
    out_.str("");
    Env env{stub_, client_, out_, err_, false};
    IdentityOptions options;
    options.fingerprint = fingerprint;
    return RunIdentity(options, env);
  }

  ::testing::StrictMock<ferry::v1::MockFerryStub> stub_;
  ClientOptions client_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(IdentityTest, PrintsTheDeployKeyAloneWhenNothingIsSigned) {
  ferry::v1::Identity identity;
  identity.set_public_key("ssh-ed25519 AAAAdeploy ferry");
  identity.set_fingerprint("SHA256:deploy");
  EXPECT_EQ(Run(identity, false), kExitOk);
  EXPECT_EQ(out_.str(), "ssh-ed25519 AAAAdeploy ferry\n");
  EXPECT_EQ(Run(identity, true), kExitOk);
  EXPECT_EQ(out_.str(), "SHA256:deploy\n");
}

TEST_F(IdentityTest, PrintsTheSigningKeyAfterTheDeployKey) {
  ferry::v1::Identity identity;
  identity.set_public_key("ssh-ed25519 AAAAdeploy ferry");
  identity.set_fingerprint("SHA256:deploy");
  identity.set_signing_format("ssh");
  identity.set_signing_public_key("ssh-ed25519 AAAAsigning ferry-signing");
  identity.set_signing_fingerprint("SHA256:signing");
  EXPECT_EQ(Run(identity, false), kExitOk);
  EXPECT_EQ(out_.str(),
            "ssh-ed25519 AAAAdeploy ferry\nsigning key (ssh): ssh-ed25519 AAAAsigning "
            "ferry-signing\n");
  EXPECT_EQ(Run(identity, true), kExitOk);
  EXPECT_EQ(out_.str(), "SHA256:deploy\nsigning key (ssh): SHA256:signing\n");

  // An https repo has no deploy key: the signing key alone.
  identity.clear_public_key();
  identity.clear_fingerprint();
  EXPECT_EQ(Run(identity, true), kExitOk);
  EXPECT_EQ(out_.str(), "signing key (ssh): SHA256:signing\n");
}

}  // namespace
}  // namespace ferry::cli
