#pragma once

/// Which programs a branch may run. Naming a program over HTTP is running
/// code on the host, so an instance's `program` must be one of the files,
/// or lie under one of the folders, that the operator allowed
/// (`cyme-branch --allow-program PATH`); the worker program is always
/// allowed. So must be a cyme-worker's `--exec` program. Paths are compared as written, absolute and lexically normal
/// (messages/launch.hpp), so no ".." walks out of an allowed folder; links
/// inside an allowed folder are the operator's own.

#include <string>
#include <vector>

namespace cyme {

/// The programs that cyme-worker arguments make it run besides itself: the
/// value of every `--exec PROGRAM` (or `--exec=PROGRAM`), which the exec
/// handler runs for tasks anyone may send.
std::vector<std::string> exec_programs(const std::vector<std::string>& args);

class program_allow_list {
public:
  /// Allows the file or folder `path` (made absolute and normal). Returns
  /// why not, empty on success: it must exist.
  std::string allow(const std::string& path);

  /// Whether `program` is an allowed file or lies under an allowed folder.
  bool allows(const std::string& program) const;

  /// Empty when `program` can be executed, else why not.
  static std::string runnable_problem(const std::string& program);

  /// The allowed files and folders, for error messages and logs.
  std::string describe() const;

private:
  std::vector<std::string> files_;
  std::vector<std::string> folders_;
};

} // namespace cyme
