#include "transport/http_api.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "messages/errors.hpp"
#include "messages/launch.hpp"
#include "messages/names.hpp"
#include "messages/wire.hpp"

namespace cyme {

namespace {

using json = nlohmann::json;
using std::chrono::seconds;

/// An answer other than 2xx, raised inside a handler and turned into
/// {"error": text} with `status`.
struct http_error {
  int status;
  std::string text;
};

[[noreturn]] void fail(int status, std::string text) {
  throw http_error{status, std::move(text)};
}

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

/// The parameters of a request: query string and form fields as strings,
/// overridden by the members of a JSON object body.
class params {
public:
  explicit params(const httplib::Request& req) {
    for (auto& [k, v] : req.params)
      values_[k] = json(v);
    auto type = req.get_header_value("Content-Type");
    if (!req.body.empty() && type.find("application/json") != std::string::npos) {
      auto doc = json::parse(req.body, nullptr, false);
      if (doc.is_discarded())
        fail(400, "the body is not valid JSON");
      if (!doc.is_object())
        fail(400, "the JSON body must be an object");
      for (auto& [k, v] : doc.items())
        values_[k] = v;
    }
  }

  bool has(const std::string& key) const {
    return values_.count(key) > 0;
  }

  std::optional<std::string> text(const std::string& key) const {
    auto i = values_.find(key);
    if (i == values_.end())
      return std::nullopt;
    if (!i->second.is_string())
      fail(400, "'" + key + "' must be a string");
    return i->second.get<std::string>();
  }

  std::optional<uint32_t> count(const std::string& key) const {
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

  std::optional<std::vector<std::string>> list(const std::string& key) const {
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

  bool flag(const std::string& key) const {
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

  /// A value as JSON: JSON body members as they are; a string (query or
  /// form) parsed as JSON when it is, else kept as a string.
  std::optional<json> value(const std::string& key) const {
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

private:
  std::map<std::string, json> values_;
};

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

/// The launch fields a request may set, as named in JSON.
const char* launch_fields[] = {"program", "args", "env", "cwd",
                               "stop_signal", "stop_grace_s", "kind"};

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
           {"launch_overrides", own.is_object() ? own : json::object()}};
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

} // namespace

struct http_api::impl {
  http_parts parts;
  http_settings settings;
  std::mutex producers_mtx;
  /// (broker, queue) pairs whose topic is known to exist: checked once,
  /// not with a metadata request per task.
  std::set<std::pair<std::string, std::string>> known_topics;
  struct task_producer {
    std::unique_ptr<kafka::producer> client;
    /// The version of its broker's properties it was made with.
    uint64_t version = 0;
  };
  std::map<std::string, task_producer> producers;

  template <class T, class Handle, class... Ts>
  T ask(const Handle& dest, Ts&&... xs) {
    caf::scoped_actor self{*parts.sys};
    std::optional<T> out;
    caf::error err;
    self
      ->request(dest, caf::timespan{settings.request_timeout},
                std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); },
               [&](caf::error& e) { err = std::move(e); });
    if (!out)
      fail(status_of(err), describe(err));
    return std::move(*out);
  }

  // -- model helpers ----------------------------------------------------------

  app_record get_app(const std::string& app) {
    check_name("app", app);
    return ask<app_record>(parts.store, get_app_atom::value, app);
  }

  std::string app_broker(const std::string& app) {
    return get_app(app).broker;
  }

  /// The app as the model holds it, or, when it is not there, a new one:
  /// the default broker and no launch defaults.
  app_record app_or_new(const std::string& app) {
    app_record rec{app, "", "{}"};
    caf::scoped_actor self{*parts.sys};
    self->request(parts.store, caf::timespan{settings.request_timeout},
                  get_app_atom::value, app)
      .receive([&](app_record& x) { rec = std::move(x); },
               [&](caf::error&) {});
    return rec;
  }

  /// The launch fields a request sets, as one JSON object (null members
  /// included: they mean "inherit again").
  static std::string launch_changes(const params& p) {
    json changes = json::object();
    for (auto* key : launch_fields)
      if (auto v = p.value(key))
        changes[key] = *v;
    return changes.dump();
  }

