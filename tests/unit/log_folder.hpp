#pragma once

// A log folder for the tests of an instance's log files: a fresh folder
// per test, a writer of numbered lines, and the files read back.

#include <boost/test/unit_test.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "transport/log_files.hpp"
#include "transport/log_rotation.hpp"

namespace cyme::test {

/// A fresh folder under /tmp per test, removed with everything in it.
struct log_folder {
  std::filesystem::path dir;

  log_folder() {
    char tmpl[] = "/tmp/cyme-log-XXXXXX";
    BOOST_REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }

  ~log_folder() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::filesystem::path log_path() const {
    return dir / worker_log_name;
  }

  /// Appends `text` to worker.log directly, as no writer of ours would.
  void append_raw(const std::string& text) const {
    std::ofstream out{log_path(), std::ios::binary | std::ios::app};
    out << text;
  }

  /// worker.log's backups from the oldest, then worker.log: those that
  /// exist.
  std::vector<std::filesystem::path> files() const {
    std::map<long, std::filesystem::path, std::greater<>> backups;
    const std::string prefix = std::string{worker_log_name} + ".";
    for (auto& e : std::filesystem::directory_iterator{dir}) {
      auto name = e.path().filename().string();
      if (name.rfind(prefix, 0) == 0)
        backups[std::stol(name.substr(prefix.size()))] = e.path();
    }
    std::vector<std::filesystem::path> out;
    for (auto& [k, path] : backups)
      out.push_back(path);
    if (std::filesystem::exists(log_path()))
      out.push_back(log_path());
    return out;
  }

  /// Every file's text, oldest first.
  std::string text() const {
    std::string out;
    for (auto& f : files())
      out += slurp(f);
    return out;
  }

  static std::string slurp(const std::filesystem::path& path) {
    std::ifstream in{path, std::ios::binary};
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
};

/// Line `i` of a numbered run: "line <i> " and a tail of i % 37 dots, so
/// lines differ in length.
inline std::string numbered_line(long i) {
  return "line " + std::to_string(i) + " " + std::string(i % 37, '.') + "\n";
}

/// Lines `first` to `last` of the numbered run.
inline std::string numbered_lines(long first, long last) {
  std::string out;
  for (long i = first; i <= last; ++i)
    out += numbered_line(i);
  return out;
}

/// Writes `text` through a line_buffer and `log` in pieces of changing
/// sizes, as cyme-log does with what it reads; fails the test on an error.
inline void write_through(log_rotation& log, const std::string& text,
                          std::size_t limit) {
  line_buffer lines{limit};
  static constexpr std::size_t sizes[] = {1, 7, 100, 999, 4000, 13};
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < text.size(); ++i) {
    auto piece = text.substr(pos, sizes[i % std::size(sizes)]);
    pos += piece.size();
    auto whole = lines.take(piece);
    auto outcome = log.append(whole);
    BOOST_REQUIRE_MESSAGE(!outcome.error, outcome.error->text);
    BOOST_REQUIRE_EQUAL(outcome.written, whole.size());
  }
  auto rest = lines.finish();
  BOOST_REQUIRE(!log.append(rest).error);
}

/// The numbers of the numbered lines in `text`, in order; -1 for a line
/// that is not one.
inline std::vector<long> line_numbers(const std::string& text) {
  std::vector<long> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("line ", 0) != 0) {
      out.push_back(-1);
      continue;
    }
    out.push_back(std::stol(line.substr(5)));
  }
  return out;
}

/// Whether `numbers` are first, first + 1, ..., last.
inline bool is_run(const std::vector<long>& numbers, long first, long last) {
  if (numbers.size() != static_cast<std::size_t>(last - first + 1))
    return false;
  for (std::size_t i = 0; i < numbers.size(); ++i)
    if (numbers[i] != first + static_cast<long>(i))
      return false;
  return true;
}

} // namespace cyme::test
