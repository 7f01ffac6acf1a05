#include "apps/cli/branch_call.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <ostream>

#include <httplib.h>

#include "apps/cli/render.hpp"

namespace cyme::cli {

namespace {

using json = nlohmann::ordered_json;

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size()
         && std::equal(prefix.begin(), prefix.end(), text.begin(),
                       [](char a, char b) {
                         return std::tolower(static_cast<unsigned char>(a))
                                == std::tolower(static_cast<unsigned char>(b));
                       });
}

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
}

bool is_ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

/// The branch's `error` sentence, or the best we can say without one (a
/// proxy or a branch of another version may answer plain text).
std::string error_text(const httplib::Response& res) {
  auto body = json::parse(res.body, nullptr, false);
  if (body.is_object()) {
    auto i = body.find("error");
    if (i != body.end() && i->is_string() && !i->get<std::string>().empty())
      return i->get<std::string>();
  }
  std::string text = res.body.substr(0, 200);
  text.erase(std::remove(text.begin(), text.end(), '\r'), text.end());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.pop_back();
  if (text.empty() || text.find('\n') != std::string::npos)
    return "the branch answered HTTP " + std::to_string(res.status);
  return text;
}

/// What to say when `tasks wait` ran out of time: the branch's sentence if
/// it gave one, else which task is still pending.
std::string pending_text(const httplib::Response& res) {
  auto body = json::parse(res.body, nullptr, false);
  if (body.is_object()) {
    auto e = body.find("error");
    if (e != body.end() && e->is_string() && !e->get<std::string>().empty())
      return e->get<std::string>();
    auto id = body.find("id");
    if (id != body.end() && id->is_string())
      return "task " + id->get<std::string>()
             + " is still PENDING; the wait timed out";
  }
  return "the task is still PENDING; the wait timed out";
}

/// Why a request got no answer, in words for the person at the terminal.
std::string transport_problem(httplib::Error error, int read_timeout_s) {
  switch (error) {
    case httplib::Error::Connection:
      return "connection refused or failed";
    case httplib::Error::ConnectionTimeout:
      return "connecting timed out";
    case httplib::Error::Read:
      return "no complete answer (timed out after "
             + std::to_string(read_timeout_s)
             + " s, or the connection was closed)";
    case httplib::Error::Write:
      return "the request could not be sent";
    case httplib::Error::SSLConnection:
      return "the TLS handshake failed (does the branch serve https?)";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the CA certificates (--http-ca)";
    case httplib::Error::SSLServerVerification:
      return "its certificate is not signed by a CA this client trusts "
             "(--http-ca), or does not name this host";
    default:
      return httplib::to_string(error);
  }
}

std::string url_of(const branch_address& address) {
  bool ipv6 = address.host.find(':') != std::string::npos;
  return (address.tls ? "https://" : "http://")
         + (ipv6 ? "[" + address.host + "]" : address.host) + ":"
         + std::to_string(address.port);
}

/// Prints a successful (or still pending) answer: as the server sent it for
/// `--json`, else for people. A body that is not JSON is shown raw.
void print_body(const branch_call& call, const httplib::Response& res,
                bool as_json, std::ostream& out) {
  if (res.body.empty())
    return;
  auto body = json::parse(res.body, nullptr, false);
  if (body.is_discarded()) {
    out << res.body;
    if (res.body.back() != '\n')
      out << "\n";
    return;
  }
  if (as_json)
    out << body.dump(2) << "\n";
  else
    print_answer(call.shown_as, call.names_title, body, out);
}

/// Turns Server-Sent Events into one line per event: the event's JSON
/// with `as_json`, else "TIME BRANCH APP/INSTANCE KIND DETAIL".
class event_printer {
public:
  event_printer(bool as_json, std::ostream& out)
    : as_json_(as_json), out_(out) {
  }

  void feed(const char* data, size_t len) {
    buffer_.append(data, len);
    size_t end;
    while ((end = buffer_.find("\n\n")) != std::string::npos) {
      auto block = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      print(block);
    }
  }

private:
  void print(const std::string& block) {
    size_t pos = 0;
    while (pos < block.size()) {
      auto nl = block.find('\n', pos);
      auto line = block.substr(pos, nl == std::string::npos ? std::string::npos
                                                            : nl - pos);
      pos = nl == std::string::npos ? block.size() : nl + 1;
      if (line.rfind("data: ", 0) != 0)
        continue; // ids, comments, retry hints
      auto text = line.substr(6);
      if (as_json_) {
        out_ << text << std::endl;
        continue;
      }
      auto e = json::parse(text, nullptr, false);
      if (!e.is_object())
        continue;
      auto field = [&](const char* key) {
        return e.contains(key) && e[key].is_string() ? e[key].get<std::string>()
                                                     : std::string{};
      };
      auto who = field("instance").empty()
                   ? std::string{"supervisor"}
                   : field("app") + "/" + field("instance");
      out_ << field("time") << "  " << field("branch") << "  " << who << "  "
           << field("kind");
      if (!field("detail").empty())
        out_ << "  " << field("detail");
      out_ << std::endl;
    }
  }

  bool as_json_;
  std::ostream& out_;
  std::string buffer_;
};

} // namespace

