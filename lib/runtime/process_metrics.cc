#include "lib/runtime/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "lib/runtime/memory.h"

namespace ferry::runtime {
namespace {

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the descriptor opendir() itself holds
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessMetrics::Collect() const {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may contain spaces.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;
  for (std::string field; fields >> field;) f.push_back(field);
  // f[0] is field 3 (state) of proc(5), so field N is f[N - 3].
  if (f.size() < 22) return {};
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double cpu = (std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / ticks;
  const double threads = std::stod(f[20 - 3]);
  const double start = BootTimeSeconds() + std::stod(f[22 - 3]) / ticks;
  const double vsize = std::stod(f[23 - 3]);
  const double rss = std::stod(f[24 - 3]) * page;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);

  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families = {
      Family("process_cpu_seconds_total", "User and system CPU time spent in seconds.",
             MetricType::Counter, cpu),
      Family("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
             rss),
      Family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
             vsize),
      Family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
             CountOpenFds()),
      Family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
             static_cast<double>(limit.rlim_cur)),
      Family("process_threads", "Number of OS threads in the process.", MetricType::Gauge, threads),
      Family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
             MetricType::Gauge, start),
  };
  // Beside RSS, what the allocator says is live and what it keeps freed: tells a leak (in
  // use grows) from retention (free grows).
  if (std::optional<HeapUsage> heap = ReadHeapUsage()) {
    families.push_back(Family("ferry_process_heap_in_use_bytes",
                              "Bytes allocated with malloc and not yet freed.", MetricType::Gauge,
                              static_cast<double>(heap->in_use)));
    families.push_back(Family("ferry_process_heap_free_bytes",
                              "Bytes freed but kept by the allocator for reuse.", MetricType::Gauge,
                              static_cast<double>(heap->free)));
  }
  return families;
}

}  // namespace ferry::runtime
