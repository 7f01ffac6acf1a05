#include "transport/logging.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace cyme::log {

namespace {

/// The registered logger whose sink and level every component's logger
/// copies when it is made. No component is named so.
constexpr const char* template_name = " cyme template";

spdlog::level::level_enum to_spdlog(level x) {
  switch (x) {
    case level::trace:
      return spdlog::level::trace;
    case level::debug:
      return spdlog::level::debug;
    case level::info:
      return spdlog::level::info;
    case level::warn:
      return spdlog::level::warn;
    case level::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

/// The flag's name of a level spdlog hands back.
const char* name_of(spdlog::level::level_enum x) {
  switch (x) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    default:
      return "error";
  }
}

/// "2025-05-01T12:00:00.123Z".
std::string utc_time(spdlog::log_clock::time_point t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs);
  auto tt = spdlog::log_clock::to_time_t(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ",
                static_cast<int>(ms.count()));
  return buf;
}

std::string_view view(spdlog::string_view_t x) {
  return {x.data(), x.size()};
}

void append(spdlog::memory_buf_t& dest, std::string_view x) {
  dest.append(x.data(), x.data() + x.size());
}

/// "<time> <level> <component>: <message>", control characters of the
/// message escaped so that it stays on one line.
class text_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    std::string line = utc_time(msg.time);
    line += ' ';
    line += name_of(msg.level);
    line += ' ';
    line += view(msg.logger_name);
    line += ": ";
    for (char c : view(msg.payload)) {
      auto u = static_cast<unsigned char>(c);
      if (c == '\n') {
        line += "\\n";
      } else if (c == '\t') {
        line += "\\t";
      } else if (c == '\r') {
        line += "\\r";
      } else if (u < 0x20 || u == 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", u);
        line += hex;
      } else {
        line += c;
      }
    }
    line += '\n';
    append(dest, line);
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<text_formatter>();
  }
};

/// One JSON object per line: time, level, component, message (bytes that
/// are not UTF-8 replaced by U+FFFD).
class json_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["time"] = utc_time(msg.time);
    line["level"] = name_of(msg.level);
    line["component"] = std::string{view(msg.logger_name)};
    line["message"] = std::string{view(msg.payload)};
    append(dest, line.dump(-1, ' ', false,
                           nlohmann::json::error_handler_t::replace));
    append(dest, "\n");
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

std::shared_ptr<spdlog::logger> make_template(level min, format fmt) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (fmt == format::json)
    sink->set_formatter(std::make_unique<json_formatter>());
  else
    sink->set_formatter(std::make_unique<text_formatter>());
  auto out = std::make_shared<spdlog::logger>(template_name, std::move(sink));
  out->set_level(to_spdlog(min));
  return out;
}

/// Registers `made` under its name unless another thread registered one
/// first; the one registered.
std::shared_ptr<spdlog::logger>
register_once(std::shared_ptr<spdlog::logger> made) {
  try {
    spdlog::register_logger(made);
    return made;
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(made->name());
  }
}

std::shared_ptr<spdlog::logger> template_logger() {
  if (auto found = spdlog::get(template_name))
    return found;
  return register_once(make_template(level::info, format::text));
}

std::shared_ptr<spdlog::logger> component_logger(std::string_view component) {
  std::string name{component};
  if (auto found = spdlog::get(name))
    return found;
  auto base = template_logger();
  auto made = std::make_shared<spdlog::logger>(name, base->sinks().begin(),
                                               base->sinks().end());
  made->set_level(base->level());
  return register_once(std::move(made));
}

} // namespace

std::optional<level> parse_level(std::string_view text) {
  for (auto x : {level::trace, level::debug, level::info, level::warn,
                 level::error})
    if (text == to_string(x))
      return x;
  return std::nullopt;
}

std::optional<format> parse_format(std::string_view text) {
  if (text == "text")
    return format::text;
  if (text == "json")
    return format::json;
  return std::nullopt;
}

std::string to_string(level x) {
  return name_of(to_spdlog(x));
}

void setup(level min, format fmt) {
  // Component loggers made so far are made again from the new template.
  spdlog::drop_all();
  spdlog::register_logger(make_template(min, fmt));
}

void logger::write(level x, std::string_view message) const {
  component_logger(component_)->log(
    to_spdlog(x), spdlog::string_view_t{message.data(), message.size()});
}

std::optional<std::string> limiter::admit(const std::string& kind,
                                          std::string line,
                                          clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& w = windows_[kind];
  if (w.written == 0 || now - w.start >= window_) {
    if (w.held > 0)
      line += " (" + std::to_string(w.held) + " more " + kind
              + " lines held back in the last "
              + std::to_string(window_.count()) + " s)";
    w = {now, 0, 0};
  }
  if (w.written >= burst_) {
    ++w.held;
    return std::nullopt;
  }
  ++w.written;
  return line;
}

} // namespace cyme::log
