#include "transport/program_allow_list.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "messages/launch.hpp"

namespace cyme {

namespace fs = std::filesystem;

std::vector<std::string> exec_programs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  const std::string flag = "--exec";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size())
      out.push_back(args[i + 1]);
    else if (args[i].rfind(flag + "=", 0) == 0)
      out.push_back(args[i].substr(flag.size() + 1));
  }
  return out;
}

std::string program_allow_list::allow(const std::string& path) {
  std::error_code ec;
  auto p = fs::absolute(path, ec).lexically_normal().string();
  if (ec)
    return "cannot make " + path + " absolute: " + ec.message();
  while (p.size() > 1 && p.back() == '/')
    p.pop_back();
  if (fs::is_directory(p, ec))
    folders_.push_back(p);
  else if (fs::is_regular_file(p, ec))
    files_.push_back(p);
  else
    return path + " is neither a file nor a folder";
  return {};
}

bool program_allow_list::allows(const std::string& program) const {
  if (!is_normal_absolute_path(program))
    return false;
  if (std::find(files_.begin(), files_.end(), program) != files_.end())
    return true;
  return std::any_of(folders_.begin(), folders_.end(), [&](const auto& dir) {
    auto prefix = dir == "/" ? dir : dir + "/";
    return program.size() > prefix.size() && program.rfind(prefix, 0) == 0;
  });
}

std::string program_allow_list::runnable_problem(const std::string& program) {
  std::error_code ec;
  if (!fs::is_regular_file(program, ec))
    return "program " + program + " does not exist or is not a file";
  if (::access(program.c_str(), X_OK) != 0)
    return "program " + program + " is not executable";
  return {};
}

std::string program_allow_list::describe() const {
  std::string out;
  for (auto* list : {&files_, &folders_})
    for (auto& p : *list)
      out += (out.empty() ? "" : ", ") + p + (list == &folders_ ? "/" : "");
  return out.empty() ? "nothing" : out;
}

} // namespace cyme
