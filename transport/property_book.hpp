#pragma once

/// The librdkafka properties of each broker the branch talks to. The
/// branch's own (`--kafka-property`, the [kafka] section of --config) apply
/// to every broker that has none of its own; a broker that an app names
/// may have its own in the model (the app's `kafka` field), which then
/// replace them. Shared, thread-safe, by everything that makes Kafka
/// clients: the control bus, the result readers, the task producers and
/// the process driver (which hands them to workers in a 0600 file).

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "transport/kafka.hpp"

namespace cyme::kafka {

class property_book {
public:
  explicit property_book(config_map branch = {});

  /// What a client of `bootstrap` uses.
  config_map for_broker(const std::string& bootstrap) const;

  /// The broker's own properties, when the model gives it some.
  std::optional<config_map> own(const std::string& bootstrap) const;

  /// Sets a broker's own properties; nothing removes them (the branch's
  /// apply again).
  void set_own(const std::string& bootstrap, std::optional<config_map> props);

  /// How often the properties of `bootstrap` changed: a client made at an
  /// older count must be made again.
  uint64_t version(const std::string& bootstrap) const;

private:
  mutable std::mutex mtx_;
  config_map branch_;
  std::map<std::string, config_map> own_;
  std::map<std::string, uint64_t> versions_;
};

} // namespace cyme::kafka
