#include "api/common.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string_view>

#include "messages/launch.hpp"
#include "messages/names.hpp"
#include "messages/wire.hpp"
#include "api/events.hpp"
#include "transport/proc.hpp"

namespace cyme::api {

int status_of(const caf::error& err) {
  if (err.category() == caf::atom("cyme")) {
    switch (static_cast<cyme_errc>(err.code())) {
      case cyme_errc::invalid_argument:
        return 400;
      case cyme_errc::unknown_instance:
      case cyme_errc::not_found:
        return 404;
      case cyme_errc::conflict:
        return 409;
      case cyme_errc::process_failure:
      case cyme_errc::bus_failure:
        return 503;
      case cyme_errc::store_failure:
        return 500;
    }
  }
  // Timeouts and unreachable actors.
  return 503;
}

params::params(const http::request& req) {
  for (auto& [k, v] : req.params)
    values_[k] = json(v);
  auto type = req.header("content-type");
  if (type.find("application/x-www-form-urlencoded") != std::string::npos) {
    // Form fields, as a query string in the body.
    std::string path;
    std::multimap<std::string, std::string> fields;
    if (!http::parse_target("/?" + req.body, path, fields))
      fail(400, "the form body is not valid");
    for (auto& [k, v] : fields)
      values_[k] = json(v);
  }
  if (!req.body.empty() && type.find("application/json") != std::string::npos) {
    auto doc = json::parse(req.body, nullptr, false);
    if (doc.is_discarded())
      fail(400, "the body is not valid JSON");
    if (doc.is_array()) {
      // Only the task batch takes one; its route says so.
      array_ = std::move(doc);
      return;
    }
    if (!doc.is_object())
      fail(400, "the JSON body must be an object");
    for (auto& [k, v] : doc.items())
      values_[k] = v;
  }
}

std::optional<std::string> params::text(const std::string& key) const {
  auto i = values_.find(key);
  if (i == values_.end())
    return std::nullopt;
  if (!i->second.is_string())
    fail(400, "'" + key + "' must be a string");
  return i->second.get<std::string>();
}

std::optional<uint32_t> params::count(const std::string& key) const {
  auto i = values_.find(key);
  if (i == values_.end())
    return std::nullopt;
  const auto& v = i->second;
  if (v.is_number_unsigned() && v.get<uint64_t>() <= 10000)
    return v.get<uint32_t>();
  if (v.is_string()) {
    auto s = v.get<std::string>();
    if (!s.empty() && s.size() <= 5
        && std::all_of(s.begin(), s.end(), ::isdigit)
        && std::stoul(s) <= 10000)
      return static_cast<uint32_t>(std::stoul(s));
  }
  fail(400, "'" + key + "' must be a whole number from 0 to 10000");
}

std::optional<std::vector<std::string>> params::list(const std::string& key) const {
  auto i = values_.find(key);
  if (i == values_.end())
    return std::nullopt;
  std::vector<std::string> out;
  const auto& v = i->second;
  if (v.is_array()) {
    for (auto& x : v) {
      if (!x.is_string())
        fail(400, "'" + key + "' must hold strings");
      out.push_back(x.get<std::string>());
    }
  } else if (v.is_string()) {
    auto s = v.get<std::string>();
    size_t pos = 0;
    while (!s.empty() && pos <= s.size()) {
      auto end = s.find(',', pos);
      if (end == std::string::npos)
        end = s.size();
      out.push_back(s.substr(pos, end - pos));
      pos = end + 1;
    }
  } else {
    fail(400, "'" + key + "' must be a list or a comma-separated string");
  }
  return out;
}

bool params::flag(const std::string& key) const {
  auto i = values_.find(key);
  if (i == values_.end())
    return false;
  const auto& v = i->second;
  if (v.is_boolean())
    return v.get<bool>();
  if (v.is_number_integer())
    return v.get<int64_t>() != 0;
  if (v.is_string()) {
    auto s = v.get<std::string>();
    return s == "1" || s == "true" || s == "yes";
  }
  return false;
}

std::optional<json> params::value(const std::string& key) const {
  auto i = values_.find(key);
  if (i == values_.end())
    return std::nullopt;
  if (i->second.is_string()) {
    auto doc = json::parse(i->second.get<std::string>(), nullptr, false);
    if (!doc.is_discarded())
      return doc;
  }
  return i->second;
}

void check_name(const char* what, const std::string& name) {
  if (auto p = name_problem(what, name); !p.empty())
    fail(400, p);
}

namespace {

/// Bytes from the kernel's random source (getrandom), handed out from a
/// per-thread buffer refilled 4 KiB at a time: one system call per 256
/// ids, not one per id (a batch makes 10,000).
class kernel_random {
public:
  void fill(unsigned char* out, size_t n) {
    while (n > 0) {
      if (used_ == buf_.size())
        refill();
      auto k = std::min(n, buf_.size() - used_);
      std::memcpy(out, buf_.data() + used_, k);
      // What was handed out does not stay behind.
      std::memset(buf_.data() + used_, 0, k);
      used_ += k;
      out += k;
      n -= k;
    }
  }

private:
  void refill() {
    size_t got = 0;
    while (got < buf_.size()) {
      auto r = ::getrandom(buf_.data() + got, buf_.size() - got, 0);
      if (r < 0) {
        if (errno == EINTR)
          continue;
        throw std::runtime_error("getrandom: " + errno_text(errno));
      }
      got += static_cast<size_t>(r);
    }
    used_ = 0;
  }

