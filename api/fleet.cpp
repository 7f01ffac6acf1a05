#include "api/fleet.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <string_view>

#include <caf/send.hpp>

#include "messages/names.hpp"

namespace cyme::api {

namespace {

/// The launch fields a request may set, as named in JSON.
const char* launch_fields[] = {"program", "args", "env", "cwd",
                               "stop_signal", "stop_grace_s", "kind"};

} // namespace

/// The launch fields a request sets, as one JSON object (null members
/// included: they mean "inherit again").
std::string fleet_room::launch_changes(const params& p) {
  json changes = json::object();
  for (auto* key : launch_fields)
    if (auto v = p.value(key))
      changes[key] = *v;
  return changes.dump();
}

/// Applies a request's launch fields to stored overrides; 400 when one
/// is invalid.
std::string fleet_room::merged_overrides(const std::string& overrides,
                                    const params& p) {
  std::string out;
  if (auto prob = merge_launch_overrides(overrides, launch_changes(p), out);
      !prob.empty())
    fail(400, prob);
  return out;
}

/// 403 unless the branch may run `launch`'s program (and, for
/// cyme-worker, its --exec programs); 400 when one cannot be run.
void fleet_room::check_program(const launch_spec& launch) const {
  const auto& program = launch.program;
  if (program.empty() || program == ctx_.parts.worker_program) {
    if (launch.kind == instance_kind::worker)
      for (auto& exec : exec_programs(launch.args))
        check_allowed(exec);
    return;
  }
  check_allowed(program);
}

void fleet_room::check_allowed(const std::string& program) const {
  if (ctx_.parts.programs == nullptr || !ctx_.parts.programs->allows(program))
    fail(403, "program " + program
                + " is not on this branch's allow-list (cyme-branch "
                  "--allow-program PATH); allowed: "
                + ctx_.parts.worker_program
                + (ctx_.parts.programs ? ", " + ctx_.parts.programs->describe() : ""));
  if (auto prob = program_allow_list::runnable_problem(program);
      !prob.empty())
    fail(400, prob);
}

/// The `kafka` field of an app request: librdkafka properties of the
/// app's own broker (null or {} removes them: the branch's apply again).
/// Nothing when not given; 400 when invalid or the app has no broker of
/// its own.
std::optional<kafka::config_map> fleet_room::kafka_field(const params& p,
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
json fleet_room::app_view(const app_record& app) const {
  auto out = app_json(app);
  if (!app.broker.empty())
    if (auto own = ctx_.parts.kafka_properties->own(app.broker)) {
      json props = json::object();
      for (auto& [key, value] : *own)
        props[key] = kafka::is_secret_property(key) ? "(secret)" : value;
      out["kafka"] = props;
    }
  return out;
}

/// Names of the instances of `app` whose launch differs in `after`.
std::vector<std::string>
fleet_room::launch_changed(const std::vector<instance_spec>& before,
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
std::vector<action_report> fleet_room::restart_changed(std::vector<std::string> names,
                                           bool nowait) {
  if (names.empty())
    return {};
  if (nowait) {
    caf::anon_send(ctx_.parts.sup, restart_atom::value, std::move(names));
    return {};
  }
  return ctx_.ask<std::vector<action_report>>(ctx_.parts.sup, restart_atom::value,
                                         std::move(names));
}

/// Lets the supervisor act on `name` unless `nowait`; returns its report.
std::optional<action_report> fleet_room::settle(const std::string& name, bool nowait) {
  std::vector<std::string> names{name};
  if (nowait) {
    caf::anon_send(ctx_.parts.sup, verify_atom::value, names, false);
    return std::nullopt;
  }
  auto reports = ctx_.ask<std::vector<action_report>>(ctx_.parts.sup, verify_atom::value,
                                                 names, false);
  if (reports.empty())
    return std::nullopt;
  return reports.front();
}

/// Stores `spec`, lets the supervisor act (a restart when what it runs
/// changed), answers the instance.
void fleet_room::store_and_settle(const instance_spec& spec, const params& p,
                      http::response& res, int created_status,
                      const launch_spec* launch_before) {
  auto stored = ctx_.ask<instance_spec>(ctx_.parts.store, put_instance_atom::value, spec);
  auto nowait = p.flag("nowait");
  std::optional<action_report> report;
  if (launch_before && *launch_before != stored.launch && stored.enabled) {
    auto reports = restart_changed({stored.name}, nowait);
    if (!reports.empty())
      report = reports.front();
  } else {
    report = settle(stored.name, nowait);
  }
  auto out = ctx_.instance_view(stored);
  if (report)
    out["outcome"] = report_json(*report);
  reply(res, nowait ? 202 : created_status, out);
}

void fleet_room::refuse_reserved(const std::string& app) {
  if (!reserved_app_name(app))
    return;
  auto apps = ctx_.ask<std::vector<std::string>>(ctx_.parts.store,
                                                 list_apps_atom::value);
  if (std::find(apps.begin(), apps.end(), app) == apps.end())
    fail(400, reserved_app_refusal(app));
}

// -- endpoints --------------------------------------------------------------

void fleet_room::apps(const std::string& method, http::response& res) {
  if (method != "GET")
    fail(405, "method not allowed");
  reply(res, 200, ctx_.ask<std::vector<std::string>>(ctx_.parts.store,
                                                list_apps_atom::value));
}

void fleet_room::app(const std::string& method, const std::string& app,
         const params& p, http::response& res) {
  check_name("app", app);
  if (method == "GET") {
    reply(res, 200, app_view(ctx_.get_app(app)));
  } else if (method == "PUT" || method == "POST") {
    refuse_reserved(app);
    // Fields not given keep their value.
    auto rec = ctx_.app_or_new(app);
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
    auto before = ctx_.ask<std::vector<instance_spec>>(ctx_.parts.store, list_atom::value);
    auto created = ctx_.ask<bool>(ctx_.parts.store, put_app_atom::value, rec);
    if (props) {
      ctx_.ask<bool>(ctx_.parts.store, put_broker_atom::value, rec.broker, *props);
      ctx_.parts.kafka_properties->set_own(
        rec.broker, props->empty() ? std::nullopt
                                   : std::optional<kafka::config_map>{*props});
    }
    auto after = ctx_.ask<std::vector<instance_spec>>(ctx_.parts.store, list_atom::value);
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
    ctx_.ask<bool>(ctx_.parts.store, delete_app_atom::value, app);
    reply(res, 200, json{{"ok", true}});
  } else {
    fail(405, "method not allowed");
  }
}

void fleet_room::instances(const http::request& req, const std::string& method,
               const std::string& app, const params& p,
               http::response& res) {
  if (method == "GET") {
    list_instances(app, p, res);
  } else if (method == "PUT" || method == "POST") {
    if (cluster_.clustered(p)) {
      auto target = ctx_.parts.cluster->least_loaded();
      if (target && target->id != ctx_.parts.branch_id) {
        ctx_.parts.cluster->placed_on(target->id);
        // A branch that went silent but is not yet out of the view does
        // not answer: place the instance here instead.
        if (cluster_.try_forward(*target, req, res))
          return;
      }
      ctx_.parts.cluster->placed_on(ctx_.parts.branch_id);
    }
    put_instance(app, new_uuid(), p, res);
  } else {
    fail(405, "method not allowed");
  }
}

namespace {

/// The elements of a JSON array as they are written, without parsing
/// them: "[a,b]" gives "a,b"; nothing when `body` is not an array.
std::optional<std::string_view> array_items(const std::string& body) {
  std::string_view v{body};
  auto first = v.find_first_not_of(" \t\r\n");
  auto last = v.find_last_not_of(" \t\r\n");
  if (first == std::string_view::npos || v[first] != '[' || v[last] != ']')
    return std::nullopt;
  v = v.substr(first + 1, last - first - 1);
  first = v.find_first_not_of(" \t\r\n");
  return first == std::string_view::npos ? std::string_view{} : v.substr(first);
}

} // namespace

void fleet_room::list_instances(const std::string& app, const params& p,
                                http::response& res) {
  ctx_.app_broker(app); // 404 for an unknown app
  auto limit = p.count("limit");
  if (limit && *limit == 0)
    fail(400, "'limit' must be a whole number from 1 to 10000");
  std::string after;
  if (auto a = p.text("after")) {
    check_name("instance", *a);
    after = *a;
  }
  // The peers are asked at once, each on its own thread, while this
  // branch's part is made: a listing takes as long as the slowest branch,
  // not the sum of all.
  std::string query = "/" + app + "/instances/?local=1";
  if (limit)
    query += "&limit=" + std::to_string(*limit);
  if (!after.empty())
    query += "&after=" + after;
  std::vector<branch_info> peers;
  std::vector<std::future<std::optional<peer_answer>>> asked;
  if (cluster_.clustered(p))
    peers = cluster_.peers();
  for (auto& peer : peers)
    asked.push_back(std::async(std::launch::async, [this, peer, query] {
      return cluster_.call(peer, "GET", query);
    }));
  auto specs = ctx_.ask<std::vector<instance_spec>>(ctx_.parts.store, list_atom::value);
  auto statuses = ctx_.ask<std::vector<instance_status>>(ctx_.parts.sup,
                                                         list_atom::value);
  std::vector<const instance_spec*> mine;
  for (auto& spec : specs)
    if (spec.app == app && spec.name > after)
      mine.push_back(&spec);
  auto by_name = [](auto& a, auto& b) { return a.name < b.name; };
  std::sort(mine.begin(), mine.end(),
            [&](auto* a, auto* b) { return by_name(*a, *b); });
  if (limit && mine.size() > *limit)
    mine.resize(*limit);
  // The supervisor lists in name order: each spec meets its status in one
  // walk of both.
  if (!std::is_sorted(statuses.begin(), statuses.end(), by_name))
    std::sort(statuses.begin(), statuses.end(), by_name);
  auto next_status = statuses.begin();
  instance_status none;
  auto status_of = [&](const instance_spec& spec) -> const instance_status& {
    next_status = std::lower_bound(next_status, statuses.end(), spec, by_name);
    if (next_status != statuses.end() && next_status->name == spec.name)
      return *next_status;
    none.name = spec.name;
    return none;
  };
  // Unpaged, this branch's instances are written straight into the body,
  // in name order, and the peers' follow; a page sorts them all first.
  std::string body = "[";
  std::vector<std::pair<std::string, std::string>> items;
  if (limit)
    items.reserve(mine.size());
  for (auto* spec : mine) {
    auto& st = status_of(*spec);
    if (!limit) {
      if (body.size() > 1)
        body += ',';
      append_instance_text(body, *spec, st, ctx_.parts);
      continue;
    }
    items.emplace_back(spec->name, std::string{});
    append_instance_text(items.back().second, *spec, st, ctx_.parts);
  }
  // Peers that did not answer are named in a header rather than failing
  // the listing: what the live branches hold is still worth showing.
  std::string missing;
  bool more = limit && mine.size() == *limit;
  for (size_t k = 0; k < peers.size(); ++k) {
    auto r = asked[k].get();
    std::optional<std::string_view> theirs; // their items, as they wrote them
    if (r && r->status == 200)
      theirs = array_items(r->body);
    json page;
    if (theirs && limit)
      page = json::parse(r->body, nullptr, false);
    if (!theirs || (limit && !page.is_array())) {
      missing += (missing.empty() ? "" : ",") + peers[k].id;
      continue;
    }
    if (!limit) {
      if (!theirs->empty())
        body.append(body.size() > 1 ? "," : "").append(*theirs);
      continue;
    }
    more = more || page.size() >= *limit;
    for (auto& x : page)
      if (auto n = x.find("name"); n != x.end() && n->is_string())
        items.emplace_back(n->get<std::string>(), x.dump());
  }
  if (limit) {
    // One page across every branch: the first `limit` names after the
    // cursor, and a link to the next page when there may be one.
    std::sort(items.begin(), items.end(),
              [](auto& a, auto& b) { return a.first < b.first; });
    if (items.size() > *limit) {
      items.resize(*limit);
      more = true;
    }
    if (more && !items.empty())
      res.headers.emplace_back(
        "Link", "</" + app + "/instances/?limit=" + std::to_string(*limit)
                  + "&after=" + items.back().first
                  + (cluster_.clustered(p) ? "" : "&local=1")
                  + ">; rel=\"next\"");
    for (auto& [name, text] : items) {
      if (body.size() > 1)
        body += ',';
      body += text;
    }
  }
  body += ']';
  if (!missing.empty())
    res.headers.emplace_back("Cyme-Unanswered-Branches", missing);
  res.status = 200;
  res.content_type = "application/json";
  res.body = std::move(body);
}

void fleet_room::put_instance(const std::string& app, const std::string& name,
                  const params& p, http::response& res) {
  check_name("app", app);
  check_name("instance", name);
  auto existing = ctx_.find_spec(name);
  if (existing && existing->app != app)
    fail(409, "instance '" + name + "' belongs to app '" + existing->app + "'");
  // An unknown app is created with the instance.
  refuse_reserved(app);
  auto app_rec = ctx_.app_or_new(app);
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
void fleet_room::require_worker(const instance_spec& spec, const char* what) {
  if (spec.launch.kind == instance_kind::process)
    fail(400, "instance '" + spec.name + "' is of kind 'process': it has no "
              + std::string{what} + " (only workers speak the control "
                "protocol)");
}

void fleet_room::instance(const std::string& method, const std::string& app,
              const std::string& name, const params& p,
              http::response& res) {
  if (method == "GET") {
    reply(res, 200, ctx_.instance_view(ctx_.spec_in(app, name)));
  } else if (method == "PUT" || method == "POST") {
    put_instance(app, name, p, res);
  } else if (method == "DELETE") {
    ctx_.spec_in(app, name);
    ctx_.ask<bool>(ctx_.parts.store, delete_instance_atom::value, name);
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

void fleet_room::instance_action(const std::string& method, const std::string& app,
                     const std::string& name, const std::string& action,
                     const params& p, http::response& res) {
  if (action == "stats") {
    if (method != "GET")
      fail(405, "method not allowed");
    auto spec = ctx_.spec_in(app, name);
    require_worker(spec, "stats");
    control_command cmd;
    cmd.op = control_op::stats;
    cmd.broker = spec.broker;
    cmd.destinations = {name};
    cmd.timeout = seconds{3};
    auto replies = ctx_.ask<std::vector<control_reply>>(ctx_.parts.bus,
                                                   command_atom::value, cmd);
    if (replies.empty() || !replies.front().ok)
      fail(503, "instance '" + name + "' did not answer");
    reply(res, 200, json::parse(stats_json_text(replies.front().stats)));
    return;
  }
  if (action == "autoscale") {
    auto spec = ctx_.spec_in(app, name);
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
  auto spec = ctx_.spec_in(app, name);
  if (action == "restart") {
    auto reports = ctx_.ask<std::vector<action_report>>(
      ctx_.parts.sup, restart_atom::value, std::vector<std::string>{name});
    reply(res, 200, reports.empty() ? json::object() : report_json(reports[0]));
  } else if (action == "enable" || action == "disable") {
    bool enable = action == "enable";
    auto reason = enable ? std::string{}
                         : p.text("reason").value_or("disabled by operator");
    auto updated = ctx_.ask<instance_spec>(ctx_.parts.store, set_enabled_atom::value,
                                      name, enable, reason);
    auto nowait = p.flag("nowait");
    auto report = settle(name, nowait);
    auto out = ctx_.instance_view(updated);
    if (report)
      out["outcome"] = report_json(*report);
    reply(res, nowait ? 202 : 200, out);
  } else {
    fail(404, "no such path");
  }
}

void fleet_room::consumer(const std::string& method, const std::string& app,
              const std::string& name, const std::string& queue,
              const params& p, http::response& res) {
  check_name("queue", queue);
  auto spec = ctx_.spec_in(app, name);
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

void fleet_room::queues(const std::string& method, const std::string& app,
            http::response& res) {
  if (method != "GET")
    fail(405, "method not allowed");
  check_name("app", app);
  reply(res, 200, ctx_.ask<std::vector<std::string>>(ctx_.parts.store,
                                                list_queues_atom::value, app));
}

void fleet_room::queue(const std::string& method, const std::string& app,
           const std::string& name, http::response& res) {
  check_name("app", app);
  check_name("queue", name);
  if (method == "PUT" || method == "POST") {
    ctx_.ask<bool>(ctx_.parts.store, put_queue_atom::value, app, name);
    reply(res, 201, json{{"name", name}, {"app", app}});
  } else if (method == "GET") {
    auto names = ctx_.ask<std::vector<std::string>>(ctx_.parts.store,
                                               list_queues_atom::value, app);
    if (std::find(names.begin(), names.end(), name) == names.end())
      fail(404, "no queue '" + name + "' in app '" + app + "'");
    json consumers = json::array();
    for (auto& spec :
         ctx_.ask<std::vector<instance_spec>>(ctx_.parts.store, list_atom::value))
      if (spec.app == app
          && std::find(spec.queues.begin(), spec.queues.end(), name)
               != spec.queues.end())
        consumers.push_back(spec.name);
    reply(res, 200, json{{"name", name}, {"app", app}, {"consumers", consumers}});
  } else if (method == "DELETE") {
    ctx_.ask<bool>(ctx_.parts.store, delete_queue_atom::value, app, name);
    reply(res, 200, json{{"ok", true}});
  } else {
    fail(405, "method not allowed");
  }
}

void fleet_room::supervisor(const std::string& method, const std::vector<std::string>& seg,
                http::response& res) {
  if (seg.size() == 1) {
    if (method != "GET")
      fail(405, "method not allowed");
    reply(res, 200,
          supervisor_json(ctx_.ask<supervisor_status>(ctx_.parts.sup, status_atom::value)));
    return;
  }
  if (seg.size() != 2 || (seg[1] != "pause" && seg[1] != "resume"))
    fail(404, "no such path");
  if (method != "POST")
    fail(405, "method not allowed");
  auto st = seg[1] == "pause"
              ? ctx_.ask<supervisor_status>(ctx_.parts.sup, pause_atom::value)
              : ctx_.ask<supervisor_status>(ctx_.parts.sup, resume_atom::value);
  reply(res, 200, supervisor_json(st));
}
} // namespace cyme::api
