#include "lib/process/process.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/status/status_matchers.h"

namespace ferry::process {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr char kPath[] = "PATH=/usr/bin:/bin";

RunOptions Shell(const std::string& script) {
  RunOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.env = {kPath};
  return options;
}

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/ferry_process_XXXXXX";
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  char resolved[PATH_MAX];
  EXPECT_NE(::realpath(pattern.c_str(), resolved), nullptr);
  return resolved;
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(RunTest, ReturnsExitCodeAndBothOutputs) {
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result,
                             process::Run(Shell("printf hello; printf oops >&2; exit 3")));
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.out, "hello");
  EXPECT_EQ(result.err, "oops");
}

TEST(RunTest, ReportsTheSignalThatEndedTheChild) {
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(Shell("kill -TERM $$")));
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_EQ(result.signal, SIGTERM);
}

TEST(RunTest, StdinIsDevNull) {
  RunOptions options;
  options.argv = {"/bin/cat"};
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "");
}

TEST(RunTest, InputIsTheChildsStdin) {
  RunOptions options = Shell("cat; echo done >&2");
  options.input = "line one\nline two\n";
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "line one\nline two\n");
  EXPECT_EQ(result.err, "done\n");
}

// Input bigger than any pipe or socket buffer, echoed back while it is written: neither side
// waits on the other.
TEST(RunTest, LargeInputIsWrittenWhileTheOutputIsRead) {
  std::string input;
  for (int i = 0; input.size() < (4 << 20); ++i) input += "line " + std::to_string(i) + "\n";
  RunOptions options = Shell("cat");
  options.input = input;
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out.size(), input.size());
  EXPECT_TRUE(result.out == input);
}

// A child that never reads its stdin exits normally; the unread input is no error (and no
// SIGPIPE ends the caller).
TEST(RunTest, AChildThatDoesNotReadItsInputIsNoError) {
  RunOptions options = Shell("exec 0<&-; echo ok");
  options.input = std::string(1 << 20, 'x');
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "ok\n");
}

// The child fills stderr before writing stdout: reading one pipe at a time would deadlock.
TEST(RunTest, ReadsLargeOutputOnBothPipesAndKeepsTheStartOfStderr) {
  RunOptions options = Shell(
      "printf start >&2; head -c 2000000 /dev/zero >&2; head -c 3000000 /dev/zero; "
      "head -c 2000000 /dev/zero >&2");
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.out, SizeIs(3000000));
  EXPECT_THAT(result.err, SizeIs(options.max_stderr_bytes));
  EXPECT_EQ(result.err.substr(0, 5), "start");
}

TEST(RunTest, TruncatesStderrAtItsLimit) {
  RunOptions options = Shell("printf 0123456789abcdef >&2; printf done");
  options.max_stderr_bytes = 10;
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.err, "0123456789");
  EXPECT_EQ(result.out, "done");
}

TEST(RunTest, StdoutOverTheLimitKillsTheChild) {
  RunOptions options;
  options.argv = {"/bin/cat", "/dev/zero"};  // never ends on its own
  options.max_stdout_bytes = 100000;
  EXPECT_THAT(process::Run(options),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("more than 100000 bytes")));
}

TEST(RunTest, TheEnvironmentIsExactlyTheOneGiven) {
  RunOptions options;
  options.argv = {"/usr/bin/env"};
  options.env = {"A=1", "B=two words"};
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.out, "A=1\nB=two words\n");

  options.env.clear();
  FERRY_ASSERT_OK_AND_ASSIGN(result, process::Run(options));
  EXPECT_EQ(result.out, "");
}

TEST(RunTest, RunsInTheWorkingDirectory) {
  const std::string dir = MakeTempDir();
  RunOptions options;
  options.argv = {"/bin/pwd", "-P"};
  options.working_dir = dir;
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.out, dir + "\n");
}

