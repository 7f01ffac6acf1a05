#include "messages/names.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace cyme {

namespace {

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_'
         || c == '-';
}

std::string quoted(std::string_view x) {
  std::string out = "'";
  for (char c : x) {
    if (std::isprint(static_cast<unsigned char>(c)))
      out += c;
    else
      out += '?';
  }
  out += "'";
  return out;
}

} // namespace

std::string name_problem(std::string_view what, std::string_view name) {
  std::string subject{what};
  if (name.empty())
    return subject + " name is empty";
  if (name.size() > max_name_length)
    return subject + " name " + quoted(name.substr(0, 16)) + "... is longer than "
           + std::to_string(max_name_length) + " characters";
  if (!std::isalnum(static_cast<unsigned char>(name.front())))
    return subject + " name " + quoted(name)
           + " must start with a letter or digit";
  if (!std::all_of(name.begin(), name.end(), is_name_char))
    return subject + " name " + quoted(name)
           + " may only hold letters, digits, '.', '_' and '-'";
  return {};
}

bool loopback_host(std::string_view host) {
  std::string h{host};
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  std::string lower;
  for (char c : h)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "localhost")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6)
           || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  return false;
}

std::string broker_problem(std::string_view servers) {
  if (servers.empty())
    return {};
  size_t pos = 0;
  while (pos <= servers.size()) {
    auto end = servers.find(',', pos);
    if (end == std::string_view::npos)
      end = servers.size();
    auto item = servers.substr(pos, end - pos);
    auto colon = item.rfind(':');
    if (item.empty() || colon == std::string_view::npos || colon == 0)
      return "broker " + quoted(servers) + " is not host:port[,host:port...]";
    auto host = item.substr(0, colon);
    auto port = item.substr(colon + 1);
    bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.'
             || c == '-' || c == '_';
    });
    bool port_ok = !port.empty() && port.size() <= 5
                   && std::all_of(port.begin(), port.end(), [](char c) {
                        return std::isdigit(static_cast<unsigned char>(c));
                      });
    if (!host_ok)
      return "broker host " + quoted(host) + " is not a host name or address";
    if (!port_ok || std::stoul(std::string{port}) == 0
        || std::stoul(std::string{port}) > 65535)
      return "broker port " + quoted(port) + " is not a port number";
    pos = end + 1;
  }
  return {};
}

std::string spec_problem(const instance_spec& spec) {
  if (auto p = name_problem("instance", spec.name); !p.empty())
    return p;
  if (auto p = name_problem("app", spec.app); !p.empty())
    return p;
  std::set<std::string> seen;
  auto dq = direct_queue(spec.name);
  for (auto& q : spec.queues) {
    if (auto p = name_problem("queue", q); !p.empty())
      return p;
    if (q == dq)
      return "queue " + quoted(q) + " is the direct queue, always consumed";
    if (!seen.insert(q).second)
      return "queue " + quoted(q) + " is listed twice";
  }
  if (spec.launch.kind == instance_kind::process && !spec.queues.empty())
    return "an instance of kind 'process' consumes no queues";
  if (auto p = launch_problem(spec.launch); !p.empty())
    return p;
  if (spec.min_concurrency == 0)
    return "min_concurrency must be at least 1";
  if (spec.max_concurrency < spec.min_concurrency)
    return "max_concurrency (" + std::to_string(spec.max_concurrency)
           + ") is less than min_concurrency ("
           + std::to_string(spec.min_concurrency) + ")";
  return broker_problem(spec.broker);
}

} // namespace cyme
