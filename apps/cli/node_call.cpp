#include "apps/cli/node_call.hpp"

#include <chrono>
#include <iostream>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/message_types.hpp"
#include "actors/supervisor.hpp"
#include "apps/cli/render.hpp"
#include "messages/errors.hpp"
#include "messages/wire.hpp"

namespace cyme::cli {

namespace {

using json = nlohmann::ordered_json;

enum class node_op { status, pause, resume, restart, list, none };

node_op op_of(const branch_call& c) {
  auto& s = c.segments;
  if (s.size() == 1 && s[0] == "supervisor" && c.method == "GET")
    return node_op::status;
  if (s.size() == 2 && s[0] == "supervisor" && c.method == "POST")
    return s[1] == "pause" ? node_op::pause
           : s[1] == "resume" ? node_op::resume
                              : node_op::none;
  if (s.size() == 4 && s[1] == "instances" && s[3] == "restart"
      && c.method == "POST")
    return node_op::restart;
  if (s.size() == 2 && s[1] == "instances" && c.method == "GET")
    return node_op::list;
  return node_op::none;
}

json status_json(const supervisor_status& s) {
  return json::parse(status_json_text(s));
}

json instance_json(const instance_status& s) {
  return json{{"name", s.name},
              {"state", to_string(s.state)},
              {"pid", s.pid},
              {"restarts", s.restarts},
              {"consuming_from", s.consuming_from},
              {"concurrency", s.concurrency},
              {"supervised", s.supervised}};
}

} // namespace

bool node_supports(const branch_call& call) {
  return op_of(call) != node_op::none;
}

int perform_on_node(const std::string& host, uint16_t port,
                    const node_tls& tls, const branch_call& call, bool as_json,
                    int timeout_s, std::ostream& out, std::ostream& err) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  add_message_types(cfg);
  if (tls.enabled()) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = tls.certificate;
    cfg.openssl_key = tls.key;
    cfg.openssl_cafile = tls.ca;
  }
  caf::actor_system sys{cfg};
  auto sup = tls.enabled()
               ? caf::openssl::remote_actor<supervisor_actor>(sys, host, port)
               : sys.middleman().remote_actor<supervisor_actor>(host, port);
  if (!sup) {
    err << "cyme: node " << host << ":" << port
        << " unreachable: " << sys.render(sup.error()) << "\n";
    return exit_unreachable;
  }
  caf::scoped_actor self{sys};
  std::optional<json> answer;
  int code = exit_ok;
  auto on_error = [&](caf::error& e) {
    err << "cyme: " << describe(e) << "\n";
    code = e.category() == caf::atom("cyme")
               && static_cast<cyme_errc>(e.code()) == cyme_errc::invalid_argument
             ? exit_refused
             : exit_unreachable;
  };
  auto timeout = std::chrono::seconds{timeout_s};
  auto on_status = [&](supervisor_status& s) { answer = status_json(s); };
  switch (op_of(call)) {
    case node_op::status:
      self->request(*sup, timeout, status_atom::value).receive(on_status, on_error);
      break;
    case node_op::pause:
      self->request(*sup, timeout, pause_atom::value).receive(on_status, on_error);
      break;
    case node_op::resume:
      self->request(*sup, timeout, resume_atom::value).receive(on_status, on_error);
      break;
    case node_op::restart:
      self
        ->request(*sup, timeout, restart_atom::value,
                  std::vector<std::string>{call.segments[2]})
        .receive(
          [&](std::vector<action_report>& r) {
            if (r.empty())
              return;
            answer = json{{"name", r[0].instance},
                          {"outcome", to_string(r[0].result)},
                          {"detail", r[0].detail}};
            if (r[0].result == outcome::unknown_instance)
              code = exit_refused;
          },
          on_error);
      break;
    case node_op::list:
      self->request(*sup, timeout, list_atom::value)
        .receive(
          [&](std::vector<instance_status>& xs) {
            json list = json::array();
            for (auto& x : xs)
              list.push_back(instance_json(x));
            answer = list;
          },
          on_error);
      break;
    case node_op::none:
      err << "cyme: this command is not available with --node\n";
      return exit_usage;
  }
  if (!answer)
    return code;
  if (as_json)
    out << answer->dump(2) << "\n";
  else if (answer->is_array()) {
    std::vector<std::vector<std::string>> rows;
    for (auto& x : *answer)
      rows.push_back({cell_text(x["name"]), cell_text(x["state"]),
                      cell_text(x["pid"]), cell_text(x["restarts"]),
                      cell_text(x["consuming_from"])});
    print_table({"NAME", "STATE", "PID", "RESTARTS", "CONSUMING"}, rows, out);
  } else {
    print_object(*answer, out);
  }
  return code;
}

} // namespace cyme::cli
