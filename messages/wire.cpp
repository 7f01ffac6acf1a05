#include "messages/wire.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include <nlohmann/json.hpp>

#include "messages/names.hpp"

namespace cyme {

namespace {

using json = nlohmann::json;

/// Parses bytes into a JSON object of the current version, or says why not.
template <class T>
std::optional<json> parse_object(std::string_view bytes, const char* what,
                                 decoded<T>& out) {
  if (bytes.size() > max_wire_message) {
    out.error = std::string{what} + " of " + std::to_string(bytes.size())
                + " bytes exceeds the limit of "
                + std::to_string(max_wire_message);
    return std::nullopt;
  }
  auto doc = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (doc.is_discarded()) {
    out.error = std::string{what} + " is not valid JSON";
    return std::nullopt;
  }
  if (!doc.is_object()) {
    out.error = std::string{what} + " is not a JSON object";
    return std::nullopt;
  }
  auto v = doc.find("v");
  if (v == doc.end() || !v->is_number_integer() || v->get<int64_t>() != wire_version) {
    out.error = std::string{what} + " has no \"v\": "
                + std::to_string(wire_version);
    return std::nullopt;
  }
  return doc;
}

/// Reads a string member; false (with an error) when missing or not a
/// string and `required`.
template <class T>
bool read_string(const json& doc, const char* key, std::string& dst,
                 bool required, decoded<T>& out) {
  auto i = doc.find(key);
  if (i == doc.end()) {
    if (required)
      out.error = std::string{"missing \""} + key + "\"";
    return !required;
  }
  if (!i->is_string()) {
    out.error = std::string{"\""} + key + "\" is not a string";
    return false;
  }
  dst = i->get<std::string>();
  return true;
}

template <class T>
bool read_uint(const json& doc, const char* key, uint64_t max, uint64_t& dst,
               decoded<T>& out) {
  auto i = doc.find(key);
  if (i == doc.end() || !i->is_number_unsigned() || i->get<uint64_t>() > max) {
    out.error = std::string{"\""} + key + "\" is not a number from 0 to "
                + std::to_string(max);
    return false;
  }
  dst = i->get<uint64_t>();
  return true;
}

template <class T>
bool read_strings(const json& doc, const char* key,
                  std::vector<std::string>& dst, decoded<T>& out) {
  auto i = doc.find(key);
  if (i == doc.end())
    return true;
  if (!i->is_array()) {
    out.error = std::string{"\""} + key + "\" is not an array";
    return false;
  }
  for (auto& x : *i) {
    if (!x.is_string()) {
      out.error = std::string{"\""} + key + "\" holds a non-string";
      return false;
    }
    dst.push_back(x.get<std::string>());
  }
  return true;
}

json stats_to_json(const worker_stats& s) {
  return json{{"pid", s.pid},
              {"uptime_ms", s.uptime_ms},
              {"queues", s.queues},
              {"autoscale",
               {{"max", s.autoscale_max},
                {"min", s.autoscale_min},
                {"current", s.concurrency}}},
              {"tasks", {{"done", s.tasks_done}, {"failed", s.tasks_failed}}},
              {"partitions", s.partitions}};
}

template <class T>
bool stats_from_json(const json& doc, worker_stats& s, decoded<T>& out) {
  uint64_t pid = 0;
  if (!read_uint(doc, "pid", INT32_MAX, pid, out)
      || !read_uint(doc, "uptime_ms", UINT64_MAX, s.uptime_ms, out)
      || !read_strings(doc, "queues", s.queues, out))
    return false;
  s.pid = static_cast<int32_t>(pid);
  auto a = doc.find("autoscale");
  auto t = doc.find("tasks");
  if (a == doc.end() || !a->is_object() || t == doc.end() || !t->is_object()) {
    out.error = "stats lack \"autoscale\" or \"tasks\"";
    return false;
  }
  uint64_t max = 0, min = 0, cur = 0;
  if (!read_uint(*a, "max", UINT32_MAX, max, out)
      || !read_uint(*a, "min", UINT32_MAX, min, out)
      || !read_uint(*a, "current", UINT32_MAX, cur, out)
      || !read_uint(*t, "done", UINT64_MAX, s.tasks_done, out)
      || !read_uint(*t, "failed", UINT64_MAX, s.tasks_failed, out))
    return false;
  s.autoscale_max = static_cast<uint32_t>(max);
  s.autoscale_min = static_cast<uint32_t>(min);
  s.concurrency = static_cast<uint32_t>(cur);
  if (auto p = doc.find("partitions"); p != doc.end()) {
    if (!p->is_object()) {
      out.error = "\"partitions\" is not an object";
      return false;
    }
    for (auto i = p->begin(); i != p->end(); ++i) {
      const json& n = i.value();
      if (!n.is_number_unsigned() || n.get<uint64_t>() > UINT32_MAX) {
        out.error = "\"partitions\" holds a non-count";
        return false;
      }
      s.partitions[i.key()] = n.get<uint32_t>();
    }
  }
  return true;
}

/// Parses JSON text kept in a string field back into a value ("null" when
/// empty).
json embedded(const std::string& text) {
  if (text.empty())
    return nullptr;
  auto doc = json::parse(text, nullptr, false);
  return doc.is_discarded() ? json(text) : doc;
}

// -- the fast path of replies ---------------------------------------------------

/// A reader of the JSON replies and commands are made of, for the fast
/// paths of decode_reply and decode_command_for: strings of printable ASCII without escapes, unsigned
/// integers, true, false, null, objects and arrays. On anything else it
/// gives up (returns false) and the full parser decides, so it accepts
/// nothing the full parser would read differently.
class wire_scan {
public:
  explicit wire_scan(std::string_view text)
    : p_(text.data()), end_(text.data() + text.size()) {
  }