  /// Applies a request's launch fields to stored overrides; 400 when one
  /// is invalid.
  static std::string merged_overrides(const std::string& overrides,
                                      const params& p) {
    std::string out;
    if (auto prob = merge_launch_overrides(overrides, launch_changes(p), out);
        !prob.empty())
      fail(400, prob);
    return out;
  }

  /// 403 unless the branch may run `launch`'s program (and, for
  /// cyme-worker, its --exec programs); 400 when one cannot be run.
  void check_program(const launch_spec& launch) const {
    const auto& program = launch.program;
    if (program.empty() || program == parts.worker_program) {
      if (launch.kind == instance_kind::worker)
        for (auto& exec : exec_programs(launch.args))
          check_allowed(exec);
      return;
    }
    check_allowed(program);
  }

  void check_allowed(const std::string& program) const {
    if (parts.programs == nullptr || !parts.programs->allows(program))
      fail(403, "program " + program
                  + " is not on this branch's allow-list (cyme-branch "
                    "--allow-program PATH); allowed: "
                  + parts.worker_program
                  + (parts.programs ? ", " + parts.programs->describe() : ""));
    if (auto prob = program_allow_list::runnable_problem(program);
        !prob.empty())
      fail(400, prob);
  }

  /// The `kafka` field of an app request: librdkafka properties of the
  /// app's own broker (null or {} removes them: the branch's apply again).
  /// Nothing when not given; 400 when invalid or the app has no broker of
  /// its own.
  static std::optional<kafka::config_map> kafka_field(const params& p,
                                                      const std::string& broker) {
    auto v = p.value("kafka");
    if (!v)
      return std::nullopt;
    if (broker.empty())
      fail(400, "'kafka' sets the client properties of an app's own broker; "
                "give 'broker' too (the branch's default broker takes "
                "--kafka-property and the [kafka] section of --config)");
    kafka::config_map props;
    if (!v->is_null()) {
      if (!v->is_object())
        fail(400, "'kafka' must be an object of librdkafka properties");
      for (auto& [key, value] : v->items()) {
        if (!value.is_string())
          fail(400, "Kafka property '" + key + "' must be a string");
        props[key] = value.get<std::string>();
      }
    }
    if (auto prob = kafka::properties_problem(props); !prob.empty())
      fail(400, prob);
    return props;
  }

  /// An app with its broker's own Kafka properties, secrets masked.
  json app_view(const app_record& app) const {
    auto out = app_json(app);
    if (!app.broker.empty())
      if (auto own = parts.kafka_properties->own(app.broker)) {
        json props = json::object();
        for (auto& [key, value] : *own)
          props[key] = kafka::is_secret_property(key) ? "(secret)" : value;
        out["kafka"] = props;
      }
    return out;
  }

  /// Names of the instances of `app` whose launch differs in `after`.
  static std::vector<std::string>
  launch_changed(const std::vector<instance_spec>& before,
                 const std::vector<instance_spec>& after,
                 const std::string& app) {
    std::map<std::string, const launch_spec*> old;
    for (auto& s : before)
      if (s.app == app)
        old[s.name] = &s.launch;
    std::vector<std::string> out;
    for (auto& s : after)
      if (s.app == app && s.enabled)
        if (auto i = old.find(s.name); i != old.end() && *i->second != s.launch)
          out.push_back(s.name);
    return out;
  }

  /// Restarts instances whose launch an operator changed: once, not rate
  /// limited. Returns the reports unless `nowait`.
  std::vector<action_report> restart_changed(std::vector<std::string> names,
                                             bool nowait) {
    if (names.empty())
      return {};
    if (nowait) {
      caf::anon_send(parts.sup, restart_atom::value, std::move(names));
      return {};
    }
    return ask<std::vector<action_report>>(parts.sup, restart_atom::value,
                                           std::move(names));
  }

  std::optional<instance_spec> find_spec(const std::string& name) {
    auto specs = ask<std::vector<instance_spec>>(
      parts.store, get_atom::value, std::vector<std::string>{name});
    if (specs.empty())
      return std::nullopt;
    return specs.front();
  }

  instance_spec spec_in(const std::string& app, const std::string& name) {
    check_name("app", app);
    check_name("instance", name);
    auto spec = find_spec(name);
    if (!spec || spec->app != app)
      fail(404, "no instance '" + name + "' in app '" + app + "'");
    return *spec;
  }

