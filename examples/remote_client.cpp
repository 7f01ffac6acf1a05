// A C++ client of a branch's supervisor on another node: connects through
// CAF's middleman to the supervisor a branch published with --node, prints
// its status and the instances it supervises, and restarts the instances
// named on the command line. supervisor_actor, the supervisor's public
// requests, is all a remote node can send: the branch publishes a front
// that refuses the supervisor's internal messages.
//
//   cyme-remote-example HOST PORT [INSTANCE...]
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/message_types.hpp"
#include "actors/supervisor.hpp"
#include "messages/errors.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " HOST PORT [INSTANCE...]\n";
    return 2;
  }
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cyme::add_message_types(cfg); // the vocabulary both nodes share
  caf::actor_system sys{cfg};
  auto sup = sys.middleman().remote_actor<cyme::supervisor_actor>(
    argv[1], static_cast<uint16_t>(std::stoi(argv[2])));
  if (!sup) {
    std::cerr << "cannot reach the supervisor: " << sys.render(sup.error())
              << "\n";
    return 1;
  }
  caf::scoped_actor self{sys};
  auto fail = [&](caf::error& err) {
    std::cerr << "error: " << cyme::describe(err) << "\n";
  };
  self->request(*sup, std::chrono::seconds{10}, cyme::status_atom::value)
    .receive(
      [](cyme::supervisor_status& st) {
        std::cout << (st.paused ? "paused" : "running") << ", "
                  << st.instances << " instances, " << st.rounds_completed
                  << " rounds\n";
      },
      fail);
  self->request(*sup, std::chrono::seconds{10}, cyme::list_atom::value)
    .receive(
      [](std::vector<cyme::instance_status>& xs) {
        for (auto& x : xs)
          std::cout << "  " << x.name << ": " << to_string(x.state) << ", pid "
                    << x.pid << ", " << x.restarts << " restarts\n";
      },
      fail);
  std::vector<std::string> names(argv + 3, argv + argc);
  if (names.empty())
    return 0;
  int code = 0;
  self
    ->request(*sup, std::chrono::seconds{90}, cyme::restart_atom::value, names)
    .receive(
      [&](std::vector<cyme::action_report>& reports) {
        for (auto& r : reports) {
          std::cout << r.instance << ": " << to_string(r.result)
                    << (r.detail.empty() ? "" : " (" + r.detail + ")") << "\n";
          if (r.result != cyme::outcome::restarted)
            code = 1;
        }
      },
      [&](caf::error& err) {
        fail(err);
        code = 1;
      });
  return code;
}
