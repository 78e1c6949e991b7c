#include "lib/process/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::process {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

absl::Status ErrnoStatus(absl::string_view what, int error) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(error)));
}

// Moves both descriptors above 0, 1 and 2 (close-on-exec), so dup2 onto the child's standard
// descriptors always makes a fresh, inheritable copy.
absl::Status AboveStandardFds(Fd& read_end, Fd& write_end) {
  for (Fd* fd : {&read_end, &write_end}) {
    if (fd->get() > STDERR_FILENO) continue;
    const int moved = ::fcntl(fd->get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    if (moved < 0) return ErrnoStatus("fcntl(F_DUPFD_CLOEXEC)", errno);
    fd->Reset(moved);
  }
  return absl::OkStatus();
}

// A close-on-exec pipe whose ends are not 0, 1 or 2.
absl::Status MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  return AboveStandardFds(read_end, write_end);
}

// The child's stdin when it is given input: a close-on-exec socket pair (not 0, 1 or 2), so
// Ferry's end writes with MSG_NOSIGNAL and a child that stops reading raises no SIGPIPE.
// Ferry's end is non-blocking.
absl::Status MakeInputSocket(Fd& child_end, Fd& ferry_end) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoStatus("socketpair", errno);
  }
  child_end.Reset(fds[0]);
  ferry_end.Reset(fds[1]);
  if (absl::Status s = AboveStandardFds(child_end, ferry_end); !s.ok()) return s;
  if (::shutdown(child_end.get(), SHUT_WR) != 0) return ErrnoStatus("shutdown", errno);
  const int flags = ::fcntl(ferry_end.get(), F_GETFL);
  if (flags < 0 || ::fcntl(ferry_end.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus("fcntl(O_NONBLOCK)", errno);
  }
  return absl::OkStatus();
}

std::string PathOf(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    if (absl::StartsWith(entry, "PATH=")) return entry.substr(5);
  }
  if (const char* path = std::getenv("PATH")) return path;
  return "/bin:/usr/bin";  // execvp's default when PATH is unset
}

// The file to spawn for argv[0], absolute when it was found on PATH (a relative PATH entry
// is taken from Ferry's working directory, not the child's).
absl::StatusOr<std::string> ResolveProgram(const RunOptions& options) {
  const std::string& program = options.argv[0];
  if (absl::StrContains(program, '/')) return program;
  std::string found = FindOnPath(program, PathOf(options.env));
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("program \"", program, "\" not found on PATH"));
  }
  if (found[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) return ErrnoStatus("getcwd", errno);
    found = absl::StrCat(cwd, "/", found);
  }
  return found;
}

// posix_spawn's attributes and file actions, released with the object.
class SpawnSetup {
 public:
  SpawnSetup() {
    ::posix_spawnattr_init(&attr_);
    ::posix_spawn_file_actions_init(&actions_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attr_);
  }

  // A new process group, default signal dispositions (Ferry ignores SIGPIPE; a tool writing
  // into a closed pipe should not), an empty signal mask, stdin from `in_fd` (/dev/null when
  // -1), stdout and stderr into the pipes, and the working directory.
  absl::Status Prepare(const RunOptions& options, int in_fd, int out_fd, int err_fd) {
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    int rc = ::posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) rc = ::posix_spawnattr_setpgroup(&attr_, 0);
    if (rc == 0) rc = ::posix_spawnattr_setsigmask(&attr_, &none);
    if (rc == 0) rc = ::posix_spawnattr_setsigdefault(&attr_, &all);
    if (rc == 0 && in_fd >= 0) {
      rc = ::posix_spawn_file_actions_adddup2(&actions_, in_fd, STDIN_FILENO);
    } else if (rc == 0) {
      rc = ::posix_spawn_file_actions_addopen(&actions_, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    }
    if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&actions_, out_fd, STDOUT_FILENO);
    if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&actions_, err_fd, STDERR_FILENO);
    if (rc == 0 && !options.working_dir.empty()) {
      rc = ::posix_spawn_file_actions_addchdir_np(&actions_, options.working_dir.c_str());
    }
    if (rc != 0) return ErrnoStatus("posix_spawn setup", rc);
    return absl::OkStatus();
  }

  const posix_spawnattr_t* attr() const { return &attr_; }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Blocks until `pid` is reaped; returns its wait status.
int Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Kills the child's whole process group (the child leads it) and reaps the child. The child
// itself is killed by pid too: one that moved to a group of its own (setsid) is not in the
// group any more, and reaping it must not wait for it to end on its own.
void KillAndReap(pid_t pid) {
  ::killpg(pid, SIGKILL);
  ::kill(pid, SIGKILL);
  Reap(pid);
}

// How often a Run with RunOptions::cancel looks at it.
constexpr int kCancelCheckMs = 100;

int MillisUntil(SteadyTime deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
}

// The output side of one running child: reads both pipes until they close, and writes
// RunOptions::input into `in` (when open) meanwhile.
class OutputReader {
 public:
  OutputReader(const RunOptions& options, Fd& in, Fd& out, Fd& err, RunResult& result)
      : options_(options), in_(in), out_(out), err_(err), result_(result) {}

  // OK once both pipes are closed; DeadlineExceeded, Cancelled or ResourceExhausted (the
  // child is still running then); Internal when poll fails.
  absl::Status ReadAll(SteadyTime deadline) {
    char buffer[65536];
    while (out_.get() >= 0 || err_.get() >= 0) {
      pollfd fds[3] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}, {in_.get(), POLLOUT, 0}};
      int wait_ms = MillisUntil(deadline);
      if (wait_ms == 0) return TimedOut();
      if (Cancelled()) return CancelledError();
      if (options_.cancel != nullptr) wait_ms = std::min(wait_ms, kCancelCheckMs);
      const int ready = ::poll(fds, 3, wait_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("poll", errno);
      }
      if (fds[0].revents != 0) {
        if (!Drain(out_, buffer, sizeof(buffer), result_.out, SIZE_MAX)) {
          return absl::ResourceExhaustedError(absl::StrCat(options_.argv[0], " wrote more than ",
                                                           options_.max_stdout_bytes,
                                                           " bytes to stdout (max_stdout_bytes)"));
        }
      }
      if (fds[1].revents != 0) {
        Drain(err_, buffer, sizeof(buffer), result_.err, options_.max_stderr_bytes);
      }
      if (fds[2].revents != 0) Feed();
    }
    in_.Close();
    return absl::OkStatus();
  }

  bool Cancelled() const { return options_.cancel != nullptr && options_.cancel->load(); }
  absl::Status CancelledError() const {
    return absl::CancelledError(absl::StrCat(options_.argv[0], " was cancelled"));
  }

  absl::Status TimedOut() const {
    return absl::DeadlineExceededError(absl::StrCat(options_.argv[0], " did not finish within ",
                                                    absl::FormatDuration(options_.timeout)));
  }

 private:
  // One read from a ready pipe. Stdout (keep == SIZE_MAX) fails over max_stdout_bytes;
  // stderr keeps its first `keep` bytes. Closes the pipe at its end (or on a read error).
  bool Drain(Fd& fd, char* buffer, size_t size, std::string& into, size_t keep) {
    ssize_t n;
    do {
      n = ::read(fd.get(), buffer, size);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      fd.Close();
      return true;
    }
    if (keep == SIZE_MAX) {
      into.append(buffer, static_cast<size_t>(n));
      return into.size() <= options_.max_stdout_bytes;
    }
    if (into.size() < keep)
      into.append(buffer, std::min(static_cast<size_t>(n), keep - into.size()));
    return true;
  }

  // One non-blocking write of what is left of the input; closes stdin once all of it is
  // written, or when the child no longer reads it.
  void Feed() {
    const std::string& input = *options_.input;
    if (written_ < input.size()) {
      ssize_t n;
      do {
        n = ::send(in_.get(), input.data() + written_, input.size() - written_, MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0) {
        in_.Close();
        return;
      }
      written_ += static_cast<size_t>(n);
    }
    if (written_ >= input.size()) in_.Close();
  }

  const RunOptions& options_;
  Fd& in_;
  Fd& out_;
  Fd& err_;
  RunResult& result_;
  size_t written_ = 0;
};