std::optional<branch_address> parse_branch_url(std::string_view url,
                                               std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<branch_address> {
    if (why != nullptr)
      *why = "branch URL '" + std::string{url} + "' " + reason
             + " (expected http://HOST:PORT or https://HOST:PORT, e.g. "
               "http://127.0.0.1:8000)";
    return std::nullopt;
  };
  branch_address address;
  std::string_view rest;
  if (starts_with_nocase(url, "http://")) {
    rest = url.substr(7);
  } else if (starts_with_nocase(url, "https://")) {
    rest = url.substr(8);
    address.tls = true;
    address.port = 443;
  } else {
    return fail("does not start with http:// or https://");
  }
  auto end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, end);
  if (end != std::string_view::npos && rest.substr(end) != "/")
    return fail("has a path, query or fragment; the API is at the root");
  if (authority.find('@') != std::string_view::npos)
    return fail("holds user info; use --token to authenticate");
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos || close == 1)
      return fail("has a malformed IPv6 address");
    auto host = authority.substr(1, close - 1);
    if (!std::all_of(host.begin(), host.end(), is_ipv6_char))
      return fail("has a malformed IPv6 address");
    address.host = std::string{host};
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return fail("has text after the IPv6 address");
      port = after.substr(1);
      if (port.empty())
        return fail("has an empty port");
    }
  } else {
    auto colon = authority.find(':');
    auto host = authority.substr(0, colon);
    if (host.empty())
      return fail("has no host");
    if (!std::all_of(host.begin(), host.end(), is_host_char))
      return fail("has a host that is not a name or an address");
    address.host = std::string{host};
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty())
        return fail("has an empty port");
    }
  }
  if (!port.empty()) {
    if (port.size() > 5
        || !std::all_of(port.begin(), port.end(), [](char c) {
             return std::isdigit(static_cast<unsigned char>(c));
           }))
      return fail("has a port that is not a number");
    address.port = std::stoi(std::string{port});
    if (address.port < 1 || address.port > 65535)
      return fail("has a port outside 1-65535");
  }
  return address;
}

std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0x0f];
    }
  }
  return out;
}

std::string branch_call::target() const {
  std::string out = "/";
  for (auto& segment : segments)
    out += percent_encode(segment) + "/";
  char separator = '?';
  for (auto& [key, value] : query) {
    out += separator + percent_encode(key) + "=" + percent_encode(value);
    separator = '&';
  }
  return out;
}

int perform(const connection_settings& settings, const branch_call& call,
            bool as_json, std::ostream& out, std::ostream& err) {
  // ClientImpl is plain HTTP; SSLClient, made from it, HTTPS, checking the
  // branch's certificate and that it names the host.
  std::unique_ptr<httplib::ClientImpl> tls_or_plain;
  if (settings.address.tls) {
    auto c = std::make_unique<httplib::SSLClient>(settings.address.host,
                                                  settings.address.port);
    c->enable_server_certificate_verification(true);
    if (!settings.ca_file.empty())
      c->set_ca_cert_path(settings.ca_file);
    tls_or_plain = std::move(c);
  } else {
    tls_or_plain = std::make_unique<httplib::ClientImpl>(
      settings.address.host, settings.address.port);
  }
  auto& client = *tls_or_plain;
  int read_timeout_s = std::max(settings.timeout_s, call.min_read_timeout_s);
  client.set_connection_timeout(settings.timeout_s);
  client.set_read_timeout(read_timeout_s);
  client.set_write_timeout(settings.timeout_s);
  client.set_keep_alive(false);
  // The target is encoded already; encoding it twice would corrupt '%'.
  client.set_url_encode(false);

  httplib::Request request;
  request.method = call.method;
  request.path = call.target();
  request.set_header("Accept", "application/json");
  if (!settings.token.empty())
    request.set_header("Authorization", "Bearer " + settings.token);
  if (call.body) {
    // Text from the command line may be invalid UTF-8; replace it rather
    // than throw, the branch validates names and values anyway.
    request.body = call.body->dump(-1, ' ', false,
                                   json::error_handler_t::replace);
    request.set_header("Content-Type", "application/json");
  }

  // A stream is printed as it arrives; an error answer is kept whole.
  bool streamed = call.shown_as == view::event_stream
                  || call.shown_as == view::text_stream;
  int stream_status = 0;
  std::string error_body;
  event_printer events{as_json, out};
  if (streamed) {
    // A followed log of an instance on another branch is served there.
    client.set_follow_location(true);
    request.response_handler = [&](const httplib::Response& r) {
      stream_status = r.status;
      return true;
    };
    request.content_receiver = [&](const char* data, size_t len, uint64_t,
                                   uint64_t) {
      if (stream_status < 200 || stream_status >= 300)
        error_body.append(data, len);
      else if (call.shown_as == view::event_stream)
        events.feed(data, len);
      else
        out.write(data, static_cast<std::streamsize>(len)).flush();
      return true;
    };
  }

  auto result = client.send(request);
  if (result && streamed) {
    result->body = error_body;
    if (result->status >= 200 && result->status < 300)
      return exit_ok;
  }
  if (!result) {
    err << "cyme: cannot reach the branch at " << url_of(settings.address)
        << ": " << transport_problem(result.error(), read_timeout_s) << "\n";
    return exit_unreachable;
  }
  const auto& res = *result;
  if (res.status >= 200 && res.status < 300) {
    print_body(call, res, as_json, out);
    return exit_ok;
  }
  if (res.status == 504 && call.timeout_means_pending) {
    // The answer still describes the task (state PENDING): scripts polling
    // with `wait` get it on stdout like a finished result.
    print_body(call, res, as_json, out);
    err << "cyme: " << pending_text(res) << "\n";
    return exit_still_pending;
  }
  if (res.status >= 400 && res.status < 500) {
    err << "cyme: " << error_text(res) << "\n";
    return exit_refused;
  }
  err << "cyme: " << error_text(res) << " (HTTP " << res.status << " from "
      << url_of(settings.address) << ")\n";
  return exit_unreachable;
}

} // namespace cyme::cli