  /// Consumes `c` (after whitespace) if it is next.
  bool take(char c) {
    skip_space();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  bool string(std::string_view& out) {
    skip_space();
    if (p_ >= end_ || *p_ != '"')
      return false;
    const char* begin = ++p_;
    for (; p_ < end_ && *p_ != '"'; ++p_) {
      auto c = static_cast<unsigned char>(*p_);
      if (c == '\\' || c < 0x20 || c >= 0x80)
        return false;
    }
    if (p_ >= end_)
      return false;
    out = std::string_view{begin, static_cast<size_t>(p_ - begin)};
    ++p_;
    return true;
  }

  bool string(std::string& out) {
    std::string_view v;
    if (!string(v))
      return false;
    out.assign(v.data(), v.size());
    return true;
  }

  /// An unsigned integer up to `max`, without sign, fraction or exponent.
  bool uint(uint64_t max, uint64_t& out) {
    skip_space();
    if (p_ >= end_ || *p_ < '0' || *p_ > '9')
      return false;
    if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9')
      return false;
    uint64_t v = 0;
    for (; p_ < end_ && *p_ >= '0' && *p_ <= '9'; ++p_) {
      auto d = static_cast<uint64_t>(*p_ - '0');
      if (v > (UINT64_MAX - d) / 10)
        return false;
      v = v * 10 + d;
    }
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E'))
      return false;
    if (v > max)
      return false;
    out = v;
    return true;
  }

  bool boolean(bool& out) {
    skip_space();
    if (word("true")) {
      out = true;
      return true;
    }
    if (word("false")) {
      out = false;
      return true;
    }
    return false;
  }

  /// Passes over one value of the subset, checking it.
  bool skip_value(int depth = 0) {
    if (depth > 32)
      return false;
    skip_space();
    if (p_ >= end_)
      return false;
    std::string_view ignored;
    uint64_t number = 0;
    switch (*p_) {
      case '"':
        return string(ignored);
      case 't':
        return word("true");
      case 'f':
        return word("false");
      case 'n':
        return word("null");
      case '{':
        return object([&](std::string_view) { return skip_value(depth + 1); });
      case '[':
        return array([&] { return skip_value(depth + 1); });
      default:
        return uint(UINT64_MAX, number);
    }
  }

  /// Reads an object, calling `member(key)` for each key with the reader
  /// at its value; `member` reads the value and returns false to give up.
  template <class F>
  bool object(F&& member) {
    if (!take('{'))
      return false;
    if (take('}'))
      return true;
    do {
      std::string_view key;
      if (!string(key) || !take(':') || !member(key))
        return false;
    } while (take(','));
    return take('}');
  }

  /// Reads an array, calling `item()` with the reader at each element;
  /// `item` reads it and returns false to give up.
  template <class F>
  bool array(F&& item) {
    if (!take('['))
      return false;
    if (take(']'))
      return true;
    do {
      if (!item())
        return false;
    } while (take(','));
    return take(']');
  }

  bool strings(std::vector<std::string>& out) {
    return array([&] {
      std::string v;
      if (!string(v))
        return false;
      out.push_back(std::move(v));
      return true;
    });
  }

  /// Where the next value starts, to read it again later.
  const char* here() {
    skip_space();
    return p_;
  }

  bool at_end() {
    skip_space();
    return p_ == end_;
  }

private:
  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r'))
      ++p_;
  }