  instance_status status_of_instance(const std::string& name) {
    caf::scoped_actor self{*parts.sys};
    instance_status st;
    st.name = name;
    self->request(parts.sup, caf::timespan{settings.request_timeout},
                  status_atom::value, name)
      .receive([&](instance_status& x) { st = std::move(x); },
               [&](caf::error&) {
                 // Not supervised (yet): the defaults say "stopped".
               });
    return st;
  }

  json instance_view(const instance_spec& spec) {
    return instance_json(spec, status_of_instance(spec.name), parts);
  }

  /// Lets the supervisor act on `name` unless `nowait`; returns its report.
  std::optional<action_report> settle(const std::string& name, bool nowait) {
    std::vector<std::string> names{name};
    if (nowait) {
      caf::anon_send(parts.sup, verify_atom::value, names, false);
      return std::nullopt;
    }
    auto reports = ask<std::vector<action_report>>(parts.sup, verify_atom::value,
                                                   names, false);
    if (reports.empty())
      return std::nullopt;
    return reports.front();
  }

  /// Stores `spec`, lets the supervisor act (a restart when what it runs
  /// changed), answers the instance.
  void store_and_settle(const instance_spec& spec, const params& p,
                        httplib::Response& res, int created_status,
                        const launch_spec* launch_before = nullptr) {
    auto stored = ask<instance_spec>(parts.store, put_instance_atom::value, spec);
    auto nowait = p.flag("nowait");
    std::optional<action_report> report;
    if (launch_before && *launch_before != stored.launch && stored.enabled) {
      auto reports = restart_changed({stored.name}, nowait);
      if (!reports.empty())
        report = reports.front();
    } else {
      report = settle(stored.name, nowait);
    }
    auto out = instance_view(stored);
    if (report)
      out["outcome"] = report_json(*report);
    reply(res, nowait ? 202 : created_status, out);
  }

  static void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }

  // -- the cluster ------------------------------------------------------------

  bool clustered(const params& p) const {
    return parts.cluster != nullptr && !p.flag("local");
  }

  std::vector<branch_info> peers() const {
    std::vector<branch_info> out;
    for (auto& b : parts.cluster->live())
      if (b.id != parts.branch_id)
        out.push_back(b);
    return out;
  }

  static std::optional<std::pair<std::string, int>>
  split_url(const std::string& url) {
    const std::string scheme = "http://";
    if (url.rfind(scheme, 0) != 0)
      return std::nullopt;
    auto rest = url.substr(scheme.size());
    auto slash = rest.find('/');
    if (slash != std::string::npos)
      rest = rest.substr(0, slash);
    auto colon = rest.rfind(':');
    if (colon == std::string::npos)
      return std::pair{rest, 80};
    return std::pair{rest.substr(0, colon), std::atoi(rest.c_str() + colon + 1)};
  }

  /// Calls a peer branch; nothing when it cannot be reached.
  std::optional<httplib::Response>
  peer_call(const branch_info& peer, const std::string& method,
            const std::string& target, const std::string& body = {},
            const std::string& type = "application/json") {
    auto hp = split_url(peer.http);
    if (!hp)
      return std::nullopt;
    httplib::Client c{hp->first, hp->second};
    // Branches of one cluster share the token.
    if (!settings.token.empty())
      c.set_bearer_token_auth(settings.token.c_str());
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(static_cast<time_t>(settings.request_timeout.count()), 0);
    httplib::Result r{nullptr, httplib::Error::Unknown};
    if (method == "GET")
      r = c.Get(target.c_str());
    else if (method == "DELETE")
      r = c.Delete(target.c_str(), body, type.c_str());
    else if (method == "PUT")
      r = c.Put(target.c_str(), body, type.c_str());
    else
      r = c.Post(target.c_str(), body, type.c_str());
    if (!r)
      return std::nullopt;
    return *r;
  }

