// Reading metric values back from a prometheus::Registry in tests.
#pragma once

#include <prometheus/registry.h>

#include <map>
#include <string>

namespace ferry::testing {

// The sum of counter and gauge values of family `name` over the series whose labels include
// all of `labels` (0 when there are none).
inline double MetricSum(prometheus::Registry& registry, const std::string& name,
                        const std::map<std::string, std::string>& labels = {}) {
  double sum = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      size_t matched = 0;
      for (const auto& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched != labels.size()) continue;
      sum +=
          family.type == prometheus::MetricType::Gauge ? metric.gauge.value : metric.counter.value;
    }
  }
  return sum;
}

}  // namespace ferry::testing
