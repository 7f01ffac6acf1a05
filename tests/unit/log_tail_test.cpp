// The reading side of an instance's log: the last lines across worker.log
// and its backups, and a follower that hands out new lines across
// rotations without losing or repeating one, and without waiting.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "log_folder.hpp"
#include "transport/log_files.hpp"
#include "transport/log_rotation.hpp"
#include "transport/log_tail.hpp"
#include "transport/proc.hpp"

using namespace cyme;
using namespace cyme::test;
namespace fs = std::filesystem;

namespace {

/// Rotation by 4 KiB into `backups` backups.
rotation_policy small_files(uint32_t backups) {
  return rotation_policy{4096, backups};
}

log_rotation open_log(const log_folder& f, rotation_policy p) {
  auto log = log_rotation::open(f.log_path(), p);
  BOOST_REQUIRE_MESSAGE(log, (log ? std::string{} : log.error().text));
  return std::move(log.value());
}

std::string tail_of(const log_folder& f, std::size_t n) {
  auto r = last_lines(f.dir, n);
  BOOST_REQUIRE_MESSAGE(r, (r ? std::string{} : r.error().text));
  return r.value();
}

log_follower follow(const log_folder& f) {
  auto r = log_follower::open(f.dir);
  BOOST_REQUIRE_MESSAGE(r, (r ? std::string{} : r.error().text));
  return std::move(r.value());
}

/// Everything a follower has now, however many calls it takes.
std::string drain(log_follower& follower) {
  std::string out;
  for (auto part = follower.read_new(); !part.empty();
       part = follower.read_new())
    out += part;
  BOOST_TEST(!follower.problem());
  return out;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(log_tail, log_folder)

BOOST_AUTO_TEST_CASE(last_lines_reach_across_backups) {
  // 500 lines over several 4 KiB files: the last n come from as many files
  // as they take, oldest first.
  auto p = small_files(10);
  auto log = open_log(*this, p);
  write_through(log, numbered_lines(1, 500), line_limit(p));
  BOOST_REQUIRE(files().size() > 3u);
  BOOST_TEST(tail_of(*this, 300) == numbered_lines(201, 500));
  BOOST_TEST(tail_of(*this, 5) == numbered_lines(496, 500));
  BOOST_TEST(tail_of(*this, 1000) == numbered_lines(1, 500));
  BOOST_TEST(tail_of(*this, 0) == "");
}

BOOST_AUTO_TEST_CASE(last_lines_are_bounded_in_lines_and_bytes) {
  // At most max_tail_lines lines, and only the newest whole lines that fit
  // in max_tail_bytes.
  append_raw(numbered_lines(1, 20000));
  BOOST_TEST(tail_of(*this, 50000)
             == numbered_lines(20001 - max_tail_lines, 20000));
  std::string big;
  for (int i = 1; i <= 5000; ++i)
    big += std::to_string(i) + " " + std::string(993, 'x') + "\n";
  append_raw(big);
  auto tail = tail_of(*this, max_tail_lines);
  BOOST_TEST(tail.size() <= max_tail_bytes);
  BOOST_TEST(tail.size() > max_tail_bytes - 1000);
  BOOST_REQUIRE(!tail.empty());
  BOOST_TEST(tail.back() == '\n');
  BOOST_TEST(big.size() >= tail.size());
  BOOST_TEST(big.compare(big.size() - tail.size(), tail.size(), tail) == 0);
  // It starts at a line's start.
  BOOST_TEST(big[big.size() - tail.size() - 1] == '\n');
}

BOOST_AUTO_TEST_CASE(last_lines_leave_out_a_line_still_being_written) {
  // Only whole lines: a line without its '\n' yet is the follower's.
  append_raw("a\nb\npart");
  BOOST_TEST(tail_of(*this, 10) == "a\nb\n");
}

BOOST_AUTO_TEST_CASE(last_lines_of_a_folder_without_a_log) {
  // No log yet: nothing. No folder: an error saying so (ENOENT).
  BOOST_TEST(tail_of(*this, 10) == "");
  auto missing = last_lines(dir / "nowhere", 10);
  BOOST_REQUIRE(!missing);
  BOOST_TEST(missing.error().code == ENOENT);
  BOOST_TEST(!log_follower::open(dir / "nowhere"));
}

BOOST_AUTO_TEST_CASE(a_follower_starts_at_the_end_and_gets_only_new_lines) {
  // What was written before it is not its business; what comes after is.
  auto log = open_log(*this, {});
  BOOST_REQUIRE(!log.append(numbered_lines(1, 10)).error);
  auto follower = follow(*this);
  BOOST_TEST(follower.read_new() == "");
  BOOST_REQUIRE(!log.append(numbered_lines(11, 12)).error);
  BOOST_TEST(follower.read_new() == numbered_lines(11, 12));
  BOOST_TEST(follower.read_new() == "");
}

BOOST_AUTO_TEST_CASE(a_follower_holds_a_partial_line_until_it_is_whole) {
  // A line caught while it is being written comes whole, once.
  auto follower = follow(*this);
  append_raw("abc");
  BOOST_TEST(follower.read_new() == "");
  append_raw("def\nghi");
  BOOST_TEST(follower.read_new() == "abcdef\n");
  append_raw("\n");
  BOOST_TEST(follower.read_new() == "ghi\n");
}

BOOST_AUTO_TEST_CASE(a_follower_follows_a_rotation_between_two_reads) {
  // Three rotations fall between two reads: the rest of the file it was
  // reading, the backups in between and the new worker.log come in order,
  // each line once.
  auto p = small_files(5);
  auto log = open_log(*this, p);
  write_through(log, numbered_lines(1, 50), line_limit(p));
  auto follower = follow(*this);
  write_through(log, numbered_lines(51, 500), line_limit(p));
  BOOST_REQUIRE(fs::exists(backup_path(log_path(), 2)));
  BOOST_TEST(drain(follower) == numbered_lines(51, 500));
  write_through(log, numbered_lines(501, 510), line_limit(p));
  BOOST_TEST(drain(follower) == numbered_lines(501, 510));
}

BOOST_AUTO_TEST_CASE(a_follower_catches_up_after_more_rotations_than_backups) {
  // The writer rotated its file out of the backups before it was read:
  // what is gone is gone, but what is left comes in order, once, up to the
  // last line.
  auto p = small_files(2);
  auto log = open_log(*this, p);
  auto follower = follow(*this);
  write_through(log, numbered_lines(1, 1000), line_limit(p));
  auto numbers = line_numbers(drain(follower));
  BOOST_REQUIRE(!numbers.empty());
  BOOST_TEST(numbers.front() == 1);
  BOOST_TEST(numbers.back() == 1000);
  for (std::size_t i = 1; i < numbers.size(); ++i)
    BOOST_REQUIRE_LT(numbers[i - 1], numbers[i]);
}

BOOST_AUTO_TEST_CASE(a_log_made_after_the_follower_is_read_from_its_start) {
  // The log made after the follower is new from its first line.
  auto follower = follow(*this);
  BOOST_TEST(follower.read_new() == "");
  auto log = open_log(*this, {});
  BOOST_REQUIRE(!log.append(numbered_lines(1, 3)).error);
  BOOST_TEST(follower.read_new() == numbered_lines(1, 3));
}

BOOST_AUTO_TEST_CASE(a_follower_reads_a_log_truncated_in_place_from_its_start) {
  // Truncated by someone and shorter than where it was: its new lines
  // come from its start.
  append_raw(numbered_lines(1, 5));
  auto follower = follow(*this);
  fs::resize_file(log_path(), 0);
  append_raw("new\n");
  BOOST_TEST(follower.read_new() == "new\n");
}

BOOST_AUTO_TEST_CASE(a_follower_hands_out_a_long_backlog_in_parts) {
  // 3 MB at once come in parts of about max_read_bytes, whole lines each.
  auto follower = follow(*this);
  append_raw(numbered_lines(1, 100000));
  auto first = follower.read_new();
  BOOST_TEST(first.size() <= log_follower::max_read_bytes + 64 * 1024);
  BOOST_TEST(first.size() >= log_follower::max_read_bytes / 2);
  BOOST_TEST(first.back() == '\n');
  BOOST_TEST(first + drain(follower) == numbered_lines(1, 100000));
}

BOOST_AUTO_TEST_CASE(a_follower_does_not_wait_for_a_writer_holding_the_lock) {
  // Just as a rotation must be followed a writer holds the folder: the
  // follower returns what it has and takes the rest on a later call.
  auto p = small_files(5);
  auto log = open_log(*this, p);
  auto follower = follow(*this);
  write_through(log, numbered_lines(1, 300), line_limit(p));
  BOOST_REQUIRE(fs::exists(backup_path(log_path(), 1)));
  std::string got;
  {
    unique_fd folder{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    folder_lock writer{folder.get(), folder_lock::mode::exclusive, true};
    BOOST_REQUIRE(writer.held());
    got = follower.read_new();
    BOOST_TEST(!follower.problem());
  }
  BOOST_TEST(got.size() < numbered_lines(1, 300).size());
  got += drain(follower);
  BOOST_TEST(got == numbered_lines(1, 300));
}


// The files the driver writes before a start (the stop policy, Kafka
// properties, the pid file) are written atomically; one that holds the
// same text with the same mode already is left as it is, so a restart
// does not wait for fsyncs that would change nothing.
BOOST_AUTO_TEST_CASE(an_atomic_write_of_what_a_file_holds_leaves_it) {
  auto path = dir / "stop";
  auto inode = [&] {
    struct stat st{};
    BOOST_REQUIRE_EQUAL(::stat(path.c_str(), &st), 0);
    return st.st_ino;
  };
  BOOST_REQUIRE_EQUAL(write_file_atomically(dir, "stop", ".stop.tmp",
                                            "TERM 10000\n", 0640),
                      "");
  auto first = inode();
  BOOST_REQUIRE_EQUAL(write_file_atomically(dir, "stop", ".stop.tmp",
                                            "TERM 10000\n", 0640),
                      "");
  BOOST_CHECK_EQUAL(inode(), first);
  // Another text, a prefix of it, or another mode: written anew.
  for (auto [text, mode] : {std::pair{"TERM 10000\n", 0600},
                            std::pair{"TERM 1000", 0600},
                            std::pair{"INT 10000\n", 0600}}) {
    auto before = inode();
    BOOST_REQUIRE_EQUAL(
      write_file_atomically(dir, "stop", ".stop.tmp", text, mode), "");
    BOOST_CHECK_NE(inode(), before);
    std::ifstream in{path};
    std::string got{std::istreambuf_iterator<char>{in}, {}};
    BOOST_CHECK_EQUAL(got, text);
    struct stat st{};
    BOOST_REQUIRE_EQUAL(::stat(path.c_str(), &st), 0);
    BOOST_CHECK_EQUAL(st.st_mode & 07777, static_cast<mode_t>(mode));
  }
  BOOST_CHECK(!fs::exists(dir / ".stop.tmp"));
}

BOOST_AUTO_TEST_SUITE_END()