TEST(RunTest, TimeoutKillsTheChild) {
  RunOptions options;
  options.argv = {"/bin/sleep", "30"};
  options.timeout = absl::Milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(process::Run(options), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                              HasSubstr("/bin/sleep did not finish within 200ms")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// `script` run with a cancel flag that a thread sets once the script has created the file
// "started" in a scratch directory (given to the script as $1); Run's result.
absl::StatusOr<RunResult> RunCancelledOnceStarted(const std::string& script) {
  const std::string dir = MakeTempDir();
  RunOptions options = Shell(script);
  options.argv.push_back("sh");
  options.argv.push_back(dir);
  std::atomic<bool> cancel{false};
  options.cancel = &cancel;
  std::thread canceller([&] {
    // The script's start, waited for (30 s at most on a loaded machine).
    for (int i = 0; i < 3000 && ::access((dir + "/started").c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    cancel = true;
  });
  absl::StatusOr<RunResult> result = process::Run(options);
  canceller.join();
  EXPECT_EQ(::access((dir + "/finished").c_str(), F_OK), -1) << "the script ran to its end";
  return result;
}

// Cancelled while its output is read, and while it runs after closing its output: the child
// is killed either way, long before its end (the script would write "finished" after 30 s).
TEST(RunTest, CancelKillsTheChild) {
  EXPECT_THAT(RunCancelledOnceStarted("touch \"$1/started\"; sleep 30; touch \"$1/finished\""),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("/bin/sh was cancelled")));
  EXPECT_THAT(RunCancelledOnceStarted(
                  "exec >&- 2>&-; touch \"$1/started\"; sleep 30; touch \"$1/finished\""),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("/bin/sh was cancelled")));
}

// A process the child started is in its group and dies with it. This test process becomes
// the subreaper of the orphaned `sleep`, so it can wait for that very pid to end; when the
// `sleep` died first, the shell may have reaped it before dying itself.
TEST(RunTest, TimeoutKillsWhatTheChildStarted) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const std::string pid_file = MakeTempDir() + "/pid";
  RunOptions options = Shell("sleep 30 & echo $! > " + pid_file + "; sleep 30");
  // Time enough for the shell to start its background sleep on a loaded machine.
  options.timeout = absl::Seconds(5);
  EXPECT_THAT(process::Run(options), StatusIs(absl::StatusCode::kDeadlineExceeded));

  const pid_t grandchild = std::atoi(ReadFile(pid_file).c_str());
  ASSERT_GT(grandchild, 0) << "the shell did not start its background sleep within 5s";
  int status = 0;
  // Run reaped the shell, so the `sleep` is either this process's child now (waitpid returns
  // once it ended) or was reaped by the shell (ECHILD: it had ended).
  if (::waitpid(grandchild, &status, 0) == grandchild) {
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
  } else {
    EXPECT_EQ(errno, ECHILD);
  }
  EXPECT_EQ(::kill(grandchild, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {  // other orphans of the shell
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

// A child that left its process group (joined this test's) is still ended and reaped.
TEST(RunTest, TimeoutKillsAChildThatLeftItsGroup) {
  if (FindOnPath("python3", "/usr/bin:/bin").empty()) GTEST_SKIP() << "no python3";
  RunOptions options;
  options.argv = {"python3", "-c",
                  "import os; os.setpgid(0, os.getpgid(os.getppid())); "
                  "os.execv('/bin/sleep', ['sleep', '30'])"};
  options.env = {kPath};
  options.timeout = absl::Milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(process::Run(options), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RunTest, MissingProgramIsNotFound) {
  RunOptions options;
  options.argv = {"ferry-no-such-program"};
  options.env = {kPath};
  EXPECT_THAT(process::Run(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("ferry-no-such-program")));

  options.argv = {"/nonexistent/ferry-tool"};
  EXPECT_THAT(process::Run(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/ferry-tool")));
}

TEST(RunTest, NonExecutableFileIsNotFound) {
  const std::string file = MakeTempDir() + "/data";
  WriteFile(file, "#!/bin/sh\necho ran\n", 0644);
  RunOptions options;
  options.argv = {file};
  EXPECT_THAT(process::Run(options), StatusIs(absl::StatusCode::kNotFound, HasSubstr(file)));
}

TEST(RunTest, SearchesThePathOfTheGivenEnvironment) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/ferry-tool", "#!/bin/sh\necho \"ran $1\"\n", 0755);
  RunOptions options;
  options.argv = {"ferry-tool", "here"};
  options.env = {"PATH=/nonexistent:" + dir};
  FERRY_ASSERT_OK_AND_ASSIGN(RunResult result, process::Run(options));
  EXPECT_EQ(result.out, "ran here\n");
}

TEST(RunTest, RejectsEmptyArgvAndMalformedEnvironment) {
  EXPECT_THAT(process::Run(RunOptions{}), StatusIs(absl::StatusCode::kInvalidArgument));
  RunOptions options;
  options.argv = {"/bin/true"};
  options.env = {"NOEQUALS"};
  EXPECT_THAT(process::Run(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NOEQUALS")));
  options.env.clear();
  options.working_dir = "/nonexistent/ferry";
  EXPECT_THAT(process::Run(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/nonexistent/ferry")));
}

TEST(FindOnPathTest, FindsTheFirstExecutableRegularFile) {
  const std::string first = MakeTempDir();
  const std::string second = MakeTempDir();
  ASSERT_EQ(::mkdir((first + "/folder").c_str(), 0755), 0);
  for (const std::string& dir : {first, second}) {
    WriteFile(dir + "/tool", "#!/bin/sh\n", 0755);
    WriteFile(dir + "/data", "x", 0644);
  }
  WriteFile(second + "/folder", "#!/bin/sh\n", 0755);
  const std::string path = "/nonexistent:" + first + ":" + second;

  EXPECT_EQ(FindOnPath("tool", path), first + "/tool");
  EXPECT_EQ(FindOnPath("folder", path), second + "/folder");  // skips the directory
  EXPECT_EQ(FindOnPath("data", path), "");                    // never executable
  EXPECT_EQ(FindOnPath("missing", path), "");
  EXPECT_EQ(FindOnPath("sh", "/bin"), "/bin/sh");
  EXPECT_EQ(FindOnPath("/bin/sh", ""), "/bin/sh");
  EXPECT_EQ(FindOnPath(first + "/data", path), "");
  EXPECT_EQ(FindOnPath("", path), "");
}

}  // namespace
}  // namespace ferry::process
