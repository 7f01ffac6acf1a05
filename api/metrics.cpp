#include "api/metrics.hpp"

#include <set>

#include "transport/control_bus.hpp"
#include "transport/metrics.hpp"
#include "transport/proc.hpp"

namespace cyme::api {

namespace {

using metrics::exposition;
using metrics::labels;

const instance_state all_states[] = {
  instance_state::stopped,  instance_state::starting,
  instance_state::running,  instance_state::unresponsive,
  instance_state::disabled,
};

void instances(exposition& x, context& ctx) {
  auto specs = ctx.ask<std::vector<instance_spec>>(ctx.parts.store,
                                                   list_atom::value);
  auto statuses = ctx.ask<std::vector<instance_status>>(ctx.parts.sup,
                                                        list_atom::value);
  std::map<std::string, instance_status> by_name;
  for (auto& s : statuses)
    by_name[s.name] = s;
  struct row {
    labels ls;
    instance_status st;
    std::size_t queues = 0;
  };
  std::vector<row> rows;
  for (auto& spec : specs) {
    row r;
    r.ls = {{"app", spec.app},
            {"instance", spec.name},
            {"branch", ctx.parts.branch_id}};
    r.st.name = spec.name;
    if (auto i = by_name.find(spec.name); i != by_name.end())
      r.st = i->second;
    r.queues = r.st.consuming_from.size();
    rows.push_back(std::move(r));
  }
  auto gauge = [&](const char* name, const char* help, auto value) {
    x.family(name, "gauge", help);
    for (auto& r : rows)
      if (auto v = value(r))
        x.sample(name, r.ls, *v);
  };
  gauge("cyme_instance_up", "1 when the instance's process runs and answers",
        [](const row& r) -> std::optional<double> {
          return r.st.state == instance_state::running && r.st.pid > 0 ? 1 : 0;
        });
  x.family("cyme_instance_state", "gauge",
           "1 for the state the instance is in, 0 for the others");
  for (auto& r : rows)
    for (auto s : all_states) {
      auto ls = r.ls;
      ls.emplace_back("state", to_string(s));
      x.sample("cyme_instance_state", ls, r.st.state == s ? 1 : 0);
    }
  x.family("cyme_instance_restarts_total", "counter",
           "restarts the supervisor made since the branch started");
  for (auto& r : rows)
    x.sample("cyme_instance_restarts_total", r.ls, r.st.restarts);
  gauge("cyme_instance_start_time_seconds",
        "when the instance's process started (Unix time)",
        [](const row& r) -> std::optional<double> {
          if (r.st.pid <= 0 || r.st.started_at_ms <= 0)
            return std::nullopt;
          return static_cast<double>(r.st.started_at_ms) / 1000;
        });
  gauge("cyme_instance_last_exit_code",
        "exit code of the instance's last death (-1: by a signal)",
        [](const row& r) -> std::optional<double> {
          if (r.st.last_exit_at_ms <= 0)
            return std::nullopt;
          return r.st.last_exit_code;
        });
  x.family("cyme_instance_last_exit_signal", "gauge",
           "1, labelled with the signal that ended the instance's last "
           "process, when a signal did");
  for (auto& r : rows)
    if (!r.st.last_exit_signal.empty()) {
      auto ls = r.ls;
      ls.emplace_back("signal", r.st.last_exit_signal);
      x.sample("cyme_instance_last_exit_signal", ls, 1);
    }
  gauge("cyme_instance_concurrency", "the instance's pool size",
        [](const row& r) -> std::optional<double> { return r.st.concurrency; });
  gauge("cyme_instance_queues", "queues the instance consumes from",
        [](const row& r) -> std::optional<double> {
          return static_cast<double>(r.queues);
        });
  gauge("cyme_instance_ping_round_trip_seconds",
        "round trip of the instance's last answered ping",
        [](const row& r) -> std::optional<double> {
          if (r.st.ping_rtt_us < 0)
            return std::nullopt;
          return static_cast<double>(r.st.ping_rtt_us) / 1e6;
        });
  std::map<std::string, process_usage> usage;
  for (auto& r : rows)
    if (auto u = usage_of(r.st.pid))
      usage[r.st.name] = *u;
  gauge("cyme_instance_resident_memory_bytes",
        "resident memory of the instance's process",
        [&](const row& r) -> std::optional<double> {
          auto i = usage.find(r.st.name);
          if (i == usage.end())
            return std::nullopt;
          return static_cast<double>(i->second.resident_bytes);
        });
  x.family("cyme_instance_cpu_seconds_total", "counter",
           "CPU time (user and system) of the instance's process");
  for (auto& r : rows)
    if (auto i = usage.find(r.st.name); i != usage.end())
      x.sample("cyme_instance_cpu_seconds_total", r.ls, i->second.cpu_seconds);
}

void supervisor(exposition& x, context& ctx) {
  auto st = ctx.ask<supervisor_status>(ctx.parts.sup, status_atom::value);
  labels branch{{"branch", ctx.parts.branch_id}};
  if (ctx.parts.round_durations) {
    x.family("cyme_supervisor_round_duration_seconds", "histogram",
             "how long verification rounds took");
    x.histogram_samples("cyme_supervisor_round_duration_seconds", branch,
                        ctx.parts.round_durations->read());
  }
  x.family("cyme_supervisor_rounds_total", "counter",
           "verification rounds completed");
  x.sample("cyme_supervisor_rounds_total", branch,
           static_cast<double>(st.rounds_completed));
  x.family("cyme_supervisor_paused", "gauge",
           "1 while the supervisor is paused (by an operator or a broker "
           "down)");
  x.sample("cyme_supervisor_paused", branch, st.paused ? 1 : 0);
  x.family("cyme_supervisor_bus_suspected", "gauge",
           "1 while the supervisor suspects the control bus (most of a "
           "round's instances silent while their processes run) and "
           "restarts silent instances only at bus_suspect_restart_rate");
  x.sample("cyme_supervisor_bus_suspected", branch, st.bus_suspected ? 1 : 0);
  // Every broker the branch's instances use, and its default one.
  std::set<std::string> brokers{ctx.parts.default_broker};
  for (auto& spec :
       ctx.ask<std::vector<instance_spec>>(ctx.parts.store, list_atom::value))
    brokers.insert(spec.broker.empty() ? ctx.parts.default_broker
                                       : spec.broker);
  std::set<std::string> down;
  for (auto& b : st.brokers_down)
    down.insert(b.empty() ? ctx.parts.default_broker : b);
  x.family("cyme_broker_up", "gauge",
           "1 while the branch reaches the broker, 0 while it is down");
  for (auto& b : brokers) {
    auto ls = branch;
    ls.emplace_back("broker", b);
    x.sample("cyme_broker_up", ls, down.count(b) ? 0 : 1);
  }
  if (auto& c = ctx.parts.bus_counters) {
    x.family("cyme_control_round_trip_seconds", "histogram",
             "from a control command's sending to each reply's arrival");
    x.histogram_samples("cyme_control_round_trip_seconds", branch,
                        c->round_trip.read());
    x.family("cyme_control_commands_sent_total", "counter",
             "control commands sent on the bus");
    x.sample("cyme_control_commands_sent_total", branch,
             static_cast<double>(c->commands_sent.load()));
    x.family("cyme_control_replies_received_total", "counter",
             "control replies received");
    x.sample("cyme_control_replies_received_total", branch,
             static_cast<double>(c->replies_received.load()));
    x.family("cyme_control_timeouts_total", "counter",
             "destinations of delivered commands that did not answer in "
             "time");
    x.sample("cyme_control_timeouts_total", branch,
             static_cast<double>(c->timeouts.load()));
  }
}

void tasks_and_server(exposition& x, context& ctx, const task_room& tasks,
                      const http::server_counters* server) {
  labels branch{{"branch", ctx.parts.branch_id}};
  x.family("cyme_tasks_submitted_total", "counter",
           "tasks accepted through the HTTP API");
  x.sample("cyme_tasks_submitted_total", branch,
           static_cast<double>(tasks.submitted()));
  if (ctx.parts.results) {
    x.family("cyme_task_results_total", "counter",
             "task results read from the results topic, by state");
    for (auto& [state, n] : ctx.parts.results->counts()) {
      auto ls = branch;
      ls.emplace_back("state", state);
      x.sample("cyme_task_results_total", ls, static_cast<double>(n));
    }
  }
  if (server) {
    auto counter = [&](const char* name, const char* help, uint64_t v) {
      x.family(name, "counter", help);
      x.sample(name, branch, static_cast<double>(v));
    };
    x.family("cyme_http_connections_open", "gauge", "open HTTP connections");
    x.sample("cyme_http_connections_open", branch,
             static_cast<double>(server->connections_open.load()));
    x.family("cyme_http_streams_open", "gauge",
             "open streams (events, followed logs)");
    x.sample("cyme_http_streams_open", branch,
             static_cast<double>(server->streams_open.load()));
    counter("cyme_http_requests_total", "HTTP requests read",
            server->requests_total.load());
    counter("cyme_http_connections_refused_total",
            "connections answered 503 past the connection cap",
            server->connections_refused.load());
    counter("cyme_http_timeouts_total",
            "connections closed for sending a request too slowly",
            server->timeouts_total.load());
    counter("cyme_http_streams_cut_off_total",
            "stream clients cut off for falling too far behind",
            server->streams_cut_off.load());
  }
}

void process(exposition& x) {
  if (auto u = usage_of(::getpid())) {
    x.family("process_resident_memory_bytes", "gauge",
             "resident memory of the branch");
    x.sample("process_resident_memory_bytes", {},
             static_cast<double>(u->resident_bytes));
    x.family("process_cpu_seconds_total", "counter",
             "CPU time (user and system) of the branch");
    x.sample("process_cpu_seconds_total", {}, u->cpu_seconds);
  }
  x.family("process_open_fds", "gauge", "descriptors the branch has open");
  x.sample("process_open_fds", {}, static_cast<double>(open_descriptors()));
}

} // namespace

std::string render_metrics(context& ctx, const task_room& tasks,
                           const http::server_counters* server) {
  exposition x;
  instances(x, ctx);
  supervisor(x, ctx);
  tasks_and_server(x, ctx, tasks, server);
  process(x);
  return x.text();
}

} // namespace cyme::api
