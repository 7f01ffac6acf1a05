#pragma once

/// What a process driver tells a standby worker (`cyme-worker --standby`)
/// when it makes it an instance's worker: one datagram of `key=value`
/// lines on the socket that is the standby's stdin, with the instance's
/// log descriptor beside it (SCM_RIGHTS). A standby is a worker started
/// ahead of need, already on the bus, so that a replacement answers at
/// once instead of after a process start and a Kafka connection.
///
///   name=<instance>
///   queues=<q1,q2,...>          (may be empty)
///   min=<min_concurrency>
///   max=<max_concurrency>
///   instance_dir=<root>/<instance>
///   control_since_ms=<ms since the epoch, as --control-since-ms>
///
/// Every key once, in any order, nothing else. A standby that cannot use
/// an adoption exits without serving (status 2): its driver sees a worker
/// that died at once and replaces it.
///
/// A standby is started with placeholders, `standby_placeholder_length`
/// bytes long, for the values of CYME_INSTANCE and CYME_INSTANCE_DIR's
/// name part; once adopted it writes the real values over them in place,
/// so its environment, as /proc shows it to a later driver, marks it as
/// the instance's like any worker started for it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cyme {

struct adoption {
  std::string name;
  std::vector<std::string> queues;
  uint32_t min_concurrency = 1;
  uint32_t max_concurrency = 1;
  std::string instance_dir;
  int64_t control_since_ms = -1;
};

/// Longest adoption text accepted.
constexpr std::size_t max_adoption_size = 16 * 1024;

/// What a standby's CYME_INSTANCE and the name part of its
/// CYME_INSTANCE_DIR hold until it is adopted: as long as the longest name.
std::string standby_placeholder();

std::string encode_adoption(const adoption& x);

/// The adoption `text` says, or nothing with `problem` set: an unknown,
/// missing or repeated key, a bad name or number, an instance folder that
/// is not absolute or does not end in the name, limits that break the
/// rules of an instance spec, or more than `max_adoption_size` bytes.
std::optional<adoption> decode_adoption(std::string_view text,
                                        std::string& problem);

/// Sends `text` on the datagram socket `socket` as one datagram, without
/// waiting, with the descriptor `fd` beside it (SCM_RIGHTS; -1: none).
/// Empty on success, else why not.
std::string send_with_descriptor(int socket, std::string_view text, int fd);

/// Sends `x` on `socket` with the instance's log descriptor `log_fd`.
/// Empty on success, else why not.
std::string send_adoption(int socket, const adoption& x, int log_fd);

enum class adoption_read { nothing, adopted, ended };

/// Reads an adoption from `socket` without waiting: `nothing` when none
/// came; `ended` when the socket ended or failed (the driver is gone) or
/// the adoption is unusable (`problem` set, any descriptor received
/// closed); else `adopted`, with the log descriptor (close-on-exec) in
/// `log_fd`, which the caller then owns.
adoption_read receive_adoption(int socket, adoption& out, int& log_fd,
                               std::string& problem);

} // namespace cyme