  std::array<unsigned char, 4096> buf_{};
  size_t used_ = buf_.size();
};

} // namespace

std::string new_uuid() {
  static thread_local kernel_random source;
  unsigned char b[16];
  source.fill(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40); // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80); // variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out += '-';
    out += hex[b[i] >> 4];
    out += hex[b[i] & 0x0f];
  }
  return out;
}

namespace {

/// Writes JSON text straight into a string: an instance's view is written
/// for every instance of a listing (100,000 across a cluster), where
/// building a json object first costs most of the time.
class json_writer {
public:
  explicit json_writer(std::string& out) : out_(out) {
  }

  json_writer& key(std::string_view k) {
    comma();
    quoted(k);
    out_ += ':';
    first_ = true; // the value follows without a comma
    return *this;
  }

  void string(std::string_view x) {
    comma();
    quoted(x);
    first_ = false;
  }

  template <class Int>
  void integer(Int x) {
    comma();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), x);
    out_.append(buf, r.ptr);
    first_ = false;
  }

  /// The shortest text that reads back as `x`, with a fraction part.
  void number(double x) {
    comma();
    first_ = false;
    if (!std::isfinite(x)) {
      out_ += "null";
      return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), x);
    std::string_view text{buf, static_cast<size_t>(r.ptr - buf)};
    out_ += text;
    if (text.find_first_of(".e") == std::string_view::npos)
      out_ += ".0";
  }

  void boolean(bool x) {
    raw(x ? "true" : "false");
  }

  void null() {
    raw("null");
  }

  /// Text that is JSON already.
  void raw(std::string_view x) {
    comma();
    out_ += x;
    first_ = false;
  }

  void begin_object() {
    comma();
    out_ += '{';
    first_ = true;
  }
  void end_object() {
    out_ += '}';
    first_ = false;
  }
  void begin_array() {
    comma();
    out_ += '[';
    first_ = true;
  }
  void end_array() {
    out_ += ']';
    first_ = false;
  }

  void strings(const std::vector<std::string>& xs) {
    begin_array();
    for (auto& x : xs)
      string(x);
    end_array();
  }

private:
  void comma() {
    if (!first_)
      out_ += ',';
  }

  void quoted(std::string_view x) {
    append_json_string(out_, x);
  }

  std::string& out_;
  bool first_ = true;
};

} // namespace

