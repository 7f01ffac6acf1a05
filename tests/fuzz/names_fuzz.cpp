// libFuzzer target: name, broker and spec validation. Whatever is accepted
// as a name must be safe as one path component, a Kafka topic and an
// argument: 1-64 chars of [A-Za-z0-9._-], not starting with '.', '-', '_'.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "messages/names.hpp"

namespace {

bool safe(const std::string& n) {
  if (n.empty() || n.size() > 64 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  for (unsigned char c : n)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  return n != "." && n != "..";
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text{reinterpret_cast<const char*>(data), size};
  if (cyme::name_problem("instance", text).empty() && !safe(text))
    __builtin_trap();
  cyme::broker_problem(text);
  // A spec from pieces of the input: name, app, queues, broker.
  cyme::instance_spec spec;
  auto cut = [&](size_t i) {
    auto a = text.size() * i / 5, b = text.size() * (i + 1) / 5;
    return text.substr(a, b - a);
  };
  spec.name = cut(0);
  spec.app = cut(1);
  spec.queues = {cut(2), cut(3)};
  spec.broker = cut(4);
  spec.max_concurrency = size % 7;
  spec.min_concurrency = size % 5;
  if (cyme::spec_problem(spec).empty()
      && (!safe(spec.name) || !safe(spec.app) || !safe(spec.queues[0])
          || spec.min_concurrency == 0
          || spec.max_concurrency < spec.min_concurrency))
    __builtin_trap();
  return 0;
}
