#include "apps/service_manager.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/proc.hpp"

namespace cyme {

namespace {

/// The value of `name`, unset afterwards; empty when it was not set.
std::string take_variable(const char* name) {
  std::string value;
  if (const char* v = std::getenv(name))
    value = v;
  ::unsetenv(name);
  return value;
}

/// A whole non-negative decimal number, or nothing.
std::optional<unsigned long long> whole_number(const std::string& text) {
  if (text.empty() || text.size() > 19
      || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(text);
}

} // namespace

service_manager service_manager::from_environment() {
  service_manager sm;
  sm.socket_ = take_variable("NOTIFY_SOCKET");
  auto usec = whole_number(take_variable("WATCHDOG_USEC"));
  auto pid_text = take_variable("WATCHDOG_PID");
  auto pid = whole_number(pid_text);
  bool for_us = pid_text.empty()
                || (pid && *pid == static_cast<unsigned long long>(::getpid()));
  if (usec && *usec > 0 && for_us)
    sm.watchdog_ = std::chrono::microseconds{*usec};
  return sm;
}

std::string service_manager::notify(const std::string& state) const {
  if (socket_.empty())
    return {};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof(addr.sun_path)
      || (socket_[0] != '/' && socket_[0] != '@'))
    return "NOTIFY_SOCKET is neither an absolute path nor an abstract "
           "socket ('@' and a name) that fits a socket address";
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  if (socket_[0] == '@')
    addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)
                                    + socket_.size()
                                    + (socket_[0] == '/' ? 1 : 0));
  unique_fd fd{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (!fd)
    return "cannot make a socket for NOTIFY_SOCKET: " + errno_text(errno);
  if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr), len)
      < 0)
    return "cannot notify " + socket_ + ": " + errno_text(errno);
  return {};
}

} // namespace cyme
