#include "lib/http/url.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry::http {
namespace {

TEST(UrlEncode, KeepsUnreservedCharactersAndEncodesEveryOtherByte) {
  EXPECT_EQ(UrlEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(UrlEncode(""), "");
  // A continue token (base64), a selector, and what would add or end a parameter.
  EXPECT_EQ(UrlEncode("eyJ2Ijo+/x=="), "eyJ2Ijo%2B%2Fx%3D%3D");
  EXPECT_EQ(UrlEncode("app.kubernetes.io/managed-by=ferry,a!=b"),
            "app.kubernetes.io%2Fmanaged-by%3Dferry%2Ca%21%3Db");
  EXPECT_EQ(UrlEncode("x&limit=1#frag?q"), "x%26limit%3D1%23frag%3Fq");
  EXPECT_EQ(UrlEncode(std::string("a\0b\n \x7f\xff", 7)), "a%00b%0A%20%7F%FF");
}

}  // namespace
}  // namespace ferry::http
