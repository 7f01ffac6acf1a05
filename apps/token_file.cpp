#include "apps/token_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "transport/proc.hpp"

namespace cyme {

namespace {

constexpr off_t max_token_file_size = 4096;

/// "0644" and the like.
std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

} // namespace

std::string token_problem(const std::string& token) {
  for (char c : token)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return "the token holds control characters";
  return {};
}

std::string read_token_file(const std::string& path, std::string& token) {
  auto where = "token file " + path + ": ";
  unique_fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (!f)
    return where + std::strerror(errno);
  struct stat st{};
  if (::fstat(f.get(), &st) != 0)
    return where + std::strerror(errno);
  if (!S_ISREG(st.st_mode))
    return where + "not a regular file";
  if ((st.st_mode & 077) != 0)
    return where + "mode " + octal_mode(st.st_mode)
           + " lets others than its owner read or change it (chmod 600 it)";
  if (st.st_size > max_token_file_size)
    return where + "larger than 4 KiB";
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    auto n = ::read(f.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return where + std::strerror(errno);
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  if (!text.empty() && text.back() == '\n')
    text.pop_back();
  if (!text.empty() && text.back() == '\r')
    text.pop_back();
  if (text.empty())
    return where + "empty";
  if (auto problem = token_problem(text); !problem.empty())
    return where + problem;
  token = std::move(text);
  return {};
}

std::string key_file_problem(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & S_IRWXO) == 0)
    return {};
  return "mode " + octal_mode(st.st_mode)
         + " lets every user read it (chmod o-rwx)";
}

} // namespace cyme