  bool word(std::string_view w) {
    if (static_cast<size_t>(end_ - p_) < w.size()
        || std::string_view{p_, w.size()} != w)
      return false;
    p_ += w.size();
    return true;
  }

  const char* p_;
  const char* end_;
};

/// Marks `bit` in `seen`; false when it was marked already (a key given
/// twice, which the full parser reads as the last one).
bool first_time(unsigned& seen, unsigned bit) {
  if (seen & bit)
    return false;
  seen |= bit;
  return true;
}

/// The members every message has ("v", "id", "op") as the fast decoders
/// read them; the bits 1, 2 and 4 of `seen` are theirs.
struct envelope_head {
  unsigned seen = 0;
  uint64_t version = 0;
  std::string_view op_name;

  /// Reads `key`'s value when it is one of them (false: give up); nothing
  /// when it is another key.
  std::optional<bool> member(wire_scan& in, std::string_view key,
                             std::string& id) {
    if (key == "v")
      return first_time(seen, 1) && in.uint(UINT64_MAX, version);
    if (key == "id")
      return first_time(seen, 2) && in.string(id);
    if (key == "op")
      return first_time(seen, 4) && in.string(op_name);
    return std::nullopt;
  }

  /// The op, when all three came and the version is this one.
  std::optional<control_op> op() const {
    if ((seen & 7) != 7 || version != static_cast<uint64_t>(wire_version))
      return std::nullopt;
    return parse_control_op(op_name);
  }
};

bool scan_stats(wire_scan& in, worker_stats& s) {
  unsigned seen = 0;
  uint64_t pid = 0;
  bool ok = in.object([&](std::string_view key) {
    if (key == "pid")
      return first_time(seen, 1) && in.uint(INT32_MAX, pid);
    if (key == "uptime_ms")
      return first_time(seen, 2) && in.uint(UINT64_MAX, s.uptime_ms);
    if (key == "queues")
      return first_time(seen, 4) && in.strings(s.queues);
    if (key == "autoscale") {
      unsigned sub = 0;
      uint64_t max = 0, min = 0, cur = 0;
      bool read = first_time(seen, 8) && in.object([&](std::string_view k) {
        if (k == "max")
          return first_time(sub, 1) && in.uint(UINT32_MAX, max);
        if (k == "min")
          return first_time(sub, 2) && in.uint(UINT32_MAX, min);
        if (k == "current")
          return first_time(sub, 4) && in.uint(UINT32_MAX, cur);
        return in.skip_value();
      });
      s.autoscale_max = static_cast<uint32_t>(max);
      s.autoscale_min = static_cast<uint32_t>(min);
      s.concurrency = static_cast<uint32_t>(cur);
      return read && sub == 7;
    }
    if (key == "tasks") {
      unsigned sub = 0;
      bool read = first_time(seen, 16) && in.object([&](std::string_view k) {
        if (k == "done")
          return first_time(sub, 1) && in.uint(UINT64_MAX, s.tasks_done);
        if (k == "failed")
          return first_time(sub, 2) && in.uint(UINT64_MAX, s.tasks_failed);
        return in.skip_value();
      });
      return read && sub == 3;
    }
    if (key == "partitions")
      return first_time(seen, 32) && in.object([&](std::string_view k) {
               uint64_t n = 0;
               if (!in.uint(UINT32_MAX, n))
                 return false;
               s.partitions[std::string{k}] = static_cast<uint32_t>(n);
               return true;
             });
    return in.skip_value();
  });
  s.pid = static_cast<int32_t>(pid);
  return ok && (seen & (1 | 2 | 8 | 16)) == (1 | 2 | 8 | 16);
}

/// Decodes a reply of the usual form without building a document; nothing
/// when the reply is anything else (an error, escapes, floats, a key given
/// twice...), for the full parser to decode or refuse. Replies are most of
/// what a branch reads: two per instance a round.
std::optional<reply_envelope> decode_reply_fast(std::string_view bytes) {
  if (bytes.size() > max_wire_message)
    return std::nullopt;
  wire_scan in{bytes};
  reply_envelope env;
  const char* result = nullptr;
  envelope_head head;
  auto& seen = head.seen;
  bool read = in.object([&](std::string_view key) {
    if (auto done = head.member(in, key, env.id))
      return *done;
    if (key == "from")
      return first_time(seen, 8) && in.string(env.reply.instance);
    if (key == "ok")
      return first_time(seen, 16) && in.boolean(env.reply.ok);
    if (key == "error")
      return first_time(seen, 32) && in.string(env.reply.error);
    if (key == "result") {
      result = in.here();
      return first_time(seen, 64) && in.skip_value();
    }
    return in.skip_value();
  });
  if (!read || !in.at_end() || (seen & 31) != 31)
    return std::nullopt;
  auto op = head.op();
  if (!op)
    return std::nullopt;
  env.op = *op;
  if (!env.reply.ok) {
    if (!(seen & 32))
      return std::nullopt;
    return env;
  }
  // The full parser ignores "error" when the reply is ok.
  env.reply.error.clear();
  if (result == nullptr)
    return std::nullopt;
  wire_scan res{std::string_view{result, static_cast<size_t>(
                                            bytes.data() + bytes.size() - result)}};
  switch (env.op) {
    case control_op::stats:
      if (!scan_stats(res, env.reply.stats))
        return std::nullopt;
      break;
    case control_op::active_queues:
    case control_op::add_consumer:
    case control_op::cancel_consumer: {
      unsigned sub = 0;
      if (!res.object([&](std::string_view k) {
            if (k == "queues")
              return first_time(sub, 1) && res.strings(env.reply.queues);
            return res.skip_value();
          }))
        return std::nullopt;
      break;
    }
    case control_op::autoscale: {
      unsigned sub = 0;
      uint64_t max = 0, min = 0;
      if (!res.object([&](std::string_view k) {
            if (k == "max")
              return first_time(sub, 1) && res.uint(UINT32_MAX, max);
            if (k == "min")
              return first_time(sub, 2) && res.uint(UINT32_MAX, min);
            return res.skip_value();
          })
          || sub != 3)
        return std::nullopt;
      env.reply.stats.autoscale_max = static_cast<uint32_t>(max);
      env.reply.stats.autoscale_min = static_cast<uint32_t>(min);
      break;
    }
    default:
      if (!res.object([&](std::string_view) { return res.skip_value(); }))
        return std::nullopt;
      break;
  }
  return env;
}

} // namespace

std::string stats_json_text(const worker_stats& stats) {
  return stats_to_json(stats).dump();
}

std::string status_json_text(const supervisor_status& s) {
  return json{
    {"paused", s.paused},
    {"paused_by_operator", s.paused_by_operator},
    {"brokers_down", s.brokers_down},
    {"broker_errors", s.broker_errors},
    {"brokers_reviving", s.brokers_reviving},
    {"interval_s",
     std::chrono::duration_cast<std::chrono::duration<double>>(s.interval)
       .count()},
    {"round_in_progress", s.round_in_progress},
    {"rounds_completed", s.rounds_completed},
    {"last_round_ms",
     std::chrono::duration<double, std::milli>(s.last_round).count()},
    {"last_round_instances", s.last_round_instances},
    {"instances", s.instances},
    {"bus_suspected", s.bus_suspected},
    {"bus_suspected_since",
     s.bus_suspected ? json(wall_time_text(s.bus_suspected_since_ms))
                     : json(nullptr)}}
    .dump();
}

std::string wall_time_text(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::optional<control_op> parse_control_op(std::string_view name) {
  for (auto op : {control_op::ping, control_op::stats, control_op::active_queues,
                  control_op::add_consumer, control_op::cancel_consumer,
                  control_op::autoscale, control_op::shutdown})
    if (to_string(op) == name)
      return op;
  return std::nullopt;
}

std::string encode_command(const command_envelope& env) {
  const auto& c = env.command;
  json args = json::object();
  switch (c.op) {
    case control_op::add_consumer:
    case control_op::cancel_consumer:
      args["queue"] = c.queue;
      break;
    case control_op::autoscale:
      args["max"] = c.max_concurrency;
      args["min"] = c.min_concurrency;
      break;
    default:
      break;
  }
  json doc{{"v", wire_version},    {"id", env.id},
           {"op", to_string(c.op)}, {"reply_to", env.reply_to},
           {"to", c.destinations},  {"args", args}};
  return doc.dump();
}

std::vector<std::string> encode_command_messages(const command_envelope& env) {
  auto whole = encode_command(env);
  if (whole.size() <= max_wire_message)
    return {std::move(whole)};
  const auto& to = env.command.destinations;
  // Shares of about equal size; more of them while one is still too big
  // (names differ in length). A share of one name always fits: names are
  // at most 64 characters.
  auto parts = whole.size() / max_wire_message + 1;
  for (;;) {
    std::vector<std::string> out;
    auto per = (to.size() + parts - 1) / parts;
    bool fits = true;
    for (size_t first = 0; first < to.size() && fits; first += per) {
      auto share = env;
      auto last = std::min(to.size(), first + per);
      share.command.destinations.assign(to.begin() + static_cast<std::ptrdiff_t>(first),
                                        to.begin() + static_cast<std::ptrdiff_t>(last));
      out.push_back(encode_command(share));
      fits = out.back().size() <= max_wire_message;
    }
    if (fits || per == 1)
      return out;
    parts += parts / 4 + 1;
  }
}

namespace {

/// decode_command_for without a document: nothing when the command is not
/// of the usual form (or is refused), for the full parser to decide.
std::optional<command_envelope> decode_command_fast(std::string_view bytes,
                                                    std::string_view name,
                                                    bool& addressed) {
  if (bytes.size() > max_wire_message)
    return std::nullopt;
  wire_scan in{bytes};
  command_envelope env;
  const char* args = nullptr;
  envelope_head head;
  auto& seen = head.seen;
  bool listed = false;
  bool read = in.object([&](std::string_view key) {
    if (auto done = head.member(in, key, env.id))
      return *done;
    if (key == "reply_to")
      return first_time(seen, 8) && in.string(env.reply_to);
    if (key == "to")
      return first_time(seen, 16) && in.array([&] {
               std::string_view to;
               if (!in.string(to))
                 return false;
               listed = listed || to == name;
               return true;
             });
    if (key == "args") {
      args = in.here();
      return first_time(seen, 32) && in.skip_value();
    }
    return in.skip_value();
  });
  if (!read || !in.at_end() || (seen & 15) != 15 || env.id.empty()
      || env.id.size() > 128 || !name_problem("reply topic", env.reply_to).empty())
    return std::nullopt;
  auto op = head.op();
  if (!op)
    return std::nullopt;
  env.command.op = *op;
  std::string_view rest = args == nullptr
                            ? std::string_view{"{}"}
                            : std::string_view{args, static_cast<size_t>(
                                                       bytes.data() + bytes.size() - args)};
  wire_scan a{rest};
  unsigned sub = 0;
  uint64_t max = 0, min = 0;
  bool args_read = a.object([&](std::string_view k) {
    if (k == "queue" && (*op == control_op::add_consumer
                         || *op == control_op::cancel_consumer))
      return first_time(sub, 1) && a.string(env.command.queue);
    if (k == "max" && *op == control_op::autoscale)
      return first_time(sub, 2) && a.uint(10000, max);
    if (k == "min" && *op == control_op::autoscale)
      return first_time(sub, 4) && a.uint(10000, min);
    return a.skip_value();
  });
  if (!args_read)
    return std::nullopt;
  switch (*op) {
    case control_op::add_consumer:
    case control_op::cancel_consumer:
      if (sub != 1 || !name_problem("queue", env.command.queue).empty())
        return std::nullopt;
      break;
    case control_op::autoscale:
      if (sub != 6 || min == 0 || max < min)
        return std::nullopt;
      env.command.max_concurrency = static_cast<uint32_t>(max);
      env.command.min_concurrency = static_cast<uint32_t>(min);
      break;
    default:
      break;
  }
  addressed = listed;
  return env;
}

} // namespace

decoded<command_envelope> decode_command_for(std::string_view bytes,
                                             std::string_view name,
                                             bool& addressed) {
  addressed = false;
  if (auto fast = decode_command_fast(bytes, name, addressed)) {
    decoded<command_envelope> out;
    out.value = std::move(*fast);
    return out;
  }
  auto full = decode_command(bytes);
  if (full) {
    auto& to = full.value->command.destinations;
    addressed = std::find(to.begin(), to.end(), name) != to.end();
    to.clear();
  }
  return full;
}

decoded<command_envelope> decode_command(std::string_view bytes) {
  decoded<command_envelope> out;
  auto doc = parse_object(bytes, "command", out);
  if (!doc)
    return out;
  command_envelope env;
  std::string op_name;
  if (!read_string(*doc, "id", env.id, true, out)
      || !read_string(*doc, "op", op_name, true, out)
      || !read_string(*doc, "reply_to", env.reply_to, true, out)
      || !read_strings(*doc, "to", env.command.destinations, out))
    return out;
  if (env.id.empty() || env.id.size() > 128) {
    out.error = "\"id\" must hold 1 to 128 characters";
    return out;
  }
  if (auto p = name_problem("reply topic", env.reply_to); !p.empty()) {
    out.error = p;
    return out;
  }
  auto op = parse_control_op(op_name);
  if (!op) {
    out.error = "unknown op \"" + op_name.substr(0, 32) + "\"";
    return out;
  }
  env.command.op = *op;
  json args = json::object();
  if (auto a = doc->find("args"); a != doc->end()) {
    if (!a->is_object()) {
      out.error = "\"args\" is not an object";
      return out;
    }
    args = *a;
  }
  switch (*op) {
    case control_op::add_consumer:
    case control_op::cancel_consumer:
      if (!read_string(args, "queue", env.command.queue, true, out))
        return out;
      if (auto p = name_problem("queue", env.command.queue); !p.empty()) {
        out.error = p;
        return out;
      }
      break;
    case control_op::autoscale: {
      uint64_t max = 0, min = 0;
      if (!read_uint(args, "max", 10000, max, out)
          || !read_uint(args, "min", 10000, min, out))
        return out;
      if (min == 0 || max < min) {
        out.error = "autoscale needs 1 <= min <= max";
        return out;
      }
      env.command.max_concurrency = static_cast<uint32_t>(max);
      env.command.min_concurrency = static_cast<uint32_t>(min);
      break;
    }
    default:
      break;
  }
  out.value = std::move(env);
  return out;
}

namespace {

uint64_t load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

/// Whether any of the eight bytes in `x` is below 0x20, '"' or '\\'
/// (bytes from 0x80 on never are). Subtracting n from every byte sets a
/// byte's high bit, where the byte had it clear, exactly when some byte
/// is below n (n <= 0x80); a byte equal to b is a zero byte of x ^ b.
bool needs_escape_in(uint64_t x) {
  constexpr uint64_t ones = 0x0101010101010101ull;
  constexpr uint64_t highs = 0x8080808080808080ull;
  auto zero_in = [](uint64_t y) { return (y - ones) & ~y & highs; };
  return ((x - ones * 0x20) & ~x & highs) | zero_in(x ^ (ones * '"'))
         | zero_in(x ^ (ones * '\\'));
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  // Runs of bytes that need no escape are copied whole: names and paths
  // rarely hold any, and a listing of 10,000 instances writes 6 MB.
  size_t plain = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    // Eight bytes at a time while none is a control, quote or backslash.
    while (i + 8 <= s.size() && !needs_escape_in(load8(s.data() + i)))
      i += 8;
    if (i == s.size())
      break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    out.append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
    }
  }
  out.append(s.data() + plain, s.size() - plain);
  out += '"';
}

namespace {

bool ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80)
      return false;
  return true;
}