  static std::string percent_encode(const std::string& x) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : x) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  }

  /// Hands the request to `peer` as it came (marked local) and answers
  /// with the peer's answer.
  void forward(const branch_info& peer, const httplib::Request& req,
               httplib::Response& res) {
    if (!try_forward(peer, req, res))
      fail(503, "branch '" + peer.id + "' did not answer");
  }

  /// Like `forward`, but false (and `res` untouched) when the peer does not
  /// answer.
  bool try_forward(const branch_info& peer, const httplib::Request& req,
                   httplib::Response& res) {
    std::string target = req.path + "?local=1";
    for (auto& [k, v] : req.params)
      if (k != "local")
        target += "&" + percent_encode(k) + "=" + percent_encode(v);
    auto type = req.get_header_value("Content-Type");
    auto r = peer_call(peer, req.method, target, req.body,
                       type.empty() ? "application/json" : type);
    if (!r)
      return false;
    res.status = r->status;
    res.set_content(r->body, "application/json");
    return true;
  }

  /// When instance `name` is not this branch's, the live branch that has it.
  std::optional<branch_info> owner_elsewhere(const std::string& app,
                                             const std::string& name) {
    check_name("app", app);
    check_name("instance", name);
    auto spec = find_spec(name);
    if (spec && spec->app == app)
      return std::nullopt;
    for (auto& peer : peers()) {
      auto r = peer_call(peer, "GET",
                         "/" + app + "/instances/" + name + "/?local=1");
      if (r && r->status == 200)
        return peer;
    }
    return std::nullopt;
  }

  // -- endpoints --------------------------------------------------------------

  void apps(const std::string& method, httplib::Response& res) {
    if (method != "GET")
      fail(405, "method not allowed");
    reply(res, 200, ask<std::vector<std::string>>(parts.store,
                                                  list_apps_atom::value));
  }

  void app(const std::string& method, const std::string& app,
           const params& p, httplib::Response& res) {
    check_name("app", app);
    if (app == "supervisor")
      fail(400, "the app name 'supervisor' is reserved");
    if (method == "GET") {
      reply(res, 200, app_view(get_app(app)));
    } else if (method == "PUT" || method == "POST") {
      // Fields not given keep their value.
      auto rec = app_or_new(app);
      if (auto b = p.text("broker"))
        rec.broker = *b;
      if (auto prob = broker_problem(rec.broker); !prob.empty())
        fail(400, prob);
      rec.launch = merged_overrides(rec.launch, p);
      launch_spec defaults;
      if (auto prob = resolve_launch(rec.launch, "{}", defaults); !prob.empty())
        fail(400, prob);
      check_program(defaults);
      auto props = kafka_field(p, rec.broker);
      auto before = ask<std::vector<instance_spec>>(parts.store, list_atom::value);
      auto created = ask<bool>(parts.store, put_app_atom::value, rec);
      if (props) {
        ask<bool>(parts.store, put_broker_atom::value, rec.broker, *props);
        parts.kafka_properties->set_own(
          rec.broker, props->empty() ? std::nullopt
                                     : std::optional<kafka::config_map>{*props});
      }
      auto after = ask<std::vector<instance_spec>>(parts.store, list_atom::value);
      auto out = app_view(rec);
      auto changed = launch_changed(before, after, app);
      auto nowait = p.flag("nowait");
      auto reports = restart_changed(changed, nowait);
      if (!changed.empty()) {
        out["restarted"] = changed;
        json outcomes = json::array();
        for (auto& r : reports)
          outcomes.push_back(report_json(r));
        out["outcomes"] = outcomes;
      }
      reply(res, created ? 201 : 200, out);
    } else if (method == "DELETE") {
      ask<bool>(parts.store, delete_app_atom::value, app);
      reply(res, 200, json{{"ok", true}});
    } else {
      fail(405, "method not allowed");
    }
  }

  void instances(const httplib::Request& req, const std::string& method,
                 const std::string& app, const params& p,
                 httplib::Response& res) {
    if (method == "GET") {
      app_broker(app); // 404 for an unknown app
      auto specs = ask<std::vector<instance_spec>>(parts.store, list_atom::value);
      auto statuses = ask<std::vector<instance_status>>(parts.sup,
                                                        list_atom::value);
      std::map<std::string, instance_status> by_name;
      for (auto& s : statuses)
        by_name[s.name] = s;
      json out = json::array();
      for (auto& spec : specs) {
        if (spec.app != app)
          continue;
        auto st = by_name.count(spec.name) ? by_name[spec.name]
                                           : instance_status{spec.name};
        out.push_back(instance_json(spec, st, parts));
      }
      if (clustered(p))
        for (auto& peer : peers()) {
          auto r = peer_call(peer, "GET", "/" + app + "/instances/?local=1");
          if (!r || r->status != 200)
            continue;
          auto theirs = json::parse(r->body, nullptr, false);
          if (theirs.is_array())
            for (auto& x : theirs)
              out.push_back(x);
        }
      reply(res, 200, out);
    } else if (method == "PUT" || method == "POST") {
      if (clustered(p)) {
        auto target = parts.cluster->least_loaded();
        if (target && target->id != parts.branch_id) {
          parts.cluster->placed_on(target->id);
          // A branch that went silent but is not yet out of the view does
          // not answer: place the instance here instead.
          if (try_forward(*target, req, res))
            return;
        }
        parts.cluster->placed_on(parts.branch_id);
      }
      put_instance(app, new_uuid(), p, res);
    } else {
      fail(405, "method not allowed");
    }
  }

  void put_instance(const std::string& app, const std::string& name,
                    const params& p, httplib::Response& res) {
    check_name("app", app);
    check_name("instance", name);
    auto existing = find_spec(name);
    if (existing && existing->app != app)
      fail(409, "instance '" + name + "' belongs to app '" + existing->app + "'");
    // An unknown app is created with the instance.
    auto app_rec = app_or_new(app);
    instance_spec spec;
    if (existing) {
      spec = *existing;
    } else {
      spec.name = name;
      spec.app = app;
      // The app's broker unless one is given.
      spec.broker = app_rec.broker;
    }
    spec.launch_overrides = merged_overrides(spec.launch_overrides, p);
    if (auto prob = resolve_launch(app_rec.launch, spec.launch_overrides,
                                   spec.launch);
        !prob.empty())
      fail(400, prob);
    bool process = spec.launch.kind == instance_kind::process;
    if (process && (p.has("queues") || p.has("max_concurrency")
                    || p.has("min_concurrency")))
      fail(400, "instance '" + name + "' is of kind 'process': it has no "
                "queues and no concurrency to set");
    if (process) {
      // Any queues it had as a worker go: a process consumes none.
      spec.queues.clear();
      spec.max_concurrency = spec.min_concurrency = 1;
    }
    if (auto qs = p.list("queues"))
      spec.queues = *qs;
    if (auto n = p.count("max_concurrency"))
      spec.max_concurrency = *n;
    if (auto n = p.count("min_concurrency"))
      spec.min_concurrency = *n;
    if (auto b = p.text("broker"))
      spec.broker = *b;
    if (auto prob = spec_problem(spec); !prob.empty())
      fail(400, prob);
    check_program(spec.launch);
    store_and_settle(spec, p, res, existing ? 200 : 201,
                     existing ? &existing->launch : nullptr);
  }

  /// 400 for a request that needs the control protocol of a process.
  static void require_worker(const instance_spec& spec, const char* what) {
    if (spec.launch.kind == instance_kind::process)
      fail(400, "instance '" + spec.name + "' is of kind 'process': it has no "
                + std::string{what} + " (only workers speak the control "
                  "protocol)");
  }

  void instance(const std::string& method, const std::string& app,
                const std::string& name, const params& p,
                httplib::Response& res) {
    if (method == "GET") {
      reply(res, 200, instance_view(spec_in(app, name)));
    } else if (method == "PUT" || method == "POST") {
      put_instance(app, name, p, res);
    } else if (method == "DELETE") {
      spec_in(app, name);
      ask<bool>(parts.store, delete_instance_atom::value, name);
      auto report = settle(name, p.flag("nowait"));
      json out{{"ok", true}, {"name", name}};
      if (report) {
        out["outcome"] = to_string(report->result);
        out["detail"] = report->detail;
      }
      reply(res, report ? 200 : 202, out);
    } else {
      fail(405, "method not allowed");
    }
  }

  void instance_action(const std::string& method, const std::string& app,
                       const std::string& name, const std::string& action,
                       const params& p, httplib::Response& res) {
    if (action == "stats") {
      if (method != "GET")
        fail(405, "method not allowed");
      auto spec = spec_in(app, name);
      require_worker(spec, "stats");
      control_command cmd;
      cmd.op = control_op::stats;
      cmd.broker = spec.broker;
      cmd.destinations = {name};
      cmd.timeout = seconds{3};
      auto replies = ask<std::vector<control_reply>>(parts.bus,
                                                     command_atom::value, cmd);
      if (replies.empty() || !replies.front().ok)
        fail(503, "instance '" + name + "' did not answer");
      reply(res, 200, json::parse(stats_json_text(replies.front().stats)));
      return;
    }
    if (action == "autoscale") {
      auto spec = spec_in(app, name);
      if (method == "GET") {
        reply(res, 200, json{{"max", spec.max_concurrency},
                             {"min", spec.min_concurrency}});
        return;
      }
      if (method != "POST" && method != "PUT")
        fail(405, "method not allowed");
      require_worker(spec, "concurrency to autoscale");
      auto max = p.count("max");
      auto min = p.count("min");
      if (!max && !min)
        fail(400, "autoscale needs 'max', 'min' or both");
      if (max)
        spec.max_concurrency = *max;
      if (min)
        spec.min_concurrency = *min;
      if (auto prob = spec_problem(spec); !prob.empty())
        fail(400, prob);
      store_and_settle(spec, p, res, 200);
      return;
    }
    if (method != "POST")
      fail(405, "method not allowed");
    auto spec = spec_in(app, name);
    if (action == "restart") {
      auto reports = ask<std::vector<action_report>>(
        parts.sup, restart_atom::value, std::vector<std::string>{name});
      reply(res, 200, reports.empty() ? json::object() : report_json(reports[0]));
    } else if (action == "enable" || action == "disable") {
      bool enable = action == "enable";
      auto reason = enable ? std::string{}
                           : p.text("reason").value_or("disabled by operator");
      auto updated = ask<instance_spec>(parts.store, set_enabled_atom::value,
                                        name, enable, reason);
      auto nowait = p.flag("nowait");
      auto report = settle(name, nowait);
      auto out = instance_view(updated);
      if (report)
        out["outcome"] = report_json(*report);
      reply(res, nowait ? 202 : 200, out);
    } else {
      fail(404, "no such path");
    }
  }

  void consumer(const std::string& method, const std::string& app,
                const std::string& name, const std::string& queue,
                const params& p, httplib::Response& res) {
    check_name("queue", queue);
    auto spec = spec_in(app, name);
    require_worker(spec, "queues to consume");
    auto& qs = spec.queues;
    bool has = std::find(qs.begin(), qs.end(), queue) != qs.end();
    if (method == "PUT" || method == "POST") {
      if (!has)
        qs.push_back(queue);
    } else if (method == "DELETE") {
      if (!has)
        fail(404, "instance '" + name + "' does not consume '" + queue + "'");
      qs.erase(std::remove(qs.begin(), qs.end(), queue), qs.end());
    } else {
      fail(405, "method not allowed");
    }
    if (auto prob = spec_problem(spec); !prob.empty())
      fail(400, prob);
    store_and_settle(spec, p, res, 200);
  }

  void queues(const std::string& method, const std::string& app,
              httplib::Response& res) {
    if (method != "GET")
      fail(405, "method not allowed");
    check_name("app", app);
    reply(res, 200, ask<std::vector<std::string>>(parts.store,
                                                  list_queues_atom::value, app));
  }

  void queue(const std::string& method, const std::string& app,
             const std::string& name, httplib::Response& res) {
    check_name("app", app);
    check_name("queue", name);
    if (method == "PUT" || method == "POST") {
      ask<bool>(parts.store, put_queue_atom::value, app, name);
      reply(res, 201, json{{"name", name}, {"app", app}});
    } else if (method == "GET") {
      auto names = ask<std::vector<std::string>>(parts.store,
                                                 list_queues_atom::value, app);
      if (std::find(names.begin(), names.end(), name) == names.end())
        fail(404, "no queue '" + name + "' in app '" + app + "'");
      json consumers = json::array();
      for (auto& spec :
           ask<std::vector<instance_spec>>(parts.store, list_atom::value))
        if (spec.app == app
            && std::find(spec.queues.begin(), spec.queues.end(), name)
                 != spec.queues.end())
          consumers.push_back(spec.name);
      reply(res, 200, json{{"name", name}, {"app", app}, {"consumers", consumers}});
    } else if (method == "DELETE") {
      ask<bool>(parts.store, delete_queue_atom::value, app, name);
      reply(res, 200, json{{"ok", true}});
    } else {
      fail(405, "method not allowed");
    }
  }

  /// The task producer of `broker`, made again when its client properties
  /// changed. Called with producers_mtx held.
  kafka::producer& producer_for(const std::string& broker) {
    auto version = parts.kafka_properties->version(broker);
    auto& p = producers[broker];
    if (!p.client || p.version != version) {
      auto cfg = kafka::base_config(broker,
                                    parts.kafka_properties->for_broker(broker));
      cfg["message.timeout.ms"] = "10000";
      p.client = std::make_unique<kafka::producer>(cfg);
      p.version = version;
      // Checked again on the new connection.
      for (auto i = known_topics.begin(); i != known_topics.end();)
        i = i->first == broker ? known_topics.erase(i) : std::next(i);
    }
    return *p.client;
  }

  void send_task(const std::string& method, const std::string& app,
                 const std::string& queue, const params& p,
                 httplib::Response& res) {
    if (method != "POST" && method != "PUT")
      fail(405, "method not allowed");
    check_name("queue", queue);
    auto broker = app_broker(app);
    if (broker.empty())
      broker = parts.default_broker;
    task_message task;
    task.id = new_uuid();
    task.handler = p.text("handler").value_or("echo");
    if (task.handler.empty() || task.handler.size() > 64)
      fail(400, "'handler' must hold 1 to 64 characters");
    task.args_json = p.value("args").value_or(json(nullptr)).dump();
    auto bytes = encode_task(task);
    if (bytes.size() > max_wire_message)
      fail(413, "the task is larger than " + std::to_string(max_wire_message)
                  + " bytes");
    std::lock_guard<std::mutex> guard{producers_mtx};
    auto& producer = producer_for(broker);
    if (known_topics.count({broker, queue}) == 0) {
      if (auto err = producer.ensure_topics({queue}, 4, 5000); !err.empty())
        fail(503, err);
      known_topics.emplace(broker, queue);
    }
    if (auto err = producer.produce(queue, task.id, bytes); !err.empty())
      fail(503, "task not queued: " + err);
    if (!producer.flush(10000))
      fail(503, "task not stored by the broker in time");
    reply(res, 202, json{{"id", task.id}});
  }

  void query(const std::string& method, const std::string& app,
             const std::string& id, const std::string& what, const params& p,
             httplib::Response& res) {
    if (method != "GET")
      fail(405, "method not allowed");
    if (id.empty() || id.size() > 128)
      fail(400, "task ids hold 1 to 128 characters");
    if (parts.results == nullptr)
      fail(503, "task results are not available");
    // Results come on the broker the app's tasks went to; an app not in the
    // model (deleted since) is asked of the default broker.
    auto broker = app_or_new(app).broker;
    auto results = parts.results->of(broker.empty() ? parts.default_broker
                                                    : broker);
    if (what == "state") {
      auto r = results->find(id);
      reply(res, 200, json{{"id", id},
                           {"state", r ? to_string(r->state) : "PENDING"}});
    } else if (what == "result") {
      reply(res, 200, result_json(id, results->find(id)));
    } else if (what == "wait") {
      auto timeout = p.count("timeout").value_or(10);
      if (timeout > 300)
        fail(400, "'timeout' is at most 300 seconds");
      auto r = results->wait(id, seconds{timeout});
      reply(res, r ? 200 : 504, result_json(id, r));
    } else {
      fail(404, "no such path");
    }
  }

  void supervisor(const std::string& method, const std::vector<std::string>& seg,
                  httplib::Response& res) {
    if (seg.size() == 1) {
      if (method != "GET")
        fail(405, "method not allowed");
      reply(res, 200,
            supervisor_json(ask<supervisor_status>(parts.sup, status_atom::value)));
      return;
    }
    if (seg.size() != 2 || (seg[1] != "pause" && seg[1] != "resume"))
      fail(404, "no such path");
    if (method != "POST")
      fail(405, "method not allowed");
    auto st = seg[1] == "pause"
                ? ask<supervisor_status>(parts.sup, pause_atom::value)
                : ask<supervisor_status>(parts.sup, resume_atom::value);
    reply(res, 200, supervisor_json(st));
  }

  void route(const httplib::Request& req, httplib::Response& res) {
    const auto& m = req.method;
    auto seg = split_path(req.path);
    params p{req};
    auto n = seg.size();
    if (n == 0)
      return apps(m, res);
    if (seg[0] == "supervisor")
      return supervisor(m, seg, res);
    const auto& app_name = seg[0];
    if (n == 1)
      return app(m, app_name, p, res);
    if (seg[1] == "instances") {
      if (n == 2)
        return instances(req, m, app_name, p, res);
      if (clustered(p))
        if (auto owner = owner_elsewhere(app_name, seg[2]))
          return forward(*owner, req, res);
      if (n == 3)
        return instance(m, app_name, seg[2], p, res);
      if (n == 4)
        return instance_action(m, app_name, seg[2], seg[3], p, res);
      if (n == 5 && seg[3] == "queues")
        return consumer(m, app_name, seg[2], seg[4], p, res);
    } else if (seg[1] == "queues") {
      if (n == 2)
        return queues(m, app_name, res);
      if (n == 3)
        return queue(m, app_name, seg[2], res);
    } else if (seg[1] == "queue" && n == 3) {
      return send_task(m, app_name, seg[2], p, res);
    } else if (seg[1] == "query" && n == 4) {
      check_name("app", app_name);
      return query(m, app_name, seg[2], seg[3], p, res);
    }
    fail(404, "no such path");
  }

  /// Whether a mutation carries the token (compared in constant time).
  bool authorized(const httplib::Request& req) const {
    if (settings.token.empty() || req.method == "GET")
      return true;
    auto given = req.get_header_value("Authorization");
    auto expected = "Bearer " + settings.token;
    if (given.size() != expected.size())
      return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < given.size(); ++i)
      diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
    return diff == 0;
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    try {
      if (!authorized(req))
        fail(401, "this branch requires a token for changes "
                  "(Authorization: Bearer TOKEN)");
      route(req, res);
    } catch (const http_error& e) {
      reply(res, e.status, json{{"error", e.text}});
    } catch (const std::exception& e) {
      reply(res, 500, json{{"error", std::string{"internal error: "} + e.what()}});
    }
  }
};

