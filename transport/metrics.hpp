#pragma once

/// Metrics in the Prometheus text exposition format, version 0.0.4: a
/// histogram anyone may observe into from any thread, and a writer that
/// groups each family's samples under its HELP and TYPE lines, escapes
/// label values and formats numbers as the format wants.

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cyme::metrics {

using labels = std::vector<std::pair<std::string, std::string>>;

/// Counts of observations at or below each bound, their number and sum.
class histogram {
public:
  explicit histogram(std::vector<double> bounds);

  void observe(double value);

  struct snapshot {
    std::vector<double> bounds;
    /// Cumulative counts, one per bound.
    std::vector<uint64_t> at_or_below;
    uint64_t count = 0;
    double sum = 0;
  };

  snapshot read() const;

private:
  mutable std::mutex mtx_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

/// One exposition, built family by family.
class exposition {
public:
  /// Starts a family: its HELP and TYPE lines ("counter", "gauge",
  /// "histogram"). Samples added next belong to it.
  void family(const std::string& name, const std::string& type,
              const std::string& help);

  void sample(const std::string& name, const labels& ls, double value);

  /// The buckets, sum and count of a histogram family.
  void histogram_samples(const std::string& name, const labels& ls,
                         const histogram::snapshot& h);

  const std::string& text() const {
    return text_;
  }

private:
  std::string text_;
};

/// A label value as the format wants it: backslash, quote and newline
/// escaped.
std::string escape_label(const std::string& value);

/// A sample value: integers without a fraction, NaN and infinities by
/// name.
std::string format_value(double value);

} // namespace cyme::metrics
