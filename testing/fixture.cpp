#include "testing/fixture.hpp"

#include <stdexcept>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

namespace cyme::testing {

test_config::test_config() {
  set("scheduler.policy", caf::atom("testing"));
  set("logger.verbosity", caf::atom("quiet"));
}

supervision_fixture::supervision_fixture()
  : sys(cfg),
    sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())),
    driver(spawn_fake_driver(sys, &world)),
    bus(spawn_fake_bus(sys, &world)),
    store(spawn_fake_store(sys, &world)) {
  // Start away from the clock's epoch, like a machine that has been up.
  sched.clock().current_time += std::chrono::hours{1};
}

supervision_fixture::~supervision_fixture() {
  if (sup)
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(driver, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  world.exit_listeners.clear();
  sched.run();
  // Drop pending timers so no actor stays referenced by the clock.
  while (sched.trigger_timeout())
    sched.run();
}

instance_spec& supervision_fixture::add_instance(const std::string& name,
                                                 std::vector<std::string> queues,
                                                 std::string broker) {
  instance_spec spec;
  spec.name = name;
  spec.app = "app";
  spec.queues = std::move(queues);
  spec.broker = std::move(broker);
  return world.model[name] = spec;
}

void supervision_fixture::start(supervisor_settings settings) {
  auto spawned = spawn_supervisor(sys, std::move(settings),
                                  supervisor_seams{driver, bus, store});
  if (!spawned)
    fail("supervisor not spawned: " + describe(spawned.error()));
  sup = spawned->core;
  front = spawned->front;
  auto collector = sys.spawn(
    [](caf::event_based_actor* self, supervision_fixture* fx) -> caf::behavior {
      return {[self, fx](supervisor_event& ev) {
        fx->log.push_back(std::move(ev));
        fx->log_at.push_back(self->clock().now());
      }};
    },
    this);
  caf::anon_send(sup, subscribe_atom::value,
                 caf::actor_cast<event_listener>(collector));
  run_jobs();
}

void supervision_fixture::kill(const std::string& name, bool tell_driver) {
  auto& w = world.workers.at(name);
  if (!w.running)
    fail(name + " is not running");
  if (tell_driver) {
    kill_through_driver(driver, name);
  } else {
    w.running = false;
    w.armed.reset();
  }
  run_jobs();
}

void supervision_fixture::advance(caf::timespan d) {
  auto deadline = now() + d;
  run_jobs();
  while (step_to_next_timer(deadline)) {
    // Fire timers in order, running what each one causes.
  }
  if (deadline > now())
    sched.advance_time(deadline - now());
  run_jobs();
}

bool supervision_fixture::step_to_next_timer(
  caf::actor_clock::time_point deadline) {
  auto& schedule = sched.clock().schedule();
  if (schedule.empty())
    return false;
  auto next = schedule.begin()->first;
  if (next > deadline)
    return false;
  if (next > now())
    sched.advance_time(next - now());
  else
    sched.trigger_timeout();
  run_jobs();
  return true;
}

void supervision_fixture::run_jobs() {
  jobs_run += sched.run();
}

caf::actor_clock::time_point supervision_fixture::now() const {
  return sched.clock().now();
}

instance_status supervision_fixture::status_of(const std::string& name) {
  return ask<instance_status>(status_atom::value, name);
}

supervisor_status supervision_fixture::supervisor() {
  return ask<supervisor_status>(status_atom::value);
}

size_t supervision_fixture::events(event_kind kind,
                                   const std::string& instance) const {
  size_t n = 0;
  for (auto& ev : log)
    if (ev.kind == kind && (instance.empty() || ev.instance == instance))
      ++n;
  return n;
}

void supervision_fixture::fail(const std::string& what) {
  throw std::runtime_error(what);
}

} // namespace cyme::testing
