// The writing side of an instance's log: a byte stream cut into whole
// lines, and worker.log rotated by size into a bounded number of backups
// without losing, splitting or repeating a line.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "log_folder.hpp"
#include "transport/log_files.hpp"
#include "transport/log_rotation.hpp"

using namespace cyme;
using namespace cyme::test;
namespace fs = std::filesystem;

namespace {

log_rotation open_log(const log_folder& f, rotation_policy p) {
  auto log = log_rotation::open(f.log_path(), p);
  BOOST_REQUIRE_MESSAGE(log, (log ? std::string{} : log.error().text));
  return std::move(log.value());
}

} // namespace

BOOST_AUTO_TEST_SUITE(log_lines)

BOOST_AUTO_TEST_CASE(whole_lines_pass_and_a_partial_one_waits) {
  // Bytes after the last '\n' wait for the rest of their line; the end of
  // the stream ends it.
  line_buffer b{100};
  BOOST_TEST(b.take("ab") == "");
  BOOST_TEST(b.take("c\nde") == "abc\n");
  BOOST_TEST(b.pending() == 2u);
  BOOST_TEST(b.take("\n\n") == "de\n\n");
  BOOST_TEST(b.finish() == "");
  BOOST_TEST(b.take("tail") == "");
  BOOST_TEST(b.finish() == "tail\n");
  BOOST_TEST(b.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(a_line_over_the_limit_is_cut_into_pieces) {
  // With a limit of 5 bytes a line holds 4 and its '\n'; a longer one is
  // cut into lines of that size, however it arrives.
  line_buffer b{5};
  BOOST_TEST(b.take("abcdefghij\n") == "abcd\nefgh\nij\n");
  BOOST_TEST(b.take("abcd") == "");
  BOOST_TEST(b.take("\n") == "abcd\n");
  BOOST_TEST(b.take("ab") == "");
  BOOST_TEST(b.take("cdef") == "abcd\n");
  BOOST_TEST(b.finish() == "ef\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(log_rotation_by_size, log_folder)

BOOST_AUTO_TEST_CASE(rotation_keeps_every_line_once_in_order_within_the_size) {
  // 3,000 lines of up to 47 bytes through 4 KiB files and 50 backups: many
  // rotations, every line once and in order, no file over 4 KiB.
  rotation_policy p{4096, 50};
  auto log = open_log(*this, p);
  write_through(log, numbered_lines(1, 3000), line_limit(p));
  BOOST_TEST(text() == numbered_lines(1, 3000));
  auto all = files();
  BOOST_TEST(all.size() > 10u);
  BOOST_TEST(all.size() <= 51u);
  for (auto& f : all) {
    BOOST_TEST(fs::file_size(f) <= 4096u, f);
    auto body = slurp(f);
    BOOST_TEST((!body.empty() && body.back() == '\n'), f);
  }
  // Full files were rotated only when the next lines did not fit.
  BOOST_TEST(fs::file_size(backup_path(log_path(), 1)) > 4096u - 47u);
}

BOOST_AUTO_TEST_CASE(only_the_newest_backups_are_kept) {
  // With 2 backups, worker.log.3 and .4 (left by a policy that kept more)
  // go at the first rotation, and what stays is the newest lines, whole.
  std::ofstream{backup_path(log_path(), 3)} << "old\n";
  std::ofstream{backup_path(log_path(), 4)} << "older\n";
  rotation_policy p{4096, 2};
  auto log = open_log(*this, p);
  write_through(log, numbered_lines(1, 1000), line_limit(p));
  auto all = files();
  BOOST_TEST(all.size() == 3u);
  BOOST_TEST(!fs::exists(backup_path(log_path(), 3)));
  BOOST_TEST(!fs::exists(backup_path(log_path(), 4)));
  auto numbers = line_numbers(text());
  BOOST_REQUIRE(!numbers.empty());
  BOOST_TEST(is_run(numbers, numbers.front(), 1000));
  // Two full backups and the start of a third file.
  BOOST_TEST(text().size() > 2u * (4096u - 47u));
  for (auto& f : all)
    BOOST_TEST(fs::file_size(f) <= 4096u, f);
}

BOOST_AUTO_TEST_CASE(max_bytes_0_never_rotates) {
  // 0 keeps everything in worker.log.
  rotation_policy p{0, 1};
  auto log = open_log(*this, p);
  write_through(log, numbered_lines(1, 5000), line_limit(p));
  BOOST_TEST(files().size() == 1u);
  BOOST_TEST(text() == numbered_lines(1, 5000));
}

BOOST_AUTO_TEST_CASE(two_writers_take_turns_and_follow_each_others_rotations) {
  // A writer draining a stopped worker's last lines beside the new
  // worker's: each reopens the file the other rotated, so each one's lines
  // are all there, once and in order, and no file is over the size.
  rotation_policy p{4096, 100};
  auto first = open_log(*this, p);
  auto second = open_log(*this, p);
  for (int i = 1; i <= 2000; ++i) {
    BOOST_REQUIRE(!first.append("a " + std::to_string(i) + "\n").error);
    BOOST_REQUIRE(!second.append("b " + std::to_string(i) + "\n").error);
  }
  std::istringstream in{text()};
  int a = 0;
  int b = 0;
  for (std::string line; std::getline(in, line);) {
    auto n = std::stoi(line.substr(2));
    if (line[0] == 'a')
      BOOST_REQUIRE_EQUAL(n, ++a);
    else
      BOOST_REQUIRE_EQUAL(n, ++b);
  }
  BOOST_TEST(a == 2000);
  BOOST_TEST(b == 2000);
  for (auto& f : files())
    BOOST_TEST(fs::file_size(f) <= 4096u, f);
}

BOOST_AUTO_TEST_CASE(a_log_over_the_size_is_rotated_before_the_next_line) {
  // A worker.log already over the size (written under a larger one) is
  // rotated before anything is added to it.
  append_raw(std::string(10000, 'x') + "\n");
  rotation_policy p{4096, 3};
  auto log = open_log(*this, p);
  BOOST_REQUIRE(!log.append("new\n").error);
  BOOST_TEST(slurp(log_path()) == "new\n");
  BOOST_TEST(fs::file_size(backup_path(log_path(), 1)) == 10001u);
}

BOOST_AUTO_TEST_CASE(policies_that_would_lose_lines_are_refused) {
  // No backup, a size too small for lines, or absurd values are refused
  // with the flag to change; 0 bytes (never rotate) is allowed.
  auto refused = [](rotation_policy p, const char* flag) {
    auto problem = rotation_policy_problem(p);
    BOOST_REQUIRE(problem);
    BOOST_TEST(problem->find(flag) != std::string::npos, *problem);
  };
  refused({4096, 0}, "--worker-log-backups");
  refused({4096, max_rotation_backups + 1}, "--worker-log-backups");
  refused({100, 5}, "--worker-log-max-bytes");
  refused({max_rotation_bytes + 1, 5}, "--worker-log-max-bytes");
  BOOST_TEST(!rotation_policy_problem({0, 1}));
  BOOST_TEST(!rotation_policy_problem({}));
  BOOST_TEST(!rotation_policy_problem({min_rotation_bytes, 1}));
  BOOST_TEST(!log_rotation::open(log_path(), {4096, 0}));
  BOOST_TEST(line_limit({}) == longest_line);
  BOOST_TEST(line_limit({4096, 1}) == 4096u);
}

BOOST_AUTO_TEST_CASE(a_log_that_is_not_a_file_is_not_opened) {
  // A folder or a symlink in the log's place is never written through.
  fs::create_directory(log_path());
  BOOST_TEST(!log_rotation::open(log_path(), {}));
  fs::remove(log_path());
  fs::create_symlink(dir / "elsewhere", log_path());
  BOOST_TEST(!log_rotation::open(log_path(), {}));
  BOOST_TEST(!fs::exists(dir / "elsewhere"));
}

BOOST_AUTO_TEST_CASE(a_removed_folder_is_told_from_a_failed_write) {
  // With its folder gone a log can never be read again: the writer is
  // told so (and cyme-log ends rather than trying again forever).
  auto log = open_log(*this, {});
  BOOST_REQUIRE(!log.append("kept\n").error);
  fs::remove_all(dir);
  auto outcome = log.append("lost\n");
  BOOST_TEST(outcome.error.has_value());
  BOOST_TEST(outcome.folder_gone);
  BOOST_TEST(outcome.written == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
