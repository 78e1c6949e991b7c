// ferry-git-writer: the config repo's one reader and writer.
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#include <cstdio>
#include <memory>
#include <optional>

#include "lib/log/log.h"
#include "lib/runtime/memory.h"
#include "lib/runtime/poller.h"
#include "lib/runtime/start_service.h"
#include "services/git-writer/config.h"
#include "services/git-writer/git_writer_service.h"
#include "services/git-writer/identity.h"
#include "services/git-writer/leadership.h"
#include "services/git-writer/libgit2_repository.h"
#include "services/git-writer/writer.h"

namespace {

// With --repack_mirror this process is the child of a fold of the mirror's packs
// (Libgit2Repository::DueMaintenance): it writes the new pack, prints what it replaces and
// exits (0, or 1 with the error on stderr), and the service's flags do not apply. A stop ends
// it (signals unblocked), and so does its parent's death.
std::optional<int> RunRepackChild(const ferry::git_writer::Flags& flags) {
  if (flags.repack_mirror.empty()) return std::nullopt;
  sigset_t shutdown;
  sigemptyset(&shutdown);
  sigaddset(&shutdown, SIGTERM);
  sigaddset(&shutdown, SIGINT);
  pthread_sigmask(SIG_UNBLOCK, &shutdown, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  absl::StatusOr<std::string> fold = ferry::git_writer::Libgit2Repository::RepackMirror(
      flags.repack_mirror, flags.repack_keep_unreachable);
  if (!fold.ok()) {
    std::fprintf(stderr, "%s\n", std::string(fold.status().message()).c_str());
    return 1;
  }
  std::fwrite(fold->data(), 1, fold->size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ferry::git_writer;
  // Writes are serialised; more allocator arenas would only keep more freed memory, and a
  // write's large buffers would stay behind as fragments (build/bench/git_writer_soak).
  ferry::runtime::LimitAllocatorArenas(2);
  // Just above 64 KiB, not at it: zlib takes four buffers of exactly 64 KiB for each
  // deflate, and libgit2's pack builder starts a new deflate for every delta it keeps (two
  // packs of ~100 deltas per release). Mapped, each was an mmap, page faults and an munmap
  // whose TLB shootdown stalls the other core: about half of git-writer's time in a release
  // on this project's 2-core virtual machines, and the cause of its slow pushes in the scale
  // benchmark. Freed at a heap's top, the same buffers went back to the kernel just as
  // often (madvise): up to 8 MiB per arena (two) now stays there, and a write (ApplyUpdates)
  // ends with ReturnFreeMemory.
  ferry::runtime::MapLargeAllocations(68 * 1024);
  ferry::runtime::KeepFreedHeapTopUpTo(8 * 1024 * 1024);
  ferry::runtime::ServiceStart<Flags, Config> start(
      argc, argv, kComponent, "ferry-git-writer: the config repo's one reader and writer", AddFlags,
      ToConfig, {.internal = true, .after_parse = RunRepackChild});
  if (!start.ok()) return start.exit_code();
  Config& config = start.config();

  if (!config.ssh_key_path.empty()) {
    if (absl::Status s = EnsureDeployKey(config.ssh_key_path); !s.ok()) {
      return start.ConfigError(s);
    }
  }
  auto registry = std::make_shared<prometheus::Registry>();
  // --leader_elect: only the Lease's holder commits and pushes; readiness follows it.
  absl::StatusOr<Leadership> leadership = MakeLeadership(config, *registry);
  if (!leadership.ok()) return start.ConfigError(leadership.status());
  leadership->Fence(config);
  SignerMetrics signer_metrics(*registry);
  absl::StatusOr<std::shared_ptr<Signer>> signer = MakeSigner(config, &signer_metrics);
  if (!signer.ok()) return start.ConfigError(signer.status());
  config.repository.signer = *signer;
  if (*signer && (*signer)->key().format == "ssh") {
    // Which commits on a push branch are Ferry's: those signed by this key (Writer::IsFerrys).
    absl::StatusOr<std::unique_ptr<SshVerifier>> own =
        SshVerifier::ForKey((*signer)->key().public_key);
    if (!own.ok()) return start.ConfigError(own.status());
    config.writer.own_signatures = *std::move(own);
  }
  // Folding the mirror's packs walks all history; a child process does it (see
  // Libgit2Options::repack_program), so its peak memory is not kept by this one.
  config.repository.repack_program = "/proc/self/exe";
  absl::StatusOr<std::unique_ptr<Libgit2Repository>> repo =
      Libgit2Repository::Open(config.repository);
  if (!repo.ok()) return start.ConfigError(repo.status());

  WriterMetrics metrics(*registry);
  Writer writer(**repo, config.writer, metrics);
  ferry::runtime::Poller poller(config.poll_interval, [&writer] { (void)writer.Refresh(); });
  GitWriterService service(
      writer, {config.repository.branch, config.sync_tag, config.ssh_key_path,
               config.writer.readonly, config.max_commit_message_bytes,
               config.max_workload_index_bytes, *signer ? (*signer)->key() : SigningKey{}});
  leadership->Start();
  int code = ferry::runtime::ServeUntilSignal(
      config.server, {{&service, ferry::v1::GitWriter::service_full_name()}}, registry,
      leadership->Readiness());
  leadership->Stop();  // releases the Lease: a standby takes over at once
  return code;
}
