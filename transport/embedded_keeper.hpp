#pragma once

/// Keeps the embedded Kafka cluster in a process of its own
/// (`cyme-embedded-kafka`, in its own session) so that it outlives a
/// crashed branch: the re-adopted workers keep their bus. A restarted
/// branch finds it again through the files it left in its folder: a pid
/// file (pid + start time, checked against /proc and the command line) and
/// the bootstrap address, which must answer.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace cyme {

struct embedded_kafka {
  std::string bootstrap;
  int32_t pid = 0;
  /// Started by this branch (else found running).
  bool started_here = false;
};

/// Finds the embedded cluster running for `dir`, or starts `program` for
/// it. On failure returns nothing and says why in `error`.
std::optional<embedded_kafka>
ensure_embedded_kafka(const std::filesystem::path& dir,
                      const std::filesystem::path& program, std::string& error);

/// Stops it (SIGTERM, SIGKILL after 5 s) and removes its files.
void stop_embedded_kafka(const std::filesystem::path& dir,
                         const embedded_kafka& kafka);

} // namespace cyme
