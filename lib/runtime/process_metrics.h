// Process metrics in the names every Prometheus user knows (process_cpu_seconds_total,
// process_resident_memory_bytes, ...), read from /proc on each scrape.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

namespace ferry::runtime {

// A collectable that reports the calling process's CPU time, memory, file descriptors,
// threads and start time. Thread-safe: Collect() only reads /proc.
class ProcessMetrics final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace ferry::runtime