http_api::http_api(http_parts parts, http_settings settings)
  : impl_(std::make_unique<impl>()),
    server_(std::make_unique<httplib::Server>()),
    settings_(settings) {
  impl_->parts = std::move(parts);
  impl_->settings = settings;
  server_->set_payload_max_length(max_wire_message);
  auto h = [this](const httplib::Request& req, httplib::Response& res) {
    impl_->handle(req, res);
  };
  server_->Get(".*", h);
  server_->Post(".*", h);
  server_->Put(".*", h);
  server_->Delete(".*", h);
  // A request with neither Content-Length nor Transfer-Encoding has no
  // body (RFC 9112, 6.3); httplib would answer 400 trying to read one, so
  // such requests are served here, before it does.
  server_->set_pre_routing_handler(
    [this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "GET" || req.has_header("Content-Length")
          || req.has_header("Transfer-Encoding"))
        return httplib::Server::HandlerResponse::Unhandled;
      if (req.method == "PATCH")
        impl::reply(res, 405, json{{"error", "method not allowed"}});
      else
        impl_->handle(req, res);
      return httplib::Server::HandlerResponse::Handled;
    });
  server_->Patch(".*", [](const httplib::Request&, httplib::Response& res) {
    impl::reply(res, 405, json{{"error", "method not allowed"}});
  });
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      impl::reply(res, res.status,
                  json{{"error", res.status == 413 ? "request body too large"
                                                   : "bad request"}});
  });
}

http_api::~http_api() {
  stop();
}

void http_api::serve(const httplib::Request& req, httplib::Response& res) {
  impl_->handle(req, res);
}

std::string http_api::start() {
  int port = settings_.port;
  if (port == 0)
    port = server_->bind_to_any_port(settings_.host);
  else if (!server_->bind_to_port(settings_.host, port))
    port = -1;
  if (port <= 0)
    return "cannot listen on " + settings_.host + ":"
           + std::to_string(settings_.port);
  bound_port_ = static_cast<uint16_t>(port);
  thread_ = std::thread{[this] { server_->listen_after_bind(); }};
  return {};
}

void http_api::stop() {
  if (server_)
    server_->stop();
  if (thread_.joinable())
    thread_.join();
}

} // namespace cyme