/// Appends `"key":` (keys are plain ASCII words).
void put_key(std::string& out, const char* key) {
  out += '"';
  out += key;
  out += "\":";
}

void put_strings(std::string& out, const std::vector<std::string>& v) {
  out += '[';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0)
      out += ',';
    append_json_string(out, v[i]);
  }
  out += ']';
}

void put_stats(std::string& out, const worker_stats& s) {
  out += "{\"autoscale\":{\"current\":";
  out += std::to_string(s.concurrency);
  out += ",\"max\":";
  out += std::to_string(s.autoscale_max);
  out += ",\"min\":";
  out += std::to_string(s.autoscale_min);
  out += "},\"partitions\":{";
  bool first = true;
  for (auto& [queue, n] : s.partitions) {
    if (!std::exchange(first, false))
      out += ',';
    append_json_string(out, queue);
    out += ':';
    out += std::to_string(n);
  }
  out += "},\"pid\":";
  out += std::to_string(s.pid);
  out += ",\"queues\":";
  put_strings(out, s.queues);
  out += ",\"tasks\":{\"done\":";
  out += std::to_string(s.tasks_done);
  out += ",\"failed\":";
  out += std::to_string(s.tasks_failed);
  out += "},\"uptime_ms\":";
  out += std::to_string(s.uptime_ms);
  out += '}';
}