void append_instance_text(std::string& out, const instance_spec& spec,
                          const instance_status& st, const http_parts& parts) {
  // Keys in byte order, as every other view of the API writes them.
  const auto& l = spec.launch;
  json_writer w{out};
  w.begin_object();
  w.key("app").string(spec.app);
  w.key("args").strings(l.args);
  w.key("autoscale").begin_object();
  w.key("max").integer(st.autoscale_max);
  w.key("min").integer(st.autoscale_min);
  w.end_object();
  w.key("branch").string(parts.branch_id);
  w.key("broker").string(spec.broker);
  w.key("concurrency").integer(st.concurrency);
  w.key("consuming_from").strings(st.consuming_from);
  auto use = usage_of(st.pid);
  w.key("cpu_seconds");
  use ? w.number(use->cpu_seconds) : w.null();
  w.key("cwd").string(l.cwd.empty() ? parts.instances_root + "/" + spec.name
                                    : l.cwd);
  w.key("disabled_reason").string(spec.disabled_reason);
  w.key("env").begin_object();
  for (auto& [k, v] : l.env)
    w.key(k).string(v);
  w.end_object();
  w.key("is_enabled").boolean(spec.enabled);
  w.key("kind").string(to_string(l.kind));
  w.key("last_exit");
  if (st.last_exit_at_ms > 0) {
    w.begin_object();
    w.key("at").string(wall_time_text(st.last_exit_at_ms));
    w.key("code");
    st.last_exit_code >= 0 ? w.integer(st.last_exit_code) : w.null();
    w.key("signal");
    st.last_exit_signal.empty() ? w.null() : w.string(st.last_exit_signal);
    w.end_object();
  } else {
    w.null();
  }
  w.key("launch_overrides");
  if (spec.launch_overrides.empty() || spec.launch_overrides == "{}") {
    w.raw("{}");
  } else {
    auto own = json::parse(spec.launch_overrides, nullptr, false);
    w.raw(own.is_object() ? own.dump() : "{}");
  }
  w.key("max_concurrency").integer(spec.max_concurrency);
  w.key("min_concurrency").integer(spec.min_concurrency);
  w.key("name").string(spec.name);
  w.key("pid").integer(st.pid);
  w.key("ping_rtt_ms");
  st.ping_rtt_us >= 0 ? w.number(static_cast<double>(st.ping_rtt_us) / 1000)
                      : w.null();
  w.key("program").string(l.program.empty() ? parts.worker_program : l.program);
  w.key("queues").strings(spec.queues);
  w.key("restarts").integer(st.restarts);
  w.key("restarts_in_window").integer(st.restarts_in_window);
  w.key("rss_bytes");
  use ? w.integer(use->resident_bytes) : w.null();
  bool started = st.pid > 0 && st.started_at_ms > 0;
  w.key("started_at");
  started ? w.string(wall_time_text(st.started_at_ms)) : w.null();
  w.key("state").string(to_string(st.state));
  w.key("stop_grace_s").number(l.stop_grace_ms / 1000.0);
  w.key("stop_signal").string(l.stop_signal);
  w.key("supervised").boolean(st.supervised);
  w.key("uptime_s");
  started ? w.number(static_cast<double>(wall_now_ms() - st.started_at_ms) / 1000)
          : w.null();
  w.end_object();
}

json instance_json(const instance_spec& spec, const instance_status& st,
                   const http_parts& parts) {
  std::string text;
  append_instance_text(text, spec, st, parts);
  return json::parse(text);
}

/// An app: its broker and the launch fields its instances inherit.
json app_json(const app_record& app) {
  auto launch = json::parse(app.launch, nullptr, false);
  return json{{"name", app.name},
              {"broker", app.broker},
              {"launch", launch.is_object() ? launch : json::object()}};
}

json supervisor_json(const supervisor_status& s) {
  return json::parse(status_json_text(s));
}

json report_json(const action_report& r) {
  return json{{"name", r.instance},
              {"outcome", to_string(r.result)},
              {"detail", r.detail}};
}

json result_json(const std::string& id, const std::optional<task_result>& r) {
  if (!r)
    return json{{"id", id}, {"state", "PENDING"}, {"result", nullptr}};
  auto parsed = json::parse(r->result_json, nullptr, false);
  json out{{"id", id},
           {"state", to_string(r->state)},
           {"result", parsed.is_discarded() ? json(nullptr) : parsed},
           {"instance", r->instance},
           {"queue", r->queue}};
  if (r->state == task_state::failure)
    out["error"] = r->error;
  return out;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    auto end = path.find('/', pos);
    if (end == std::string::npos)
      end = path.size();
    if (end > pos)
      out.push_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

void reply(http::response& res, int status, const json& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = body.dump();
}

} // namespace cyme::api
