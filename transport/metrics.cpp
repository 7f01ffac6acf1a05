#include "transport/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace cyme::metrics {

histogram::histogram(std::vector<double> bounds)
  : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {
}

void histogram::observe(double value) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (size_t i = 0; i < bounds_.size(); ++i)
    if (value <= bounds_[i])
      ++counts_[i];
  ++count_;
  sum_ += value;
}

histogram::snapshot histogram::read() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return snapshot{bounds_, counts_, count_, sum_};
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", value);
  else
    std::snprintf(buf, sizeof(buf), "%.15g", value);
  return buf;
}

namespace {

std::string label_text(const labels& ls) {
  if (ls.empty())
    return {};
  std::string out = "{";
  for (size_t i = 0; i < ls.size(); ++i) {
    if (i > 0)
      out += ',';
    out += ls[i].first + "=\"" + escape_label(ls[i].second) + "\"";
  }
  return out + "}";
}

} // namespace

void exposition::family(const std::string& name, const std::string& type,
                        const std::string& help) {
  text_ += "# HELP " + name + " " + help + "\n";
  text_ += "# TYPE " + name + " " + type + "\n";
}

void exposition::sample(const std::string& name, const labels& ls,
                        double value) {
  text_ += name + label_text(ls) + " " + format_value(value) + "\n";
}

void exposition::histogram_samples(const std::string& name, const labels& ls,
                                   const histogram::snapshot& h) {
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    auto with_le = ls;
    with_le.emplace_back("le", format_value(h.bounds[i]));
    sample(name + "_bucket", with_le, static_cast<double>(h.at_or_below[i]));
  }
  auto with_inf = ls;
  with_inf.emplace_back("le", "+Inf");
  sample(name + "_bucket", with_inf, static_cast<double>(h.count));
  sample(name + "_sum", ls, h.sum);
  sample(name + "_count", ls, static_cast<double>(h.count));
}

} // namespace cyme::metrics
