#include "api/common.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <chrono>
#include <ctime>
#include <random>

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

std::string new_uuid() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  std::uniform_int_distribution<uint64_t> dist;
  uint64_t hi = dist(gen), lo = dist(gen);
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL; // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; // variant
  char buf[37];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

json instance_json(const instance_spec& spec, const instance_status& st,
                   const http_parts& parts) {
  auto launch = json::parse(launch_json_text(spec.launch));
  if (spec.launch.program.empty())
    launch["program"] = parts.worker_program;
  if (spec.launch.cwd.empty())
    launch["cwd"] = parts.instances_root + "/" + spec.name;
  auto own = json::parse(spec.launch_overrides, nullptr, false);
  json out{{"name", spec.name},
           {"branch", parts.branch_id},
           {"app", spec.app},
           {"queues", spec.queues},
           {"max_concurrency", spec.max_concurrency},
           {"min_concurrency", spec.min_concurrency},
           {"is_enabled", spec.enabled},
           {"broker", spec.broker},
           {"state", to_string(st.state)},
           {"pid", st.pid},
           {"restarts", st.restarts},
           {"consuming_from", st.consuming_from},
           {"concurrency", st.concurrency},
           {"autoscale", {{"max", st.autoscale_max}, {"min", st.autoscale_min}}},
           {"disabled_reason", spec.disabled_reason},
           {"supervised", st.supervised},
           {"launch_overrides", own.is_object() ? own : json::object()},
           {"restarts_in_window", st.restarts_in_window},
           {"started_at", nullptr},
           {"uptime_s", nullptr},
           {"last_exit", nullptr},
           {"rss_bytes", nullptr},
           {"cpu_seconds", nullptr},
           {"ping_rtt_ms", nullptr}};
  if (st.pid > 0 && st.started_at_ms > 0) {
    out["started_at"] = wall_time_text(st.started_at_ms);
    out["uptime_s"] = static_cast<double>(wall_now_ms() - st.started_at_ms) / 1000;
  }
  if (st.last_exit_at_ms > 0)
    out["last_exit"] = json{
      {"code", st.last_exit_code >= 0 ? json(st.last_exit_code) : json(nullptr)},
      {"signal", st.last_exit_signal.empty() ? json(nullptr)
                                             : json(st.last_exit_signal)},
      {"at", wall_time_text(st.last_exit_at_ms)}};
  if (auto use = usage_of(st.pid)) {
    out["rss_bytes"] = use->resident_bytes;
    out["cpu_seconds"] = use->cpu_seconds;
  }
  if (st.ping_rtt_us >= 0)
    out["ping_rtt_ms"] = static_cast<double>(st.ping_rtt_us) / 1000;
  out.update(launch);
  return out;
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