/// Whether every text a reply would carry is ASCII, so `append_json_string`
/// writes it as the full encoder would.
bool ascii_reply(const reply_envelope& env) {
  const auto& r = env.reply;
  auto all = [](const std::vector<std::string>& v) {
    return std::all_of(v.begin(), v.end(), [](const std::string& s) { return ascii(s); });
  };
  if (!ascii(env.id) || !ascii(r.instance) || !ascii(r.error) || !all(r.queues)
      || !all(r.stats.queues))
    return false;
  for (auto& [queue, n] : r.stats.partitions)
    if (!ascii(queue))
      return false;
  return true;
}

} // namespace

std::string encode_reply(const reply_envelope& env) {
  if (!ascii_reply(env))
    return encode_reply_full(env);
  // Written directly, as the full encoder writes it (keys in order, no
  // spaces): replies are what every worker sends most.
  const auto& r = env.reply;
  std::string out;
  out.reserve(128 + r.instance.size() + env.id.size());
  out += '{';
  if (!r.ok) {
    put_key(out, "error");
    append_json_string(out, r.error);
    out += ',';
  }
  put_key(out, "from");
  append_json_string(out, r.instance);
  out += ',';
  put_key(out, "id");
  append_json_string(out, env.id);
  out += r.ok ? ",\"ok\":true," : ",\"ok\":false,";
  put_key(out, "op");
  append_json_string(out, to_string(env.op));
  if (r.ok) {
    out += ',';
    put_key(out, "result");
    switch (env.op) {
      case control_op::stats:
        put_stats(out, r.stats);
        break;
      case control_op::active_queues:
      case control_op::add_consumer:
      case control_op::cancel_consumer:
        out += "{\"queues\":";
        put_strings(out, r.queues);
        out += '}';
        break;
      case control_op::autoscale:
        out += "{\"max\":";
        out += std::to_string(r.stats.autoscale_max);
        out += ",\"min\":";
        out += std::to_string(r.stats.autoscale_min);
        out += '}';
        break;
      case control_op::ping:
        out += "{\"pong\":true}";
        break;
      case control_op::shutdown:
        out += "{}";
        break;
    }
  }
  out += ",\"v\":";
  out += std::to_string(wire_version);
  out += '}';
  return out;
}

