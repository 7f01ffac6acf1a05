#include "messages/launch.hpp"

#include <cctype>
#include <cmath>
#include <csignal>
#include <tuple>

#include <nlohmann/json.hpp>

namespace cyme {

namespace {

using json = nlohmann::json;

const std::pair<const char*, int> stop_signals[] = {
  {"TERM", SIGTERM}, {"INT", SIGINT},   {"QUIT", SIGQUIT},
  {"HUP", SIGHUP},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};

bool has_nul(const std::string& x) {
  return x.find('\0') != std::string::npos;
}

std::string text_problem(const std::string& what, const std::string& x) {
  if (x.size() > max_launch_text)
    return what + " is longer than " + std::to_string(max_launch_text)
           + " bytes";
  if (has_nul(x))
    return what + " holds a NUL byte";
  return {};
}

std::string path_problem(const std::string& what, const std::string& x) {
  if (auto p = text_problem(what, x); !p.empty())
    return p;
  if (!is_normal_absolute_path(x))
    return what + " must be an absolute path without '.', '..' or empty "
                  "components";
  return {};
}

bool is_env_key(const std::string& key) {
  if (key.empty() || key.size() > 128)
    return false;
  auto first = static_cast<unsigned char>(key.front());
  if (!(std::isalpha(first) || key.front() == '_'))
    return false;
  for (unsigned char c : key)
    if (!(std::isalnum(c) || c == '_'))
      return false;
  return true;
}

std::string env_problem(const std::map<std::string, std::string>& env) {
  if (env.size() > max_launch_env)
    return "env holds more than " + std::to_string(max_launch_env)
           + " entries";
  for (auto& [key, value] : env) {
    if (!is_env_key(key))
      return "env key must be 1 to 128 of [A-Za-z0-9_], not starting with a "
             "digit";
    if (key.rfind("CYME_", 0) == 0)
      return "env key '" + key + "' is reserved: the branch sets CYME_*";
    // The value is never quoted back: it may be a secret.
    if (auto p = text_problem("the value of env '" + key + "'", value);
        !p.empty())
      return p;
  }
  return {};
}

std::string args_problem(const std::vector<std::string>& args) {
  if (args.size() > max_launch_args)
    return "args holds more than " + std::to_string(max_launch_args)
           + " arguments";
  for (size_t i = 0; i < args.size(); ++i)
    if (auto p = text_problem("argument " + std::to_string(i + 1), args[i]);
        !p.empty())
      return p;
  return {};
}

/// Normalises "SIGTERM" and "term" to "TERM"; empty when not allowed.
std::string signal_name(std::string x) {
  for (auto& c : x)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (x.rfind("SIG", 0) == 0)
    x = x.substr(3);
  return stop_signal_number(x) != 0 ? x : std::string{};
}

/// Validates one field of a request and returns its stored form in `out`.
std::string field(const std::string& key, const json& v, json& out) {
  if (key == "program" || key == "cwd") {
    if (!v.is_string())
      return "'" + key + "' must be a string";
    auto x = v.get<std::string>();
    if (auto p = path_problem(key, x); !p.empty())
      return p;
    out = x;
    return {};
  }
  if (key == "args") {
    if (!v.is_array())
      return "'args' must be a list of strings";
    std::vector<std::string> args;
    for (auto& a : v) {
      if (!a.is_string())
        return "'args' must be a list of strings";
      args.push_back(a.get<std::string>());
    }
    if (auto p = args_problem(args); !p.empty())
      return p;
    out = args;
    return {};
  }
  if (key == "env") {
    if (!v.is_object())
      return "'env' must be an object of strings";
    std::map<std::string, std::string> env;
    for (auto& [k, x] : v.items()) {
      if (!x.is_string())
        return "'env' must be an object of strings";
      env[k] = x.get<std::string>();
    }
    if (auto p = env_problem(env); !p.empty())
      return p;
    out = env;
    return {};
  }
  if (key == "stop_signal") {
    auto name = v.is_string() ? signal_name(v.get<std::string>())
                              : std::string{};
    if (name.empty())
      return "'stop_signal' must be one of TERM, INT, QUIT, HUP, USR1, USR2";
    out = name;
    return {};
  }
  if (key == "stop_grace_s") {
    if (!v.is_number() || !(v.get<double>() >= 0)
        || v.get<double>() * 1000 > max_stop_grace_ms)
      return "'stop_grace_s' must be a number of seconds from 0 to 3600";
    out = v;
    return {};
  }
  if (key == "kind") {
    if (!v.is_string()
        || (v.get<std::string>() != "worker" && v.get<std::string>() != "process"))
      return "'kind' must be \"worker\" or \"process\"";
    out = v;
    return {};
  }
  return {};
}

const char* launch_keys[] = {"program", "args",         "env", "cwd",
                             "stop_signal", "stop_grace_s", "kind"};

/// Applies stored overrides onto `out`; false when they are malformed.
bool apply_overrides(const json& o, launch_spec& out) {
  if (!o.is_object())
    return false;
  for (auto* key : launch_keys) {
    auto i = o.find(key);
    if (i == o.end())
      continue;
    json checked;
    if (!field(key, *i, checked).empty())
      return false;
    std::string k = key;
    if (k == "program")
      out.program = checked.get<std::string>();
    else if (k == "args")
      out.args = checked.get<std::vector<std::string>>();
    else if (k == "env")
      out.env = checked.get<std::map<std::string, std::string>>();
    else if (k == "cwd")
      out.cwd = checked.get<std::string>();
    else if (k == "stop_signal")
      out.stop_signal = checked.get<std::string>();
    else if (k == "stop_grace_s")
      out.stop_grace_ms
        = static_cast<uint32_t>(std::llround(checked.get<double>() * 1000));
    else
      out.kind = checked.get<std::string>() == "process"
                   ? instance_kind::process
                   : instance_kind::worker;
  }
  return true;
}

} // namespace

std::string to_string(instance_kind x) {
  return x == instance_kind::process ? "process" : "worker";
}

bool operator==(const launch_spec& x, const launch_spec& y) {
  auto tie = [](const launch_spec& s) {
    return std::tie(s.kind, s.program, s.args, s.env, s.cwd, s.stop_signal,
                    s.stop_grace_ms);
  };
  return tie(x) == tie(y);
}

const std::vector<std::string>& branch_worker_flags() {
  static const std::vector<std::string> flags{
    "--name",         "--app",      "--broker",
    "--queues",       "--min",      "--max",
    "--instance-dir", "--control-fetch-wait-ms", "--kafka-config",
    "--control-since-ms"};
  return flags;
}

int stop_signal_number(const std::string& name) {
  for (auto& [n, sig] : stop_signals)
    if (name == n)
      return sig;
  return 0;
}

bool is_normal_absolute_path(const std::string& path) {
  if (path.empty() || path.front() != '/')
    return false;
  if (path == "/")
    return true;
  size_t pos = 1;
  while (pos <= path.size()) {
    auto end = path.find('/', pos);
    if (end == std::string::npos)
      end = path.size();
    auto part = path.substr(pos, end - pos);
    if (part.empty() || part == "." || part == "..")
      return false;
    pos = end + 1;
  }
  return true;
}

std::string merge_launch_overrides(const std::string& overrides_json,
                                   const std::string& changes_json,
                                   std::string& out_json) {
  auto base = json::parse(overrides_json, nullptr, false);
  if (!base.is_object())
    return "the stored launch settings are not a JSON object";
  auto changes = json::parse(changes_json, nullptr, false);
  if (!changes.is_object())
    return "launch settings must be a JSON object";
  for (auto* key : launch_keys) {
    auto i = changes.find(key);
    if (i == changes.end())
      continue;
    if (i->is_null()) {
      base.erase(key);
      continue;
    }
    json checked;
    if (auto p = field(key, *i, checked); !p.empty())
      return p;
    base[key] = checked;
  }
  out_json = base.dump();
  return {};
}

std::string resolve_launch(const std::string& app_overrides_json,
                           const std::string& instance_overrides_json,
                           launch_spec& out) {
  launch_spec resolved;
  if (!apply_overrides(json::parse(app_overrides_json, nullptr, false), resolved))
    return "the app's stored launch settings are malformed";
  if (!apply_overrides(json::parse(instance_overrides_json, nullptr, false), resolved))
    return "the instance's stored launch settings are malformed";
  out = std::move(resolved);
  return {};
}

std::string launch_problem(const launch_spec& l) {
  if (!l.program.empty())
    if (auto p = path_problem("program", l.program); !p.empty())
      return p;
  if (!l.cwd.empty())
    if (auto p = path_problem("cwd", l.cwd); !p.empty())
      return p;
  if (auto p = args_problem(l.args); !p.empty())
    return p;
  if (auto p = env_problem(l.env); !p.empty())
    return p;
  if (stop_signal_number(l.stop_signal) == 0)
    return "stop_signal must be one of TERM, INT, QUIT, HUP, USR1, USR2";
  if (l.stop_grace_ms > max_stop_grace_ms)
    return "stop_grace_s must be at most 3600";
  if (l.kind == instance_kind::process) {
    if (l.program.empty())
      return "an instance of kind 'process' needs a program";
    return {};
  }
  for (auto& arg : l.args)
    for (auto& flag : branch_worker_flags())
      if (arg == flag || arg.rfind(flag + "=", 0) == 0)
        return "argument '" + flag + "' is set by the branch for every "
               "worker; it cannot be given in args";
  return {};
}

std::string launch_json_text(const launch_spec& l) {
  json out{{"kind", to_string(l.kind)},
           {"program", l.program},
           {"args", l.args},
           {"env", l.env},
           {"cwd", l.cwd},
           {"stop_signal", l.stop_signal},
           {"stop_grace_s", l.stop_grace_ms / 1000.0}};
  return out.dump();
}

} // namespace cyme
