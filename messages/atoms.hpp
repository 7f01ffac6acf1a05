#pragma once

/// The atoms of cyme's message vocabulary. Every request, reply and event
/// that crosses an actor boundary is tagged with one of these. CAF 0.17 atoms
/// hold at most 10 characters.

#include <caf/atom.hpp>

namespace cyme {

// Requests an operator (or a remote node) sends to the supervisor.
using verify_atom = caf::atom_constant<caf::atom("verify")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using pause_atom = caf::atom_constant<caf::atom("pause")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;

// Broker health, told to the supervisor by the control bus.
using broker_down_atom = caf::atom_constant<caf::atom("brokerdown")>;
using broker_up_atom = caf::atom_constant<caf::atom("brokerup")>;

// Supervisor internals: its interval timer, permits its instance actors ask
// for before restarting, status reports they send back.
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using permit_atom = caf::atom_constant<caf::atom("permit")>;
using report_atom = caf::atom_constant<caf::atom("report")>;
using child_atom = caf::atom_constant<caf::atom("child")>;
// The supervisor tells an instance actor what a round's probe showed of its
// process when it settled the actor's verify itself.
using answered_atom = caf::atom_constant<caf::atom("answered")>;
// The branch tells its supervisor where in the interval its rounds start.
using phase_atom = caf::atom_constant<caf::atom("phase")>;

// Process driver.
using start_atom = caf::atom_constant<caf::atom("start")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using alive_atom = caf::atom_constant<caf::atom("alive")>;
using exited_atom = caf::atom_constant<caf::atom("exited")>;
using arm_atom = caf::atom_constant<caf::atom("arm")>;

// Control bus.
using command_atom = caf::atom_constant<caf::atom("command")>;

// Model store.
using get_atom = caf::atom_constant<caf::atom("get")>;
using disable_atom = caf::atom_constant<caf::atom("disable")>;
using remove_atom = caf::atom_constant<caf::atom("remove")>;

// Process driver internals (transport/process_driver.cpp): its watcher
// thread tells it that a watched process ended; its stop timer says the
// grace period before SIGKILL ran out; a start asks for a standby worker
// to be made ready for the next start of its kind; a dead worker's
// leftovers are due to be cleared.
using child_exit_atom = caf::atom_constant<caf::atom("childexit")>;
using grace_over_atom = caf::atom_constant<caf::atom("graceover")>;
using standby_atom = caf::atom_constant<caf::atom("standby")>;
using leftovers_atom = caf::atom_constant<caf::atom("leftovers")>;

// Model administration (store/model_store.hpp): what the HTTP API and the
// CLI ask of the model store beyond the supervisor's list / get / disable.
using put_instance_atom = caf::atom_constant<caf::atom("putinst")>;
using delete_instance_atom = caf::atom_constant<caf::atom("delinst")>;
using set_enabled_atom = caf::atom_constant<caf::atom("setenabled")>;
using put_app_atom = caf::atom_constant<caf::atom("putapp")>;
using list_apps_atom = caf::atom_constant<caf::atom("listapps")>;
using get_app_atom = caf::atom_constant<caf::atom("getapp")>;
using delete_app_atom = caf::atom_constant<caf::atom("delapp")>;
using put_queue_atom = caf::atom_constant<caf::atom("putqueue")>;
using list_queues_atom = caf::atom_constant<caf::atom("listqueues")>;
using delete_queue_atom = caf::atom_constant<caf::atom("delqueue")>;
using put_broker_atom = caf::atom_constant<caf::atom("putbroker")>;
using list_brokers_atom = caf::atom_constant<caf::atom("lsbrokers")>;

} // namespace cyme
