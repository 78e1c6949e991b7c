#include "lib/manifest/workload_id.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/manifest/resource.h"
#include "lib/manifest/workload_id_test_cases.h"
#include "lib/status/status_matchers.h"

namespace ferry::manifest {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kAdvice[] = "; use namespace:kind/name, e.g. default:deployment/helloworld";

TEST(WorkloadIdTest, ParsesTheCanonicalForm) {
  struct Case {
    std::string text;
    std::string ns, kind, name;
  };
  const std::vector<Case> cases = {
      {"default:deployment/helloworld", "default", "deployment", "helloworld"},
      {"sock-shop:statefulset/carts-db", "sock-shop", "statefulset", "carts-db"},
      {"<cluster>:namespace/team", "<cluster>", "namespace", "team"},
      {"0:job/1", "0", "job", "1"},
      {"flux:helmrelease.helm.fluxcd.io/podinfo.v-2", "flux", "helmrelease.helm.fluxcd.io",
       "podinfo.v-2"},
      {std::string(63, 'n') + ":" + std::string(63, 'k') + "/" + std::string(253, 'x'),
       std::string(63, 'n'), std::string(63, 'k'), std::string(253, 'x')},
  };
  for (const Case& c : cases) {
    FERRY_ASSERT_OK_AND_ASSIGN(WorkloadId id, WorkloadId::Parse(c.text));
    EXPECT_EQ(id.namespace_(), c.ns) << c.text;
    EXPECT_EQ(id.kind(), c.kind) << c.text;
    EXPECT_EQ(id.name(), c.name) << c.text;
    EXPECT_EQ(id.ToString(), c.text);
    EXPECT_EQ(id.cluster_scoped(), c.ns == "<cluster>") << c.text;
  }
}

TEST(WorkloadIdTest, RefusesWithOneMessageSayingWhatIsWrong) {
  const std::string long_name(254, 'x');
  struct Case {
    std::string text;
    std::string message;  // the whole message
  };
  const std::vector<Case> cases = {
      {"", "\"\" is not a workload id: it is empty"},
      {"default/web", "\"default/web\" is not a workload id: no ':' after the namespace"},
      {"default:web", "\"default:web\" is not a workload id: no '/' between the kind and the name"},
      {"default:deployment/" + long_name,
       "\"default:deployment/" + long_name + "\" is not a workload id: the name \"" + long_name +
           "\" is not a Kubernetes object name (lower-case letters, digits, '-' and '.', each "
           "part between dots starting and ending with a letter or digit, at most 253)"},
      {std::string(64, 'n') + ":deployment/web",
       absl::StrCat("\"", std::string(64, 'n'), ":deployment/web\" is not a workload id: ",
                    "the namespace \"", std::string(64, 'n'),
                    "\" is neither <cluster> nor a DNS label (lower-case letters, digits and '-', "
                    "starting and ending with a letter or digit, at most 63)")},
      {"default:" + std::string(64, 'k') + "/web",
       absl::StrCat("\"default:", std::string(64, 'k'), "/web\" is not a workload id: the kind \"",
                    std::string(64, 'k'),
                    "\" is not lower-case letters, digits, '.' and '-' (at most 63)")},
      {std::string(2000, 'a'),
       absl::StrCat("\"", std::string(64, 'a'),
                    "...\" is not a workload id: it is 2000 bytes, over the 381 an id can have")},
      {"default:deployment/\xff",
       "\"default:deployment/\\xff\" is not a workload id: the name "
       "\"\\xff\" is not a Kubernetes object name (lower-case letters, "
       "digits, '-' and '.', each part between dots starting and "
       "ending with a letter or digit, at most 253)"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(WorkloadId::Parse(c.text),
                StatusIs(absl::StatusCode::kInvalidArgument, c.message + kAdvice));
  }
  // Each part of a name between dots is a DNS label.
  for (const char* name : {"-web", "web-", ".web", "web.", "a..b", "a.-b", "WEB", "we_b", "web "}) {
    EXPECT_THAT(WorkloadId::Parse(absl::StrCat("default:deployment/", name)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the name")))
        << name;
  }
  for (const char* ns : {"-team", "team-", "te.am", "<Cluster>", "<cluster", "<cluster>x"}) {
    EXPECT_THAT(WorkloadId::Parse(absl::StrCat(ns, ":deployment/web")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the namespace")))
        << ns;
  }
}

TEST(WorkloadIdTest, LooseParseTakesWhatPeopleTypeAndHoldsItToTheSameGrammar) {
  struct Case {
    std::string text;
    std::string default_namespace;
    std::string id;  // empty: refused
  };
  const std::vector<Case> cases = {
      {"default:deployment/helloworld", "x", "default:deployment/helloworld"},
      {"sock-shop:Deployment/front-end", "x", "sock-shop:deployment/front-end"},
      {"deployment/web", "team", "team:deployment/web"},
      {"StatefulSet/db", "team", "team:statefulset/db"},
      {"<cluster>:namespace/team", "x", "<cluster>:namespace/team"},
      {"deployment/web", "", ""},
      {"deployment/web", "Team", ""},
      {":deployment/web", "team", ""},
      {"web", "team", ""},
      {"default:deployment/Web", "x", ""},  // only the kind is lower-cased
      {"default:deployment/my web", "x", ""},
      {"a:b/c/d", "x", ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<WorkloadId> id = WorkloadId::ParseLoose(c.text, c.default_namespace);
    if (c.id.empty()) {
      EXPECT_THAT(id, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(StartsWith("\"" + c.text + "\" is not a workload id: "),
                                     EndsWith(kAdvice))))
          << c.text;
    } else {
      ASSERT_THAT(id, IsOk()) << c.text;
      EXPECT_EQ(id->ToString(), c.id);
    }
  }
}

TEST(WorkloadIdTest, SharedCasesParseAsEveryCallerMustTakeThem) {
  for (const auto& c : manifest::testing::kWorkloadIdCases) {
    const std::string text(c.text);
    absl::StatusOr<WorkloadId> strict = WorkloadId::Parse(text);
    absl::StatusOr<WorkloadId> loose = WorkloadId::ParseLoose(text, "default");
    if (c.problem.empty()) {
      ASSERT_THAT(strict, IsOk());
      EXPECT_EQ(strict->ToString(), text);
    } else {
      EXPECT_THAT(strict, StatusIs(absl::StatusCode::kInvalidArgument,
                                   AllOf(HasSubstr(std::string(c.problem)), EndsWith(kAdvice))))
          << text;
    }
    if (c.loose.empty()) {
      EXPECT_THAT(loose, StatusIs(absl::StatusCode::kInvalidArgument,
                                  AllOf(HasSubstr(std::string(c.problem)), EndsWith(kAdvice))))
          << text;
    } else {
      ASSERT_THAT(loose, IsOk()) << text;
      EXPECT_EQ(loose->ToString(), c.loose);
    }
  }
}

TEST(WorkloadIdTest, ComparesAndOrdersAsItsText) {
  std::vector<std::string> texts = {
      "a:deployment/web", "a-b:deployment/web", "a:deployment/w",
      "a:deploy/web",     "a:deployment.x/web", "<cluster>:namespace/a",
      "b:deployment/web", "a:deployment/web-1", "0:job/a"};
  std::vector<WorkloadId> ids;
  for (const std::string& t : texts) {
    FERRY_ASSERT_OK_AND_ASSIGN(WorkloadId id, WorkloadId::Parse(t));
    ids.push_back(id);
  }
  std::sort(texts.begin(), texts.end());
  std::sort(ids.begin(), ids.end());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i].ToString(), texts[i]);
  EXPECT_EQ(*WorkloadId::Parse("a:deployment/web"), *WorkloadId::ParseLoose("Deployment/web", "a"));
  EXPECT_NE(*WorkloadId::Parse("a:deployment/web"), *WorkloadId::Parse("a:deployment/web-1"));
  EXPECT_LT(*WorkloadId::Parse("a-b:deployment/web"), *WorkloadId::Parse("a:deployment/web"))
      << "'-' sorts before ':', as in the text";
  std::ostringstream out;
  out << *WorkloadId::Parse("default:deployment/helloworld");
  EXPECT_EQ(out.str(), "default:deployment/helloworld");
}

TEST(WorkloadIdTest, FormatBuildsTheIdsOfObjectsAsResourceIdDoes) {
  EXPECT_EQ(WorkloadId::Format("default", "Deployment", "web"), "default:deployment/web");
  EXPECT_EQ(WorkloadId::Format("", "Namespace", "team"), "<cluster>:namespace/team");
  EXPECT_EQ(WorkloadId::Format("", "ClusterRole", "system:auth-delegator"),
            "<cluster>:clusterrole/system:auth-delegator")
      << "not checked: objects that are not workloads have names of their own";
  EXPECT_EQ(ResourceId("", "ClusterRole", "reader"),
            WorkloadId::Format("", "ClusterRole", "reader"));
  // The id of a workload as a manifest or the cluster has it parses back to its parts.
  FERRY_ASSERT_OK_AND_ASSIGN(WorkloadId id,
                             WorkloadId::Parse(WorkloadId::Format("", "Namespace", "team")));
  EXPECT_TRUE(id.cluster_scoped());
  EXPECT_EQ(id.kind(), "namespace");
  EXPECT_EQ(id.name(), "team");
}

}  // namespace
}  // namespace ferry::manifest
