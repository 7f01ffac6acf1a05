#pragma once

// A datagram socket bound like systemd's notify socket, for the tests of
// the branch's side of the protocol (unit and integration tiers).

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace cyme::testing {

class notify_listener {
public:
  /// Bound at a path in a fresh folder, or (`abstract`) at a name.
  explicit notify_listener(bool abstract = false) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    char tmpl[] = "/tmp/cyme-notify-XXXXXX";
    if (fd_ < 0 || ::mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("cannot make a notify socket");
    dir_ = tmpl;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len = sizeof(addr);
    if (abstract) {
      auto name = "cyme-test-" + dir_.filename().string();
      address_ = "@" + name;
      std::copy(name.begin(), name.end(), addr.sun_path + 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                                   + name.size());
    } else {
      address_ = (dir_ / "notify").string();
      std::copy(address_.begin(), address_.end(), addr.sun_path);
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0)
      throw std::runtime_error("cannot bind " + address_);
  }

  ~notify_listener() {
    ::close(fd_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  notify_listener(const notify_listener&) = delete;
  notify_listener& operator=(const notify_listener&) = delete;

  /// As NOTIFY_SOCKET names it.
  const std::string& address() const {
    return address_;
  }

  /// The next datagram, empty when none comes within `limit_ms`.
  std::string next(int limit_ms = 1000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, limit_ms) != 1)
      return {};
    char buf[4096];
    auto n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

private:
  int fd_ = -1;
  std::filesystem::path dir_;
  std::string address_;
};

} // namespace cyme::testing