std::string encode_reply_full(const reply_envelope& env) {
  const auto& r = env.reply;
  json doc{{"v", wire_version},
           {"id", env.id},
           {"op", to_string(env.op)},
           {"from", r.instance},
           {"ok", r.ok}};
  if (!r.ok) {
    doc["error"] = r.error;
  } else {
    switch (env.op) {
      case control_op::stats:
        doc["result"] = stats_to_json(r.stats);
        break;
      case control_op::active_queues:
      case control_op::add_consumer:
      case control_op::cancel_consumer:
        doc["result"] = json{{"queues", r.queues}};
        break;
      case control_op::autoscale:
        doc["result"] = json{{"max", r.stats.autoscale_max},
                             {"min", r.stats.autoscale_min}};
        break;
      case control_op::ping:
        doc["result"] = json{{"pong", true}};
        break;
      case control_op::shutdown:
        doc["result"] = json::object();
        break;
    }
  }
  return doc.dump();
}

decoded<reply_envelope> decode_reply(std::string_view bytes) {
  if (auto fast = decode_reply_fast(bytes)) {
    decoded<reply_envelope> out;
    out.value = std::move(*fast);
    return out;
  }
  return decode_reply_full(bytes);
}

decoded<reply_envelope> decode_reply_full(std::string_view bytes) {
  decoded<reply_envelope> out;
  auto doc = parse_object(bytes, "reply", out);
  if (!doc)
    return out;
  reply_envelope env;
  std::string op_name;
  if (!read_string(*doc, "id", env.id, true, out)
      || !read_string(*doc, "op", op_name, true, out)
      || !read_string(*doc, "from", env.reply.instance, true, out))
    return out;
  auto op = parse_control_op(op_name);
  if (!op) {
    out.error = "unknown op \"" + op_name.substr(0, 32) + "\"";
    return out;
  }
  env.op = *op;
  auto ok = doc->find("ok");
  if (ok == doc->end() || !ok->is_boolean()) {
    out.error = "\"ok\" is not a boolean";
    return out;
  }
  env.reply.ok = ok->get<bool>();
  if (!env.reply.ok) {
    if (!read_string(*doc, "error", env.reply.error, true, out))
      return out;
    out.value = std::move(env);
    return out;
  }
  auto res = doc->find("result");
  if (res == doc->end() || !res->is_object()) {
    out.error = "\"result\" is not an object";
    return out;
  }
  switch (env.op) {
    case control_op::stats:
      if (!stats_from_json(*res, env.reply.stats, out))
        return out;
      break;
    case control_op::active_queues:
    case control_op::add_consumer:
    case control_op::cancel_consumer:
      if (!read_strings(*res, "queues", env.reply.queues, out))
        return out;
      break;
    case control_op::autoscale: {
      uint64_t max = 0, min = 0;
      if (!read_uint(*res, "max", UINT32_MAX, max, out)
          || !read_uint(*res, "min", UINT32_MAX, min, out))
        return out;
      env.reply.stats.autoscale_max = static_cast<uint32_t>(max);
      env.reply.stats.autoscale_min = static_cast<uint32_t>(min);
      break;
    }
    default:
      break;
  }
  out.value = std::move(env);
  return out;
}