// Waits for the child to exit after its pipes closed. No descriptor tells when that
// happens, so this polls, starting at 1 ms: a child that closes its output exits at once in
// practice. DeadlineExceeded (the child still running) when the deadline passes first,
// Cancelled when `cancel` becomes true first.
absl::StatusOr<int> WaitForExit(pid_t pid, SteadyTime deadline, const std::atomic<bool>* cancel) {
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0 && errno != EINTR) return ErrnoStatus("waitpid", errno);
    if (cancel != nullptr && cancel->load()) return absl::CancelledError("");
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      return absl::DeadlineExceededError("");
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, left));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

absl::Status ValidateOptions(const RunOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("no program to run (empty argv)");
  }
  struct stat info;
  if (!options.working_dir.empty() &&
      (::stat(options.working_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))) {
    return absl::InvalidArgumentError(
        absl::StrCat("working directory \"", options.working_dir, "\" is not a directory"));
  }
  for (const std::string& entry : options.env) {
    if (!absl::StrContains(entry, '=')) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry \"", entry, "\" is not KEY=VALUE"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string FindOnPath(absl::string_view program, absl::string_view path_env) {
  if (program.empty()) return "";
  auto runnable = [](const std::string& path) {
    struct stat info;
    return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
           ::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) == 0;
  };
  if (absl::StrContains(program, '/')) {
    std::string path(program);
    return runnable(path) ? path : "";
  }
  for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
    std::string candidate = dir.empty() ? std::string(program)
                                        : absl::StrCat(dir, dir.back() == '/' ? "" : "/", program);
    if (runnable(candidate)) return candidate;
  }
  return "";
}

absl::StatusOr<RunResult> Run(const RunOptions& options) {
  if (absl::Status valid = ValidateOptions(options); !valid.ok()) return valid;
  const SteadyTime deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options.timeout);
  absl::StatusOr<std::string> program = ResolveProgram(options);
  if (!program.ok()) return program.status();

  Fd in_child, in_write, out_read, out_write, err_read, err_write;
  if (options.input.has_value()) {
    if (absl::Status s = MakeInputSocket(in_child, in_write); !s.ok()) return s;
  }
  if (absl::Status s = MakePipe(out_read, out_write); !s.ok()) return s;
  if (absl::Status s = MakePipe(err_read, err_write); !s.ok()) return s;
  SpawnSetup setup;
  if (absl::Status s = setup.Prepare(options, in_child.get(), out_write.get(), err_write.get());
      !s.ok()) {
    return s;
  }
  std::vector<char*> argv = CStrings(options.argv);
  std::vector<char*> envp = CStrings(options.env);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program->c_str(), setup.actions(), setup.attr(), argv.data(),
                               envp.data());
  // glibc reports exec failures here and has reaped the child then.
  if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR) {
    return absl::NotFoundError(
        absl::StrCat("cannot run \"", options.argv[0], "\" (", *program, "): ", std::strerror(rc)));
  }
  if (rc != 0) return ErrnoStatus(absl::StrCat("posix_spawn ", options.argv[0]), rc);
  // Only the child holds the write ends now, so the pipes close when it (and what it
  // started) is done with them.
  in_child.Close();
  out_write.Close();
  err_write.Close();

  RunResult result;
  OutputReader reader(options, in_write, out_read, err_read, result);
  if (absl::Status read = reader.ReadAll(deadline); !read.ok()) {
    KillAndReap(pid);
    return read;
  }
  absl::StatusOr<int> status = WaitForExit(pid, deadline, options.cancel);
  if (!status.ok()) {
    KillAndReap(pid);
    if (absl::IsDeadlineExceeded(status.status())) return reader.TimedOut();
    if (absl::IsCancelled(status.status())) return reader.CancelledError();
    return status.status();
  }
  if (WIFSIGNALED(*status)) {
    result.exit_code = -1;
    result.signal = WTERMSIG(*status);
  } else {
    result.exit_code = WEXITSTATUS(*status);
  }
  return result;
}

}  // namespace ferry::process
