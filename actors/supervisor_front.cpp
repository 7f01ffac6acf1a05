#include "actors/supervisor_front.hpp"

#include <utility>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace cyme {

namespace {

struct front_state {
  supervisor_core core;

  static inline const char* name = "cyme.supervisor_front";
};

using front_ptr = supervisor_actor::stateful_pointer<front_state>;

/// Asks the core and answers the caller from here.
template <class T, class... Ts>
caf::typed_response_promise<T> relay(front_ptr self, Ts&&... xs) {
  auto rp = self->make_response_promise<T>();
  self->request(self->state.core, caf::infinite, std::forward<Ts>(xs)...)
    .then([rp](T& x) mutable { rp.deliver(std::move(x)); },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

supervisor_actor::behavior_type front_behavior(front_ptr self,
                                               supervisor_core core) {
  self->state.core = std::move(core);
  self->monitor(self->state.core);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.core.address())
      self->quit(dm.reason);
  });
  // Whatever a peer sends arrives here as it was sent: an exit or error
  // message must not end the front (by default both do), and a message
  // outside the interface is refused without a line on stderr for each.
  self->set_exit_handler([](caf::exit_msg&) {});
  self->set_error_handler([](caf::error&) {});
  self->set_default_handler(caf::drop);
  using reports = std::vector<action_report>;
  return {
    [=](verify_atom, std::vector<std::string>& names, bool ratelimit) {
      return relay<reports>(self, verify_atom::value, std::move(names),
                            ratelimit);
    },
    [=](restart_atom, std::vector<std::string>& names) {
      return relay<reports>(self, restart_atom::value, std::move(names));
    },
    [=](shutdown_atom, std::vector<std::string>& names) {
      return relay<reports>(self, shutdown_atom::value, std::move(names));
    },
    [=](pause_atom) {
      return relay<supervisor_status>(self, pause_atom::value);
    },
    [=](resume_atom) {
      return relay<supervisor_status>(self, resume_atom::value);
    },
    [=](status_atom) {
      return relay<supervisor_status>(self, status_atom::value);
    },
    [=](status_atom, std::string& name) {
      return relay<instance_status>(self, status_atom::value, std::move(name));
    },
    [=](list_atom) {
      return relay<std::vector<instance_status>>(self, list_atom::value);
    },
  };
}

} // namespace

supervisor_actor spawn_supervisor_front(caf::actor_system& sys,
                                        supervisor_core core) {
  return sys.spawn(front_behavior, std::move(core));
}

} // namespace cyme