std::string encode_task(const task_message& task) {
  json doc{{"v", wire_version},
           {"id", task.id},
           {"handler", task.handler},
           {"args", embedded(task.args_json)}};
  return doc.dump();
}

decoded<task_message> decode_task(std::string_view bytes) {
  decoded<task_message> out;
  auto doc = parse_object(bytes, "task", out);
  if (!doc)
    return out;
  task_message task;
  if (!read_string(*doc, "id", task.id, true, out)
      || !read_string(*doc, "handler", task.handler, true, out))
    return out;
  if (task.id.empty() || task.id.size() > 128) {
    out.error = "\"id\" must hold 1 to 128 characters";
    return out;
  }
  if (auto a = doc->find("args"); a != doc->end())
    task.args_json = a->dump();
  out.value = std::move(task);
  return out;
}

std::string task_id_of(std::string_view bytes) {
  auto doc = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (!doc.is_object())
    return {};
  auto id = doc.find("id");
  if (id == doc.end() || !id->is_string())
    return {};
  auto text = id->get<std::string>();
  return text.size() <= 128 ? text : std::string{};
}

std::string to_string(task_state x) {
  return x == task_state::success ? "SUCCESS" : "FAILURE";
}

std::string encode_result(const task_result& r) {
  json doc{{"v", wire_version},
           {"id", r.id},
           {"state", to_string(r.state)},
           {"result", embedded(r.result_json)},
           {"instance", r.instance},
           {"queue", r.queue},
           {"started_at_ms", r.started_at_ms},
           {"finished_at_ms", r.finished_at_ms}};
  if (r.state == task_state::failure)
    doc["error"] = r.error;
  return doc.dump();
}

decoded<task_result> decode_result(std::string_view bytes) {
  decoded<task_result> out;
  auto doc = parse_object(bytes, "result", out);
  if (!doc)
    return out;
  task_result r;
  std::string state;
  if (!read_string(*doc, "id", r.id, true, out)
      || !read_string(*doc, "state", state, true, out)
      || !read_string(*doc, "instance", r.instance, false, out)
      || !read_string(*doc, "queue", r.queue, false, out)
      || !read_string(*doc, "error", r.error, false, out))
    return out;
  if (state == "SUCCESS")
    r.state = task_state::success;
  else if (state == "FAILURE")
    r.state = task_state::failure;
  else {
    out.error = "unknown state \"" + state.substr(0, 32) + "\"";
    return out;
  }
  if (auto res = doc->find("result"); res != doc->end())
    r.result_json = res->dump();
  for (auto [key, dst] : {std::pair{"started_at_ms", &r.started_at_ms},
                          std::pair{"finished_at_ms", &r.finished_at_ms}})
    if (auto i = doc->find(key); i != doc->end() && i->is_number_integer())
      *dst = i->get<int64_t>();
  out.value = std::move(r);
  return out;
}

} // namespace cyme
