#include "messages/adoption.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>

#include "messages/instance.hpp"
#include "messages/names.hpp"

namespace cyme {

std::string standby_placeholder() {
  return std::string(max_name_length, '-');
}

std::string encode_adoption(const adoption& x) {
  std::string queues;
  for (auto& q : x.queues) {
    if (!queues.empty())
      queues += ',';
    queues += q;
  }
  return "name=" + x.name + "\nqueues=" + queues
         + "\nmin=" + std::to_string(x.min_concurrency)
         + "\nmax=" + std::to_string(x.max_concurrency)
         + "\ninstance_dir=" + x.instance_dir
         + "\ncontrol_since_ms=" + std::to_string(x.control_since_ms) + "\n";
}

namespace {

template <class T>
bool parse_number(const std::string& text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

} // namespace

std::optional<adoption> decode_adoption(std::string_view text,
                                        std::string& problem) {
  if (text.size() > max_adoption_size) {
    problem = "adoption of " + std::to_string(text.size())
              + " bytes is larger than " + std::to_string(max_adoption_size);
    return std::nullopt;
  }
  std::map<std::string, std::string> fields;
  size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string_view::npos) {
      problem = "adoption does not end with a newline";
      return std::nullopt;
    }
    auto line = text.substr(at, end - at);
    at = end + 1;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      problem = "adoption line without '=': " + std::string{line.substr(0, 32)};
      return std::nullopt;
    }
    std::string key{line.substr(0, eq)};
    if (key != "name" && key != "queues" && key != "min" && key != "max"
        && key != "instance_dir" && key != "control_since_ms") {
      problem = "unknown adoption key '" + key.substr(0, 32) + "'";
      return std::nullopt;
    }
    if (!fields.emplace(key, std::string{line.substr(eq + 1)}).second) {
      problem = "adoption key '" + key + "' given twice";
      return std::nullopt;
    }
  }
  for (auto key : {"name", "queues", "min", "max", "instance_dir",
                   "control_since_ms"})
    if (fields.count(key) == 0) {
      problem = std::string{"adoption without '"} + key + "'";
      return std::nullopt;
    }
  adoption x;
  x.name = fields["name"];
  if (auto p = name_problem("instance", x.name); !p.empty()) {
    problem = p;
    return std::nullopt;
  }
  auto& queues = fields["queues"];
  for (size_t from = 0; !queues.empty() && from <= queues.size();) {
    auto comma = queues.find(',', from);
    if (comma == std::string::npos)
      comma = queues.size();
    x.queues.push_back(queues.substr(from, comma - from));
    from = comma + 1;
  }
  if (!parse_number(fields["min"], x.min_concurrency)
      || !parse_number(fields["max"], x.max_concurrency)) {
    problem = "adoption 'min' and 'max' must be whole numbers";
    return std::nullopt;
  }
  if (!parse_number(fields["control_since_ms"], x.control_since_ms)
      || x.control_since_ms < -1) {
    problem = "adoption 'control_since_ms' must be a time in ms since the "
              "epoch";
    return std::nullopt;
  }
  x.instance_dir = fields["instance_dir"];
  auto slash = x.instance_dir.rfind('/');
  if (x.instance_dir.empty() || x.instance_dir.front() != '/'
      || slash == std::string::npos || x.instance_dir.substr(slash + 1) != x.name) {
    problem = "adoption 'instance_dir' must be an absolute path ending in "
              "the instance name";
    return std::nullopt;
  }
  instance_spec spec;
  spec.name = x.name;
  spec.app = "app";
  spec.queues = x.queues;
  spec.min_concurrency = x.min_concurrency;
  spec.max_concurrency = x.max_concurrency;
  if (auto p = spec_problem(spec); !p.empty()) {
    problem = p;
    return std::nullopt;
  }
  return x;
}

std::string send_with_descriptor(int socket, std::string_view text, int fd) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  auto n = ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0)
    return std::strerror(errno);
  if (static_cast<size_t>(n) != text.size())
    return "sent " + std::to_string(n) + " of " + std::to_string(text.size())
           + " bytes";
  return {};
}

std::string send_adoption(int socket, const adoption& x, int log_fd) {
  return send_with_descriptor(socket, encode_adoption(x), log_fd);
}

adoption_read receive_adoption(int socket, adoption& out, int& log_fd,
                               std::string& problem) {
  std::string buf(max_adoption_size + 1, '\0');
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  auto n = ::recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return adoption_read::nothing;
  if (n <= 0)
    return adoption_read::ended;
  log_fd = -1;
  for (auto* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS
        && c->cmsg_len == CMSG_LEN(sizeof(int)))
      std::memcpy(&log_fd, CMSG_DATA(c), sizeof(int));
  if (log_fd < 0) {
    problem = "adoption came without the instance's log descriptor";
    return adoption_read::ended;
  }
  buf.resize(static_cast<size_t>(n));
  auto decoded = decode_adoption(buf, problem);
  if (!decoded) {
    ::close(log_fd);
    log_fd = -1;
    return adoption_read::ended;
  }
  out = std::move(*decoded);
  return adoption_read::adopted;
}

} // namespace cyme
